"""Replacement vocabularies and word categories for typed hard negatives.

A :class:`Vocabulary` counts, over the scene graphs of the corpus being rewritten, the
object nouns, the attributes of each category and the relation predicates of each category,
plus which attributes and predicates co-occur with which nouns. A replacement is drawn from
the same slot and category as the word it replaces (a colour for a colour, a spatial relation
for a spatial relation), preferring words seen with the same noun.

Categories (:func:`attribute_category`, :func:`relation_category`):

- attributes: ``count`` (numerals), ``color`` (WordNet nouns under ``color.n.01`` plus a base
  list), ``size``, ``material``, ``shape``, ``age``, ``other``;
- relations: ``spatial`` (a list of spatial prepositions), ``action`` (first word a WordNet
  verb), ``other``.

:func:`related` is the WordNet guard: two words are related when they are the same word (up to
number), synonyms (a shared synset or an adjective satellite), or one is a hypernym of the
other. Replacements related to the original are rejected, so a negative is never a paraphrase.

The vocabulary is deterministic: counts do not depend on input order, and every list drawn
from is sorted by ``(-count, word)``; it round-trips through JSON (``--save-vocab``/``--vocab``).
"""

from __future__ import annotations

import functools
import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from unimo_kit.data.scene_graph import SceneGraph
from unimo_kit.rewrite.grammar import WORD_NUMBERS, singularize

ATTRIBUTE_CATEGORIES = ("count", "color", "size", "material", "shape", "age", "other")
RELATION_CATEGORIES = ("spatial", "action", "other")

BASE_COLORS = frozenset(
    [
        "red",
        "green",
        "blue",
        "yellow",
        "purple",
        "orange",
        "pink",
        "brown",
        "black",
        "white",
        "gray",
        "grey",
        "silver",
        "gold",
        "golden",
        "beige",
        "tan",
        "maroon",
        "navy",
        "teal",
        "violet",
        "cyan",
        "magenta",
        "turquoise",
    ]
)
SIZES = frozenset(
    [
        "small",
        "large",
        "big",
        "little",
        "tiny",
        "huge",
        "giant",
        "short",
        "tall",
        "long",
        "wide",
        "narrow",
        "thin",
        "thick",
        "medium",
        "enormous",
        "massive",
        "miniature",
    ]
)
MATERIALS = frozenset(
    [
        "wooden",
        "wood",
        "metal",
        "metallic",
        "glass",
        "plastic",
        "stone",
        "brick",
        "leather",
        "paper",
        "concrete",
        "ceramic",
        "steel",
        "cotton",
        "wool",
        "woolen",
        "rubber",
        "marble",
        "iron",
        "cardboard",
        "fabric",
        "denim",
        "silk",
        "wicker",
    ]
)
SHAPES = frozenset(
    ["round", "square", "rectangular", "triangular", "circular", "oval", "curved", "flat"]
)
AGES = frozenset(["old", "young", "new", "ancient", "modern", "elderly"])

SPATIAL = frozenset(
    {
        "left of", "right of", "above", "below", "under", "beneath", "underneath", "over",
        "behind", "in front of", "next to", "beside", "near", "by", "on", "on top of", "atop",
        "in", "inside", "inside of", "within", "outside", "outside of", "across from",
        "opposite", "along", "around", "between", "against", "at", "in middle of", "upon",
    }
)  # fmt: skip
"""Normalised spatial predicates (FACTUAL style)."""

SPATIAL_GROUPS: tuple[frozenset[str], ...] = (
    frozenset({"below", "under", "beneath", "underneath"}),
    frozenset({"above", "over"}),
    frozenset({"on", "on top of", "atop", "upon"}),
    frozenset({"next to", "beside", "by", "near", "against"}),
    frozenset({"in", "inside", "inside of", "within"}),
    frozenset({"outside", "outside of"}),
    frozenset({"across from", "opposite"}),
    frozenset({"on", "in", "at"}),  # "on/in the street", "in/on the grass", "at/in the station"
)
"""Spatial predicates that say the same thing (in captions: ``on``, ``in`` and ``at`` are
used for one scene so often that one is no negative for another)."""

