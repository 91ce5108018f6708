"""The vocabulary of the synthetic world: shapes, colours, sizes, relations and their words.

Nouns and adjectives are common English words that spaCy's small English pipeline tags
reliably. Every caption word that carries meaning comes from the tables here, and
:func:`unimo_kit.data.synth.satisfies` reads graphs with the same tables, so the generator and
the checker cannot disagree about what a word means.
"""

from __future__ import annotations

SHAPES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "star",
    "oval",
    "diamond",
    "rectangle",
    "heart",
)
"""Object nouns (singular), in a fixed order (indices are used for seeded choices). Chosen so
spaCy's small English model tags them as common nouns and the colours before them as
adjectives ("hexagon", "pentagon" and "orange" are often tagged as proper nouns/compounds)."""

WIDE_SHAPES: frozenset[str] = frozenset({"oval", "rectangle"})
"""Shapes drawn wider than tall (their box is ``WIDE_ASPECT`` times as tall as wide)."""

WIDE_ASPECT = 0.6  # height / width of the box of a wide shape

PLURALS: dict[str, str] = {shape: shape + "s" for shape in SHAPES}
"""Singular → plural noun."""

SINGULARS: dict[str, str] = {plural: shape for shape, plural in PLURALS.items()}
"""Plural → singular noun."""

GENERIC_NOUNS: frozenset[str] = frozenset({"shape", "object", "thing", "figure"})
"""Nouns :func:`satisfies` accepts for an object of any shape (with their plurals)."""

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 160, 70),
    "blue": (40, 90, 220),
    "yellow": (235, 200, 20),
    "purple": (130, 60, 170),
    "black": (30, 30, 30),
    "pink": (245, 120, 185),
    "brown": (125, 80, 40),
}
"""Colour name → RGB fill. All are far from the background and from each other."""

BACKGROUND: tuple[int, int, int] = (245, 245, 245)
"""Background RGB (light grey; no colour name is near it)."""

SIZES: tuple[str, ...] = ("small", "large")
"""Size adjectives."""

SIZE_SYNONYMS: dict[str, str] = {"small": "small", "little": "small", "tiny": "small",
                                 "large": "large", "big": "large", "huge": "large"}  # fmt: skip
"""Size words :func:`satisfies` understands → canonical size. Captions use only :data:`SIZES`."""

RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below", "next to")
"""Normalised relation predicates (FACTUAL form), all read off the geometry."""

INVERSE_RELATIONS: dict[str, str] = {
    "left of": "right of",
    "right of": "left of",
    "above": "below",
    "below": "above",
    "next to": "next to",
}
"""``A p B`` holds iff ``B INVERSE_RELATIONS[p] A`` holds."""

RELATION_FORMS: dict[str, tuple[str, ...]] = {
    "left of": ("to the left of", "left of", "on the left of"),
    "right of": ("to the right of", "right of", "on the right of"),
    "above": ("above",),
    "below": ("below", "under"),
    "next to": ("next to", "beside"),
}
"""Normalised predicate → the surface forms captions use for it."""

PREDICATE_ALIASES: dict[str, str] = {
    form: predicate for predicate, forms in RELATION_FORMS.items() for form in forms
} | {"to left of": "left of", "to right of": "right of", "beneath": "below", "over": "above",
     "left": "left of", "right": "right of"}  # fmt: skip
"""Any predicate string :func:`satisfies` accepts → normalised predicate."""

NUMBER_WORDS: dict[int, str] = {1: "one", 2: "two", 3: "three", 4: "four"}
"""Counts as written in captions (graphs hold the digits, as FACTUAL does)."""

WORD_NUMBERS: dict[str, int] = {word: n for n, word in NUMBER_WORDS.items()} | {
    str(n): n for n in range(0, 10)
}
"""Numeral strings :func:`satisfies` accepts (``"two"``, ``"2"``) → int."""


def article(word: str) -> str:
    """Indefinite article for the word that follows it (``an orange``, ``a heart``)."""
    return "an" if word[:1].lower() in "aeio" else "a"


def singular(noun: str) -> str:
    """Singular of a world noun (``squares`` → ``square``); other nouns are returned as is."""
    noun = noun.strip().lower()
    if noun in SINGULARS:
        return SINGULARS[noun]
    if noun.endswith("s") and noun[:-1] in GENERIC_NOUNS:
        return noun[:-1]
    return noun


def is_plural(noun: str) -> bool:
    """Whether ``noun`` is a plural form of a world noun (or a generic noun)."""
    noun = noun.strip().lower()
    return noun in SINGULARS or (noun.endswith("s") and noun[:-1] in GENERIC_NOUNS)
