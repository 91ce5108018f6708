"""Captions of scenes, each with its gold scene graph (with character spans).

A caption is first a :class:`CaptionPlan` — a template name, noun phrases, a relation and its
surface form — and :func:`realize` turns a plan into text and graph together, so the graph
always matches the words. Negatives for the compositional test set are edited plans,
realised the same way, so they share the positives' style and grammar.

Templates (``TEMPLATES``; examples):

=============  ==================================================================
``np``          a small red circle · two blue stars
``there``       there is a red circle · there are two blue stars
``pred``        the circle is red · the circle is small and red
``relcl-att``   a circle that is red · a star which is large and green
``conj``        a red circle and a blue square
``there-conj``  there is a red circle and a blue square
``list``        a red circle, a blue square and a green star
``rel``         a red circle to the left of a blue square
``there-rel``   there is a star above two squares
``pred-rel``    the circle is below the square · two red squares are next to the star
``relcl-rel``   a star which is above a square · a circle that is left of a heart
=============  ==================================================================

Relations appear in the surface forms of :data:`vocab.RELATION_FORMS` ("to the left of",
"left of", "on the left of", "under", "beside", ...); graphs hold the normalised predicate.
Graph entity names are the nouns as written (``squares`` stays plural, as in FACTUAL); counts
are attributes with digits (``( squares , is , 2 )``) and set ``Entity.count``.
"""

from __future__ import annotations

import random
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace

from unimo_kit.data.scene_graph import Attribute, Entity, Relation, SceneGraph, Span
from unimo_kit.data.synth.scene import Scene
from unimo_kit.data.synth.semantics import satisfies
from unimo_kit.data.synth.vocab import (
    NUMBER_WORDS,
    PLURALS,
    RELATION_FORMS,
    RELATIONS,
    article,
)

SINGLE_TEMPLATES = ("np", "there", "pred", "relcl-att")  # one noun phrase
GROUP_TEMPLATES = ("conj", "there-conj", "list")  # two or three noun phrases, no relation
RELATION_TEMPLATES = ("rel", "there-rel", "pred-rel", "relcl-rel")  # two noun phrases + relation
TEMPLATES = SINGLE_TEMPLATES + GROUP_TEMPLATES + RELATION_TEMPLATES

# How often a noun phrase names which attributes: (color?, size?) -> weight.
ATTRIBUTE_WEIGHTS = {
    (True, True): 0.35,
    (True, False): 0.4,
    (False, True): 0.1,
    (False, False): 0.15,
}
COUNT_PROBABILITY = 0.5  # chance a noun phrase is counted when 2+ objects fit its description


@dataclass(frozen=True)
class NounPhrase:
    """An object description: ``a small red circle``, ``two red squares``."""

    shape: str  # singular noun from vocab.SHAPES
    color: str | None = None  # colour adjective, if named
    size: str | None = None  # size adjective, if named
    count: int | None = None  # None: one object ("a ..."); n >= 2: "two ... squares"

    @property
    def noun(self) -> str:
        """The noun as written: plural when counted."""
        return PLURALS[self.shape] if self.count else self.shape


@dataclass(frozen=True)
class CaptionPlan:
    """What a caption says, before words are chosen for it."""

    template: str  # one of TEMPLATES
    phrases: tuple[NounPhrase, ...]  # in caption order
    relation: str | None = None  # normalised predicate between phrases[0] and phrases[1]
    form: str | None = None  # surface form of the relation, from vocab.RELATION_FORMS
    variant: int = 0  # template-specific wording choice ("that" / "which")


@dataclass
class Caption:
    """A realised caption: the plan, its text and its gold graph (spans into ``text``)."""

    plan: CaptionPlan
    text: str
    graph: SceneGraph

    @property
    def factual(self) -> str:
        """The gold graph in FACTUAL string form."""
        return self.graph.to_factual()