SPATIAL_ENTAILS: dict[str, frozenset[str]] = {
    "on": frozenset({"above", "over"}),
    "on top of": frozenset({"above", "over"}),
    "atop": frozenset({"above", "over"}),
    "upon": frozenset({"above", "over"}),
    "next to": frozenset({"near", "by"}),
    "beside": frozenset({"near", "by"}),
}
"""``p → q``: a caption with ``p`` also makes ``q`` true, so ``q`` is no negative for ``p``."""

SYMMETRIC = frozenset({"next to", "beside", "near", "by", "across from", "opposite", "with"})
"""Predicates with ``A p B`` ⇔ ``B p A``."""

INVERSE = {
    "left of": "right of", "right of": "left of", "above": "below", "below": "above",
    "over": "under", "under": "over", "in front of": "behind", "behind": "in front of",
}  # fmt: skip
"""``A p B`` ⇔ ``B INVERSE[p] A``."""


SIZE_OPPOSITES: dict[str, frozenset[str]] = {
    "small": frozenset({"large", "big", "huge"}), "little": frozenset({"large", "big"}),
    "tiny": frozenset({"large", "big", "huge"}), "large": frozenset({"small", "little"}),
    "big": frozenset({"small", "little"}), "huge": frozenset({"small", "tiny"}),
    "giant": frozenset({"small", "tiny"}), "tall": frozenset({"short"}),
    "short": frozenset({"tall", "long"}), "long": frozenset({"short"}),
    "wide": frozenset({"narrow"}), "narrow": frozenset({"wide"}),
    "thin": frozenset({"thick"}), "thick": frozenset({"thin"}),
}  # fmt: skip
"""Sizes that exclude each other along one dimension (``long`` and ``wide`` may both hold)."""

AGE_OPPOSITES: dict[str, frozenset[str]] = {
    "old": frozenset({"young", "new"}), "young": frozenset({"old", "elderly"}),
    "new": frozenset({"old"}), "elderly": frozenset({"young"}),
    "ancient": frozenset({"modern"}), "modern": frozenset({"ancient", "old"}),
}  # fmt: skip

STATE_OPPOSITES: tuple[frozenset[str], ...] = (
    frozenset({"standing", "sitting", "lying", "laying"}),
    frozenset({"open", "closed"}), frozenset({"empty", "full"}), frozenset({"wet", "dry"}),
    frozenset({"clean", "dirty"}), frozenset({"on", "off"}), frozenset({"lit", "unlit"}),
    frozenset({"parked", "moving"}), frozenset({"sliced", "whole"}),
    frozenset({"cloudy", "clear", "sunny"}), frozenset({"striped", "plain", "spotted"}),
    frozenset({"smiling", "frowning"}), frozenset({"bare", "leafy"}),
)  # fmt: skip
"""States that exclude each other, beside WordNet's antonyms."""


def contrasts(word: str, category: str) -> frozenset[str]:
    """Attributes that cannot hold together with ``word`` on one object: the opposite size
    or age, a state that excludes it, or a WordNet antonym (``other`` attributes). Colours,
    materials and shapes contrast with any other value of their category, so they are not
    listed here."""
    w = " ".join(word.lower().split())
    if category == "size":
        return SIZE_OPPOSITES.get(w, frozenset())
    if category == "age":
        return AGE_OPPOSITES.get(w, frozenset())
    out: set[str] = set()
    for group in STATE_OPPOSITES:
        if w in group:
            out |= group - {w}
    return frozenset(out) | _antonyms(w)


@functools.lru_cache(maxsize=65536)
def _antonyms(word: str) -> frozenset[str]:
    if " " in word or not word.isalpha():
        return frozenset()
    out = set()
    for synset in _wordnet().synsets(word, "a"):
        for x in synset.lemmas():
            if x.name().lower() == word:
                out.update(a.name().lower() for a in x.antonyms() if a.name().isalpha())
    return frozenset(out)


@functools.lru_cache(maxsize=262144)
def attribute_category(word: str) -> str:
    """Category of an attribute word (see module doc)."""
    w = word.strip().lower()
    if w in WORD_NUMBERS:
        return "count"
    if w in BASE_COLORS or _is_wordnet_color(w):
        return "color"
    for name, words in (("size", SIZES), ("material", MATERIALS), ("shape", SHAPES),
                        ("age", AGES)):  # fmt: skip
        if w in words:
            return name
    return "other"


