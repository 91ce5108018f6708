"""satisfies(): the semantic checker of the synthetic world, and the relation geometry."""

from __future__ import annotations

import random

import pytest

from unimo_kit.data.scene_graph import Attribute, Entity, Relation, SceneGraph
from unimo_kit.data.synth import (
    INVERSE_RELATIONS,
    RELATIONS,
    Scene,
    SceneObject,
    normalise_predicate,
    sample_scene,
    satisfies,
)
from unimo_kit.data.synth.scene import MARGIN, NEXT_TO_GAP

CENTRES = (37, 112, 187)  # cell centres of the 3 x 3 grid at 224 px
RADIUS = {"small": 17, "large": 29}


def obj(shape: str, color: str, size: str, row: int, col: int) -> SceneObject:
    r, cx, cy = RADIUS[size], CENTRES[col], CENTRES[row]
    return SceneObject(shape, color, size, (cx - r, cy - r, cx + r, cy + r))


@pytest.fixture
def scene() -> Scene:
    """Row 0: red circle (small), blue square (large), red square (small).
    Row 2: green star (large) under the circle."""
    return Scene(
        "t",
        [
            obj("circle", "red", "small", 0, 0),
            obj("square", "blue", "large", 0, 1),
            obj("square", "red", "small", 0, 2),
            obj("star", "green", "large", 2, 0),
        ],
    )


def holds(scene: Scene, factual: str) -> bool:
    return satisfies(scene, SceneGraph.from_factual(factual))


@pytest.mark.parametrize(
    ("factual", "expected"),
    [
        ("( circle )", True),
        ("( heart )", False),
        ("( circle , is , red )", True),
        ("( circle , is , blue )", False),
        ("( circle , is , small )", True),
        ("( circle , is , large )", False),
        ("( star , is , big )", True),  # size synonym
        ("( circle , is , shiny )", False),  # outside the vocabulary: not shown, so false
        ("( square , is , red ) , ( square , is , small )", True),
        ("( square , is , red ) , ( square , is , large )", False),  # no single object is both
        ("( shape , is , green )", True),  # generic noun
        ("( dog )", False),
    ],
)
def test_entities_and_attributes(scene: Scene, factual: str, expected: bool) -> None:
    assert holds(scene, factual) is expected


@pytest.mark.parametrize(
    ("factual", "expected"),
    [
        ("( squares , is , 2 )", True),
        ("( squares , is , 3 )", False),  # counts are exact
        ("( squares , is , two )", True),
        ("( square , is , 2 )", True),  # the noun's number does not matter with a count
        ("( squares , is , 2 ) , ( squares , is , red )", False),  # only one red square
        ("( squares )", True),  # plural without count: two or more
        ("( circles )", False),  # one circle is not circles
        ("( stars , is , 1 )", True),
        ("( hearts , is , 0 )", True),
    ],
)
def test_counts_and_plurals(scene: Scene, factual: str, expected: bool) -> None:
    assert holds(scene, factual) is expected


def test_entity_count_field_is_read(scene: Scene) -> None:
    graph = SceneGraph([Entity("squares", count=2)])
    assert satisfies(scene, graph)
    graph = SceneGraph([Entity("squares", count=3)])
    assert not satisfies(scene, graph)
    graph = SceneGraph([Entity("squares", [Attribute("3")], count=2)])  # disagreeing counts
    assert not satisfies(scene, graph)


@pytest.mark.parametrize(
    ("factual", "expected"),
    [
        ("( circle , left of , square )", True),
        ("( square , right of , circle )", True),
        ("( circle , right of , square )", False),
        ("( square , left of , circle )", False),
        ("( circle , above , star )", True),
        ("( star , below , circle )", True),
        ("( star , above , circle )", False),
        ("( circle , next to , square )", True),  # the blue square, one column over
        ("( square , next to , circle )", True),
        ("( circle , next to , star )", False),  # different rows
        ("( star , next to , square )", False),
        # surface forms are accepted as predicates
        ("( circle , to the left of , square )", True),
        ("( circle , on the right of , square )", False),
        ("( star , under , circle )", True),
        ("( circle , beside , square )", True),
        ("( circle , sit on , square )", False),  # not a relation of this world
    ],
)
def test_relations_both_ways(scene: Scene, factual: str, expected: bool) -> None:
    assert holds(scene, factual) is expected


