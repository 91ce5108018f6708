"""Word lists and cached WordNet look-ups used by the scene-graph parser and its metric.

Everything here is a small table or a cached function of one word, so the parser's pass over a
spaCy ``Doc`` stays linear and cheap. WordNet is loaded on first use (through
:func:`unimo_kit.resources.wordnet`), never at import time.
"""

from __future__ import annotations

import functools


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


WORD_NUMBERS: dict[str, int] = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "hundred": 100,
    "dozen": 12, "both": 2, "pair": 2,
}  # fmt: skip
"""Number words → value; FACTUAL writes counts as digits (``two`` → ``2``)."""

COLLECTIVE_NOUNS: frozenset[str] = _words(
    "bunch bunches group groups lot lots number numbers herd herds flock flocks pile piles "
    "stack stacks bit bits piece pieces set sets row rows couple pair pairs collection crowd "
    "cluster clusters bundle bundles handful variety plenty array assortment load loads swarm "
    "pack kind kinds type types sort sorts team bank series line lines thicket alot body"
)
"""``a bunch of kites`` → the entity is ``kites``: these nouns stand aside for their ``of``
object."""

PART_NOUNS: frozenset[str] = _words("part parts mound slice slices")
"""``part of a door`` → ``( door , is , part )`` (FACTUAL)."""

RELATIONAL_NOUNS: frozenset[str] = _words(
    "front top left right side middle back bottom edge corner end center centre rear base "
    "inside outside surface tip head foot"
)
"""Nouns that form a multi-word preposition with ``of``: ``in front of``, ``on the side of``.
Only when they sit between a preposition and ``of`` (``on top of``); ``head``/``foot`` only as
``at the head of``."""

ADVERB_PREPOSITIONS: dict[str, frozenset[str]] = {
    "next": _words("to"),
    "close": _words("to"),
    "left": _words("of"),
    "right": _words("of"),
    "ahead": _words("of"),
    "out": _words("of from"),
    "outside": _words("of"),
    "inside": _words("of"),
    "away": _words("from"),
    "apart": _words("from"),
}
"""Words that head a two-word preposition with their own ``prep`` child, and the prepositions
they take: ``next to``, ``left of``, ``out of``, ``close to`` (not ``left on``)."""

PREDICATE_ALIASES: dict[str, str] = {
    "to the left of": "left of",
    "on the left of": "left of",
    "at the left of": "left of",
    "to left of": "left of",
    "on left of": "left of",
    "to the right of": "right of",
    "on the right of": "right of",
    "at the right of": "right of",
    "to right of": "right of",
    "on right of": "right of",
    "in between": "between",
    "inside of": "inside",
    "outside of": "outside",
    "at top of": "on top of",
    "to top of": "on top of",
    "atop": "on top of",
    "on to": "onto",
    "in to": "into",
    "beneath": "under",
    "underneath": "under",
    "close to": "close to",
}
"""Normalised multi-word predicates (after determiners are dropped). Unlisted predicates keep
their words: ``in front of``, ``on top of``, ``on side of``."""

CANONICAL_RELATIONS: dict[str, str] = {
    "under": "below",
    "beneath": "below",
    "underneath": "below",
    "beside": "next to",
    "by": "next to",
    "alongside": "next to",
    "to left of": "left of",
    "to right of": "right of",
}
"""Spatial synonyms mapped onto the contract's canonical predicates (``left of``, ``right of``,
``above``, ``below``, ``next to``) when a parser is built with ``canonical_relations=True``.
FACTUAL keeps the surface word (``under``), so this is off by default."""

STATE_ADVERBS: frozenset[str] = _words("outside inside outdoors indoors up")
"""Adverbs kept as attributes next to an action (``people standing outside``)."""

ATTRIBUTE_ALIASES: dict[str, str] = {"wood": "wooden"}
"""Noun modifiers FACTUAL writes as adjectives (``wood table`` → ``( table , is , wooden )``)."""

VERB_ALIASES: dict[str, str] = {"lie": "lay"}
"""Verb lemmas FACTUAL writes differently (``lying on`` → ``lay on``)."""

STRANDED_PREPOSITIONS: frozenset[str] = _words("on in at under over inside behind near by to from")
"""Prepositions left at the end of a relative clause (``the water the bird is standing on``)."""

ON_CONTAINERS: frozenset[str] = _words("plate plates dish dishes platter platters tray trays")
"""Containers whose contents lie on them (``a plate of food`` → ``( food , on , plate )``)."""

