"""Typed hard negatives: edit one node of a caption's scene graph, in the caption's own words.

For a caption and its parsed :class:`~unimo_kit.data.scene_graph.SceneGraph` (with character
spans), :class:`Rewriter` makes SugarCrepe-typed negatives:

=============  ===========================================================================
``replace-obj``  an object noun → another noun attested in the same context and named with
                 the caption's other objects (number kept)
``replace-att``  an attribute → a contrasting one attested with the noun (colour → colour,
                 small → large, open → closed)
``replace-rel``  a predicate → one of the same category that contradicts it, seen between
                 its two ends (``sitting on`` → ``standing on``, never ``swinging`` → ``holding``)
``swap-obj``     two parallel objects (same kind and role) exchange places, or the two ends
                 of a relation when the reversed relation is attested (or directed, between
                 two people or two animals)
``swap-att``     two objects exchange attributes (across categories, multi-word, colours
                 between made things) or counts (number agreement kept)
``add-obj``      a new object of the anchor's kind is conjoined to any noun phrase
``add-att``      an attribute of a category the object lacks, attested with the noun
``count``        a numeral changes (noun number and copula agree)
=============  ===========================================================================

"Attested" means seen in the evidence: the vocabulary of the corpus being rewritten merged with
a reference table (``reference=``; the stage ships one built from real captions, see
:mod:`unimo_kit.rewrite.reference`). A replacement that nothing attests is not made: a
negative must be false and still describe a sensible scene, or a text-only model can tell it
from the caption (Hsieh et al. 2023, SugarCrepe).

Each negative is ``{"type", "text", "edits": [{"start", "end", "old", "new"}]}`` with spans into
the original caption. Replacements related to the original by WordNet (same word up to number,
synonym, hypernym, hyponym) are rejected, articles and copulas are made to agree, and every
choice is drawn from a generator seeded by ``derive_seed(seed, key, type)``: the output for a
caption depends only on the caption, its graph, the vocabulary, the key and the seed — not on
input order, sharding or which other types are asked for.
"""

from __future__ import annotations

import functools
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from unimo_kit.data.records import caption_key
from unimo_kit.data.scene_graph import (
    Attribute,
    Entity,
    Relation,
    SceneGraph,
)
from unimo_kit.rewrite.edits import (
    Edit,
    Phrase,
    apply_edits,
    copy_graph,
    fix_articles,
    fix_copula,
    fix_existential,
    overlaps,
    phrases,
    valid_span,
)
from unimo_kit.rewrite.grammar import (
    WORD_NUMBERS,
    article,
    copy_case,
    inflect_like,
    is_plural,
    number_word,
    pluralize,
)
from unimo_kit.rewrite.vocab import (
    BASE_COLORS,
    BELOW,
    INVERSE,
    SYMMETRIC,
    Vocabulary,
    attribute_category,
    contrasts,
    exclusive_predicates,
    lemma,
    morphy,
    noun_classes,
    part_related,
    related,
    relation_category,
)
from unimo_kit.utils import derive_seed

Made = tuple[list[Edit], SceneGraph] | None | bool
"""What a negative type's maker returns for one attempt: the edits (spans into the caption)
and the caption's graph with the same change; ``None``: this attempt failed, try again;
``False``: the caption offers nothing this type can change, stop trying."""

Maker = Callable[["Rewriter", "RewriteContext", random.Random], Made]
"""``maker(rewriter, context, rng) -> Made``: one attempt at a negative of one type. The
rewriter gives the evidence (``rewriter.vocab``, its pools), the context the caption, its graph
and its phrases; every random choice must come from ``rng`` (seeded per caption and type)."""


@dataclass(frozen=True)
class NegativeType:
    """One hard-negative type: its name (output ``type``, ``--types``), how to make one, and
    its SugarCrepe family."""

    name: str  # e.g. "replace-obj"; what RewriteConfig.types and --types name
    make: Maker  # one attempt at a negative (see Maker)
    category: str = "other"  # SugarCrepe family: "replace", "swap", "add"; "other" for the rest
    description: str = ""  # one line for docs and help

    def __post_init__(self) -> None:
        if not self.name or self.name != self.name.strip() or "," in self.name:
            raise ValueError(f"a negative type name must be a word without commas: {self.name!r}")
        if not callable(self.make):
            raise TypeError(f"negative type {self.name!r}: make must be callable")


_REGISTRY: dict[str, NegativeType] = {}
"""Every registered type by name, in registration order (= output order)."""