def test_relation_binds_to_the_described_object(scene: Scene) -> None:
    # the red circle is next to the blue square, not to the red square (two columns away)
    assert holds(scene, "( square , is , blue ) , ( circle , next to , square )")
    assert not holds(scene, "( square , is , red ) , ( circle , next to , square )")
    assert holds(scene, "( square , is , red ) , ( circle , left of , square )")


def test_group_relations_hold_for_every_member(scene: Scene) -> None:
    assert holds(scene, "( squares , is , 2 ) , ( squares , right of , circle )")
    assert holds(scene, "( circle , left of , squares )")
    assert not holds(scene, "( squares , is , 2 ) , ( squares , next to , circle )")  # one is far
    assert holds(scene, "( squares , above , star )")  # above is vertical only, any column
    assert not holds(scene, "( squares , is , 2 ) , ( squares , left of , star )")  # neither is


def test_entities_take_distinct_objects() -> None:
    one = Scene("one", [obj("circle", "red", "small", 0, 0)])
    two = Scene("two", [obj("circle", "red", "small", 0, 0), obj("circle", "blue", "small", 1, 1)])
    graph = SceneGraph([Entity("circle"), Entity("circle")])  # two entities, built in code
    assert not satisfies(one, graph)
    assert satisfies(two, graph)
    related = SceneGraph(
        [Entity("circle", [Attribute("red")]), Entity("circle")], [Relation(0, "above", 1)]
    )
    assert satisfies(two, related)
    assert not satisfies(two, SceneGraph([Entity("circle")], [Relation(0, "above", 0)]))


def test_multiword_names_and_bad_indices(scene: Scene) -> None:
    assert satisfies(scene, SceneGraph([Entity("red circle")]))
    assert not satisfies(scene, SceneGraph([Entity("green circle")]))
    assert not satisfies(scene, SceneGraph([Entity("circle")], [Relation(0, "above", 5)]))


def test_normalise_predicate() -> None:
    assert normalise_predicate("To the  left of") == "left of"
    assert normalise_predicate("beneath") == "below"
    assert normalise_predicate("is to the right of") == "right of"
    assert normalise_predicate("be") is None
    assert normalise_predicate("ride") is None
    assert all(normalise_predicate(p) == p for p in RELATIONS)


def test_geometry_inverses_and_clear_margins() -> None:
    """On sampled scenes: inverse relations agree, ``next to`` is symmetric, and every
    measured gap is well away from the thresholds (no relation is borderline)."""
    for k in range(300):
        scene = sample_scene(random.Random(k), f"s{k}", size=(96, 224, 384)[k % 3])
        n, side = len(scene.objects), scene.width
        for i in range(n):
            for j in range(n):
                if i == j:
                    continue
                for p in RELATIONS:
                    assert scene.holds(p, i, j) == scene.holds(INVERSE_RELATIONS[p], j, i)
                a, b = scene.objects[i].bbox, scene.objects[j].bbox
                x_gap = max(b[0] - a[2], a[0] - b[2])
                y_gap = max(b[1] - a[3], a[1] - b[3])
                # gaps are either clearly negative (overlap on that axis) or clearly positive
                assert x_gap <= -0.04 * side or x_gap >= 2 * MARGIN * side, (k, i, j, x_gap)
                assert y_gap <= -0.04 * side or y_gap >= 2 * MARGIN * side, (k, i, j, y_gap)
                if y_gap < 0 and x_gap > 0:  # same row: next to or clearly not
                    assert abs(x_gap - NEXT_TO_GAP * side) >= 0.05 * side, (k, i, j, x_gap)
                assert x_gap > 0 or y_gap > 0  # boxes never overlap