SKIPPED_MODIFIERS: frozenset[str] = _words(
    "other another many several few such same own various more most much numerous multiple "
    "some any all each every certain main"
)
"""Adjectives that quantify or refer rather than describe (``other animals``): no attribute."""

NAME_MODIFIERS: frozenset[str] = _words("left right front back rear")
"""Positional adjectives FACTUAL keeps in the object name (``left hand``, ``front legs``)."""

INTENSIFIERS: frozenset[str] = _words("dark light bright pale deep partly")
"""Modifiers kept inside an attribute (``dark green``, ``partly cloudy``)."""

COLORS: frozenset[str] = _words(
    "white black blue green red brown grey gray orange yellow pink purple silver gold golden tan "
    "beige maroon violet navy teal turquoise cream khaki"
)
"""Colour words; tagged as nouns in compounds (``orange shirt``) they are still attributes."""

WEAR_PREPOSITIONS: frozenset[str] = frozenset({"in"})
"""``man in a red shirt`` → ``wear`` when the object is clothing (``with`` stays ``with``:
FACTUAL keeps it about as often as it writes ``wear``)."""

PERSONAL_PRONOUNS: frozenset[str] = _words("he she it they him her them this these")
"""Pronouns resolved to the nearest preceding object (dropped when there is none)."""

RELATIVE_PRONOUNS: frozenset[str] = frozenset({"that", "which", "who", "whom", "whose"})
"""Relative pronouns: stand for the noun their clause modifies."""


def number_value(word: str) -> int | None:
    """Integer value of a numeral word (``"two"``, ``"2"``), or ``None``."""
    word = word.lower().replace(",", "")
    if word.isascii() and word.isdigit():  # not "¹" or "²": isdigit() but no int()
        return int(word) if len(word) < 7 else None
    return WORD_NUMBERS.get(word)


@functools.lru_cache(maxsize=100_000)
def noun_lemma(word: str) -> str:
    """WordNet noun lemma of one word (``squares`` → ``square``), cached.

    Multi-word names are lemmatised word by word (``tennis balls`` → ``tennis ball``), as the
    metric does for both sides.
    """
    if " " in word:
        return " ".join(noun_lemma(w) for w in word.split())
    if not word.isalpha():
        return word
    from unimo_kit.resources import wordnet

    lemmas = wordnet()._morphy(word, "n")  # nltk's WordNetLemmatizer, on the one reader
    return min(lemmas, key=len) if lemmas else word


@functools.lru_cache(maxsize=100_000)
def verb_lemma(word: str, fallback: str = "") -> str:
    """WordNet verb lemma (``riding`` → ``ride``), else ``fallback`` (spaCy's), cached."""
    word = word.lower()
    if not word.isalpha():
        return fallback or word
    from unimo_kit.resources import wordnet

    wn = wordnet()
    candidates = wn._morphy(word, "v")
    if not candidates:
        return fallback or word
    if len(candidates) == 1:
        return candidates[0]
    # English doubles a final consonant before -ed/-ing (tap -> tapped), so an undoubled
    # consonant-vowel-consonant stem comes from a verb in -e: taped -> tape, riding -> ride.
    stem = word[:-3] if word.endswith("ing") else word[:-2] if word.endswith("ed") else ""
    vowels = "aeiou"
    if (
        len(stem) >= 3
        and stem + "e" in candidates
        and stem[-1] not in vowels + "wxy"
        and stem[-2] in vowels
        and stem[-3] not in vowels
    ):
        return stem + "e"
    # Otherwise the candidate WordNet's sense counts favour.
    return max(candidates, key=lambda c: (sum(x.count() for x in wn.lemmas(c, "v")), len(c)))


@functools.lru_cache(maxsize=100_000)
def has_verb_reading(word: str) -> bool:
    """Whether WordNet knows ``word`` as a form of some verb (``awning``: no)."""
    from unimo_kit.resources import wordnet

    word = word.lower()
    return word.isalpha() and bool(wordnet()._morphy(word, "v"))


@functools.lru_cache(maxsize=1)
def _has_hypernym(word: str, targets: frozenset[str], senses: int) -> bool:
    from unimo_kit.resources import wordnet

    wn = wordnet()
    for synset in wn.synsets(word, "n")[:senses]:
        for path in synset.hypernym_paths():
            if any(s.name() in targets for s in path):
                return True
    return False