def relation_category(predicate: str) -> str:
    """``spatial``, ``action`` or ``other`` for a normalised predicate."""
    p = " ".join(predicate.lower().split())
    if p in SPATIAL or p.removeprefix("to ") in SPATIAL:
        return "spatial"
    first = p.split(" ", 1)[0] if p else ""
    if first and _is_verb(first):
        return "action"
    return "other"


@functools.lru_cache(maxsize=65536)
def _is_wordnet_color(word: str) -> bool:
    if " " in word or not word.isalpha():
        return False
    wn = _wordnet()
    color = wn.synset("color.n.01")
    for synset in wn.synsets(word, "n")[:3]:
        if color in synset.closure(lambda s: s.hypernyms()):
            return True
    return False


@functools.lru_cache(maxsize=65536)
def _is_verb(word: str) -> bool:
    if word in {"of", "with", "for", "from", "to", "as"} or not word.isalpha():
        return False
    return bool(_wordnet().synsets(word, "v"))


@functools.cache
def _wordnet() -> Any:
    from unimo_kit.resources import wordnet

    return wordnet()


def morphy(word: str, pos: str = "n") -> str | None:
    """WordNet's base form of ``word`` (``circles`` → ``circle``), or ``None``."""
    if not word or not word.replace(" ", "").replace("-", "").isalpha():
        return None
    try:
        return _wordnet().morphy(word.replace(" ", "_"), pos)
    except Exception:  # pragma: no cover - nltk raises on odd input
        return None


@functools.lru_cache(maxsize=262144)
def lemma(noun: str) -> str:
    """Singular, lower-cased form of a (possibly multi-word) noun."""
    return singularize(" ".join(noun.lower().split()), morphy)


@functools.lru_cache(maxsize=262144)
def related(a: str, b: str, slot: str = "n") -> bool:
    """Whether replacing ``a`` with ``b`` could keep the meaning (see module doc).

    Args:
        a, b: words or multi-word names (spaces allowed).
        slot: ``"n"`` object nouns, ``"a"`` attributes, ``"spatial"``, ``"v"`` verb predicates.
    """
    a, b = " ".join(a.lower().split()), " ".join(b.lower().split())
    if slot == "spatial":
        a, b = a.removeprefix("to "), b.removeprefix("to ")
        if a == b or any(a in g and b in g for g in SPATIAL_GROUPS):
            return True
        return b in SPATIAL_ENTAILS.get(a, ()) or a in SPATIAL_ENTAILS.get(b, ())
    if slot == "n":
        a, b = lemma(a), lemma(b)
    if a == b:
        return True
    if slot == "v":
        a, b = a.split(" ", 1)[0], b.split(" ", 1)[0]
        if a == b:
            return True
    poses = {"n": ("n",), "a": ("a", "s", "n"), "v": ("v",)}.get(slot, ("n",))
    sa, similar_a, above_a = _senses(a, poses)
    sb, similar_b, above_b = _senses(b, poses)
    if not sa or not sb:
        return False
    if sa & sb:
        return True
    if slot == "a" and (similar_a & sb or similar_b & sa):
        return True
    return bool(above_a & sb or above_b & sa)


_UP = frozenset({"on", "on top of", "atop", "upon", "above", "over"})
_ON_TOP = frozenset({"on top of", "atop", "upon"})  # contact from above, never "in"
BELOW = frozenset({"under", "below", "beneath", "underneath"})  # (negatives: none under a mass)
_INSIDE = frozenset({"inside", "inside of", "within"})  # "in" alone: "in the grass", "in a tree"
_BESIDE = frozenset({"next to", "beside"})