def register_negative_type(spec: NegativeType, *, replace: bool = False) -> NegativeType:
    """Add a hard-negative type; :data:`NEGATIVE_TYPES`, :class:`Rewriter`, ``RewriteConfig``
    validation and ``unimo rewrite --types`` then know it. New types come after the built-in
    ones in the output. Register at import time of your module (workers are forked with it).

    Args:
        spec: the type (see :class:`NegativeType`).
        replace: allow replacing a type of the same name (default: an error).

    Returns:
        ``spec``.
    """
    if spec.name in _REGISTRY and not replace:
        raise ValueError(f"negative type {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def unregister_negative_type(name: str) -> None:
    """Remove a registered type (tests, plugins that replace a built-in)."""
    if name not in _REGISTRY:
        raise KeyError(f"no negative type {name!r}; registered: {negative_types()}")
    del _REGISTRY[name]


def negative_types() -> tuple[str, ...]:
    """The names of all registered types, in output order."""
    return tuple(_REGISTRY)


def negative_type(name: str) -> NegativeType:
    """The registered type ``name``."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"no negative type {name!r}; registered: {negative_types()}") from None


def check_negative_types(types: Sequence[str]) -> None:
    """Raise ``ValueError`` naming the types in ``types`` that are not registered."""
    unknown = set(types) - set(_REGISTRY)
    if unknown:
        raise ValueError(f"unknown negative type(s) {sorted(unknown)}; use {negative_types()}")


class _RegisteredNames(Sequence[str]):
    """A live, read-only tuple of the registered type names (see :data:`NEGATIVE_TYPES`)."""

    def __getitem__(self, index):  # type: ignore[no-untyped-def]
        return negative_types()[index]

    def __len__(self) -> int:
        return len(_REGISTRY)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(negative_types())

    def __contains__(self, name: object) -> bool:
        return name in _REGISTRY

    def __eq__(self, other: object) -> bool:
        return tuple(self) == (tuple(other) if isinstance(other, Sequence) else other)

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return repr(negative_types())


NEGATIVE_TYPES: Sequence[str] = _RegisteredNames()
"""All hard-negative types, in output order: the registry's names, read live (a type
registered later is in it). ``tuple(NEGATIVE_TYPES)`` for a snapshot."""

ADJECTIVE_ORDER = {"count": 0, "other": 1, "size": 2, "age": 3, "shape": 4, "color": 5,
                   "material": 6}  # fmt: skip
"""English adjective order: a smaller rank stands further from the noun."""

SPATIAL_SURFACE = {"left of": "to the left of", "right of": "to the right of",
                   "in middle of": "in the middle of"}  # fmt: skip
"""How a normalised spatial predicate is written when it replaces another."""


@dataclass
class Negative:
    """One hard negative: its type, text, edits, and the edited scene graph."""

    type: str  # one of NEGATIVE_TYPES
    text: str  # the rewritten caption
    edits: list[Edit]  # spans into the original caption
    graph: SceneGraph  # the caption's graph with the same change applied

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "text": self.text, "edits": [e.to_dict() for e in self.edits]}


GraphCheck = Callable[[SceneGraph], bool]
"""Says whether a candidate negative's graph is TRUE of the sample's image (then it is
dropped). Only possible with gold knowledge of the image: the stage passes
``functools.partial(verifier.holds, pair_id)`` of a :class:`~unimo_kit.rewrite.verify.Verifier`
(``--scenes``)."""


class Rewriter:
    """Make typed hard negatives from captions and their scene graphs.

    Args:
        vocab: replacement vocabulary (:meth:`Vocabulary.build` over the corpus).
        types: negative types to make (default: all of :data:`NEGATIVE_TYPES`).
        per_type: at most this many distinct negatives per type and caption.
        reference: extra evidence of which words go together (merged with ``vocab`` for
            candidates and attestation; see :mod:`unimo_kit.rewrite.reference`).
        spares: candidates drawn per wanted negative; :meth:`candidates` returns them all so
            that a later check (re-parsing, a language model) can pick among them.
        seed: global seed; each caption's generator is ``derive_seed(seed, key, type)``.
        weight_power: replacements are drawn with weight ``count ** weight_power``
            (1 = corpus frequency, 0 = uniform).
        max_tries: attempts per wanted negative before a type gives up on a caption.

    Example:
        >>> rewriter = Rewriter(Vocabulary.build(graphs), per_type=2, seed=0)  # doctest: +SKIP
        >>> rewriter.negatives("a red circle left of a blue square", graph, key="syn-1#0")
    """

    def __init__(
        self,
        vocab: Vocabulary,
        types: Sequence[str] | None = None,
        per_type: int = 1,
        seed: int = 0,
        *,
        reference: Vocabulary | None = None,
        spares: int = 1,
        weight_power: float = 0.5,
        max_tries: int = 12,
    ):
        check_negative_types(types or ())
        if spares < 1:
            raise ValueError(f"spares must be >= 1, got {spares}")
        self.vocab = vocab if reference is None else Vocabulary().merge(vocab).merge(reference)
        self.spares = int(spares)
        self.types = tuple(t for t in NEGATIVE_TYPES if types is None or t in types)
        self.per_type = int(per_type)
        self.seed = int(seed)
        self.weight_power = float(weight_power)
        self.max_tries = int(max_tries)
        self._categories: dict[str, frozenset[str]] = {}
        self._objects: list[tuple[str, int]] | None = None
        self._feature_index: dict[tuple[str, str], set[str]] | None = None
        self._mentions: int | None = None  # object mentions in the evidence, for _lift

    # ------------------------------------------------------------------ public API

    def negatives(
        self, caption: str, graph: SceneGraph, key: str, *, verify: GraphCheck | None = None
    ) -> list[dict[str, Any]]:
        """Hard negatives of ``caption`` as JSON-ready records (see module doc).

        Args:
            caption: the original caption (the spans of ``graph`` point into it).
            graph: its scene graph with spans (from :class:`SceneGraphParser`).
            key: a stable id of the caption (``"<pair_id>#<caption_index>"``), for the seed.
            verify: optional check that rejects negatives true of the image (see
                :data:`GraphCheck`).

        Returns:
            ``[{"type", "text", "edits"}]``, types in :data:`NEGATIVE_TYPES` order.
        """
        return [n.to_dict() for n in self.make(caption, graph, key, verify=verify)]

    def make(
        self, caption: str, graph: SceneGraph, key: str, *, verify: GraphCheck | None = None
    ) -> list[Negative]:
        """Like :meth:`negatives`, returning :class:`Negative` objects with edited graphs."""
        return select(self.candidates(caption, graph, key, verify=verify), self.per_type)

    def candidates(
        self, caption: str, graph: SceneGraph, key: str, *, verify: GraphCheck | None = None
    ) -> list[Negative]:
        """Up to ``per_type * spares`` distinct candidate negatives per type, in draw order
        (types in :data:`NEGATIVE_TYPES` order). :func:`select` keeps the first ``per_type``
        of each type; filter before selecting to replace rejected candidates by spares."""
        if not caption.strip() or not graph.entities:
            return []
        context = RewriteContext(caption, graph, phrases(graph, caption))
        out: list[Negative] = []
        wanted = self.per_type * self.spares
        for kind in self.types:
            rng = _LazyRandom(self.seed, key, kind)
            make = negative_type(kind).make
            texts = {caption_key(caption)}
            found = 0
            for _ in range(self.max_tries * wanted):
                if found >= wanted:
                    break
                made = make(self, context, rng)
                if made is False:
                    break  # the caption offers nothing this type can change
                if made is None:
                    continue
                edits, new_graph = made
                edits = sorted(set(edits))
                if not edits or overlaps(edits):
                    continue
                text = apply_edits(caption, edits)
                if caption_key(text) in texts:
                    continue
                if verify is not None and verify(new_graph):
                    continue
                texts.add(caption_key(text))
                new_graph.text = text
                out.append(Negative(kind, text, edits, new_graph))
                found += 1
        return out

    def swap_review(self, caption: str, graph: SceneGraph) -> list[tuple[str, str, str | None]]:
        """Every swap the caption offers and why it is refused, for measuring the swaps'
        ceiling (``benchmarks/swap_ceiling.py``).

        Args:
            caption: the original caption.
            graph: its scene graph with spans.

        Returns:
            ``[(type, form, reason)]``: ``type`` is ``swap-att`` or ``swap-obj``; ``form`` is
            ``att``, ``count``, ``parallel`` or ``reverse``; ``reason`` is ``None`` where the
            swap is made, else a short phrase (``"not seen on the new noun"``).
        """
        if not caption.strip() or not graph.entities:
            return []
        c = RewriteContext(caption, graph, phrases(graph, caption))
        out: list[tuple[str, str, str | None]] = []
        for (form, *_), why in self._swap_att_review(c):
            out.append(("swap-att", form, why))
        for (form, *_), why in self._swap_obj_review(c):
            out.append(("swap-obj", form, why))
        return out

    # ------------------------------------------------------------------ evidence

    def _context(self, c: RewriteContext, i: int) -> list[tuple[str, ...]]:
        """What the caption says about entity ``i`` besides its name: its attributes
        (``("att", word)``) and its relations (``("subj", predicate, object)`` /
        ``("obj", subject, predicate)``). A replacement must be attested for all of it."""
        entity = c.graph.entities[i]
        features: list[tuple[str, ...]] = [
            ("att", a.text) for a in entity.attributes if attribute_category(a.text) != "count"
        ]
        for r in c.graph.relations:
            if r.subject == i and r.object != i:
                features.append(("subj", r.predicate, c.graph.entities[r.object].name))
            elif r.object == i and r.subject != i:
                features.append(("obj", c.graph.entities[r.subject].name, r.predicate))
        return features

    def _fits(self, noun: str, features: list[tuple[str, ...]], *, exact: bool) -> bool:
        """Whether ``noun`` is attested with every feature of :meth:`_context`: relations as
        exact triples (``exact``) or by a noun of the same kind
        (:meth:`Vocabulary.relation_plausible`)."""
        v = self.vocab
        for f in features:
            if f[0] == "att" and not v.attribute_count(noun, f[1]):
                return False
            if f[0] == "subj" and not (
                v.triple_count(noun, f[1], f[2])
                if exact
                else v.relation_plausible(noun, f[1], f[2], new="subject")
            ):
                return False
            if f[0] == "obj" and not (
                v.triple_count(f[1], f[2], noun)
                if exact
                else v.relation_plausible(f[1], f[2], noun, new="object")
            ):
                return False
        return True

    def _object_pool(
        self, name: str, features: list[tuple[str, ...]]
    ) -> list[tuple[str, int]]:  # fmt: skip
        """Nouns that could stand where ``name`` stands: of the same WordNet kind and attested
        with all its context (a cat for a dog on a sofa), or attested exactly (every relation
        seen as a triple with this noun) — which is how the rendered shapes of the synthetic
        world, which WordNet files apart, replace each other. Nouns seen fewer than
        :data:`MIN_CANDIDATE_COUNT` times are left out: rare words are mostly parser
        leftovers."""
        kinds = noun_classes(name)
        out = []
        possible = self._possible(features)
        for w, n in self._ranked_objects():
            if n < MIN_CANDIDATE_COUNT:
                break
            if possible is not None and w not in possible:
                continue
            same_kind = bool(kinds & noun_classes(w))
            if self._fits(w, features, exact=not same_kind) if features else same_kind:
                out.append((w, n))
        return out

    def _ranked_objects(self) -> list[tuple[str, int]]:
        """``vocab.object_candidates()``, sorted once per rewriter."""
        if self._objects is None:
            self._objects = self.vocab.object_candidates()
        return self._objects

    def _possible(self, features: list[tuple[str, ...]]) -> set[str] | None:
        """Nouns that could fit every feature at all (seen with that attribute, as subject or
        object of that predicate): a superset of what :meth:`_fits` accepts, from indexes
        built once, so the exact check runs on a few nouns instead of the whole vocabulary.
        ``None`` without features."""
        if not features:
            return None
        if self._feature_index is None:
            index: dict[tuple[str, str], set[str]] = {}
            for noun, attributes in self.vocab.noun_attributes.items():
                for a in attributes:
                    index.setdefault(("att", a), set()).add(noun)
            for noun, predicates in self.vocab.noun_relations.items():
                for p in predicates:
                    index.setdefault(("subj", p), set()).add(noun)
            for noun, predicates in self.vocab.object_relations.items():
                for p in predicates:
                    index.setdefault(("obj", p), set()).add(noun)
            self._feature_index = index
        out: set[str] | None = None
        for f in features:
            word = f[2] if f[0] == "obj" else f[1]  # the attribute or the predicate
            key = (f[0], " ".join(word.lower().split()))
            nouns = self._feature_index.get(key, set())
            out = set(nouns) if out is None else out & nouns
            if not out:
                break
        return out or set()

    def _addition_pool(
        self, anchor: str, features: list[tuple[str, ...]]
    ) -> list[tuple[str, int]]:  # fmt: skip
        """Nouns to conjoin to ``anchor``: of its WordNet kind, seen in a caption together
        with it (a rug beside a stove, not a motorbike beside an oven rack) and, where the
        anchor takes part in relations, seen in each of them exactly (``holding a ball`` →
        ``and a bat``, not ``and a knife``). Weighted by how often the two are seen together,
        so what is added is distributed like what real captions name side by side."""
        kinds = noun_classes(anchor)
        possible = self._possible(features)
        seen = self.vocab.cooccur.get(lemma(anchor), {})
        return [
            (w, together)
            for w, n in self._ranked_objects()
            if n >= MIN_CANDIDATE_COUNT
            and (together := seen.get(w, 0)) >= MIN_CANDIDATE_COUNT
            and (possible is None or w in possible)
            and kinds & noun_classes(w)
            and self._lift(anchor, w, together) <= MAX_ADDITION_LIFT
            and (not features or self._fits(w, features, exact=True))
            and self._seen_often(w, features)
        ]

    def _shown_with(self, noun: str, others: list[str]) -> bool:
        """Whether ``noun`` goes with another object of the caption (named with it over
        :data:`MAX_SCENE_LIFT` times as often as chance): what a typical image of that
        object shows too (``windows on a bus`` → ``and mirrors``, ``a bus on the road`` →
        ``and a car``, ``a large building in background`` → ``and a hill``)."""
        for other in others:
            together = self.vocab.cooccur.get(lemma(other), {}).get(noun, 0)
            if together and self._lift(other, noun, together) > MAX_SCENE_LIFT:
                return True
        return False

    def _seen_often(self, noun: str, features: list[tuple[str, ...]]) -> bool:
        """Whether each relation feature is seen with ``noun`` as the very triple at least
        :data:`MIN_CANDIDATE_COUNT` times: a conjunct takes part in the anchor's relations,
        and one sighting is mostly a parser leftover (``sidewalks on the ground``, ``a
        bottle in a bathroom`` are each seen once)."""
        count = self.vocab.triple_count
        return all(
            (count(noun, f[1], f[2]) if f[0] == "subj" else count(f[1], f[2], noun))
            >= MIN_CANDIDATE_COUNT
            for f in features
            if f[0] != "att"
        )

    def _lift(self, a: str, b: str, together: int) -> float:
        """How much more often two objects are named together than chance would have it:
        ``together * N / (count(a) * count(b))`` over the evidence's ``N`` object mentions.
        A high lift marks what goes with the other (``knife`` / ``fork``, ``pizza`` /
        ``pepperoni``, ``laptop`` / ``screen``: a typical image of one shows the other too);
        alternatives of one scene (``cat`` / ``dog``, ``car`` / ``truck``) have a lift near 1."""
        if self._mentions is None:
            self._mentions = sum(self.vocab.objects.values())
        objects = self.vocab.objects
        count_a = objects.get(lemma(a), 0) or objects.get(a, 0)
        count_b = objects.get(b, 0) or objects.get(lemma(b), 0)
        if not count_a or not count_b:
            return 0.0
        return together * self._mentions / (count_a * count_b)

    def _pick(
        self, rng: random.Random, pool: list[tuple[str, int]], reject: Callable[[str], bool]
    ) -> str | None:
        """A draw weighted by ``count ** weight_power`` from ``pool`` that ``reject`` refuses
        not (rejected words are struck out, so a pool of one good word is always found)."""
        words = [w for w, _ in pool if not reject(w)]
        if not words:
            return None
        counts = dict(pool)
        weights = [counts[w] ** self.weight_power for w in words]
        return rng.choices(words, weights=weights)[0]

    # ------------------------------------------------------------------ types

    def _replace_obj(self, c: RewriteContext, rng: random.Random) -> Made:
        choices = c.entities_with_phrase()
        if not choices:
            return False
        i = rng.choice(choices)
        entity = c.graph.entities[i]
        head = c.phrases[i].head  # type: ignore[union-attr]
        old = c.caption[head[0] : head[1]]
        if _proper_name(old):
            return None  # "nathan 's sign" → "pole 's sign": a name is no object
        present = {lemma(e.name) for e in c.graph.entities}
        others = sorted({lemma(e.name) for j, e in enumerate(c.graph.entities) if j != i} - {""})
        word = self._pick(
            rng,
            self._cached(("obj", i), lambda: self._replacement_pool(c, i, others), c),
            lambda w: (
                w in present
                or _not_an_object(w)
                or related(w, entity.name, "n")
                or related(w, old, "n")
                or _same_thing(w, entity.name)
                or _disagrees(c, i, w)
                or self._holds_through(c, i, w)
            ),
        )
        if word is None:
            return None
        plural = is_plural(old, morphy) or (entity.count or 1) > 1
        new = copy_case(old, pluralize(word) if plural else word)
        if c.caption[head[1] :].lstrip().startswith("'s") and new[-1:] == "s" != old[-1:]:
            return None  # "a men 's pair" → "a ladies 's pair"
        graph = c.copy()
        graph.entities[i].name = pluralize(word) if is_plural(entity.name, morphy) else word
        return fix_articles(c.caption, [Edit(head[0], head[1], old, new)]), graph

    def _holds_through(self, c: RewriteContext, i: int, new: str) -> bool:
        """Whether a spatial relation to entity ``i`` would still hold with ``new`` in its
        place because the old object itself is seen in that relation to ``new`` (``green
        peppers on the pizza`` → ``... on the plate``: pizzas are on plates, so what is on
        the pizza is on the plate too; ``a cup in a box`` → ``... in a truck``)."""
        old = c.graph.entities[i].name
        return any(
            r.object == i
            and relation_category(r.predicate) == "spatial"
            and self.vocab.triple_count(old, r.predicate, new) > 0
            for r in c.graph.relations
        )

    def _replacement_pool(
        self, c: RewriteContext, i: int, others: list[str]
    ) -> list[tuple[str, int]]:  # fmt: skip
        """:meth:`_object_pool` for entity ``i``, kept to nouns that real captions name
        together with every other object of this caption (the reference table's
        co-occurrence counts, at least :data:`MIN_COOCCURRENCE` captions each: a spoon beside
        a bowl, not beside a fence), weighted by the least of those counts, so the filler is
        drawn as often as such scenes are described."""
        name = c.graph.entities[i].name
        features = self._context(c, i)
        agent = _is_living(name)
        body = _first_class(name) == "noun.body"
        out = []
        substance = _substance(name)
        for w, n in self._object_pool(name, features):
            if w in SCENE_WORDS:
                continue
            if _role_for_identity(name, w):
                continue  # "the hand of a girl" → "of a player": a girl may be one
            if substance and not (_substance(w) or w in MASS_NOUNS):
                continue  # "the yellow paint on the boat" → "the yellow banana"
            if (_first_class(w) == "noun.body") != body:
                continue  # "a glass in his left hand" → "... in his door"
            if _is_living(w) != agent and not self._well_attested(w, features):
                continue  # a person or an animal for a thing: "two mirrors and a dog on a bed"
            if not all(self._seen_in_relation(w, f) for f in features if f[0] != "att"):
                continue
            if others:
                seen = self.vocab.cooccur.get(w, {})
                n = min(seen.get(o, 0) for o in others)
                if n < MIN_COOCCURRENCE:
                    continue
            out.append((w, n))
        return out

    def _well_attested(self, noun: str, features: list[tuple[str, ...]]) -> bool:
        """Whether ``noun`` takes part in relations here, an action among them, each seen as
        the very triple at least :data:`MIN_CANDIDATE_COUNT` times (``planes flying in the
        sky`` for birds; a place alone, ``a pillow on the bed`` for a dog, is not enough)."""
        relations = [f for f in features if f[0] != "att"]
        predicate = {"subj": 1, "obj": 2}
        if not any(relation_category(f[predicate[f[0]]]) == "action" for f in relations):
            return False
        count = self.vocab.triple_count
        return all(
            (count(noun, f[1], f[2]) if f[0] == "subj" else count(f[1], f[2], noun))
            >= MIN_CANDIDATE_COUNT
            for f in relations
        )

    def _seen_in_relation(self, noun: str, feature: tuple[str, ...]) -> bool:
        """A relation of the replaced object attested for ``noun``: as the very triple (or its
        inverse), or — where the other end is a person — with ``noun`` and any person (a
        woman rides what a man rides; a horse pulls a cart, not a man)."""
        v = self.vocab
        if feature[0] == "subj":
            subject, predicate, obj, other = noun, feature[1], feature[2], feature[2]
        else:
            subject, predicate, obj, other = feature[1], feature[2], noun, feature[1]
        if v.triple_count(subject, predicate, obj):
            return True
        if predicate in INVERSE and v.triple_count(obj, INVERSE[predicate], subject):
            return True
        if _is_person(other):
            new = "object" if feature[0] == "obj" else "subject"
            return v.relation_plausible(subject, predicate, obj, new=new)
        return False

    def _cached(self, key: tuple[Any, ...], build: Callable[[], Any], c: RewriteContext) -> Any:
        """A per-caption cache: candidate pools are built once per caption and slot."""
        if key not in c.cache:
            c.cache[key] = build()
        return c.cache[key]

    def _attribute_pool(self, category: str, noun: str, old: str) -> list[tuple[str, int]]:
        """Attributes that contrast with ``old`` on ``noun``: another colour, material or shape
        seen on the noun; the opposite size or age; an antonym for any other attribute."""
        seen = self.vocab.noun_attributes.get(lemma(noun), Counter())
        if category in ("size", "age", "other"):
            opposites = contrasts(old, category)
            pool = [(w, seen.get(w, 0) + 1) for w in sorted(opposites)]
            if category == "other":  # an antonym nothing attests on this noun reads oddly
                pool = [(w, n) for w, n in pool if seen.get(w)]
            return pool
        return [(w, n) for w, n in seen.items() if attribute_category(w) == category]

    def _replace_att(self, c: RewriteContext, rng: random.Random) -> Made:
        choices = [
            (i, j)
            for i, e in enumerate(c.graph.entities)
            for j, a in enumerate(e.attributes)
            if valid_span(a.span, c.caption) and attribute_category(a.text) != "count"
        ]
        if not choices:
            return False
        i, j = rng.choice(choices)
        entity = c.graph.entities[i]
        attribute = entity.attributes[j]
        category = attribute_category(attribute.text)
        start, end = attribute.span  # type: ignore[misc]
        old = c.caption[start:end]
        own = {a.text.lower() for a in entity.attributes}
        pool = self._cached(
            ("att", i, j), lambda: self._attribute_pool(category, entity.name, attribute.text), c
        )
        word = self._pick(
            rng,
            sorted(pool, key=lambda x: (-x[1], x[0])),
            lambda w: w in own or related(w, attribute.text, "a") or related(w, old, "a"),
        )
        if word is None:
            return None
        graph = c.copy()
        graph.entities[i].attributes[j].text = word
        return fix_articles(c.caption, [Edit(start, end, old, copy_case(old, word))]), graph

    def _replace_rel(self, c: RewriteContext, rng: random.Random) -> Made:
        choices = [
            k
            for k, r in enumerate(c.graph.relations)
            if valid_span(r.span, c.caption) and relation_category(r.predicate) != "other"
        ]
        if not choices:
            return False
        k = rng.choice(choices)
        relation = c.graph.relations[k]
        category = relation_category(relation.predicate)
        start, end = relation.span  # type: ignore[misc]
        old = c.caption[start:end]
        subject = c.graph.entities[relation.subject].name
        obj = c.graph.entities[relation.object].name
        norm = " ".join(relation.predicate.lower().split())
        if category == "action" and not _is_active_verb_form(old, relation.predicate):
            return False  # "eye of a giraffe" (have), "kite attached to fence" (passive)
        if norm.split(" ", 1)[0] in _LIGHT_VERBS:
            return False  # "the bus has wheels": nothing definite to contradict
        if category == "action" and norm.split(" ", 1)[0] in _NOT_VERBS:
            return False  # "a woman close to the camera" is no verb: "a woman hold the camera"
        if (norm in ("in", "with") or norm.endswith(" in")) and _is_clothing(obj):
            return False  # "a man (skiing) in a red shirt" says what he wears, not where he is
        if _first_class(subject) == "noun.body" or part_related(subject, obj):
            return False  # "the mane on the giraffe", "door of a building": a part in its place
        target = c.phrases[relation.object]
        if target is None or target.start < end:
            return False  # "a truck with a plant on top": the object is not after the predicate

        thing = not _is_living(subject)
        busy = any(  # the subject does something else too: its hands may be taken
            j != k and r.subject == relation.subject and relation_category(r.predicate) == "action"
            for j, r in enumerate(c.graph.relations)
        )

        def reject(p: str) -> bool:
            if p == norm or p.removeprefix("to ") == norm.removeprefix("to "):
                return True
            if p.split(" ", 1)[0] in _LIGHT_VERBS | _PASSIVE_VERBS:
                return True  # "hanging from" -> "mounting on": read as "mounted on"
            if (p == "in" or p.endswith(" in")) and _is_clothing(obj):
                return True  # "surfing in a wetsuit" says what she wears again
            if thing and p.split(" ", 1)[0] in _AGENT_VERBS:
                return True  # "a burger sitting on paper" → "a burger holding paper"
            if p.rsplit(" ", 1)[-1] in BELOW and lemma(obj) in MASS_NOUNS:
                return True  # "skiing down a mountain on the snow" → "under the snow"
            if not exclusive_predicates(norm, p, category):
                return True  # "at" → "inside", "playing with" → "throwing": may both hold
            # "batter wearing a jersey swinging a bat" → "holding a jersey": hands taken
            return busy and p.split(" ", 1)[0] in _HELD_VERBS

        pool = self._cached(
            ("rel", k), lambda: self._relation_pool(category, subject, obj), c
        )  # fmt: skip
        word = self._pick(rng, pool, reject)
        if word is None:
            return None
        if category == "spatial":
            start, new = _spatial_surface(c.caption, start, end, old, word)
        else:
            new = inflect_like(word, old)
        if start != relation.span[0]:  # type: ignore[index]
            old = c.caption[start:end]
        graph = c.copy()
        graph.relations[k].predicate = word
        return fix_articles(c.caption, [Edit(start, end, old, copy_case(old, new))]), graph

    def _relation_pool(self, category: str, subject: str, obj: str) -> list[tuple[str, int]]:
        """Predicates of ``category`` seen at least :data:`MIN_RELATION_EVIDENCE` times
        between these two nouns (as the triple, or its inverse: ``B behind A`` attests ``A in
        front of B``), with that count as the weight of the draw: a relation that real
        captions give this pair of things, in proportion to how often they do."""
        out = []
        agent = _is_person(subject)
        for p, _ in _ranked_all(self.vocab.relations.get(category, Counter())):
            if category == "action" and p.split(" ", 1)[0] in _NOT_VERBS:
                continue  # "close to": read as a verb by the category test
            evidence = self.vocab.triple_count(subject, p, obj)
            if p in INVERSE:
                evidence += self.vocab.triple_count(obj, INVERSE[p], subject)
            if evidence < MIN_RELATION_EVIDENCE and agent:  # what a man does, a woman does
                evidence = max(evidence, sum(
                    self.vocab.triple_count(x, p, obj)
                    for x in self.vocab.subjects_of(p, obj)
                    if _is_person(x)
                ))  # fmt: skip
            if evidence >= MIN_RELATION_EVIDENCE:
                out.append((p, evidence))
        return out

    def _swap_obj(self, c: RewriteContext, rng: random.Random) -> Made:
        choices = self._cached(("swap-obj",), lambda: self._swap_obj_choices(c), c)
        if not choices:
            return False
        kind, a, b = rng.choice(choices)
        if kind == "parallel":
            return self._exchange_phrases(c, a, b)
        return self._reverse_relation(c, a)

    def _swap_obj_choices(self, c: RewriteContext) -> list[tuple[str, int, int]]:
        """``("parallel", i, j)``: two objects of one kind whose places carry different
        relations; ``("reverse", k, -1)``: relation ``k`` with its ends exchanged, only where
        the reversed relation is attested (``a cake cutting a woman`` is not)."""
        return [choice for choice, why in self._swap_obj_review(c) if why is None]

    def _swap_obj_review(self, c: RewriteContext) -> list[tuple[tuple[str, int, int], str | None]]:
        """Every swap-obj candidate of the caption with why it is refused (``None``: made)."""
        usable = [i for i in c.entities_with_phrase() if not _has_outside_attributes(c, i)]
        out: list[tuple[tuple[str, int, int], str | None]] = []
        original = _graph_key(c.graph)
        for x, i in enumerate(usable):
            for j in usable[x + 1 :]:
                out.append((("parallel", i, j), self._parallel_refusal(c, i, j, original)))
        degree: Counter[int] = Counter()
        for r in c.graph.relations:
            degree.update({r.subject, r.object})
        for k, r in enumerate(c.graph.relations):
            if r.subject != r.object:
                out.append((("reverse", k, -1), self._reverse_refusal(c, k, degree)))
        return out

    def _parallel_refusal(
        self, c: RewriteContext, i: int, j: int, original: Counter[tuple[str, ...]]
    ) -> str | None:
        """Why objects ``i`` and ``j`` may not exchange places (``None``: they may)."""
        entities, relations = c.graph.entities, c.graph.relations
        pi, pj = c.phrases[i], c.phrases[j]
        if pi is None or pj is None or (pi.end > pj.start and pj.end > pi.start):
            return "phrases overlap"
        if _bound_slot(c, i) or _bound_slot(c, j):
            return "possessor, of-phrase or body part"
        ni, nj = lemma(entities[i].name), lemma(entities[j].name)
        if ni == nj or related(ni, nj, "n"):
            return "same or related noun"
        if not any(r.subject in (i, j) or r.object in (i, j) for r in relations):
            return "no relation: only the order changes"
        if any({r.subject, r.object} == {i, j} for r in relations):
            return "ends of one relation (see reverse)"
        if not (noun_classes(ni) & noun_classes(nj)):
            return "different kinds"  # a woman for a man, a cat for a dog; not a cake for a woman
        if not self._same_roles(c, i, j):
            return "different roles"
        between = c.caption[min(pi.end, pj.end) : max(pi.start, pj.start)]
        if between.strip().lower() in _COORDINATORS:
            return "coordinated: only the order changes"  # "a suit and a shirt"
        if _places_of_one(c, i, j):
            return "two places of one thing"  # "walking across the street in a crosswalk"
        swapped = _swap_entities(c.graph, i, j)
        if _graph_key(swapped) == original:
            return "same scene"  # "a man and a woman on a bench"
        if not all(
            self._moved_plausible(swapped, r, {i, j})
            for r in swapped.relations
            if {r.subject, r.object} & {i, j}
        ):
            return "moved relation not attested"
        return None

    def _reverse_refusal(self, c: RewriteContext, k: int, degree: Counter[int]) -> str | None:
        """Why relation ``k``'s two ends may not exchange places (``None``: they may)."""
        r = c.graph.relations[k]
        ps, po = c.phrases[r.subject], c.phrases[r.object]
        if ps is None or po is None or (ps.end > po.start and po.end > ps.start):
            return "phrases overlap"
        if _bound_slot(c, r.subject) or _bound_slot(c, r.object):
            return "possessor, of-phrase or body part"  # "the train on people 's platform"
        if _symmetric(r.predicate):
            return "symmetric relation"  # "a woman standing next to a man"
        if degree[r.subject] > 1 or degree[r.object] > 1:
            return "an end in another relation"
        if valid_span(r.span, c.caption) and c.caption[r.span[0] : r.span[1]].lower() in (  # type: ignore[index]
            "of", "'s", "’s", "with",
        ):  # fmt: skip
            return "of / 's / with"  # "eye of a giraffe" -> "a giraffe of eye" is not English
        if ps.text(c.caption).lower() == po.text(c.caption).lower():
            return "same phrase"
        if _scene_key(_swap_entities(c.graph, r.subject, r.object)) == _scene_key(c.graph):
            return "same scene"  # "a zebra chasing another zebra", "one box inside another box"
        if r.predicate.lower().split()[-1:] in (["between"], ["among"], ["amongst"]):
            return "between"  # "a tree between buildings" -> "buildings between a tree"
        if relation_category(r.predicate) == "other":
            return "predicate of no category"  # "with", "have": reversing is rarely English
        if (r.predicate.lower().split() or [""])[0] in _PASSIVE_VERBS | _MUTUAL_VERBS:
            return "passive or mutual predicate"  # "leash attached to dog", "talking to"
        if _in_list(c, r.subject) or _in_list(c, r.object):
            return "an end in a list"  # "a tree and bench in the snow"
        subject, obj = c.graph.entities[r.subject].name, c.graph.entities[r.object].name
        if lemma(subject) in MASS_NOUNS or lemma(obj) in MASS_NOUNS:
            return "a substance"  # "trees in the snow" -> "the snow in trees"
        reversed_count = self.vocab.triple_count(obj, r.predicate, subject)
        count = self.vocab.triple_count(subject, r.predicate, obj)
        if reversed_count > TYPICAL_REVERSAL * max(count, 1):
            return "the reversal is the usual scene"  # "a pole on the street light"
        if reversed_count >= max(2, 0.2 * count):
            return None
        if self._living_reversible(subject, r.predicate, obj):
            return None  # "a man watching a woman" -> "a woman watching a man"
        return "reversed relation not attested"  # "the wall is on shelves"

    def _living_reversible(self, subject: str, predicate: str, obj: str) -> bool:
        """Whether a relation between two people, or two animals, may be turned round
        without the triple itself being seen: both ends of one kind (by the first WordNet
        sense of their head word), neither a part of the other (``tail``, ``paws``), a
        directed relation (``behind``, ``above``, ``watching``, ``chasing``: never ``next
        to`` or ``talking to``, which hold both ways), and the reversed relation attested
        for nouns of those kinds (:meth:`Vocabulary.relation_plausible`). ``man watching
        small child`` → ``small child watching man``; never ``a man riding a horse`` →
        ``a horse riding a man`` (a person and an animal) nor ``a woman holding a child``
        (holding is no directed relation here: who can hold whom depends on age)."""
        kind = _first_class(_head_word(subject))
        if kind not in _LIVING_CLASSES or _first_class(_head_word(obj)) != kind:
            return False
        if _is_person(subject) != _is_person(obj) or part_related(subject, obj):
            return False
        if "noun.body" in noun_classes(_head_word(subject)) | noun_classes(_head_word(obj)):
            return False
        if not _directed(predicate):
            return False
        return self.vocab.relation_plausible(obj, predicate, subject, new="both")

    def _moved_plausible(self, graph: SceneGraph, r: Relation, moved: set[int]) -> bool:
        """Whether relation ``r`` of ``graph`` is attested with the moved end as the new one:
        a place (a locative relation: ``on``, ``in a park``) or a relation of no category
        (``with``) as the very triple, since what is on a bench is not on a park and a
        building with windows is no building with a camera; an action by a noun of the same
        kind."""
        subject, obj = graph.entities[r.subject].name, graph.entities[r.object].name
        if _locative(r.predicate) or relation_category(r.predicate) == "other":
            return self.vocab.triple_count(subject, r.predicate, obj) >= 1
        new = "subject" if r.subject in moved else "object"
        return self.vocab.relation_plausible(subject, r.predicate, obj, new=new)

    def _same_roles(self, c: RewriteContext, i: int, j: int) -> bool:
        """Whether ``i`` and ``j`` are both subjects, or both objects, of some relation."""
        subjects = {r.subject for r in c.graph.relations}
        objects = {r.object for r in c.graph.relations}
        return (i in subjects and j in subjects) or (i in objects and j in objects)

    def _exchange_phrases(self, c: RewriteContext, i: int, j: int) -> Made:
        first, second = sorted([i, j], key=lambda e: c.phrases[e].start)  # type: ignore[union-attr]
        p1, p2 = c.phrases[first], c.phrases[second]
        assert p1 is not None and p2 is not None
        t1, t2 = p1.text(c.caption), p2.text(c.caption)
        edits = [
            Edit(p1.start, p1.end, t1, _recase(t2, t1, p1.start)),
            Edit(p2.start, p2.end, t2, _recase(t1, t2, p2.start)),
        ]
        edits += _agreement(c, p1, c.plural(first), c.plural(second))
        edits += _agreement(c, p2, c.plural(second), c.plural(first))
        return edits, _swap_entities(c.graph, first, second)

    def _reverse_relation(self, c: RewriteContext, k: int) -> Made:
        r = c.graph.relations[k]
        first, second = sorted([c.phrases[r.subject], c.phrases[r.object]], key=lambda p: p.start)  # type: ignore[arg-type, return-value]
        t1, t2 = first.text(c.caption), second.text(c.caption)
        new1, new2 = _recase(t2, t1, first.start), _recase(t1, t2, second.start)
        edits = [Edit(first.start, first.end, t1, new1), Edit(second.start, second.end, t2, new2)]
        subject_first = c.phrases[r.subject] is first
        if subject_first:
            plural_before = c.plural(r.subject)
            plural_after = c.plural(r.object)
            if plural_before != plural_after:
                fix = fix_copula(c.caption, first.end, plural_after)
                if fix is not None:
                    edits.append(fix)
        # "there is/are" + first phrase: the copula agrees with the phrase moved there
        fix = fix_existential(
            c.caption, first.start, c.plural(r.object if subject_first else r.subject)
        )
        if fix is not None:
            edits.append(fix)
        graph = c.copy()
        graph.relations[k] = Relation(r.object, r.predicate, r.subject, r.span)
        return edits, graph

    def _swap_att(self, c: RewriteContext, rng: random.Random) -> Made:
        choices = self._cached(("swap-att",), lambda: self._swap_att_choices(c), c)
        if not choices:
            return False
        choice = rng.choice(choices)
        if choice[0] == "count":
            return self._swap_counts(c, choice[1], choice[2])
        _, i, x, j, y = choice
        entities = c.graph.entities
        ax, by = entities[i].attributes[x], entities[j].attributes[y]
        s1, s2 = ax.span, by.span
        o1, o2 = c.caption[s1[0] : s1[1]], c.caption[s2[0] : s2[1]]  # type: ignore[index]
        edits = [
            Edit(s1[0], s1[1], o1, _recase(o2, o1, s1[0])),  # type: ignore[index]
            Edit(s2[0], s2[1], o2, _recase(o1, o2, s2[0])),  # type: ignore[index]
        ]
        graph = c.copy()
        graph.entities[i].attributes[x].text = by.text
        graph.entities[j].attributes[y].text = ax.text
        return fix_articles(c.caption, edits), graph

    def _swap_att_choices(self, c: RewriteContext) -> list[tuple[Any, ...]]:
        """Attribute pairs of two objects that can change places (same category, or across
        categories where each object has no other attribute before its noun and each is
        attested with the other's attribute), and pairs of objects with different counts."""
        return [choice for choice, why in self._swap_att_review(c) if why is None]

    def _swap_att_review(self, c: RewriteContext) -> list[tuple[tuple[Any, ...], str | None]]:
        """Every swap-att candidate of the caption with why it is refused (``None``: made):
        ``("att", i, x, j, y)`` (attribute ``x`` of ``i`` for ``y`` of ``j``) and
        ``("count", i, j)``."""
        out: list[tuple[tuple[Any, ...], str | None]] = []
        entities = c.graph.entities
        for i, a in enumerate(entities):
            for j in range(i + 1, len(entities)):
                b = entities[j]
                same = lemma(a.name) == lemma(b.name)
                for x in range(len(a.attributes)):
                    for y in range(len(b.attributes)):
                        why = "same noun" if same else self._attribute_refusal(c, i, x, j, y)
                        out.append((("att", i, x, j, y), why))
                if _count_of(c, i) is not None and _count_of(c, j) is not None:
                    why = "same noun" if same else self._count_refusal(c, i, j)
                    out.append((("count", i, j), why))
        return out

    def _attribute_refusal(self, c: RewriteContext, i: int, x: int, j: int, y: int) -> str | None:
        """Why attribute ``x`` of entity ``i`` and ``y`` of ``j`` may not change places."""
        a, b = c.graph.entities[i], c.graph.entities[j]
        ax, by = a.attributes[x], b.attributes[y]
        if not (valid_span(ax.span, c.caption) and valid_span(by.span, c.caption)):
            return "attribute without a span"
        if _colour_compound(c, i, x) or _colour_compound(c, j, y):
            return "one word of a multi-word colour"  # "olive green" → "olive white"
        cx, cy = _swap_category(ax.text), _swap_category(by.text)
        if "count" in (cx, cy):
            return "a count (see the count swap)"
        if ax.text.lower() == by.text.lower() or related(ax.text, by.text, "a"):
            return "same or related attribute"
        # after the swap each object must not already have the other value or its category
        if by.text.lower() in {t.text.lower() for t in a.attributes}:
            return "the value is there already"
        if ax.text.lower() in {t.text.lower() for t in b.attributes}:
            return "the value is there already"
        na, nb = _described(c, i, ax), _described(c, j, by)
        if not (self._swap_attested(na, by.text) and self._swap_attested(nb, ax.text)):
            return "not seen on the new noun"  # "a green horse on white grass"
        if cx == cy:
            return None
        if "other" in (cx, cy):
            return "across categories with no category"  # "a starbucks apron with a green logo"
        others_a = {_swap_category(t.text) for k, t in enumerate(a.attributes) if k != x}
        others_b = {_swap_category(t.text) for k, t in enumerate(b.attributes) if k != y}
        if cy in others_a or cx in others_b:
            return "two of a category after the swap"  # "a black white dog"
        if len(_pre_head(c, i)) > 1 or len(_pre_head(c, j)) > 1:
            return "across categories beside another adjective"  # adjective order
        return None

    def _swap_attested(self, noun: str, attribute: str) -> bool:
        """Whether ``attribute`` may move onto ``noun`` in a swap: :meth:`_seen_on` it, or —
        for a made thing (a jersey, a box, a sign) — a
        plain colour on a noun captions often colour (:meth:`_colourable`; ``red jersey and
        white pants`` → ``white jersey and red pants``), or a material, shape or size seen on
        it at least once. Living things, plants, food, body parts and the sky keep the strict
        rule (``green leaves and white flowers`` is not swapped); see :func:`_made_thing`."""
        if self._seen_on(noun, attribute):
            return True
        if not _made_thing(noun):
            return False
        category = _swap_category(attribute)
        if category == "color":
            return _plain_colour(attribute) and self._colourable(noun)
        if category in ("material", "shape", "size"):
            return self.vocab.attribute_count(noun, attribute) >= 1
        return False

    def _colourable(self, noun: str) -> bool:
        """Whether captions give ``noun`` a colour often (:data:`USUAL_EVIDENCE` times or
        more, over at least :data:`MIN_CANDIDATE_COUNT` different colours): a thing that
        comes in many colours, so a plain colour on it is a sensible scene."""
        seen = self.vocab.noun_attributes.get(lemma(noun), {})
        colours = {w: k for w, k in seen.items() if attribute_category(w) == "color"}
        return sum(colours.values()) >= USUAL_EVIDENCE and len(colours) >= MIN_CANDIDATE_COUNT

    def _seen_on(self, noun: str, attribute: str) -> bool:
        """Whether ``attribute`` is seen on ``noun`` in at least :data:`MIN_ATTRIBUTE_SHARE`
        of the noun's attributes of its category, and at least :data:`MIN_CANDIDATE_COUNT`
        times where the noun is seen with :data:`USUAL_EVIDENCE` or more of them (a parser
        slip or an odd photo does not make ``a green horse`` sensible)."""
        seen = self.vocab.noun_attributes.get(lemma(noun), {})
        n = self.vocab.attribute_count(noun, attribute)
        category = attribute_category(attribute)
        total = sum(k for w, k in seen.items() if attribute_category(w) == category)
        least = MIN_CANDIDATE_COUNT if total >= USUAL_EVIDENCE else 1
        return n >= least and n >= MIN_ATTRIBUTE_SHARE * total

    def _count_refusal(self, c: RewriteContext, i: int, j: int) -> str | None:
        """Counts swap between parallel objects (``two giraffes and a zebra``), not the two
        ends of one relation: ``two people on a mountain`` → ``a person on two mountains``
        and ``a lamp with two lights`` → ``two lamps with a light`` are odd scenes."""
        ci, cj = _count_of(c, i), _count_of(c, j)
        if ci is None or cj is None or ci[0] == cj[0]:
            return "same count"
        if _bound_slot(c, i) or _bound_slot(c, j):
            return "possessor, of-phrase or body part"  # "a bike with tires of two sizes"
        between = [r for r in c.graph.relations if {r.subject, r.object} == {i, j}]
        if between:
            ok = all(_counts_cross(c, r) for r in between)
            return None if ok else "counts across one relation"
        if not (_coordinated(c, i, j) or self._same_roles(c, i, j)):
            return "not parallel"  # "three men riding horseback on the side of a road"
        return None

    def _swap_counts(self, c: RewriteContext, i: int, j: int) -> Made:
        """``Two giraffes and a zebra`` → ``A giraffe and two zebras``: each object takes the
        other's number, nouns, articles and copulas agree."""
        (ni, si), (nj, sj) = _count_of(c, i), _count_of(c, j)  # type: ignore[misc]
        edits: list[Edit] = []
        graph = c.copy()
        for e, (start, end), old_n, new_n in ((i, si, ni, nj), (j, sj, nj, ni)):
            phrase = c.phrases[e]
            assert phrase is not None
            old_word = c.caption[start:end]
            head_old = c.caption[phrase.head[0] : phrase.head[1]]
            head_new = head_old
            if (old_n == 1) != (new_n == 1):
                head_new = _singular_surface(head_old) if new_n == 1 else pluralize(head_old)
                edits.append(Edit(phrase.head[0], phrase.head[1], head_old, head_new))
            if new_n == 1:
                following = c.caption[end : phrase.head[0]] + head_new
                word = article(following.split()[0] if following.split() else head_new)
            else:
                word = number_word(new_n, "two" if old_word.lower() in ("a", "an") else old_word)
            edits.append(Edit(start, end, old_word, copy_case(old_word, word)))
            if (old_n == 1) != (new_n == 1):
                edits += _agreement(c, phrase, old_n > 1, new_n > 1)
            entity = graph.entities[e]
            entity.count = new_n if new_n > 1 else None
            entity.attributes = [
                a for a in entity.attributes if attribute_category(a.text) != "count"
            ]
            if new_n > 1:
                entity.attributes.append(Attribute(str(new_n), kind="count"))
            base = lemma(entity.name)
            entity.name = pluralize(base) if new_n > 1 else base
        return edits, graph

    def _add_obj(self, c: RewriteContext, rng: random.Random) -> Made:
        choices = self._cached(("add-obj",), lambda: self._add_obj_anchors(c), c)
        if not choices:
            return False
        anchor = rng.choice(choices)
        phrase = c.phrases[anchor]
        assert phrase is not None
        present = [e.name for e in c.graph.entities]
        others = [e.name for j, e in enumerate(c.graph.entities) if j != anchor]
        entity = c.graph.entities[anchor]
        features = [f for f in self._context(c, anchor) if f[0] != "att"]  # new: no attributes
        noun = self._pick(
            rng,
            self._cached(
                ("add-obj", anchor), lambda: self._addition_pool(entity.name, features), c
            ),
            lambda w: (
                _not_an_object(w)
                or not _whole_object(w)
                or not (noun_classes(w) & noun_classes(entity.name))
                or _body_mismatch(w, entity.name)
                or self._shown_with(w, others)
                or any(w == lemma(p) or related(w, p, "n") or part_related(w, p) for p in present)
            ),
        )
        if noun is None:
            return None
        plural = c.plural(anchor) and phrase.determiner is None
        new_entity = Entity(pluralize(noun) if plural else noun)
        words = new_entity.name
        insert = " and " + _conjunct(c.caption, phrase, words, plural)
        edits = [Edit(phrase.end, phrase.end, "", insert)]
        if any(r.subject == anchor for r in c.graph.relations) or phrase.start == 0:
            fix = fix_copula(c.caption, phrase.end, True)
            if fix is not None:
                edits.append(fix)
        fix = fix_existential(c.caption, phrase.start, True)
        if fix is not None:
            edits.append(fix)
        graph = c.copy()
        graph.entities.append(new_entity)
        new = len(graph.entities) - 1
        for r in c.graph.relations:
            if r.subject == anchor:
                graph.relations.append(Relation(new, r.predicate, r.object))
            if r.object == anchor:
                graph.relations.append(Relation(r.subject, r.predicate, new))
        return edits, graph

    def _add_obj_anchors(self, c: RewriteContext) -> list[int]:
        """Noun phrases a coordinated object can follow: any phrase whose head is not the
        first part of a compound or possessive, and not a subject whose verb would then
        disagree (``a man rides`` → ``a man and a woman rides``)."""
        out = []
        for i in c.entities_with_phrase():
            phrase = c.phrases[i]
            assert phrase is not None
            after = c.caption[phrase.end :]
            if after[:1].isalnum() or after.lstrip().startswith(("'s", "’s", "'", "’")):
                continue
            next_word = after.split(" ", 2)[1] if after.startswith(" ") and after.strip() else ""
            if next_word.lower() in ("and", "or", "&", "of"):
                continue  # already coordinated, or the head of "picture of people"
            if next_word.lower() == "to" and not any(
                valid_span(r.span, c.caption) and r.span[0] == phrase.end + 1  # type: ignore[index]
                for r in c.graph.relations
            ):
                continue  # a fragment: "two windows to building" (not "... to the left of")
            if _compound_tail(c, i) or _noun_modifier(c, i):
                continue  # "sand man and woman", "a white kid bed and truck": one compound
            if any(p is not None and p.start == phrase.end + 1 for p in c.phrases):
                continue  # "sandy beach young girl is standing on": a reduced relative
            if _unparsed_object(c, i) or _lost_relation_after(c, phrase):
                continue  # "they are in a restaurant and a table": the relation is lost
            if _is_clothing(c.graph.entities[i].name):
                continue  # "wearing a black shirt and a jacket": one wears several garments
            before = c.caption[: phrase.start].lower().split()
            if before[-1:] and before[-1] in ("is", "are", "was", "were"):
                continue  # a predicate noun: "the photo is an outdoor scene"
            if before[-1:] and before[-1] in ("that", "which", "who", "where"):
                continue  # "sidewalk that the people and the seat are walking on"
            if before[-1:] == ["of"]:
                continue  # "the corner of the road and the paint": the wrong head
            if before[-1:] and before[-1] in ("and", "or", "&"):
                continue  # "a salad and apple and banana": already coordinated
            rest = after.lower().split()
            if rest[:1] and rest[0] in ("that", "who", "which"):
                continue  # "a boy and a woman that is riding": the clause would disagree
            subject = any(r.subject == i for r in c.graph.relations) or phrase.start == 0
            if subject and set(rest) & {"his", "her", "its"}:
                continue  # "the man and the woman have a glass in his hand"
            if any(
                r.subject == i
                and " " not in r.predicate.strip()
                and relation_category(r.predicate) == "action"
                and not c.plural(r.object)
                for r in c.graph.relations
            ):
                continue  # "a man and a girl holding a donut": two people, one thing held
            if any(r.object == i and _locative(r.predicate) for r in c.graph.relations):
                continue  # a place: "sitting on a bench and a ground", "on a mountain and a water"
            if any(
                r.object == i and lemma(r.predicate.split(" ", 1)[0]) not in _HELD_VERBS
                for r in c.graph.relations
            ):
                continue  # "hanging from a pole and a building", "driving a car and a train"
            if subject and next_word and _finite_singular(next_word):
                continue
            out.append(i)
        return out

    def _noun_categories(self, noun: str) -> frozenset[str]:
        """Attribute categories seen with ``noun`` in the corpus (cached)."""
        key = lemma(noun)
        if key not in self._categories:
            seen = self.vocab.noun_attributes.get(key, {})
            self._categories[key] = frozenset(attribute_category(w) for w in seen)
        return self._categories[key]

    def _add_att(self, c: RewriteContext, rng: random.Random) -> Made:
        choices = self._cached(("add-att",), lambda: self._add_att_choices(c), c)
        if not choices:
            return False
        i, category, pool = rng.choice(choices)
        entity = c.graph.entities[i]
        phrase = c.phrases[i]
        assert phrase is not None
        near = set(c.caption.lower().split())  # "black laptops have black keyboards"
        word = self._pick(
            rng,
            pool,
            lambda w: w in near or any(related(w, a.text, "a") for a in entity.attributes),
        )
        if word is None:
            return None
        rank = ADJECTIVE_ORDER[category]
        position = phrase.head[0]
        for a in sorted(entity.attributes, key=lambda a: a.span or (0, 0)):
            span = a.span
            if not valid_span(span, c.caption) or span[1] > phrase.head[0]:  # type: ignore[index]
                continue
            if ADJECTIVE_ORDER.get(attribute_category(a.text), 1) > rank:
                position = min(position, span[0])  # type: ignore[index]
        first = c.caption[position]
        if position == 0 and first.isupper():  # "Circles ..." -> "Red circles ..."
            edits = [Edit(0, 1, first, copy_case(first, word) + " " + first.lower())]
        else:
            edits = [Edit(position, position, "", word + " ")]
        graph = c.copy()
        graph.entities[i].attributes.append(Attribute(word, kind=category))
        return fix_articles(c.caption, edits), graph

    def _add_att_choices(self, c: RewriteContext) -> list[tuple[int, str, list[tuple[str, int]]]]:
        """``(entity, category, pool)`` for each noun phrase and category an attribute can be
        added in. Real captions rarely stack modifiers, and the additions a reader can check
        in an image are colours, materials and shapes (an added ``large`` or ``old`` is often
        true; a size or an age is added only to a phrase that can take none of those): so
        only phrases with at most one modifier before the noun, none of that
        category, and only a value :func:`_uncommon_values` finds seen on the noun yet not
        one that commonly holds (``blue sky``, ``silver knife``, ``large mountain``: still
        true of a typical image; ``grey gravel`` on thin evidence: may well be).
        People take none (``a silver person``, ``a metal man``; ``an old woman`` is often
        true)."""
        out = []
        for i in c.entities_with_phrase():
            entity = c.graph.entities[i]
            have = {attribute_category(a.text) for a in entity.attributes}
            options = []
            if len(_pre_head(c, i)) > 1 or ("other" in have and _pre_head(c, i)):
                continue
            if "noun.person" in noun_classes(entity.name) or _compound_tail(c, i):
                continue
            seen = self.vocab.noun_attributes.get(lemma(entity.name), Counter())
            checkable = False  # a colour, material or shape the noun is seen with
            for category in (*ADDED_CATEGORIES, *FALLBACK_CATEGORIES):
                if category in FALLBACK_CATEGORIES and (options or checkable):
                    break  # a size or an age only where nothing checkable could go
                if category in have:
                    continue
                ranked = sorted(
                    ((w, n) for w, n in seen.items() if attribute_category(w) == category),
                    key=lambda x: (-x[1], x[0]),
                )
                checkable |= bool(ranked) and ranked[0][1] >= MIN_CANDIDATE_COUNT
                if category in FALLBACK_CATEGORIES:
                    pool = _unusual_values(ranked) if self._habitual(entity.name, ranked) else []
                else:
                    pool = _uncommon_values(ranked)
                if pool:
                    options.append((i, category, pool))
            out += options
        return out

    def _habitual(self, noun: str, ranked: list[tuple[str, int]]) -> bool:
        """Whether captions of ``noun`` habitually state a value of this category (in at
        least :data:`STATED_SHARE` of its mentions), so that an added one is a checkable
        contrast (the rendered shapes' ``small`` / ``large``) rather than an unstated size
        that a typical image may well show (``large pizza``, ``long horns``: a size is given
        for under 5 % of real pizzas and horns)."""
        mentions = self.vocab.objects.get(lemma(noun), 0)
        return mentions > 0 and sum(n for _, n in ranked) >= STATED_SHARE * mentions

    def _count(self, c: RewriteContext, rng: random.Random) -> Made:
        choices = []
        for i, entity in enumerate(c.graph.entities):
            phrase = c.phrases[i]
            if phrase is None:
                continue
            span = None
            for a in entity.attributes:
                if attribute_category(a.text) == "count" and valid_span(a.span, c.caption):
                    span = tuple(a.span)  # type: ignore[arg-type]
            if span is None and phrase.determiner is not None:
                word = c.caption[phrase.determiner[0] : phrase.determiner[1]].lower()
                if word in WORD_NUMBERS:
                    span = phrase.determiner
            if span is not None and c.caption[span[0] : span[1]].lower() in WORD_NUMBERS:
                choices.append((i, span))
        if not choices:
            return False
        i, (start, end) = rng.choice(choices)
        old = c.caption[start:end]
        n = WORD_NUMBERS[old.lower()]
        values = sorted(
            {WORD_NUMBERS[w] for w in self.vocab.attributes.get("count", {})} | {1, 2, 3, 4, 5}
        )
        values = [v for v in values if v != n and 1 <= v <= 10]
        m = rng.choice(values)
        edits = [Edit(start, end, old, number_word(m, old))]
        entity = c.graph.entities[i]
        phrase = c.phrases[i]
        assert phrase is not None
        head_old = c.caption[phrase.head[0] : phrase.head[1]]
        if (n == 1) != (m == 1):
            head_new = _singular_surface(head_old) if m == 1 else pluralize(head_old)
            edits.append(Edit(phrase.head[0], phrase.head[1], head_old, head_new))
            if any(r.subject == i for r in c.graph.relations) or phrase.start == 0:
                fix = fix_copula(c.caption, phrase.end, m > 1)
                if fix is not None:
                    edits.append(fix)
            fix = fix_existential(c.caption, phrase.start, m > 1)  # "there is/are" + phrase
            if fix is not None:
                edits.append(fix)
        graph = c.copy()
        g_entity = graph.entities[i]
        g_entity.count = m
        for a in g_entity.attributes:
            if attribute_category(a.text) == "count":
                a.text = str(m)
        if not any(attribute_category(a.text) == "count" for a in g_entity.attributes):
            g_entity.attributes.append(Attribute(str(m), kind="count"))
        g_entity.name = pluralize(lemma(entity.name)) if m > 1 else lemma(entity.name)
        return edits, graph


