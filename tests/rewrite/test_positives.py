"""Positives on hand-built graphs: inverse and symmetric relations, passive, there-is,
determiners — and where they must not apply."""

from __future__ import annotations

from rewrite_graphs import graph_of

from unimo_kit.rewrite.positives import make_positives


def _texts(caption, graph, kind):
    return [p.text for p in make_positives(caption, graph) if p.type == kind]


def test_inverse_relation():
    caption = "A red circle to the left of a blue square"
    graph = graph_of(caption, [("circle", ["red"]), ("square", ["blue"])],
                     [(0, "to the left of", 1, "left of")])  # fmt: skip
    assert _texts(caption, graph, "inverse-rel") == ["A blue square to the right of a red circle"]
    (positive,) = [p for p in make_positives(caption, graph) if p.type == "inverse-rel"]
    relation = positive.graph.relations[0]
    assert (relation.subject, relation.predicate, relation.object) == (1, "right of", 0)


def test_inverse_with_copula_agreement():
    caption = "two stars are above the circle"
    graph = graph_of(caption, [("stars", []), ("circle", [])], [(0, "above", 1, "above")],
                     counts={0: ("two", 2)})  # fmt: skip
    assert _texts(caption, graph, "inverse-rel") == ["the circle is below two stars"]


def test_symmetric_relation_and_no_inverse_for_it():
    caption = "a cat next to a dog"
    graph = graph_of(caption, [("cat", []), ("dog", [])], [(0, "next to", 1, "next to")])
    assert _texts(caption, graph, "symmetric-rel") == ["a dog next to a cat"]
    assert _texts(caption, graph, "inverse-rel") == []


def test_unsafe_swaps_are_skipped():
    # something follows the object phrase: it would change owner
    caption = "a cat next to a dog with a hat"
    graph = graph_of(caption, [("cat", []), ("dog", [])], [(0, "next to", 1, "next to")])
    assert _texts(caption, graph, "symmetric-rel") == []


def test_passive():
    caption = "a man rides a horse"
    graph = graph_of(caption, [("man", []), ("horse", [])], [(0, "rides", 1, "ride")])
    assert _texts(caption, graph, "passive") == ["a horse is ridden by a man"]
    caption = "a woman holding an umbrella"
    graph = graph_of(caption, [("woman", []), ("umbrella", [])], [(0, "holding", 1, "hold")])
    assert _texts(caption, graph, "passive") == ["an umbrella being held by a woman"]


def test_there_is_both_ways():
    caption = "two red circles above a star"
    graph = graph_of(caption, [("circles", ["red"]), ("star", [])], [(0, "above", 1, "above")],
                     counts={0: ("two", 2)})  # fmt: skip
    assert _texts(caption, graph, "there-is") == ["there are two red circles above a star"]
    caption = "There is a red circle"
    graph = graph_of(caption, [("circle", ["red"])])
    assert _texts(caption, graph, "there-is") == ["A red circle"]
    caption = "a man rides a horse"  # finite verb: "there is a man rides a horse" is wrong
    graph = graph_of(caption, [("man", []), ("horse", [])], [(0, "rides", 1, "ride")])
    assert _texts(caption, graph, "there-is") == []


def test_determiner():
    caption = "the orange circle is small"
    graph = graph_of(caption, [("circle", ["orange"])])
    assert _texts(caption, graph, "determiner") == ["an orange circle is small"]


def test_exchange_after_there_is_makes_the_copula_agree():
    """The copula of "there is/are" agrees with the phrase moved after it (review finding 3)."""
    caption = "there is a brown diamond above two small circles"
    graph = graph_of(caption, [("diamond", ["brown"]), ("circles", ["small"])],
                     [(0, "above", 1, "above")], counts={1: ("two", 2)})  # fmt: skip
    assert _texts(caption, graph, "inverse-rel") == [
        "there are two small circles below a brown diamond"
    ]
    caption = "There are two rectangles to the right of a brown triangle"
    graph = graph_of(caption, [("rectangles", []), ("triangle", ["brown"])],
                     [(0, "to the right of", 1, "right of")], counts={0: ("two", 2)})  # fmt: skip
    assert _texts(caption, graph, "inverse-rel") == [
        "There is a brown triangle to the left of two rectangles"
    ]
    caption = "there is one red circle next to two blue stars"
    counts = {0: ("one", 1), 1: ("two", 2)}
    graph = graph_of(caption, [("circle", ["red"]), ("stars", ["blue"])],
                     [(0, "next to", 1, "next to")], counts=counts)  # fmt: skip
    assert _texts(caption, graph, "symmetric-rel") == [
        "there are two blue stars next to one red circle"
    ]