class _Builder:
    """Appends words to a caption while recording the graph and spans."""

    def __init__(self) -> None:
        self.text = ""
        self.graph = SceneGraph()

    def word(self, text: str, *, space: bool = True) -> Span:
        if self.text and space:
            self.text += " "
        start = len(self.text)
        self.text += text
        return start, len(self.text)

    def _attribute(self, entity: int, text: str, kind: str, span: Span) -> None:
        self.graph.entities[entity].attributes.append(Attribute(text, span, kind))

    def phrase(self, np: NounPhrase, determiner: str = "a", *, adjectives: bool = True) -> int:
        """``[det | number] [size] [color] noun``; returns the entity index. ``determiner``
        is "a" (indefinite, turned into "an" as needed) or "the"; counted phrases use the
        number word instead. With ``adjectives=False`` the adjectives are left out (they
        are said later, predicatively)."""
        entity = len(self.graph.entities)
        self.graph.entities.append(Entity(np.noun, count=np.count))
        words: list[tuple[str, str]] = []
        if np.count:
            words.append((NUMBER_WORDS[np.count], "count"))
        if adjectives and np.size:
            words.append((np.size, "size"))
        if adjectives and np.color:
            words.append((np.color, "color"))
        if not np.count:
            first = words[0][0] if words else np.noun
            self.word(article(first) if determiner == "a" else determiner)
        for text, kind in words:
            span = self.word(text)
            self._attribute(entity, str(np.count) if kind == "count" else text, kind, span)
        self.graph.entities[entity].span = self.word(np.noun)
        return entity

    def predicate_adjectives(self, entity: int, np: NounPhrase) -> None:
        """``small and red`` / ``red`` after a copula."""
        adjectives = [(a, k) for a, k in ((np.size, "size"), (np.color, "color")) if a]
        for index, (text, kind) in enumerate(adjectives):
            if index:
                self.word("and")
            self._attribute(entity, text, kind, self.word(text))

    def relation(self, subject: int, predicate: str, form: str, obj: int) -> None:
        span = self.word(form)
        self.graph.relations.append(Relation(subject, predicate, obj, span))


def _copula(np: NounPhrase) -> str:
    return "are" if np.count else "is"


def realize(plan: CaptionPlan) -> Caption:
    """Turn a plan into text and its gold scene graph.

    Raises:
        ValueError: if the plan does not fit its template (wrong number of phrases, a
            relation template without a relation, a predicative template without adjectives).
    """
    t, nps = plan.template, plan.phrases
    need = {"conj": 2, "there-conj": 2, "list": 3}.get(t, 2 if t in RELATION_TEMPLATES else 1)
    if len(nps) != need:
        raise ValueError(f"template {t!r} needs {need} noun phrase(s), got {len(nps)}")
    if t in RELATION_TEMPLATES and (plan.relation not in RELATIONS or not plan.form):
        raise ValueError(f"template {t!r} needs a relation and its surface form")
    b = _Builder()
    if t == "np":
        b.phrase(nps[0])
    elif t == "there":
        b.word(f"there {_copula(nps[0])}")
        b.phrase(nps[0])
    elif t in ("pred", "relcl-att"):
        np = nps[0]
        if np.count or not (np.color or np.size):
            raise ValueError(f"template {t!r} needs a singular phrase with an adjective")
        if t == "pred":
            e = b.phrase(np, "the", adjectives=False)
            b.word("is")
        else:
            e = b.phrase(np, "a", adjectives=False)
            b.word("which is" if plan.variant % 2 else "that is")
        b.predicate_adjectives(e, np)
    elif t in ("conj", "there-conj"):
        if t == "there-conj":
            b.word(f"there {_copula(nps[0])}")
        b.phrase(nps[0])
        b.word("and")
        b.phrase(nps[1])
    elif t == "list":
        b.phrase(nps[0])
        b.word(",", space=False)
        b.phrase(nps[1])
        b.word("and")
        b.phrase(nps[2])
    else:  # relation templates
        assert plan.relation is not None and plan.form is not None
        if t == "there-rel":
            b.word(f"there {_copula(nps[0])}")
        determiner = "the" if t == "pred-rel" else "a"
        s = b.phrase(nps[0], determiner)
        if t == "pred-rel":
            b.word(_copula(nps[0]))
        elif t == "relcl-rel":
            b.word(("which " if plan.variant % 2 else "that ") + _copula(nps[0]))
        b.relation(s, plan.relation, plan.form, len(b.graph.entities))  # object comes next
        b.phrase(nps[1], determiner)
    return Caption(plan, b.text, b.graph)


# --------------------------------------------------------------------------- sampling plans


def _choose_attributes(rng: random.Random) -> tuple[bool, bool]:
    keys = list(ATTRIBUTE_WEIGHTS)
    return rng.choices(keys, weights=[ATTRIBUTE_WEIGHTS[k] for k in keys])[0]