class _LazyRandom:
    """``random.Random(derive_seed(seed, key, kind))``, created on first use: most types find
    nothing to change in most captions, and seeding a Mersenne Twister is not free."""

    __slots__ = ("_keys", "_rng")

    def __init__(self, *keys: object):
        self._keys = keys
        self._rng: random.Random | None = None

    def __getattr__(self, name: str) -> Any:
        if self._rng is None:
            self._rng = random.Random(derive_seed(*self._keys))
        return getattr(self._rng, name)


@dataclass
class RewriteContext:
    """A caption being rewritten, as a negative type's maker sees it: the caption, its graph
    (with spans into it), the phrase of each entity (``None`` where it has no span), and a
    per-caption cache for candidate pools (``Rewriter._cached``)."""

    caption: str
    graph: SceneGraph
    phrases: list[Phrase | None]
    cache: dict[tuple[Any, ...], Any] = field(default_factory=dict)  # pools per caption

    def entities_with_phrase(self) -> list[int]:
        return [i for i, p in enumerate(self.phrases) if p is not None]

    def plural(self, i: int) -> bool:
        entity = self.graph.entities[i]
        phrase = self.phrases[i]
        head = self.caption[phrase.head[0] : phrase.head[1]] if phrase else entity.name
        return is_plural(head, morphy) or (entity.count or 1) > 1

    def copy(self) -> SceneGraph:
        return copy_graph(self.graph)