EXCLUSIVE_SPATIAL: tuple[tuple[frozenset[str], frozenset[str]], ...] = (
    (_UP, BELOW),  # a lamp over the table is not under it
    (frozenset({"in front of"}), frozenset({"behind"})),
    (frozenset({"left of"}), frozenset({"right of"})),
    (_INSIDE | {"in"}, frozenset({"outside", "outside of"})),
    (_BESIDE, _ON_TOP | {"on"} | _INSIDE),  # a cup next to a plate is not on it
    (frozenset({"between"}), _ON_TOP | _INSIDE | BELOW),
    (_ON_TOP, _INSIDE),  # on top of the box, not inside it
)  # fmt: skip
"""Pairs of spatial classes that cannot both hold between one subject and one object: one
axis's opposites, or contact against being beside (not ``under``: what stands under a tree
stands next to its trunk). A spatial ``replace-rel`` is drawn only
across such a pair; everything else (``at`` → ``inside``, ``in`` → ``on top of``, ``in the
middle of`` → ``behind``, ``on`` → ``in front of``) may hold together in a typical image."""

_SIT, _STAND = frozenset({"sit", "perch"}), frozenset({"stand"})
_LIE = frozenset({"lay", "lie", "sleep", "nap"})
_KNEEL = frozenset({"kneel", "squat", "crouch"})
_WALK, _RUN = frozenset({"walk", "stroll", "hike"}), frozenset({"run", "jog"})
_FLY, _SWIM = frozenset({"fly", "soar"}), frozenset({"swim"})
_SPORT = frozenset({"ski", "surf", "skate", "snowboard", "skateboard", "sled"})
_RIDE = frozenset({"ride"})
_HAND = frozenset({"hold", "carry", "push", "pull", "lead"})

EXCLUSIVE_ACTIONS: tuple[tuple[frozenset[str], frozenset[str]], ...] = (
    # postures and gaits of one body at one moment
    (_SIT, _STAND | _LIE | _KNEEL | _WALK | _RUN | _FLY | _SPORT | frozenset({"jump"})),
    (_STAND, _LIE | _KNEEL | _WALK | _RUN | _FLY | _SWIM | frozenset({"jump"})),
    (_LIE, _KNEEL | _WALK | _RUN | _FLY | _SWIM | _SPORT | frozenset({"jump", "hang"})),
    (_KNEEL, _WALK | _RUN | _FLY | _SPORT),
    (_WALK, _RUN | _FLY | _SWIM | _RIDE),
    (_RUN, _FLY | _SWIM | _RIDE),
    (_FLY, _SWIM),
    (frozenset({"hang"}), _SIT | _STAND | frozenset({"lean"})),  # a mirror hung or leant
    # riding a thing, or having it in hand beside one
    (_RIDE, _HAND),
    (frozenset({"wear"}), frozenset({"hold", "carry"})),
    (frozenset({"catch"}), frozenset({"throw", "toss"})),
    (frozenset({"swing"}), frozenset({"throw", "toss"})),
    (frozenset({"park"}), frozenset({"drive", "travel", "speed"})),
    (frozenset({"open"}), frozenset({"close", "shut"})),
    (frozenset({"push"}), frozenset({"pull"})),
    (frozenset({"enter", "board"}), frozenset({"exit", "leave"})),
)  # fmt: skip
"""Pairs of action classes (by head verb) that one subject cannot do to one object at once:
postures and gaits (sitting, standing, lying, walking, flying ...), riding against having a
thing in hand, wearing against holding, catching against throwing. An action
``replace-rel`` is drawn only across such a pair (or, for one verb, across a pair of
:data:`EXCLUSIVE_SPATIAL`: ``standing in front of`` → ``standing behind``); other pairs
(``playing with`` → ``throwing``, ``preparing`` → ``picking up``, ``riding`` → ``petting``)
can hold together."""


INTRANSITIVE_PHRASALS = frozenset({"lay down", "lie down", "sit down", "stand up", "get up",
                                   "sit up", "look up", "look down", "bend down"})  # fmt: skip
"""Phrasal verbs whose particle takes no object: never drawn before one (``people sitting on
a bench`` → ``people laying down a bench``)."""


def _across(a: str, b: str, pairs: tuple[tuple[frozenset[str], frozenset[str]], ...]) -> bool:
    return any((a in x and b in y) or (a in y and b in x) for x, y in pairs)


