"""Caption templates of the synthetic world: text, gold graph and spans agree."""

from __future__ import annotations

import random

import pytest

from unimo_kit.data.scene_graph import SceneGraph
from unimo_kit.data.synth import (
    TEMPLATES,
    CaptionPlan,
    NounPhrase,
    describe_scene,
    realize,
    sample_scene,
    satisfies,
)
from unimo_kit.data.synth.captions import available_templates, sample_caption

RED_CIRCLE = NounPhrase("circle", "red", "small")
BLUE_SQUARES = NounPhrase("square", "blue", None, 2)
STAR = NounPhrase("star")


@pytest.mark.parametrize(
    ("plan", "text", "factual"),
    [
        (
            CaptionPlan("np", (RED_CIRCLE,)),
            "a small red circle",
            "( circle , is , small ) , ( circle , is , red )",
        ),
        (
            CaptionPlan("there", (BLUE_SQUARES,)),
            "there are two blue squares",
            "( squares , is , 2 ) , ( squares , is , blue )",
        ),
        (
            CaptionPlan("pred", (RED_CIRCLE,)),
            "the circle is small and red",
            "( circle , is , small ) , ( circle , is , red )",
        ),
        (
            CaptionPlan("relcl-att", (NounPhrase("star", "green"),), variant=1),
            "a star which is green",
            "( star , is , green )",
        ),
        (
            CaptionPlan("conj", (RED_CIRCLE, STAR)),
            "a small red circle and a star",
            "( circle , is , small ) , ( circle , is , red ) , ( star )",
        ),
        (
            CaptionPlan("list", (STAR, BLUE_SQUARES, NounPhrase("heart", "pink"))),
            "a star, two blue squares and a pink heart",
            "( squares , is , 2 ) , ( squares , is , blue ) , ( heart , is , pink ) , ( star )",
        ),
        (
            CaptionPlan("rel", (RED_CIRCLE, STAR), "left of", "to the left of"),
            "a small red circle to the left of a star",
            "( circle , is , small ) , ( circle , is , red ) , ( circle , left of , star )",
        ),
        (
            CaptionPlan("there-rel", (STAR, BLUE_SQUARES), "above", "above"),
            "there is a star above two blue squares",
            "( squares , is , 2 ) , ( squares , is , blue ) , ( star , above , squares )",
        ),
        (
            CaptionPlan("pred-rel", (BLUE_SQUARES, STAR), "below", "under"),
            "two blue squares are under the star",
            "( squares , is , 2 ) , ( squares , is , blue ) , ( squares , below , star )",
        ),
        (
            CaptionPlan("relcl-rel", (STAR, NounPhrase("heart")), "next to", "beside"),
            "a star that is beside a heart",
            "( star , next to , heart )",
        ),
    ],
)
def test_realize(plan: CaptionPlan, text: str, factual: str) -> None:
    caption = realize(plan)
    assert caption.text == text
    assert caption.factual == factual
    # the FACTUAL string reads back into the same tuples
    assert SceneGraph.from_factual(caption.factual).to_factual() == factual


def test_spans_point_at_the_words() -> None:
    caption = realize(
        CaptionPlan("pred-rel", (RED_CIRCLE, BLUE_SQUARES), "left of", "on the left of")
    )
    text, graph = caption.text, caption.graph
    assert text == "the small red circle is on the left of two blue squares"
    for entity in graph.entities:
        assert text[slice(*entity.span)] == entity.name
        for attribute in entity.attributes:
            word = text[slice(*attribute.span)]
            assert word == attribute.text or (attribute.kind == "count" and word == "two")
    assert text[slice(*graph.relations[0].span)] == "on the left of"
    assert graph.entities[1].count == 2


def test_realize_rejects_plans_that_do_not_fit() -> None:
    with pytest.raises(ValueError):
        realize(CaptionPlan("rel", (RED_CIRCLE, STAR)))  # no relation
    with pytest.raises(ValueError):
        realize(CaptionPlan("pred", (STAR,)))  # nothing to predicate
    with pytest.raises(ValueError):
        realize(CaptionPlan("conj", (STAR,)))