def select(
    candidates: Sequence[Negative], per_type: int, scores: Sequence[float] | None = None
) -> list[Negative]:
    """The ``per_type`` candidates of each type to keep: the first ones in draw order, or
    with ``scores`` (higher is better, e.g. a language model's) the best-scoring ones, ties
    in draw order. The output keeps draw order within each type."""
    if scores is None:
        scores = [0.0] * len(candidates)
    by_type: dict[str, list[int]] = {}
    for i, negative in enumerate(candidates):
        by_type.setdefault(negative.type, []).append(i)
    keep: set[int] = set()
    for indices in by_type.values():
        keep.update(sorted(indices, key=lambda i: (-scores[i], i))[:per_type])
    return [n for i, n in enumerate(candidates) if i in keep]


class CandidateFilter:
    """What turns candidates into the negatives kept: the round-trip check and an optional
    language model, applied to many captions' candidates in one batch.

    Args:
        parse: the parser's ``parse_each`` (see :data:`~unimo_kit.rewrite.roundtrip.Parse`)
            for the round-trip check; ``None`` keeps every candidate.
        scorer: ranks the survivors of each type (``score(texts) -> array``, higher = more
            plausible, e.g. :class:`~unimo_kit.rewrite.lm.LanguageModelScorer`); ``None``
            keeps them in draw order.

    ``dropped`` counts the candidates the round trip rejected, by ``(type, reason)``.
    """

    def __init__(self, parse: Any = None, scorer: Any = None):
        self.parse = parse
        self.scorer = scorer
        self.dropped: Counter[tuple[str, str]] = Counter()

    def __call__(
        self, groups: Sequence[Sequence[Any]], per_type: int, *, rank: bool = True
    ) -> list[list[Any]]:
        """For each group (one caption's candidates, objects with ``type``, ``text`` and
        ``graph``), the ``per_type`` kept per type (ranked by the scorer when ``rank``).

        Returns:
            The kept candidates of each group, in draw order.
        """
        from unimo_kit.rewrite.roundtrip import roundtrip_filter

        flat = [c for group in groups for c in group]
        problems = roundtrip_filter(self.parse, flat) if self.parse else [None] * len(flat)
        for candidate, problem in zip(flat, problems, strict=True):
            if problem is not None:
                self.dropped[(candidate.type, problem)] += 1
        good = [c for c, p in zip(flat, problems, strict=True) if p is None]
        score_of: dict[int, float] = {}
        if rank and self.scorer is not None and good:
            scores = self.scorer.score([c.text for c in good])
            score_of = {id(c): float(x) for c, x in zip(good, scores, strict=True)}
        out, start = [], 0
        for group in groups:
            end = start + len(group)
            kept = [c for c, p in zip(flat[start:end], problems[start:end], strict=True)
                    if p is None]  # fmt: skip
            out.append(select(kept, per_type, [score_of.get(id(c), 0.0) for c in kept]))
            start = end
        return out