@functools.lru_cache(maxsize=65536)
def exclusive_predicates(old: str, new: str, category: str) -> bool:
    """Whether ``old`` and ``new`` cannot both hold between one subject and one object, so
    that ``new`` in place of ``old`` makes a false caption: across a pair of
    :data:`EXCLUSIVE_SPATIAL` (spatial) or of :data:`EXCLUSIVE_ACTIONS` by head verb
    (action), or one verb with an exclusive pair of spatial particles (``sit on`` →
    ``sit under``).

    Args:
        old, new: normalised predicates (``"sit on"``, ``"in front of"``).
        category: ``"spatial"`` or ``"action"`` (of ``old``).

    Returns:
        ``True`` only for a declared exclusive pair; unknown pairs are taken as compatible.
    """
    a, b = _norm(old).removeprefix("to "), _norm(new).removeprefix("to ")
    if category == "spatial":
        return _across(a, b, EXCLUSIVE_SPATIAL)
    if b in INTRANSITIVE_PHRASALS:
        return False
    verb_a, _, rest_a = a.partition(" ")
    verb_b, _, rest_b = b.partition(" ")
    if verb_a == verb_b:
        return bool(rest_a and rest_b) and _across(rest_a, rest_b, EXCLUSIVE_SPATIAL)
    return _across(verb_a, verb_b, EXCLUSIVE_ACTIONS)


@functools.lru_cache(maxsize=65536)
def _senses(
    word: str, poses: tuple[str, ...]
) -> tuple[frozenset[Any], frozenset[Any], frozenset[Any]]:
    """A word's synsets, their adjective satellites and all their hypernyms (cached per word,
    so checking a pair costs a few set intersections)."""
    wn = _wordnet()
    key = word.replace(" ", "_")
    synsets: set[Any] = set()
    for pos in poses:
        try:
            synsets.update(wn.synsets(key, pos))
        except Exception:  # pragma: no cover - odd characters
            continue
    similar = {t for s in synsets for t in s.similar_tos()}
    above: set[Any] = set()
    for s in synsets:
        above.update(s.closure(lambda x: x.hypernyms() + x.instance_hypernyms()))
    return frozenset(synsets), frozenset(similar), frozenset(above)


