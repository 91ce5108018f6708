"""Typed hard negatives: edit one node of a caption's scene graph, in the caption's own words.

For a caption and its parsed :class:`~unimo_kit.data.scene_graph.SceneGraph` (with character
spans), :class:`Rewriter` makes SugarCrepe-typed negatives:

=============  ===========================================================================
``replace-obj``  an object noun → another noun of the corpus vocabulary (number kept)
``replace-att``  an attribute → another of the same category (colour → colour, ...)
``replace-rel``  a predicate → another of the same category (spatial → spatial, ...)
``swap-obj``     the two ends of an asymmetric relation exchange places
``swap-att``     two objects exchange same-category attributes
``add-obj``      a new object (with an attribute in the caption's style) is conjoined
``add-att``      an attribute of a category the object lacks is added
``count``        a numeral changes (noun number and copula agree)
=============  ===========================================================================

Each negative is ``{"type", "text", "edits": [{"start", "end", "old", "new"}]}`` with spans into
the original caption. Replacements related to the original by WordNet (same word up to number,
synonym, hypernym, hyponym) are rejected, articles and copulas are made to agree, and every
choice is drawn from a generator seeded by ``derive_seed(seed, key, type)``: the output for a
caption depends only on the caption, its graph, the vocabulary, the key and the seed — not on
input order, sharding or which other types are asked for.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from unimo_kit.data.scene_graph import (
    COMPOSITIONAL_CATEGORIES,
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
    SYMMETRIC,
    Vocabulary,
    attribute_category,
    lemma,
    morphy,
    related,
    relation_category,
)
from unimo_kit.utils import derive_seed

NEGATIVE_TYPES: tuple[str, ...] = (*COMPOSITIONAL_CATEGORIES, "count")
"""All hard-negative types, in output order."""

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


Verifier = Callable[[SceneGraph], bool]
"""Says whether a candidate negative's graph is TRUE of the sample's image (then it is
dropped). Only possible with gold scenes, e.g. the synthetic world's ``satisfies``."""