def _ranked_all(counter: Counter[str]) -> list[tuple[str, int]]:
    return sorted(counter.items(), key=lambda x: (-x[1], x[0]))


def _graph_key(graph: SceneGraph) -> Counter[tuple[str, ...]]:
    """A graph as a multiset of lemmatised tuples (what a swap must change)."""
    out: Counter[tuple[str, ...]] = Counter()
    for e in graph.entities:
        out[(lemma(e.name), *sorted(a.text.lower() for a in e.attributes))] += 1
    for r in graph.relations:
        ends = [
            (lemma(e.name), *sorted(a.text.lower() for a in e.attributes))
            for e in (graph.entities[r.subject], graph.entities[r.object])
        ]
        if r.predicate.lower() in SYMMETRIC:  # "a cat next to a dog" is "a dog next to a cat"
            ends.sort()
        out[(*ends[0], "|", r.predicate.lower(), "|", *ends[1])] += 1
    return out


def _swap_entities(graph: SceneGraph, i: int, j: int) -> SceneGraph:
    """``graph`` with the contents (name, attributes, count) of entities ``i`` and ``j``
    exchanged: what moving their noun phrases does to the scene."""
    out = copy_graph(graph)
    a, b = out.entities[i], out.entities[j]
    out.entities[i] = Entity(b.name, b.attributes, a.span, b.count)
    out.entities[j] = Entity(a.name, a.attributes, b.span, a.count)
    return out