_CLOTHING = _words(
    "clothing.n.01 headdress.n.01 footwear.n.01 footwear.n.02 glasses.n.01 spectacles.n.01 "
    "garment.n.01 accessory.n.01 jewelry.n.01 protective_garment.n.01 mask.n.04 helmet.n.02"
)
_CONTAINER = _words("container.n.01")
_MATERIAL = _words(
    "material.n.01 metallic_element.n.01 alloy.n.01 solid.n.01 building_material.n.01 "
    "fabric.n.01 wood.n.01 rock.n.01"
)


@functools.lru_cache(maxsize=100_000)
def is_compound_noun(words: tuple[str, ...]) -> bool:
    """Whether WordNet lists the words as one noun (``tennis court``, ``hot dog``,
    ``bed spread`` as ``bedspread``); the last word may be plural. Single words are True."""
    if len(words) < 2:
        return True
    from unimo_kit.resources import wordnet

    wn = wordnet()
    last = wn.morphy(words[-1], "n") or words[-1]
    parts = [w.replace("-", "_") for w in (*words[:-1], last)]
    return any(wn.synsets(joined, "n") for joined in ("_".join(parts), "".join(parts)))


@functools.lru_cache(maxsize=20_000)
def container_preposition(noun: str) -> str | None:
    """``"on"`` for plates and trays, ``"in"`` for other containers (WordNet
    ``container.n.01``, first three senses; ``a glass of wine``), else ``None``."""
    words = noun.lower().split()
    if not words or not words[-1].isalpha():
        return None
    if words[-1] in ON_CONTAINERS:
        return "on"
    last = noun_lemma(words[-1])
    return "in" if _has_hypernym(last, _CONTAINER, 3) else None


@functools.lru_cache(maxsize=20_000)
def is_clothing(noun: str) -> bool:
    """Whether the (last word of the) noun names something worn (WordNet, first two senses)."""
    words = noun.lower().split()
    if not words or not words[-1].replace("-", "").isalpha():
        return False
    last = words[-1]
    return _has_hypernym(last, _CLOTHING, 2) or _has_hypernym(noun_lemma(last), _CLOTHING, 2)


@functools.lru_cache(maxsize=20_000)
def is_material(noun: str) -> bool:
    """Whether the noun's first WordNet sense is a material (``metal``, ``brick``, ``wood``):
    as a compound it is an attribute (``metal poles`` → ``( poles , is , metal )``)."""
    word = noun.lower()
    return word.isalpha() and _has_hypernym(word, _MATERIAL, 1)


@functools.lru_cache(maxsize=100_000)
def is_hyphen_noun(first: str, second: str) -> bool:
    """Whether WordNet lists ``first-second`` as a noun (``high-rise``), written apart."""
    if not (first.isalpha() and second.isalpha()):
        return False
    from unimo_kit.resources import wordnet

    return bool(wordnet().synsets(f"{first}-{second}", "n"))


@functools.lru_cache(maxsize=100_000)
def is_kind_of(word: str, kind: str) -> bool:
    """Whether the first WordNet noun sense of ``word`` is a ``kind`` (``freezer`` of
    ``refrigerator``): ``refrigerator freezer`` names one thing, not a refrigerator-ish
    freezer."""
    from unimo_kit.resources import wordnet

    wn = wordnet()
    if not (word.isalpha() and kind.isalpha()):
        return False
    senses = wn.synsets(noun_lemma(word), "n")[:1]
    kinds = {s.name() for s in wn.synsets(noun_lemma(kind), "n")[:1]}
    return any(
        s.name() in kinds for sense in senses for path in sense.hypernym_paths() for s in path[:-1]
    )


@functools.lru_cache(maxsize=100_000)
def keeps_compound(words: tuple[str, ...]) -> bool:
    """Whether a run of compound words stays one object name: by the votes of the gold-derived
    table (:mod:`unimo_kit.rewrite.parse_compounds`: ``stop sign`` yes, ``metal pole`` no),
    else when WordNet lists the words as one noun (:func:`is_compound_noun`) or the modifier
    is the kind of the head (:func:`is_kind_of`: ``refrigerator freezer``)."""
    from unimo_kit.rewrite.parse_compounds import compound_vote

    vote = compound_vote(words)
    if vote is not None:
        return vote
    if is_compound_noun(words):
        return True
    return len(words) == 2 and is_kind_of(words[1], words[0])
