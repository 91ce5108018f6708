"""Vocabulary: categories, the WordNet guard, order-independent counts, JSON round trip."""

from __future__ import annotations

import random

from rewrite_graphs import graph_of

from unimo_kit.rewrite.grammar import article, gerund, inflect_like, pluralize, singularize
from unimo_kit.rewrite.vocab import (
    Vocabulary,
    attribute_category,
    lemma,
    related,
    relation_category,
)


def test_categories():
    assert [attribute_category(w) for w in ("red", "crimson", "two", "3", "small", "wooden")] == [
        "color", "color", "count", "count", "size", "material",
    ]  # fmt: skip
    assert attribute_category("happy") == "other"
    assert relation_category("left of") == "spatial"
    assert relation_category("in front of") == "spatial"
    assert relation_category("ride") == "action"
    assert relation_category("sit on") == "action"
    assert relation_category("of") == "other"


def test_related_is_the_paraphrase_guard():
    assert related("dog", "dogs", "n")  # number
    assert related("dog", "canine", "n")  # hypernym
    assert related("dog", "puppy", "n")  # hyponym
    assert related("red", "crimson", "a")
    assert related("large", "big", "a")  # shared synset
    assert related("large", "huge", "a")  # adjective satellite
    assert related("below", "under", "spatial")
    assert related("on", "above", "spatial")  # entailed
    assert not related("dog", "cat", "n")
    assert not related("red", "blue", "a")
    assert not related("small", "large", "a")  # antonyms are good negatives
    assert not related("left of", "right of", "spatial")
    assert related("ride", "riding", "v") or related("ride", "ride", "v")


def test_build_is_order_independent_and_round_trips(tmp_path):
    graphs = [
        graph_of("a red circle left of a blue square", [("circle", ["red"]), ("square", ["blue"])],
                 [(0, "left of", 1, "left of")]),
        graph_of("two small stars", [("stars", ["small"])], counts={0: ("two", 2)}),
        graph_of("a man riding a horse", [("man", []), ("horse", [])],
                 [(0, "riding", 1, "ride")]),
    ]  # fmt: skip
    vocab = Vocabulary.build(graphs)
    shuffled = graphs * 3
    random.Random(0).shuffle(shuffled)
    assert Vocabulary.build(shuffled).to_json() == Vocabulary.build(graphs * 3).to_json()
    assert vocab.objects["star"] == 1  # singular lemma
    assert vocab.attributes["color"] == {"red": 1, "blue": 1}
    assert vocab.attributes["count"] == {"2": 1}
    assert vocab.relations["spatial"] == {"left of": 1}
    assert vocab.relations["action"] == {"ride": 1}
    vocab.save(tmp_path / "v.json")
    assert Vocabulary.load(tmp_path / "v.json") == vocab
    merged = Vocabulary.build(graphs[:1]).merge(Vocabulary.build(graphs[1:]))
    assert merged == vocab


def test_grammar_helpers():
    assert [article(w) for w in ("orange", "red", "hour", "unicorn", "8")] == [
        "an", "a", "an", "a", "an",
    ]  # fmt: skip
    assert [pluralize(w) for w in ("circle", "box", "man", "sheep", "party", "tennis ball")] == [
        "circles", "boxes", "men", "sheep", "parties", "tennis balls",
    ]  # fmt: skip
    assert singularize("glasses") == "glass"
    assert lemma("Boxes") == "box"
    assert [gerund(v) for v in ("ride", "sit", "see", "lie", "eat")] == [
        "riding", "sitting", "seeing", "lying", "eating",
    ]  # fmt: skip
    assert inflect_like("hold", "riding") == "holding"
    assert inflect_like("sit on", "rides") == "sits on"