def _has_outside_attributes(c: RewriteContext, i: int) -> bool:
    """Whether an attribute of entity ``i`` stands outside its noun phrase (``a man wearing
    yellow``): moving the phrase would leave it behind."""
    phrase = c.phrases[i]
    if phrase is None:
        return True
    return any(
        not valid_span(a.span, c.caption)
        or not (phrase.start <= a.span[0] and a.span[1] <= phrase.end)  # type: ignore[index]
        for a in c.graph.entities[i].attributes
    )


def _unusual_values(ranked: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Sizes or ages an added attribute may take on a noun (where no colour, material or
    shape can be added): seen on it at least :data:`MIN_CANDIDATE_COUNT` times and in at
    least :data:`MIN_ATTRIBUTE_SHARE` of them, and not its usual value (over half of
    :data:`USUAL_EVIDENCE` or more).

    Args:
        ranked: ``[(value, count)]`` of the category on the noun, most common first.

    Returns:
        The allowed ``(value, count)`` pairs, in the order given.
    """
    total = sum(n for _, n in ranked)
    return [
        (w, n)
        for w, n in ranked
        if n >= MIN_CANDIDATE_COUNT
        and n >= MIN_ATTRIBUTE_SHARE * total
        and (n <= USUAL_SHARE * total or total < USUAL_EVIDENCE)
    ]


def _compound_tail(c: RewriteContext, i: int) -> bool:
    """Whether entity ``i``'s bare noun ends a noun compound that the parser split (``stop
    sign post``, ``table cloth``): the word right before it is another entity's noun, or a
    word WordNet knows only as a noun. An attribute put before the head would land inside
    the compound (``stop sign black post``)."""
    phrase = c.phrases[i]
    if phrase is None or phrase.determiner is not None or phrase.start < phrase.head[0]:
        return False
    before = c.caption[: phrase.start]
    words = before.split()
    if not words or not before[-1:].isspace():
        return False
    if any(
        valid_span(e.span, c.caption) and e.span[1] == len(before.rstrip())  # type: ignore[index]
        for j, e in enumerate(c.graph.entities)
        if j != i
    ):
        return True
    word = words[-1].lower()
    if len(word) < 3 or not word.isalpha() or morphy(word, "n") is None:
        return False
    return all(morphy(word, pos) is None for pos in ("a", "v", "r"))


_PREPOSITIONS = frozenset({"in", "on", "at", "by", "with", "under", "over", "above", "below",
                           "behind", "between", "inside", "near", "beside", "from", "into",
                           "onto", "through", "across", "along", "around", "against", "atop",
                           "beneath", "underneath", "toward", "towards", "within",
                           "without"})  # fmt: skip


def _unparsed_object(c: RewriteContext, i: int) -> bool:
    """Whether entity ``i`` follows a preposition yet is the object of no relation of the
    graph: the parser lost what it is the place of (``they are in a restaurant``, ``grout
    in between tiles``), so a conjunct cannot be told to fit (``... and a table``)."""
    phrase = c.phrases[i]
    if phrase is None:
        return False
    before = c.caption[: phrase.start].lower().split()
    if not before or before[-1] not in _PREPOSITIONS:
        return False
    return not any(r.object == i for r in c.graph.relations)


def _lost_relation_after(c: RewriteContext, phrase: Phrase) -> bool:
    """Whether the word after a phrase is a preposition or ``has`` that starts no relation
    of the graph: the parser lost what follows (``arched window on building`` read as one
    object), so a conjunct cannot be told to fit (``arched window and truck on building``)."""
    after = c.caption[phrase.end :]
    words = after.split()
    if not words or not after[:1].isspace():
        return False
    word = words[0].lower()
    if word not in _PREPOSITIONS and word not in ("has", "have"):
        return False
    start = phrase.end + len(after) - len(after.lstrip())
    return not any(
        valid_span(r.span, c.caption) and r.span[0] <= start < r.span[1]  # type: ignore[index]
        for r in c.graph.relations
    )


def _noun_modifier(c: RewriteContext, i: int) -> bool:
    """Whether the word right before entity ``i``'s head is an attribute that WordNet knows
    only as a noun (``kid bed``, ``tennis court``): a noun compound, which a conjunct after
    the head would split (``a white kid bed and truck``)."""
    phrase = c.phrases[i]
    if phrase is None:
        return False
    for a in c.graph.entities[i].attributes:
        if not valid_span(a.span, c.caption) or attribute_category(a.text) != "other":
            continue
        if c.caption[a.span[1] : phrase.head[0]].strip():  # type: ignore[index]
            continue
        word = a.text.lower()
        if word.isalpha() and morphy(word, "n") and not (morphy(word, "a") or word.endswith("ed")):
            return True
    return False


def _colour_compound(c: RewriteContext, i: int, x: int) -> bool:
    """Whether colour ``x`` of entity ``i`` is one word of a multi-word colour: another
    colour of the same entity right beside it (``olive green``, ``navy blue``), which a
    swap would split (``olive white towel with green tags``)."""
    attributes = c.graph.entities[i].attributes
    a = attributes[x]
    if not _colour_word(a.text) or not valid_span(a.span, c.caption):
        return False
    for k, b in enumerate(attributes):
        if k == x or not _colour_word(b.text) or not valid_span(b.span, c.caption):
            continue
        left, right = sorted((a.span, b.span))  # type: ignore[type-var]
        if left[1] <= right[0] and not c.caption[left[1] : right[0]].strip():
            return True
    return False


@functools.lru_cache(maxsize=65536)
def _colour_word(word: str) -> bool:
    """A colour by its category or by any WordNet noun sense (``olive``, ``navy``: a fruit
    and a fleet first, so not in the ``color`` category)."""
    from unimo_kit.rewrite.vocab import _wordnet

    w = word.lower()
    if attribute_category(w) == "color":
        return True
    if " " in w or not w.isalpha():
        return False
    wn = _wordnet()
    colour = wn.synset("color.n.01")
    return any(colour in s.closure(lambda x: x.hypernyms()) for s in wn.synsets(w, "n"))


def _uncommon_values(ranked: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Colours, materials or shapes an added attribute may take on a noun: seen on it at
    least :data:`MIN_CANDIDATE_COUNT` times, yet neither its most common value of the
    category nor one that commonly holds (with its WordNet synonyms and hyponyms, more than
    :data:`COMMON_SHARE` of the category: ``grey`` with ``gray``), since a typical image
    of the noun may well show those (``silver knife``, ``white plane``, ``grey gravel``).

    Args:
        ranked: ``[(value, count)]`` of the category on the noun, most common first.

    Returns:
        The allowed ``(value, count)`` pairs, in the order given.
    """
    if not ranked:
        return []
    total = sum(n for _, n in ranked)
    top = ranked[0][0]
    out = []
    for w, n in ranked:
        if n < MIN_CANDIDATE_COUNT or w == top or related(w, top, "a"):
            continue
        group = sum(m for v, m in ranked if v == w or related(v, w, "a"))
        if group <= COMMON_SHARE * total:
            out.append((w, n))
    return out


def _pre_head(c: RewriteContext, i: int) -> list[Attribute]:
    """The attributes written before entity ``i``'s noun, counts left out."""
    phrase = c.phrases[i]
    if phrase is None:
        return []
    return [
        a
        for a in c.graph.entities[i].attributes
        if valid_span(a.span, c.caption)
        and a.span[1] <= phrase.head[0]  # type: ignore[index]
        and attribute_category(a.text) != "count"
    ]


def _count_of(c: RewriteContext, i: int) -> tuple[int, tuple[int, int]] | None:
    """Entity ``i``'s number and the span of the word that states it (a numeral, or the
    article ``a``/``an`` of a singular noun); ``None`` when no word states it."""
    phrase = c.phrases[i]
    if phrase is None or phrase.determiner is None:
        return None
    start, end = phrase.determiner
    word = c.caption[start:end].lower()
    if word in ("a", "an"):
        return (1, (start, end)) if not c.plural(i) else None
    if word in WORD_NUMBERS:
        return WORD_NUMBERS[word], (start, end)
    return None


_COLOUR_MODIFIERS = frozenset({"dark", "light", "bright", "pale", "deep", "pastel", "neon"})
"""Words that shade a colour (``dark blue``): a multi-word attribute made of them and colours
is a colour."""

_CARRIED_ON = frozenset({"on", "ride", "carry", "hold", "sit on", "stand on", "on top of",
                         "in", "inside", "lie on", "lay on", "ride on", "sit in"})  # fmt: skip
"""Relations where one end carries or holds the other (``two people on a horse``): swapping
counts across them gives odd scenes (``a person on two horses``)."""


def _swap_category(text: str) -> str:
    """:func:`attribute_category`, with multi-word colours (``dark blue``, ``black and
    white``, ``light brown``) read as colours, so that swap-att moves them as one attribute."""
    category = attribute_category(text)
    if category != "other":
        return category
    words = [w for w in text.lower().replace("-", " ").split() if w not in ("and", "&")]
    heads = [w for w in words if w not in _COLOUR_MODIFIERS]
    if len(words) >= 2 and heads and all(attribute_category(w) == "color" for w in heads):
        return "color"
    return category


def _plain_colour(text: str) -> bool:
    """Whether a colour attribute is made of plain colour words (:data:`BASE_COLORS`, maybe
    shaded: ``dark blue``), not a colour of hair or skin (``blonde``, ``auburn``)."""
    words = [w for w in text.lower().replace("-", " ").split() if w not in ("and", "&")]
    heads = [w for w in words if w not in _COLOUR_MODIFIERS]
    return bool(heads) and all(w in BASE_COLORS for w in heads)


_NATURAL_CLASSES = frozenset({"noun.animal", "noun.person", "noun.plant", "noun.food",
                              "noun.body", "noun.object", "noun.substance",
                              "noun.phenomenon"})  # fmt: skip
"""First WordNet senses of things whose colour nature fixes (a horse, grass, the sky, hair)."""


@functools.lru_cache(maxsize=65536)
def _made_thing(noun: str) -> bool:
    """Whether ``noun`` names a made thing, which comes in any colour: clothing, or a noun
    with an artefact or a written sign among its WordNet senses (``table``, ``sign``,
    ``letters``, ``jersey``) whose first sense is not a living or natural thing (``hood`` is
    first a gangster, ``horse`` an animal, ``grass`` a plant)."""
    from unimo_kit.rewrite.vocab import _wordnet

    w = lemma(noun)
    if _is_clothing(w):
        return True
    if _first_class(w) in _NATURAL_CLASSES:
        return False
    made = {"noun.artifact", "noun.communication"}
    return bool(made & noun_classes(w)) or any(
        s.lexname() in made for s in _wordnet().synsets(w.replace(" ", "_"), "n")
    )