class Rewriter:
    """Make typed hard negatives from captions and their scene graphs.

    Args:
        vocab: replacement vocabulary (:meth:`Vocabulary.build` over the corpus).
        types: negative types to make (default: all of :data:`NEGATIVE_TYPES`).
        per_type: at most this many distinct negatives per type and caption.
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
        weight_power: float = 0.5,
        max_tries: int = 12,
    ):
        unknown = set(types or ()) - set(NEGATIVE_TYPES)
        if unknown:
            raise ValueError(f"unknown negative type(s) {sorted(unknown)}; use {NEGATIVE_TYPES}")
        self.vocab = vocab
        self.types = tuple(t for t in NEGATIVE_TYPES if types is None or t in types)
        self.per_type = int(per_type)
        self.seed = int(seed)
        self.weight_power = float(weight_power)
        self.max_tries = int(max_tries)
        self._pools: dict[tuple[str, ...], tuple[list[str], list[float]]] = {}
        self._categories: dict[str, frozenset[str]] = {}

    # ------------------------------------------------------------------ public API

    def negatives(
        self, caption: str, graph: SceneGraph, key: str, *, verify: Verifier | None = None
    ) -> list[dict[str, Any]]:
        """Hard negatives of ``caption`` as JSON-ready records (see module doc).

        Args:
            caption: the original caption (the spans of ``graph`` point into it).
            graph: its scene graph with spans (from :class:`SceneGraphParser`).
            key: a stable id of the caption (``"<pair_id>#<caption_index>"``), for the seed.
            verify: optional check that rejects negatives true of the image (see
                :data:`Verifier`).

        Returns:
            ``[{"type", "text", "edits"}]``, types in :data:`NEGATIVE_TYPES` order.
        """
        return [n.to_dict() for n in self.make(caption, graph, key, verify=verify)]

    def make(
        self, caption: str, graph: SceneGraph, key: str, *, verify: Verifier | None = None
    ) -> list[Negative]:
        """Like :meth:`negatives`, returning :class:`Negative` objects with edited graphs."""
        if not caption.strip() or not graph.entities:
            return []
        context = _Context(caption, graph, phrases(graph, caption))
        out: list[Negative] = []
        for kind in self.types:
            rng = _LazyRandom(self.seed, key, kind)
            make = getattr(self, "_" + kind.replace("-", "_"))
            texts = {caption.strip().lower()}
            found = 0
            for _ in range(self.max_tries * self.per_type):
                if found >= self.per_type:
                    break
                made = make(context, rng)
                if made is False:
                    break  # the caption offers nothing this type can change
                if made is None:
                    continue
                edits, new_graph = made
                edits = sorted(set(edits))
                if not edits or overlaps(edits):
                    continue
                text = apply_edits(caption, edits)
                if text.strip().lower() in texts:
                    continue
                if verify is not None and verify(new_graph):
                    continue
                texts.add(text.strip().lower())
                new_graph.text = text
                out.append(Negative(kind, text, edits, new_graph))
                found += 1
        return out

    # ------------------------------------------------------------------ sampling

    def _draw(
        self, rng: random.Random, key: tuple[str, ...],
        pool: Callable[[], list[tuple[str, int]]], reject: Callable[[str], bool],
    ) -> str | None:  # fmt: skip
        """A weighted draw from the ``(word, count)`` list ``pool()`` (built once per ``key``)
        that ``reject`` does not refuse."""
        if key not in self._pools:
            pool = pool()
            words = [w for w, _ in pool]
            weights, total = [], 0.0
            for _, count in pool:
                total += count**self.weight_power
                weights.append(total)
            self._pools[key] = (words, weights)
        words, cum = self._pools[key]
        if not words:
            return None
        for _ in range(self.max_tries):
            word = rng.choices(words, cum_weights=cum)[0]
            if not reject(word):
                return word
        return None

    # ------------------------------------------------------------------ types

    def _replace_obj(self, c: _Context, rng: random.Random) -> _Made:
        choices = c.entities_with_phrase()
        if not choices:
            return False
        i = rng.choice(choices)
        entity = c.graph.entities[i]
        head = c.phrases[i].head  # type: ignore[union-attr]
        old = c.caption[head[0] : head[1]]
        present = {lemma(e.name) for e in c.graph.entities}
        word = self._draw(
            rng,
            ("obj",),
            self.vocab.object_candidates,
            lambda w: (
                w in present
                or _not_an_object(w)
                or related(w, entity.name, "n")
                or related(w, old, "n")
            ),
        )
        if word is None:
            return None
        plural = is_plural(old, morphy) or (entity.count or 1) > 1
        new = copy_case(old, pluralize(word) if plural else word)
        graph = c.copy()
        graph.entities[i].name = pluralize(word) if is_plural(entity.name, morphy) else word
        return fix_articles(c.caption, [Edit(head[0], head[1], old, new)]), graph

    def _replace_att(self, c: _Context, rng: random.Random) -> _Made:
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
        word = self._draw(
            rng,
            ("att", category, lemma(entity.name)),
            lambda: self.vocab.attribute_candidates(category, entity.name),
            lambda w: w in own or related(w, attribute.text, "a") or related(w, old, "a"),
        )
        if word is None:
            return None
        graph = c.copy()
        graph.entities[i].attributes[j].text = word
        return fix_articles(c.caption, [Edit(start, end, old, copy_case(old, word))]), graph

    def _replace_rel(self, c: _Context, rng: random.Random) -> _Made:
        choices = [k for k, r in enumerate(c.graph.relations) if valid_span(r.span, c.caption)]
        if not choices:
            return False
        k = rng.choice(choices)
        relation = c.graph.relations[k]
        category = relation_category(relation.predicate)
        start, end = relation.span  # type: ignore[misc]
        old = c.caption[start:end]
        slot = {"spatial": "spatial", "action": "v"}.get(category, "other")
        subject = c.graph.entities[relation.subject].name
        norm = relation.predicate.lower()

        def reject(p: str) -> bool:
            if p == norm or p.removeprefix("to ") == norm.removeprefix("to "):
                return True
            if slot == "spatial":
                return related(p, norm, "spatial")
            if slot == "v":
                return related(p, norm, "v")
            return False

        word = self._draw(
            rng,
            ("rel", category, lemma(subject)),
            lambda: self.vocab.relation_candidates(category, subject),
            reject,
        )
        if word is None:
            return None
        if category == "spatial":
            start, new = _spatial_surface(c.caption, start, end, old, word)
        elif category == "action":
            if not _is_verb_form(old, relation.predicate):
                return False  # "eye of a giraffe" (have): no verb to replace
            new = inflect_like(word, old)
        else:
            new = word
        if start != relation.span[0]:  # type: ignore[index]
            old = c.caption[start:end]
        graph = c.copy()
        graph.relations[k].predicate = word
        return fix_articles(c.caption, [Edit(start, end, old, copy_case(old, new))]), graph

    def _swap_obj(self, c: _Context, rng: random.Random) -> _Made:
        degree: dict[int, int] = {}
        for r in c.graph.relations:
            degree[r.subject] = degree.get(r.subject, 0) + 1
            degree[r.object] = degree.get(r.object, 0) + 1
        choices = []
        for k, r in enumerate(c.graph.relations):
            ps, po = c.phrases[r.subject], c.phrases[r.object]
            if ps is None or po is None or r.subject == r.object:
                continue
            if r.predicate.lower() in SYMMETRIC or degree[r.subject] > 1 or degree[r.object] > 1:
                continue
            if valid_span(r.span, c.caption) and c.caption[r.span[0] : r.span[1]].lower() in (  # type: ignore[index]
                "of", "'s", "’s", "with",
            ):  # fmt: skip
                continue  # "eye of a giraffe" -> "a giraffe of eye" is not English
            if ps.end > po.start and po.end > ps.start:
                continue
            if ps.text(c.caption).lower() == po.text(c.caption).lower():
                continue
            choices.append(k)
        if not choices:
            return False
        k = rng.choice(choices)
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

    def _swap_att(self, c: _Context, rng: random.Random) -> _Made:
        choices = []
        entities = c.graph.entities
        for i, a in enumerate(entities):
            for j in range(i + 1, len(entities)):
                b = entities[j]
                for x, ax in enumerate(a.attributes):
                    for y, by in enumerate(b.attributes):
                        if not (valid_span(ax.span, c.caption) and valid_span(by.span, c.caption)):
                            continue
                        cat = attribute_category(ax.text)
                        if cat == "count" or cat != attribute_category(by.text):
                            continue
                        if ax.text.lower() == by.text.lower():
                            continue
                        # after the swap each object must not already have the other value
                        if by.text.lower() in {t.text.lower() for t in a.attributes}:
                            continue
                        if ax.text.lower() in {t.text.lower() for t in b.attributes}:
                            continue
                        choices.append((i, x, j, y))
        if not choices:
            return False
        i, x, j, y = rng.choice(choices)
        ax, by = entities[i].attributes[x], entities[j].attributes[y]
        s1, s2 = ax.span, by.span
        o1, o2 = c.caption[s1[0] : s1[1]], c.caption[s2[0] : s2[1]]  # type: ignore[index]
        edits = [
            Edit(s1[0], s1[1], o1, copy_case(o1, o2.lower())),  # type: ignore[index]
            Edit(s2[0], s2[1], o2, copy_case(o2, o1.lower())),  # type: ignore[index]
        ]
        graph = c.copy()
        graph.entities[i].attributes[x].text = by.text
        graph.entities[j].attributes[y].text = ax.text
        return fix_articles(c.caption, edits), graph

    def _add_obj(self, c: _Context, rng: random.Random) -> _Made:
        choices = c.entities_with_phrase()
        if not choices:
            return False
        anchor = max(choices, key=lambda i: c.phrases[i].end)  # type: ignore[union-attr]
        phrase = c.phrases[anchor]
        assert phrase is not None
        if c.caption[phrase.end :].strip(" .,;:!?\"')"):
            return False  # only conjoin at the end of the caption: no verb to agree with
        present = [e.name for e in c.graph.entities]
        noun = self._draw(
            rng,
            ("obj",),
            self.vocab.object_candidates,
            lambda w: (
                _not_an_object(w) or any(w == lemma(p) or related(w, p, "n") for p in present)
            ),
        )
        if noun is None:
            return None
        new_entity = Entity(noun)
        words = noun
        categories = [
            attribute_category(a.text)
            for e in c.graph.entities
            for a in e.attributes
            if attribute_category(a.text) not in ("count", "other")
        ]
        if categories and max(sorted(set(categories)), key=categories.count) in (
            self._noun_categories(noun)
        ):
            category = max(sorted(set(categories)), key=categories.count)
            word = self._draw(
                rng,
                ("att", category, lemma(noun)),
                lambda: self.vocab.attribute_candidates(category, noun),
                lambda w: False,
            )
            if word is not None:
                words = f"{word} {noun}"
                new_entity.attributes.append(Attribute(word))
        insert = f" and {article(words)} {words}"
        edits = [Edit(phrase.end, phrase.end, "", insert)]
        graph = c.copy()
        graph.entities.append(new_entity)
        new = len(graph.entities) - 1
        for r in c.graph.relations:
            if r.subject == anchor:
                graph.relations.append(Relation(new, r.predicate, r.object))
            if r.object == anchor:
                graph.relations.append(Relation(r.subject, r.predicate, new))
        return edits, graph

    def _noun_categories(self, noun: str) -> frozenset[str]:
        """Attribute categories seen with ``noun`` in the corpus (cached)."""
        key = lemma(noun)
        if key not in self._categories:
            seen = self.vocab.noun_attributes.get(key, {})
            self._categories[key] = frozenset(attribute_category(w) for w in seen)
        return self._categories[key]

    def _add_att(self, c: _Context, rng: random.Random) -> _Made:
        choices = []
        for i in c.entities_with_phrase():
            entity = c.graph.entities[i]
            have = {attribute_category(a.text) for a in entity.attributes}
            seen = self._noun_categories(entity.name)
            for category in ("color", "size", "material", "shape", "age"):
                if category not in have and category in seen:  # "a metal man": never seen
                    choices.append((i, category))
        if not choices:
            return False
        i, category = rng.choice(choices)
        entity = c.graph.entities[i]
        phrase = c.phrases[i]
        assert phrase is not None
        near = set(c.caption[max(0, phrase.start - 20) : phrase.end].lower().split())
        word = self._draw(
            rng,
            ("att", category, lemma(entity.name)),
            lambda: self.vocab.attribute_candidates(category, entity.name),
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

    def _count(self, c: _Context, rng: random.Random) -> _Made:
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


_Made = tuple[list[Edit], SceneGraph] | None | bool
"""Edits and edited graph; ``None``: this attempt failed; ``False``: no attempt can work."""


@dataclass
class _Context:
    """A caption being rewritten: text, graph and the phrase of each entity."""

    caption: str
    graph: SceneGraph
    phrases: list[Phrase | None]

    def entities_with_phrase(self) -> list[int]:
        return [i for i, p in enumerate(self.phrases) if p is not None]

    def plural(self, i: int) -> bool:
        entity = self.graph.entities[i]
        phrase = self.phrases[i]
        head = self.caption[phrase.head[0] : phrase.head[1]] if phrase else entity.name
        return is_plural(head, morphy) or (entity.count or 1) > 1

    def copy(self) -> SceneGraph:
        return copy_graph(self.graph)


def _not_an_object(noun: str) -> bool:
    """Parser leftovers that make poor object nouns: colour, size and number words."""
    return noun in ("color", "colour") or attribute_category(noun) in ("color", "size", "count")


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
    for lead in ("to the ", "on the ", "at the "):
        if before.endswith(lead) and lower.split(" ", 1)[0] in directions:
            start -= len(lead)
            break
    return start, SPATIAL_SURFACE.get(new, new)


def _lowerable(text: str) -> bool:
    """Whether ``text`` starts with a capitalised word that is not an acronym (``A red``)."""
    first = text.split(" ", 1)[0]
    return first[:1].isupper() and not (len(first) > 1 and first.isupper())