@dataclass
class Vocabulary:
    """Frequency-counted replacement words per slot, built from a corpus's scene graphs."""

    objects: Counter[str] = field(default_factory=Counter)  # singular noun → count
    attributes: dict[str, Counter[str]] = field(default_factory=dict)  # category → word → count
    relations: dict[str, Counter[str]] = field(default_factory=dict)  # category → predicate → count
    noun_attributes: dict[str, Counter[str]] = field(default_factory=dict)  # noun → attr → count
    noun_relations: dict[str, Counter[str]] = field(default_factory=dict)  # subject → pred → count
    object_relations: dict[str, Counter[str]] = field(default_factory=dict)  # object → pred → count
    # "subject\tpredicate" → object → count
    triples: dict[str, Counter[str]] = field(default_factory=dict)
    # noun → another noun of the same caption → count (what is seen next to what)
    cooccur: dict[str, Counter[str]] = field(default_factory=dict)
    min_count: int = 1  # words seen fewer times are not used as replacements

    @classmethod
    def build(cls, graphs: Iterable[SceneGraph], *, min_count: int = 1) -> Vocabulary:
        """Count the slots of ``graphs`` (any order gives the same vocabulary).

        Args:
            graphs: parsed or gold scene graphs.
            min_count: minimum frequency of a replacement word.

        Returns:
            The vocabulary.
        """
        vocab = cls(min_count=min_count)
        for graph in graphs:
            vocab.add(graph)
        return vocab

    def add(self, graph: SceneGraph) -> None:
        """Count one graph."""
        names = [lemma(e.name) for e in graph.entities]
        for name, entity in zip(names, graph.entities, strict=True):
            if not name:
                continue
            self.objects[name] += 1
            for attribute in entity.attributes:
                word = " ".join(attribute.text.lower().split())
                if not word:
                    continue
                category = attribute_category(word)
                self.attributes.setdefault(category, Counter())[word] += 1
                if category != "count":
                    self.noun_attributes.setdefault(name, Counter())[word] += 1
        distinct = sorted({n for n in names if n})
        for name in distinct:
            for other in distinct:
                if other != name:
                    self.cooccur.setdefault(name, Counter())[other] += 1
        for relation in graph.relations:
            predicate = " ".join(relation.predicate.lower().split())
            if not predicate or not 0 <= relation.subject < len(names):
                continue
            self.relations.setdefault(relation_category(predicate), Counter())[predicate] += 1
            subject = names[relation.subject]
            self.noun_relations.setdefault(subject, Counter())[predicate] += 1
            if 0 <= relation.object < len(names) and names[relation.object]:
                obj = names[relation.object]
                self.object_relations.setdefault(obj, Counter())[predicate] += 1
                self.triples.setdefault(f"{subject}\t{predicate}", Counter())[obj] += 1

    def merge(self, other: Vocabulary) -> Vocabulary:
        """Add the counts of ``other`` (for vocabularies built per shard)."""
        self.objects.update(other.objects)
        for mine, theirs in (
            (self.attributes, other.attributes),
            (self.relations, other.relations),
            (self.noun_attributes, other.noun_attributes),
            (self.noun_relations, other.noun_relations),
            (self.object_relations, other.object_relations),
            (self.triples, other.triples),
            (self.cooccur, other.cooccur),
        ):
            for key, counter in theirs.items():
                mine.setdefault(key, Counter()).update(counter)
        return self

    # ------------------------------------------------------------------ candidate lists

    def object_candidates(self) -> list[tuple[str, int]]:
        """``(noun, count)`` sorted by ``(-count, noun)``."""
        return _ranked(self.objects, self.min_count)

    def attribute_candidates(self, category: str, noun: str | None = None) -> list[tuple[str, int]]:
        """Attributes of ``category``; those seen with ``noun`` when any are."""
        pool = _ranked(self.attributes.get(category, Counter()), self.min_count)
        if noun is not None:
            seen = self.noun_attributes.get(lemma(noun), Counter())
            with_noun = [(w, c) for w, c in pool if seen.get(w)]
            if len(with_noun) > 1:
                return with_noun
        return pool

    def relation_candidates(
        self, category: str, subject: str | None = None
    ) -> list[tuple[str, int]]:
        """Predicates of ``category``; those seen with ``subject`` when any are."""
        pool = _ranked(self.relations.get(category, Counter()), self.min_count)
        if subject is not None:
            seen = self.noun_relations.get(lemma(subject), Counter())
            with_subject = [(p, c) for p, c in pool if seen.get(p)]
            if len(with_subject) > 1:
                return with_subject
        return pool

    # ------------------------------------------------------------------ JSON

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (keys sorted, so equal vocabularies dump equal)."""

        def table(d: dict[str, Counter[str]]) -> dict[str, dict[str, int]]:
            return {k: dict(sorted(v.items())) for k, v in sorted(d.items())}

        return {
            "format": "unimo-rewrite-vocab/2",
            "min_count": self.min_count,
            "objects": dict(sorted(self.objects.items())),
            "attributes": table(self.attributes),
            "relations": table(self.relations),
            "noun_attributes": table(self.noun_attributes),
            "noun_relations": table(self.noun_relations),
            "object_relations": table(self.object_relations),
            "triples": table(self.triples),
            "cooccur": table(self.cooccur),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Vocabulary:
        """Inverse of :meth:`to_json`."""

        def table(x: dict[str, dict[str, int]]) -> dict[str, Counter[str]]:
            return {k: Counter(v) for k, v in x.items()}

        return cls(
            objects=Counter(d.get("objects", {})),
            attributes=table(d.get("attributes", {})),
            relations=table(d.get("relations", {})),
            noun_attributes=table(d.get("noun_attributes", {})),
            noun_relations=table(d.get("noun_relations", {})),
            object_relations=table(d.get("object_relations", {})),
            triples=table(d.get("triples", {})),
            cooccur=table(d.get("cooccur", {})),
            min_count=int(d.get("min_count", 1)),
        )

    def save(self, path: str | os.PathLike) -> None:
        """Write the vocabulary as JSON (atomically; gzip-compressed when ``path`` ends in
        ``.gz``)."""
        from unimo_kit.utils import atomic_write

        text = json.dumps(self.to_json(), ensure_ascii=False, indent=1)
        if os.fspath(path).endswith(".gz"):
            import gzip

            tmp = os.fspath(path) + ".tmp"
            with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
                gz.write(text.encode("utf-8"))
            os.replace(tmp, path)
            return
        with atomic_write(path) as handle:
            handle.write(text)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Vocabulary:
        """Read a vocabulary written by :meth:`save` (plain or ``.gz``)."""
        if os.fspath(path).endswith(".gz"):
            import gzip

            with gzip.open(path, "rt", encoding="utf-8") as handle:
                return cls.from_json(json.load(handle))
        with open(path, encoding="utf-8") as handle:
            return cls.from_json(json.load(handle))

    # ------------------------------------------------------------------ attestation

    def attribute_count(self, noun: str, attribute: str) -> int:
        """How often ``attribute`` was seen on ``noun`` (lemmas)."""
        return self.noun_attributes.get(lemma(noun), Counter()).get(_norm(attribute), 0)

    def cooccur_count(self, noun: str, other: str) -> int:
        """How many captions name both ``noun`` and ``other`` (lemmatised)."""
        return self.cooccur.get(lemma(noun), {}).get(lemma(other), 0)

    def subject_count(self, subject: str, predicate: str) -> int:
        """How often ``subject`` was the subject of ``predicate``."""
        return self.noun_relations.get(lemma(subject), Counter()).get(_norm(predicate), 0)

    def object_count(self, obj: str, predicate: str) -> int:
        """How often ``obj`` was the object of ``predicate``."""
        return self.object_relations.get(lemma(obj), Counter()).get(_norm(predicate), 0)

    def triple_count(self, subject: str, predicate: str, obj: str) -> int:
        """How often the relation ``(subject, predicate, obj)`` was seen."""
        key = f"{lemma(subject)}\t{_norm(predicate)}"
        return self.triples.get(key, Counter()).get(lemma(obj), 0)

    def relation_plausible(
        self, subject: str, predicate: str, obj: str, *, new: str = "both"
    ) -> bool:
        """Whether ``(subject, predicate, obj)`` is attested: seen as a triple, or seen with
        the OTHER end than the ``new`` one replaced by a noun of the same kind (WordNet class,
        :func:`noun_classes`). With ``new="object"``, ``man ride motorbike`` attests ``girl
        ride motorbike`` (a girl is a person like the man), while nothing attests ``girl
        ride cabinet``: the new word itself must have been seen in that slot.

        Args:
            subject, predicate, obj: the relation (lemmatised here).
            new: which end is the rewritten one: ``"subject"``, ``"object"``, or ``"both"``
                (either end may vary, e.g. a swap that moves both).
        """
        subject, predicate, obj = lemma(subject), _norm(predicate), lemma(obj)
        if self.triple_count(subject, predicate, obj):
            return True
        subjects, objects = self._relation_index()
        if new in ("object", "both"):  # obj seen in the slot, with a subject like ours
            kinds = noun_classes(subject)
            seen = subjects.get((predicate, obj), ())
            if kinds and any(kinds & noun_classes(x) for x in seen):
                return True
        if new in ("subject", "both"):  # subject seen in the slot, with an object like ours
            kinds = noun_classes(obj)
            seen = objects.get((subject, predicate), ())
            if kinds and any(kinds & noun_classes(x) for x in seen):
                return True
        return False

    def subjects_of(self, predicate: str, obj: str) -> Sequence[str]:
        """The subjects seen with ``predicate`` and ``obj`` (lemmas; empty when none).

        Args:
            predicate: the relation's predicate.
            obj: its object noun.

        Returns:
            Every ``s`` of a seen triple ``(s, predicate, obj)``, each once.
        """
        subjects, _ = self._relation_index()
        return subjects.get((_norm(predicate), lemma(obj)), ())

    def _relation_index(
        self,
    ) -> tuple[dict[tuple[str, str], list[str]], dict[tuple[str, str], list[str]]]:
        """``(predicate, object) → subjects`` and ``(subject, predicate) → objects`` (built
        once, on first use; the vocabulary is not changed after rewriting starts)."""
        index = self.__dict__.get("_index")
        if index is None:
            subjects: dict[tuple[str, str], list[str]] = {}
            objects: dict[tuple[str, str], list[str]] = {}
            for key, counter in self.triples.items():
                subject, _, predicate = key.partition("\t")
                for obj in counter:
                    subjects.setdefault((predicate, obj), []).append(subject)
                    objects.setdefault((subject, predicate), []).append(obj)
            index = self.__dict__["_index"] = (subjects, objects)
        return index


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


@functools.lru_cache(maxsize=65536)
def noun_classes(noun: str) -> frozenset[str]:
    """The WordNet lexicographer files of a noun's common senses among its first three
    (``noun.person``, ``noun.animal``, ``noun.artifact``, ``noun.food`` ...); empty when WordNet
    does not know it.

    Replacing or adding an object within a shared class keeps a scene sensible (a dog for a
    cat, a woman for a man), where a draw from the whole vocabulary does not (a tennis ball for
    the sky). Three senses, not one: ``cake`` is first a block of soap (artifact), then food.
    Multi-word names fall back to their last word (``tree trunk`` → ``trunk``)."""
    name = lemma(noun)
    if not name:
        return frozenset()
    wn = _wordnet()
    for key in (name.replace(" ", "_"), name.rsplit(" ", 1)[-1]):
        try:
            synsets = wn.synsets(key, "n")
        except Exception:  # pragma: no cover - odd characters
            synsets = []
        if synsets:
            common = [s for i, s in enumerate(synsets[:3]) if i == 0 or _sense_count(s, key)]
            return frozenset(_lexname(s) for s in common)
    return frozenset()


@functools.lru_cache(maxsize=65536)
def _parts(noun: str) -> frozenset[str]:
    """Names of the parts and substances of ``noun`` by WordNet (meronyms of its first three
    senses and of their hypernyms two levels up; ``car_window`` also gives ``window``)."""
    name = lemma(noun).replace(" ", "_")
    if not name:
        return frozenset()
    wn = _wordnet()
    try:
        synsets = wn.synsets(name, "n")[:3]
    except Exception:  # pragma: no cover - odd characters
        return frozenset()
    seen = list(synsets)
    for s in synsets:
        for h in s.hypernyms():
            seen.append(h)
            seen.extend(h.hypernyms())
    out: set[str] = set()
    for s in seen:
        for m in s.part_meronyms() + s.substance_meronyms():
            for x in m.lemmas():
                word = x.name().lower()
                out.update((word.replace("_", " "), word.rsplit("_", 1)[-1]))
    return frozenset(out)


def part_related(a: str, b: str) -> bool:
    """Whether WordNet names one noun a part of the other (``window`` of a ``bus``, ``trunk``
    of a ``tree``): a part added beside its whole is not a new object of the scene."""
    la, lb = lemma(a), lemma(b)
    return bool(la and lb) and (lb in _parts(la) or la in _parts(lb))


def _sense_count(synset: Any, word: str) -> int:
    """SemCor frequency of ``word`` in ``synset`` (rare senses: ``dog`` the frump)."""
    return sum(x.count() for x in synset.lemmas() if x.name().lower() == word)


def _lexname(synset: Any) -> str:
    """A synset's lexicographer file; the unique beginners in ``noun.Tops`` (``person``,
    ``animal``, ``food`` ...) are filed under their own name where such a file exists."""
    name = str(synset.lexname())
    if name == "noun.Tops":
        own = "noun." + synset.name().split(".", 1)[0]
        return own if own in _LEXNAMES else name
    return name


_LEXNAMES = frozenset(
    f"noun.{x}"
    for x in ("act", "animal", "artifact", "attribute", "body", "cognition", "communication",
              "event", "feeling", "food", "group", "location", "motive", "object", "person",
              "phenomenon", "plant", "possession", "process", "quantity", "relation", "shape",
              "state", "substance", "time")
)  # fmt: skip


def _ranked(counter: Counter[str], min_count: int) -> list[tuple[str, int]]:
    return sorted(
        ((w, c) for w, c in counter.items() if c >= min_count), key=lambda x: (-x[1], x[0])
    )