_DIRECTED_VERBS = frozenset({"watch", "look", "stare", "chase", "follow", "face", "approach",
                             "lead"})  # fmt: skip
"""Verbs whose two ends play different parts whoever they are (``a dog chasing a cat``): a
relation between two people or two animals with one of them can be turned round."""


def _head_word(noun: str) -> str:
    """The last word of a noun (``baby stroller`` → ``stroller``): its kind is the head's."""
    words = lemma(noun).split()
    return words[-1] if words else ""


_MUTUAL_VERBS = frozenset({"talk", "chat", "kiss", "hug", "meet", "fight", "dance", "play",
                           "shake", "wrestle", "greet", "touch", "join"})  # fmt: skip
"""Verbs that two people mostly do to each other (``talking to``): turned round, the
caption says nearly the same."""


def _in_list(c: RewriteContext, i: int) -> bool:
    """Whether entity ``i``'s phrase is a conjunct of a list (``a tree and bench``)."""
    return any(_coordinated(c, i, j) for j in range(len(c.graph.entities)) if j != i)


def _places_of_one(c: RewriteContext, i: int, j: int) -> bool:
    """Whether ``i`` and ``j`` are both places (objects of locative relations) of one same
    subject: exchanged, the places of one thing say the same or nonsense (``walking across
    the street in a crosswalk``, ``a teddy bear on a park in a bench``)."""
    places: dict[int, set[int]] = {}
    for r in c.graph.relations:
        if r.object in (i, j) and _locative(r.predicate):
            places.setdefault(r.subject, set()).add(r.object)
    return any(found == {i, j} for found in places.values())


def _described(c: RewriteContext, i: int, attribute: Attribute) -> str:
    """The noun an attribute of entity ``i`` describes: ``hair`` for ``white haired man``
    and ``gray headed man`` (a colour moved there must be a hair colour), ``eye`` for
    ``blue eyed``, else the entity's own noun."""
    if valid_span(attribute.span, c.caption):
        after = c.caption[attribute.span[1] :].lstrip(" -").lower()  # type: ignore[index]
        for suffix, part in _DESCRIBED_PARTS:
            if after.startswith(suffix):
                return part
    return c.graph.entities[i].name


_DESCRIBED_PARTS = (("haired", "hair"), ("headed", "hair"), ("eyed", "eye"),
                    ("skinned", "skin"), ("bearded", "beard"), ("furred", "fur"))  # fmt: skip
"""``white haired man``: the colour is the hair's, and must be seen on hair."""


def _scene_key(graph: SceneGraph) -> Counter[tuple[str, ...]]:
    """:func:`_graph_key` with a count of one left out (``one box``, ``another box`` and
    ``a box`` are the same thing)."""
    out = copy_graph(graph)
    for entity in out.entities:
        entity.attributes = [a for a in entity.attributes if a.text not in ("1", "one")]
    return _graph_key(out)


def _symmetric(predicate: str) -> bool:
    """Whether ``predicate`` holds both ways: a :data:`SYMMETRIC` preposition, alone or after
    a verb (``next to``, ``standing next to``, ``sitting beside``)."""
    words = predicate.lower().split()
    return any(" ".join(words[k:]) in SYMMETRIC for k in range(len(words)))


def _directed(predicate: str) -> bool:
    """Whether ``A predicate B`` and ``B predicate A`` say different things about two
    people or animals: a directed spatial relation (:data:`INVERSE`: ``behind``, ``above``),
    alone or after a verb (``standing behind``), or a verb of :data:`_DIRECTED_VERBS`."""
    words = predicate.lower().split()
    if not words:
        return False
    if words[0] in _DIRECTED_VERBS:
        return True
    return any(" ".join(words[k:]) in INVERSE for k in range(len(words)))


def _coordinated(c: RewriteContext, i: int, j: int) -> bool:
    """Whether the phrases of entities ``i`` and ``j`` stand side by side in a list (``four
    umbrellas and five chairs``, ``one pole , two lights``)."""
    pi, pj = c.phrases[i], c.phrases[j]
    if pi is None or pj is None:
        return False
    first, second = sorted((pi, pj), key=lambda p: p.start)
    return c.caption[first.end : second.start].strip().lower() in _COORDINATORS


_COORDINATORS = ("and", ",", "or", "&", ", and")


def _counts_cross(c: RewriteContext, r: Relation) -> bool:
    """Whether counts may swap across relation ``r``: both ends living things (``two sheep
    standing next to a man`` → ``a sheep standing next to two men``), and neither carries
    or holds the other (never ``two people on a horse`` → ``a person on two horses``), nor
    is the other's place."""
    entities = c.graph.entities
    if not (_is_living(entities[r.subject].name) and _is_living(entities[r.object].name)):
        return False
    words = r.predicate.lower().split()
    if " ".join(words) in _CARRIED_ON or " ".join(words[-1:]) in _CARRIED_ON:
        return False
    return not _locative(r.predicate) or _symmetric(r.predicate)


def _agreement(c: RewriteContext, phrase: Phrase, was_plural: bool, now_plural: bool) -> list[Edit]:
    """Copula edits for a noun phrase whose number changed: ``is`` after it, ``there is``
    before it."""
    if was_plural == now_plural:
        return []
    out = []
    for fix in (
        fix_copula(c.caption, phrase.end, now_plural),
        fix_existential(c.caption, phrase.start, now_plural),
    ):
        if fix is not None:
            out.append(fix)
    return out


_PASSIVE_VERBS = frozenset(
    {
        "mount", "attach", "park", "cover", "surround", "fill", "pile", "stack", "display",
        "print", "paint", "write", "connect", "fasten", "place", "position", "situate",
        "locate", "decorate", "tie", "glue", "nail", "bolt", "wrap", "post", "frame", "line",
        "pin", "tape", "chain", "lock", "plug", "reflect", "dress", "fence", "stuff", "top",
    }
)  # fmt: skip
"""Verbs captions use as passive participles (``mounted on``, ``parked by``, ``covered
with``): the parser gives their lemma, which as a replacement would be inflected like an
active verb (``mounting on``)."""


def _locative(predicate: str) -> bool:
    """Whether a predicate places its subject at its object: a spatial preposition, alone or
    after a verb (``on``, ``in front of``, ``skiing on``, ``sitting in``)."""
    words = predicate.lower().split()
    return any(relation_category(" ".join(words[k:])) == "spatial" for k in range(len(words)))


def _body_mismatch(new: str, anchor: str) -> bool:
    """A body part beside what is not one (``a man and a hand``, ``the bird and the head``):
    WordNet files ``hand`` under people too, so a shared kind does not keep it out; and a
    person beside an animal (``a woman and a sheep``: ``sheep`` is also a person in WordNet)
    unless both are first senses of one kind."""
    if ("noun.body" in noun_classes(new)) != ("noun.body" in noun_classes(anchor)):
        return True
    first_new, first_anchor = _first_class(new), _first_class(anchor)
    living = {"noun.person", "noun.animal"}
    return first_new != first_anchor and bool({first_new, first_anchor} & living)


@functools.lru_cache(maxsize=65536)
def _first_class(noun: str) -> str:
    """The lexicographer file of ``noun``'s first WordNet sense (``sheep``: an animal, though
    one of its senses is a person), ``""`` when unknown."""
    classes = noun_classes(noun)
    if len(classes) <= 1:
        return next(iter(classes), "")
    from unimo_kit.rewrite.vocab import _wordnet

    synsets = _wordnet().synsets(lemma(noun).replace(" ", "_"), "n")
    return str(synsets[0].lexname()) if synsets else ""


@functools.lru_cache(maxsize=65536)
def _whole_object(noun: str) -> bool:
    """Whether ``noun`` names a countable whole object that can be added to a scene: not a
    body part (``hand``, ``hair``), not a substance or mass (``water``, ``snow``,
    :data:`MASS_NOUNS`), and not, in its first WordNet sense, a part of something else
    (``window`` of a building, ``door``, ``wheel``, ``collar``: a part added beside a
    whole is mostly a part of what is already there)."""
    word = lemma(noun)
    if word in MASS_NOUNS or _first_class(word) in ("noun.body", "noun.substance"):
        return False
    from unimo_kit.rewrite.vocab import _wordnet

    synsets = _wordnet().synsets(word.replace(" ", "_"), "n")
    return not (synsets and synsets[0].part_holonyms())


def _bound_slot(c: RewriteContext, i: int) -> bool:
    """Whether entity ``i``'s phrase sits where another noun phrase cannot take its place
    in a swap: a possessor (``the train 's platform``), either side of ``of`` (``body of
    water``, ``bits of ice``), or a body part (``camera in hand``: a hand is not a woman)."""
    phrase = c.phrases[i]
    if phrase is None:
        return True
    after = c.caption[phrase.end :].lstrip().lower()
    before = c.caption[: phrase.start].lower().split()
    if after.startswith(("'s", "’s", "'", "’", "of ")):
        return True
    if before[-1:] == ["of"] and not _locative(" ".join(before[-4:])):
        return True  # "body of water", not "to the left of a square"
    return _body_part(c.graph.entities[i].name)


@functools.lru_cache(maxsize=65536)
def _body_part(noun: str) -> bool:
    """Whether ``noun`` names a part of a body: WordNet files it under ``noun.body`` (``hand``)
    or, for animals' parts filed under ``noun.animal`` (``tail``, ``mane``, ``paw``), its
    first sense is a kind of ``body_part.n.01``."""
    w = _head_word(noun)
    if "noun.body" in noun_classes(w):
        return True
    from unimo_kit.rewrite.vocab import _wordnet

    wn = _wordnet()
    synsets = wn.synsets(w.replace(" ", "_"), "n")
    body = wn.synset("body_part.n.01")
    return bool(synsets) and body in synsets[0].closure(lambda s: s.hypernyms())


def _conjunct(caption: str, phrase: Phrase, words: str, plural: bool) -> str:
    """The new conjunct after ``phrase``, with a determiner like the anchor's: bare after a
    bare noun (``trees and bushes``, ``stove and rug``), ``the`` after ``the``, else ``a``/``an``
    (``a man and a woman``); plural nouns stay bare."""
    if plural:
        return words
    if phrase.determiner is None:
        return words
    determiner = caption[phrase.determiner[0] : phrase.determiner[1]].lower()
    if determiner == "the":
        return f"the {words}"
    return f"{article(words)} {words}"


def _finite_singular(word: str) -> bool:
    """Whether ``word`` looks like a third-person singular verb (``rides``, ``sits``), which a
    coordinated subject would make disagree. Copulas are fixed instead, so they are not."""
    w = word.lower().strip(".,;:!?")
    if w in ("is", "was", "has"):
        return False
    if not (w.endswith("s") and len(w) > 3) or w.endswith("ss"):
        return False
    from unimo_kit.rewrite.vocab import _is_verb

    base = w[:-2] if w.endswith("es") and _is_verb(w[:-2]) else w[:-1]
    return _is_verb(base)


def _not_an_object(noun: str) -> bool:
    """Parser leftovers that make poor object nouns: colour, size and number words."""
    return noun in ("color", "colour") or attribute_category(noun) in ("color", "size", "count")


MIN_CANDIDATE_COUNT = 3
MIN_RELATION_EVIDENCE = 2  # a replacement relation is seen this often between the two nouns
MIN_COOCCURRENCE = 2  # a replacement object is named this often with each other object
MAX_ADDITION_LIFT = 10.0  # an added object seen with its anchor over 10x chance goes with it
MAX_SCENE_LIFT = 5.0  # ... or with another object of the caption over 5x: the scene shows it
ADDED_CATEGORIES = ("color", "material", "shape")  # what add-att adds: checkable in an image
FALLBACK_CATEGORIES = ("size", "age")  # added only where none of the above can be (often true)
MIN_ATTRIBUTE_SHARE = 0.03  # an added size, a swapped attribute: at least this share on its noun
USUAL_SHARE = 0.5  # a size more common than this on its noun is its usual one: says little
COMMON_SHARE = 0.2  # an added attribute holding more often than this on its noun may well be true
TYPICAL_REVERSAL = 3.0  # a reversed relation seen this many times as often is what images show
STATED_SHARE = 0.25  # a size or an age is added only to nouns given one this often
USUAL_EVIDENCE = 10  # values of a category on a noun needed to tell its usual ones
"""Objects seen fewer times in the evidence are not drawn as replacements or additions."""

_AGENT_VERBS = frozenset({"hold", "carry", "wear", "look", "watch", "eat", "drink", "drive",
                          "ride", "play", "throw", "catch", "read", "use", "talk", "pet", "walk",
                          "kick", "push", "pull", "grab", "swing", "stare", "surf",
                          "ski"})  # fmt: skip
"""Verbs whose subject is a person or an animal: not drawn for a thing's relation."""

_NOT_VERBS = frozenset({"close", "full", "part", "top", "front", "side", "back", "end", "edge",
                        "made", "out", "far", "ahead", "next", "hand", "finger"})  # fmt: skip
