"""Small English grammar helpers the rewrites need to stay grammatical: noun number,
indefinite articles, copula agreement, verb inflection and number words.

Rule-based on purpose (no spaCy): every rewrite calls these many times, and the cases that
matter in captions (regular nouns and verbs plus a table of common irregular ones) are covered.
"""

from __future__ import annotations

import re

IRREGULAR_PLURALS: dict[str, str] = {
    "man": "men", "woman": "women", "child": "children", "person": "people", "foot": "feet",
    "tooth": "teeth", "mouse": "mice", "goose": "geese", "ox": "oxen", "leaf": "leaves",
    "knife": "knives", "wife": "wives", "life": "lives", "shelf": "shelves", "half": "halves",
    "loaf": "loaves", "wolf": "wolves", "calf": "calves", "scarf": "scarves", "elf": "elves",
    "thief": "thieves", "potato": "potatoes", "tomato": "tomatoes", "hero": "heroes",
    "cactus": "cacti", "fungus": "fungi", "die": "dice", "louse": "lice", "criterion": "criteria",
}  # fmt: skip
"""Singular → plural for nouns the suffix rules get wrong."""

INVARIANT_NOUNS: frozenset[str] = frozenset(
    {"sheep", "fish", "deer", "moose", "series", "species", "aircraft", "bison", "salmon", "trout"}
)
"""Nouns whose plural equals the singular."""

IRREGULAR_SINGULARS: dict[str, str] = {plural: noun for noun, plural in IRREGULAR_PLURALS.items()}

NUMBER_WORDS: dict[int, str] = {
    1: "one", 2: "two", 3: "three", 4: "four", 5: "five",
    6: "six", 7: "seven", 8: "eight", 9: "nine", 10: "ten",
}  # fmt: skip
"""Counts written as words (captions rarely go beyond ten)."""

WORD_NUMBERS: dict[str, int] = {w: n for n, w in NUMBER_WORDS.items()} | {
    str(n): n for n in range(0, 100)
}
"""Numeral string (``"two"``, ``"2"``) → int."""

IRREGULAR_PARTICIPLES: dict[str, str] = {
    "ride": "ridden", "eat": "eaten", "hold": "held", "throw": "thrown", "catch": "caught",
    "drive": "driven", "fly": "flown", "bite": "bitten", "carry": "carried", "take": "taken",
    "see": "seen", "wear": "worn", "feed": "fed", "hit": "hit", "build": "built", "draw": "drawn",
    "give": "given", "make": "made", "read": "read", "write": "written", "buy": "bought",
    "bring": "brought", "sell": "sold", "cut": "cut", "lead": "led", "chase": "chased",
    "kick": "kicked", "hug": "hugged", "pull": "pulled", "push": "pushed", "grab": "grabbed",
    "leave": "left", "keep": "kept", "find": "found", "break": "broken", "shake": "shaken",
    "swing": "swung", "hang": "hung", "dig": "dug", "shoot": "shot", "beat": "beaten",
}  # fmt: skip
"""Past participles used for passive positives (a verb not here gets the regular -ed rule)."""

_VOWELS = "aeiou"
_ARTICLE_AN_EXCEPTIONS = ("uni", "use", "usu", "uti", "eu", "one", "once", "ubi", "ukulele")
_ARTICLE_AN_SILENT_H = ("hour", "honest", "honor", "honour", "heir")


def article(word: str) -> str:
    """``a`` or ``an`` for the word that follows (``an orange``, ``a unicorn``, ``an hour``)."""
    w = word.strip().lower()
    if not w:
        return "a"
    if w.startswith(_ARTICLE_AN_SILENT_H):
        return "an"
    if w.startswith(_ARTICLE_AN_EXCEPTIONS):
        return "a"
    if w[0].isdigit():
        return "an" if w.startswith(("8", "11", "18")) else "a"
    return "an" if w[0] in _VOWELS else "a"


def pluralize(noun: str) -> str:
    """Plural of a (possibly multi-word) noun: the last word is inflected."""
    head, sep, last = noun.rpartition(" ")
    lower = last.lower()
    if lower in INVARIANT_NOUNS:
        plural = last
    elif lower in IRREGULAR_PLURALS:
        plural = _copy_case(last, IRREGULAR_PLURALS[lower])
    elif lower.endswith(("s", "x", "z", "ch", "sh")):
        plural = last + "es"
    elif lower.endswith("y") and len(lower) > 1 and lower[-2] not in _VOWELS:
        plural = last[:-1] + "ies"
    else:
        plural = last + "s"
    return head + sep + plural


