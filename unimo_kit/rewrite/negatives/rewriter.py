""":class:`Rewriter`: draws each registered type's candidates for a caption from a generator
seeded per caption and type, and holds the evidence every maker reads (the vocabulary merged
with the reference table, the noun indexes, lift, weighted draws, per-caption pool cache)."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from unimo_kit.data.records import caption_key
from unimo_kit.data.scene_graph import SceneGraph
from unimo_kit.rewrite.edits import (
    apply_edits,
    overlaps,
    phrases,
)
from unimo_kit.rewrite.negatives.attributes import swap_att_review
from unimo_kit.rewrite.negatives.context import RewriteContext
from unimo_kit.rewrite.negatives.objects import swap_obj_review
from unimo_kit.rewrite.negatives.registry import (
    NEGATIVE_TYPES,
    GraphCheck,
    Negative,
    check_negative_types,
    negative_type,
)
from unimo_kit.rewrite.negatives.selection import select
from unimo_kit.rewrite.vocab import (
    Vocabulary,
    attribute_category,
    lemma,
)
from unimo_kit.utils import derive_seed


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
        self._objects: list[tuple[str, int]] | None = None
        self._feature_index: dict[tuple[str, str], set[str]] | None = None
        self._mentions: int | None = None  # object mentions in the evidence, for lift

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
        for (form, *_), why in swap_att_review(self, c):
            out.append(("swap-att", form, why))
        for (form, *_), why in swap_obj_review(self, c):
            out.append(("swap-obj", form, why))
        return out

    def features(self, c: RewriteContext, i: int) -> list[tuple[str, ...]]:
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

    def fits(self, noun: str, features: list[tuple[str, ...]], *, exact: bool) -> bool:
        """Whether ``noun`` is attested with every feature of :meth:`features`: relations as
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

    def ranked_objects(self) -> list[tuple[str, int]]:
        """``vocab.object_candidates()``, sorted once per rewriter."""
        if self._objects is None:
            self._objects = self.vocab.object_candidates()
        return self._objects

    def possible_nouns(self, features: list[tuple[str, ...]]) -> set[str] | None:
        """Nouns that could fit every feature at all (seen with that attribute, as subject or
        object of that predicate): a superset of what :meth:`fits` accepts, from indexes
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

    def lift(self, a: str, b: str, together: int) -> float:
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

    def pick(
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

    def cached(self, key: tuple[Any, ...], build: Callable[[], Any], c: RewriteContext) -> Any:
        """A per-caption cache: candidate pools are built once per caption and slot."""
        if key not in c.cache:
            c.cache[key] = build()
        return c.cache[key]


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