def test_describe_scene_gives_distinct_true_varied_captions() -> None:
    templates_seen: set[str] = set()
    for k in range(200):
        scene = sample_scene(random.Random(k), f"s{k}")
        captions = describe_scene(scene, random.Random(k), 5)
        assert len({c.text for c in captions}) == 5
        for caption in captions:
            assert satisfies(scene, caption.graph), caption.text
            assert satisfies(scene, SceneGraph.from_factual(caption.factual)), caption.text
        if len({o.shape for o in scene.objects}) >= 2:  # relations in every multi-shape scene
            assert sum(c.plan.relation is not None for c in captions) >= 2
        templates_seen |= {c.plan.template for c in captions}
    assert templates_seen == set(TEMPLATES)


def test_one_object_scene_still_gets_five_captions() -> None:
    scene = sample_scene(random.Random(0), "one", n_objects=1)
    assert available_templates(scene) == ["np", "there", "pred", "relcl-att"]
    assert len(describe_scene(scene, random.Random(0), 5)) == 5
    assert sample_caption(scene, random.Random(0), "rel") is None


def _reference_truth(scene, plan: CaptionPlan) -> bool:
    """Truth of a plan computed directly from the scene (no graph, no satisfies)."""

    def groups(np: NounPhrase) -> list[list[int]]:
        members = [
            i
            for i, o in enumerate(scene.objects)
            if o.shape == np.shape and np.color in (None, o.color) and np.size in (None, o.size)
        ]
        if np.count:
            return [members] if len(members) == np.count else []
        return [[i] for i in members]

    options = [groups(np) for np in plan.phrases]
    if any(not o for o in options):
        return False
    if plan.relation is None:
        return True  # phrases name different shapes, so their objects are disjoint
    return any(
        all(scene.holds(plan.relation, a, b) for a in subject for b in obj)
        for subject in options[0]
        for obj in options[1]
    )


def test_satisfies_agrees_with_a_direct_reference_on_random_plans() -> None:
    """Random (mostly false) plans on random scenes: realize -> FACTUAL -> satisfies gives
    the truth computed directly from the plan."""
    from unimo_kit.data.synth import COLORS, RELATION_FORMS, RELATIONS, SHAPES, SIZES

    rng = random.Random(0)
    outcomes = []
    for k in range(1500):
        scene = sample_scene(random.Random(k), f"s{k}")
        by_shape = {o.shape: i for i, o in enumerate(scene.objects)}
        shapes = rng.sample(sorted(by_shape), 2) if len(by_shape) >= 2 else rng.sample(SHAPES, 2)
        phrases, indices = [], []
        for shape in shapes:
            index = by_shape.get(shape)
            real = scene.objects[index] if index is not None and rng.random() < 0.8 else None
            color = (
                (real.color if real else rng.choice(list(COLORS))) if rng.random() < 0.7 else None
            )
            size = (real.size if real else rng.choice(SIZES)) if rng.random() < 0.4 else None
            n = sum(
                o.shape == shape and color in (None, o.color) and size in (None, o.size)
                for o in scene.objects
            )
            count = rng.choice([None, None, None, n if n >= 2 else None, rng.choice([2, 3])])
            phrases.append(NounPhrase(shape, color, size, count))
            indices.append(index)
        if rng.random() < 0.3:
            plan = CaptionPlan("conj", tuple(phrases))
        else:
            true = [] if None in indices else [p for p in RELATIONS if scene.holds(p, *indices)]
            relation = rng.choice(true) if true and rng.random() < 0.7 else rng.choice(RELATIONS)
            plan = CaptionPlan("rel", tuple(phrases), relation, RELATION_FORMS[relation][0])
        graph = SceneGraph.from_factual(realize(plan).factual)
        expected = _reference_truth(scene, plan)
        assert satisfies(scene, graph) is expected, (scene, plan)
        outcomes.append(expected)
    assert 0.25 < sum(outcomes) / len(outcomes) < 0.75, sum(outcomes)  # both well represented