def random_phrase(
    scene: Scene,
    rng: random.Random,
    index: int,
    *,
    allow_count: bool = True,
    need_adjective: bool = False,
) -> NounPhrase:
    """A true description of ``scene.objects[index]``; counted (``two red squares``) with
    probability ``COUNT_PROBABILITY`` when 2+ objects fit the description."""
    obj = scene.objects[index]
    while True:
        use_color, use_size = _choose_attributes(rng)
        if not need_adjective or use_color or use_size:
            break
    np = NounPhrase(obj.shape, obj.color if use_color else None, obj.size if use_size else None)
    if allow_count:
        n = sum(
            1
            for o in scene.objects
            if o.shape == np.shape
            and (np.color is None or o.color == np.color)
            and (np.size is None or o.size == np.size)
        )
        if n >= 2 and rng.random() < COUNT_PROBABILITY:
            np = replace(np, count=n)
    return np


def random_plan(scene: Scene, rng: random.Random, template: str) -> CaptionPlan | None:
    """A random plan of ``template`` that is true of ``scene`` by construction (the caller
    still checks with :func:`satisfies`), or ``None`` if the scene cannot fill the template
    (e.g. a relation template for a scene with one shape)."""
    objects = scene.objects
    variant = rng.randrange(2)
    if template in SINGLE_TEMPLATES:
        index = rng.randrange(len(objects))
        if template == "pred":
            # "the circle is red" only when the circle is the only one
            unique = [
                i for i, o in enumerate(objects) if sum(p.shape == o.shape for p in objects) == 1
            ]
            if not unique:
                return None
            index = rng.choice(unique)
        single = template in ("pred", "relcl-att")
        np = random_phrase(scene, rng, index, allow_count=not single, need_adjective=single)
        return CaptionPlan(template, (np,), variant=variant)
    k = 3 if template == "list" else 2
    by_shape: dict[str, list[int]] = {}
    for i, o in enumerate(objects):
        by_shape.setdefault(o.shape, []).append(i)
    if len(by_shape) < k:
        return None  # phrases of one caption name different shapes (FACTUAL keys by name)
    shapes = rng.sample(sorted(by_shape), k)
    indices = [rng.choice(by_shape[s]) for s in shapes]
    if template in GROUP_TEMPLATES:
        phrases = tuple(random_phrase(scene, rng, i) for i in indices)
        return CaptionPlan(template, phrases, variant=variant)
    i, j = indices
    true = [p for p in RELATIONS if scene.holds(p, i, j)]
    if not true:
        return None
    relation = rng.choice(true)
    form = rng.choice(RELATION_FORMS[relation])
    phrases = (random_phrase(scene, rng, i), random_phrase(scene, rng, j))
    return CaptionPlan(template, phrases, relation, form, variant)


def available_templates(scene: Scene) -> list[str]:
    """Templates a scene can fill (by number of distinct shapes)."""
    shapes = len({o.shape for o in scene.objects})
    out = list(SINGLE_TEMPLATES)
    if shapes >= 2:
        out += ["conj", "there-conj", *RELATION_TEMPLATES]
    if shapes >= 3:
        out.append("list")
    return out


def sample_caption(
    scene: Scene,
    rng: random.Random,
    template: str,
    *,
    attempts: int = 20,
    exclude: AbstractSet[str] = frozenset(),
) -> Caption | None:
    """A true caption of ``scene`` from ``template`` whose text is not in ``exclude``."""
    for _ in range(attempts):
        plan = random_plan(scene, rng, template)
        if plan is None:
            return None
        caption = realize(plan)
        if caption.text not in exclude and satisfies(scene, caption.graph):
            return caption
    return None


def describe_scene(scene: Scene, rng: random.Random, n: int = 5) -> list[Caption]:
    """``n`` distinct true captions of ``scene`` from varied templates.

    Templates are drawn so that a scene with two or more shapes gets relation captions
    (about two in five), captions with one and with several phrases, and no template
    twice until all have been used.

    Raises:
        RuntimeError: if the scene cannot yield ``n`` distinct captions (never for n <= 10).
    """
    templates = available_templates(scene)
    relational = [t for t in templates if t in RELATION_TEMPLATES]
    others = [t for t in templates if t not in RELATION_TEMPLATES]
    rng.shuffle(relational)
    rng.shuffle(others)
    order: list[str] = []
    while relational or others:  # interleave: other, relation, other, relation, ...
        for pool in (others, relational):
            if pool:
                order.append(pool.pop())
    captions: list[Caption] = []
    seen: set[str] = set()
    k = 0
    while len(captions) < n and k < 20 * n:
        template = order[k % len(order)]
        k += 1
        caption = sample_caption(scene, rng, template, exclude=seen)
        if caption is not None:
            captions.append(caption)
            seen.add(caption.text)
    if len(captions) < n:
        raise RuntimeError(f"scene {scene.id}: only {len(captions)} distinct captions")
    rng.shuffle(captions)
    return captions