"""First words of predicates that WordNet also lists as verbs but that are not verbs there."""

_HELD_VERBS = frozenset({"wear", "hold", "carry"})
"""Relations whose subject can stand in them to two things at once (``men in socks and
ties``, ``holding a bat and a ball``): add-obj conjoins to the object of no other relation,
since one thing is mostly in one place, driven or hung from one thing."""

_LIGHT_VERBS = frozenset({"have", "be", "contain", "show", "include", "get", "make", "do"})
"""Verbs that say little about a scene (``the bus has intersection``): never drawn."""


def _is_active_verb_form(surface: str, predicate: str) -> bool:
    """Whether ``surface`` starts with an active form of the predicate's verb: a gerund, the
    base or the third person (``riding``, ``rides``), not a participle used as an adjective
    (``attached to``), whose replacement would turn the relation around."""
    if not _is_verb_form(surface, predicate):
        return False
    from unimo_kit.rewrite.grammar import gerund, third_person

    word = surface.split(" ", 1)[0].lower()
    verb = predicate.split(" ", 1)[0].lower()
    return word in (verb, gerund(verb), third_person(verb)) or word.endswith("ing")


def _is_verb_form(surface: str, predicate: str) -> bool:
    """Whether the first word of ``surface`` is a form of the predicate's verb."""
    from unimo_kit.rewrite.grammar import gerund, past_participle, third_person

    word = surface.split(" ", 1)[0].lower() if surface.strip() else ""
    verb = predicate.split(" ", 1)[0].lower()
    forms = {verb, gerund(verb), third_person(verb), past_participle(verb)}
    if verb.endswith("e"):
        forms.add(verb + "d")
    return word in forms or (len(verb) > 3 and word[: len(verb) - 1] == verb[:-1])


def _singular_surface(noun: str) -> str:
    from unimo_kit.rewrite.grammar import singularize

    return singularize(noun, morphy)


def _recase(moved: str, replaced: str, position: int) -> str:
    """``moved`` put where ``replaced`` stood: capitalised at sentence start, else lowered."""
    if position == 0 and replaced[:1].isupper():
        return moved[:1].upper() + moved[1:]
    if _lowerable(moved):
        return moved[:1].lower() + moved[1:]
    return moved


def _spatial_surface(caption: str, start: int, end: int, old: str, new: str) -> tuple[int, str]:
    """Where a spatial replacement starts and how it is written, keeping ``to the``/``on the``.

    ``to the left of`` → ``to the right of`` swaps only the direction word; any other change
    replaces the whole predicate (absorbing a ``to the``/``on the`` written before the span).
    """
    lower = old.lower()
    directions = ("left", "right")
    new_dir = new.split(" ", 1)[0]
    for d in directions:
        if d in lower.split() and new_dir in directions:
            if " ".join(lower.split()) == f"{d} of":  # bare "left of" reads better with "to the"
                return start, f"to the {new_dir} of"
            return start, old.replace(d, new_dir, 1) if d in old else old
    before = caption[:start].lower()
    if lower == "between" and before.endswith("in "):  # "in between" is one preposition
        return start - 3, SPATIAL_SURFACE.get(new, new)
    for lead in ("to the ", "on the ", "at the "):
        if before.endswith(lead) and lower.split(" ", 1)[0] in directions:
            start -= len(lead)
            break
    return start, SPATIAL_SURFACE.get(new, new)


WORN_EXTRA = frozenset({"wetsuit", "wet suit", "t shirt", "tshirt", "t-shirt", "hoodie",
                        "tank top", "outfit", "gear"})  # fmt: skip
"""Things worn that WordNet lacks or files elsewhere."""

_WORN = ("clothing.n.01", "accessory.n.01", "footwear.n.02", "spectacles.n.01")
"""WordNet synsets under which a noun is something worn."""


@functools.lru_cache(maxsize=65536)
def _is_clothing(noun: str) -> bool:
    """Whether one of the first two WordNet senses of ``noun`` is something worn (``shirt``,
    ``hat``, ``shoes``, ``glasses``, ``helmet``)."""
    from unimo_kit.rewrite.vocab import _wordnet

    if lemma(noun) in WORN_EXTRA:
        return True
    wn = _wordnet()
    worn = {wn.synset(name) for name in _WORN}
    for word in dict.fromkeys((noun.lower(), lemma(noun))):  # "glasses" is not a "glass"
        for synset in wn.synsets(word.replace(" ", "_"), "n")[:2]:
            if synset in worn or worn & set(synset.closure(lambda s: s.hypernyms())):
                return True
    return False


MASCULINE = frozenset({"man", "boy", "guy", "gentleman", "father", "dad", "son", "husband",
                       "king", "prince", "brother", "uncle", "grandfather", "groom", "male",
                       "policeman", "fireman", "businessman", "fisherman", "cowboy"})  # fmt: skip
FEMININE = frozenset({"woman", "girl", "lady", "mother", "mom", "daughter", "wife", "queen",
                      "princess", "sister", "aunt", "grandmother", "bride", "female",
                      "policewoman", "businesswoman", "cowgirl"})  # fmt: skip
_PRONOUNS = {"his": MASCULINE, "him": MASCULINE, "he": MASCULINE, "himself": MASCULINE,
             "her": FEMININE, "hers": FEMININE, "she": FEMININE, "herself": FEMININE}  # fmt: skip
MASS_NOUNS = frozenset({
    "food", "water", "grass", "snow", "sand", "dirt", "ground", "hair", "furniture", "luggage",
    "clothing", "equipment", "traffic", "rice", "meat", "broccoli", "lettuce", "cheese",
    "sauce", "milk", "coffee", "juice", "wine", "beer", "ice", "smoke", "fog", "rain", "mud",
    "gravel", "paint", "foliage", "scenery", "machinery", "garbage", "trash", "graffiti",
    "cereal", "soup", "butter", "bread", "fur", "wool", "grease", "soil", "hay", "straw",
    "seaweed", "moss", "ivy", "sky", "pavement", "asphalt", "concrete", "wood", "glass",
    "metal", "plastic", "paper", "cloth", "fabric", "cream", "frosting", "icing", "spinach",
    "celery", "pasta", "spaghetti", "salad", "fruit", "produce", "jewelry", "clothes",
    "artwork", "writing", "lettering", "text", "light", "sunlight", "shade", "shadow",
})  # fmt: skip
"""Nouns that take no ``a``/``an`` or numeral in captions (``a food``)."""


PERSON_GROUPS = frozenset({"people", "crowd", "couple", "family", "team", "audience", "crew"})
"""Nouns for several persons (WordNet files ``people`` under its top level)."""


IDENTITY_NOUNS = MASCULINE | FEMININE | frozenset({
    "child", "kid", "baby", "toddler", "adult", "teenager", "teen", "person", "people",
    "youth", "infant", "children", "kids", "men", "women",
})  # fmt: skip
"""Person nouns that say who one is (sex, age), not what one does: one of them and a role
noun (``player``, ``skier``, ``tourist``) can name the same person."""


def _role_for_identity(old: str, new: str) -> bool:
    """Whether ``new`` for ``old`` swaps a role noun and an identity noun of a person (``girl``
    → ``player``, ``skier`` → ``woman``): both may hold of the one person, so no negative."""
    a, b = lemma(old), lemma(new)
    if not (_is_person(a) and _is_person(b)):
        return False
    return (a in IDENTITY_NOUNS) != (b in IDENTITY_NOUNS)


def _substance(noun: str) -> bool:
    """A mass noun that is no food or plant (``paint``, ``sand``, ``water``): what replaces it
    must be a substance too, or the scene breaks (``yellow paint`` → ``yellow banana``)."""
    w = lemma(noun)
    return (w in MASS_NOUNS or _first_class(w) == "noun.substance") and _first_class(w) not in (
        "noun.food",
        "noun.plant",
    )


@functools.lru_cache(maxsize=65536)
def _proper_name(word: str) -> bool:
    """Whether a one-word head reads as a name: unknown to WordNet as a noun, or known only
    as instances (``nathan``, ``mary``); such a head is never replaced by a common noun."""
    from unimo_kit.rewrite.vocab import _wordnet

    w = word.lower()
    if " " in w or not w.isalpha() or len(w) < 3:
        return False
    base = morphy(w, "n")
    if base is None:
        return not any(morphy(w, pos) for pos in ("v", "a", "r"))
    synsets = _wordnet().synsets(base, "n")
    return bool(synsets) and all(s.instance_hypernyms() for s in synsets)


_LIVING_CLASSES = frozenset({"noun.person", "noun.animal"})


def _is_person(noun: str) -> bool:
    """A person or a group of persons, by the first WordNet sense (a sheep is no person)."""
    w = " ".join(noun.lower().split())
    if w in PERSON_GROUPS or lemma(w) in PERSON_GROUPS:
        return True
    return _first_class(w) == "noun.person" or _first_class(lemma(w)) == "noun.person"


def _is_living(noun: str) -> bool:
    """A person, a group of persons or an animal (``herd``, ``flock`` included)."""
    w = lemma(noun)
    return _is_person(w) or _first_class(w) in _LIVING_CLASSES or w in ("herd", "flock")


SCENE_WORDS = frozenset({"background", "foreground", "distance", "picture", "photo", "image",
                         "scene", "view", "side", "front", "top", "bottom", "middle", "corner",
                         "edge", "area", "part", "piece", "section", "rest"})  # fmt: skip
"""Nouns that name a place in the picture, not a thing: never drawn as a replacement object."""


def _same_thing(new: str, old: str) -> bool:
    """Whether ``new`` names what ``old`` names: one is the head of the other (``t shirt`` →
    ``shirt``, ``tennis player`` → ``player``), the same word written apart or together
    (``night stand`` → ``nightstand``, ``t-shirt``), or a part of it (``tire`` → ``wheel``)."""
    a, b = lemma(new), lemma(old)
    if a.split(" ")[-1] == b.split(" ")[-1]:
        return True
    if a.replace(" ", "").replace("-", "") == b.replace(" ", "").replace("-", ""):
        return True
    return part_related(a, b)


def _doer_of(c: RewriteContext, noun: str) -> bool:
    """Whether ``noun`` is the doer of a verb of the caption (``skier`` where someone is
    ``skiing``, ``rider`` ... ``riding``): then it says what the caption says."""
    w = lemma(noun)
    if not w.endswith("er"):
        return False
    for r in c.graph.relations:
        verb = r.predicate.lower().split(" ", 1)[0]
        if w in (verb + "er", verb + "r", verb + verb[-1:] + "er"):
            return True
    return f"{w[:-2]}ing" in c.caption.lower()  # skier/skiing, rider/riding, batter/batting


def _disagrees(c: RewriteContext, i: int, word: str) -> bool:
    """Whether ``word`` in place of entity ``i`` would clash with the rest of the caption: a
    gendered pronoun that then points at the other sex (``a woman talking on his phone``), or
    a mass noun after ``a``/``an`` or a numeral (``a food``), a count noun for a mass noun
    after ``of`` (``a plate of broccoli`` → ``a plate of napkin``), or the doer of the
    caption's verb (``the man is skiing`` → ``the skier is skiing``)."""
    w = lemma(word)
    if _doer_of(c, w):
        return True
    phrase = c.phrases[i]
    old = lemma(c.graph.entities[i].name)
    if (
        phrase is not None
        and old in MASS_NOUNS
        and w not in MASS_NOUNS
        and c.caption[: phrase.head[0]].lower().endswith("of ")
    ):
        return True
    if w in MASCULINE or w in FEMININE:
        words = {x.strip(".,;:!?'\"").lower() for x in c.caption.split()}
        for pronoun, sex in _PRONOUNS.items():
            if pronoun in words and lemma(c.graph.entities[i].name) not in FEMININE | MASCULINE:
                continue  # "a person on his bike": the pronoun names no one we replace
            if pronoun in words and w not in sex:
                return True
    if w in MASS_NOUNS:
        phrase = c.phrases[i]
        if phrase is not None and phrase.determiner is not None:
            det = c.caption[phrase.determiner[0] : phrase.determiner[1]].lower()
            if det in ("a", "an") or det in WORD_NUMBERS:
                return True
        if (c.graph.entities[i].count or 1) > 1:
            return True
    return False


def _lowerable(text: str) -> bool:
    """Whether ``text`` starts with a capitalised word that is not an acronym (``A red``)."""
    first = text.split(" ", 1)[0]
    return first[:1].isupper() and not (len(first) > 1 and first.isupper())


# The built-in types, registered the way a new one is (docs/extending.md): output order.
for _spec in (
    NegativeType("replace-obj", Rewriter._replace_obj, "replace", "an object → another noun"),
    NegativeType("replace-att", Rewriter._replace_att, "replace", "an attribute → a contrast"),
    NegativeType("replace-rel", Rewriter._replace_rel, "replace", "a predicate → another attested"),
    NegativeType("swap-obj", Rewriter._swap_obj, "swap", "two objects exchange places"),
    NegativeType("swap-att", Rewriter._swap_att, "swap", "two objects exchange attributes"),
    NegativeType("add-obj", Rewriter._add_obj, "add", "a new object conjoined to a noun phrase"),
    NegativeType("add-att", Rewriter._add_att, "add", "an attribute the object lacks"),
    NegativeType("count", Rewriter._count, "other", "a numeral changes"),
):
    register_negative_type(_spec)
del _spec