def singularize(noun: str, morphy: object | None = None) -> str:
    """Singular of a (possibly multi-word) noun; ``morphy`` (WordNet's ``morphy(word, 'n')``)
    is used when given, since suffix rules alone cannot tell ``glass`` from ``glasses``."""
    head, sep, last = noun.rpartition(" ")
    lower = last.lower()
    if lower in IRREGULAR_SINGULARS:
        return head + sep + _copy_case(last, IRREGULAR_SINGULARS[lower])
    if lower in INVARIANT_NOUNS or not lower.endswith("s") or lower.endswith("ss"):
        return noun
    if morphy is not None:
        base = morphy(lower, "n")  # type: ignore[operator]
        if base and base != lower:
            return head + sep + _copy_case(last, base)
    if lower.endswith("ies") and len(lower) > 4:
        single = last[:-3] + "y"
    elif lower.endswith(("ches", "shes", "xes", "zes", "sses")):
        single = last[:-2]
    elif lower.endswith(("us", "is")):
        single = last
    else:
        single = last[:-1]
    return head + sep + single


def is_plural(noun: str, morphy: object | None = None) -> bool:
    """Whether ``noun`` looks plural (its singular differs from it)."""
    return singularize(noun, morphy).lower() != noun.lower()


def inflect_like(verb: str, surface: str) -> str:
    """Inflect the base verb ``verb`` (first word of a predicate) the way ``surface`` is
    inflected: ``-ing``, third person ``-s``, ``-ed`` or base form."""
    first, sep, rest = verb.partition(" ")
    form = surface.split(" ", 1)[0].lower()
    if form.endswith("ing"):
        word = gerund(first)
    elif form.endswith("ed"):
        word = past_participle(first)
    elif form.endswith("s") and not form.endswith("ss"):
        word = third_person(first)
    else:
        word = first
    return word + sep + rest


def gerund(verb: str) -> str:
    """``ride`` → ``riding``, ``sit`` → ``sitting``, ``see`` → ``seeing``, ``lie`` → ``lying``."""
    v = verb.lower()
    if v.endswith("ie"):
        return verb[:-2] + "ying"
    if v.endswith("e") and not v.endswith(("ee", "ye", "oe")) and len(v) > 2:
        return verb[:-1] + "ing"
    if _double_final(v):
        return verb + verb[-1] + "ing"
    return verb + "ing"


def third_person(verb: str) -> str:
    """``ride`` → ``rides``, ``catch`` → ``catches``, ``carry`` → ``carries``."""
    v = verb.lower()
    if v in ("have",):
        return "has"
    if v.endswith(("s", "x", "z", "ch", "sh", "o")):
        return verb + "es"
    if v.endswith("y") and len(v) > 1 and v[-2] not in _VOWELS:
        return verb[:-1] + "ies"
    return verb + "s"


def past_participle(verb: str) -> str:
    """``ride`` → ``ridden`` (table), ``chase`` → ``chased``, ``stop`` → ``stopped``."""
    v = verb.lower()
    if v in IRREGULAR_PARTICIPLES:
        return IRREGULAR_PARTICIPLES[v]
    if v.endswith("e"):
        return verb + "d"
    if v.endswith("y") and len(v) > 1 and v[-2] not in _VOWELS:
        return verb[:-1] + "ied"
    if _double_final(v):
        return verb + verb[-1] + "ed"
    return verb + "ed"


def _double_final(v: str) -> bool:
    """Consonant-vowel-consonant one-syllable verbs double the last letter (``sit``, ``run``)."""
    return (
        len(v) >= 3
        and v[-1] not in _VOWELS + "wxy"
        and v[-2] in _VOWELS
        and v[-3] not in _VOWELS
        and sum(c in _VOWELS for c in v) == 1
    )


def number_word(n: int, like: str) -> str:
    """``n`` written the way ``like`` is written (digits or a word, same capitalisation)."""
    text = str(n) if like.strip()[:1].isdigit() or n not in NUMBER_WORDS else NUMBER_WORDS[n]
    return _copy_case(like, text)


def _copy_case(like: str, text: str) -> str:
    """``text`` capitalised if ``like`` starts with a capital (``Red`` → ``Blue``)."""
    if like[:1].isupper() and text:
        return text[:1].upper() + text[1:]
    return text


copy_case = _copy_case

_WORD = re.compile(r"[A-Za-z0-9]+(?:[-'][A-Za-z0-9]+)*")


def words(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, word)`` of the alphanumeric words of ``text``."""
    return [(m.start(), m.end(), m.group()) for m in _WORD.finditer(text)]
