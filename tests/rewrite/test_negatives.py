"""Typed hard negatives on hand-built graphs (no spaCy): edits, categories, WordNet guard,
agreement, determinism."""

from __future__ import annotations

from collections import Counter

import pytest
from rewrite_graphs import graph_of

from unimo_kit.rewrite.edits import apply_edits
from unimo_kit.rewrite.grammar import WORD_NUMBERS
from unimo_kit.rewrite.negatives import NEGATIVE_TYPES, Rewriter
from unimo_kit.rewrite.vocab import Vocabulary, attribute_category

CAPTION = "A red circle to the left of a blue square"


def _graph():
    return graph_of(
        CAPTION,
        [("circle", ["red"]), ("square", ["blue"])],
        [(0, "to the left of", 1, "left of")],
    )


EVIDENCE = [
    "( circle , is , red ) , ( circle , left of , square ) , ( square , is , blue )",
    "( circle , is , blue ) , ( square , left of , circle ) , ( square , is , red )",
    "( circle , is , green ) , ( circle , is , large ) , ( circle , right of , square ) , "
    "( square , is , orange )",
    "( circle , is , small ) , ( circle , above , square ) , ( square , is , large )",
    "( star , is , red ) , ( star , left of , square )",
    "( circle , above , diamond ) , ( diamond , above , circle ) , ( diamond , is , brown )",
    "( triangle , right of , rectangle ) , ( rectangle , right of , triangle )",
    "( circle , left of , triangle )",
    "( circle , left of , square ) , ( triangle , left of , square )",
]
"""A tiny corpus of gold graphs: what attests which replacement (each seen three times).
Like the synthetic world's captions (``ATTRIBUTE_WEIGHTS``: a size on 45 % of noun phrases),
it states the circles' sizes often (6 of 21 mentions), so an added size is a contrast."""


def _vocab(**extra: Counter) -> Vocabulary:
    from unimo_kit.data.scene_graph import SceneGraph

    vocab = Vocabulary.build(SceneGraph.from_factual(g) for g in EVIDENCE * 3)
    vocab.objects["orange"] = 1  # a colour word the parser once read as a noun
    vocab.attributes.setdefault("size", Counter()).update({"small": 4, "large": 4})
    vocab.attributes.setdefault("count", Counter()).update({"2": 2, "3": 1})
    vocab.relations.setdefault("spatial", Counter())["next to"] += 2
    for key, value in extra.items():
        setattr(vocab, key, value)
    return vocab


def _check(caption: str, negatives: list[dict]) -> None:
    for n in negatives:
        assert n["type"] in NEGATIVE_TYPES
        assert apply_edits(caption, n["edits"]) == n["text"]
        assert n["text"] != caption
        for e in n["edits"]:
            assert caption[e["start"] : e["end"]] == e["old"]


def test_every_type_edits_the_original_caption():
    rewriter = Rewriter(_vocab(), per_type=3, seed=0)
    negatives = rewriter.negatives(CAPTION, _graph(), key="x#0")
    _check(CAPTION, negatives)
    types = {n["type"] for n in negatives}
    assert {"replace-obj", "replace-att", "replace-rel", "swap-obj", "swap-att", "add-obj",
            "add-att"} <= types  # fmt: skip
    for n in negatives:
        if n["type"] == "replace-att":
            (edit,) = [e for e in n["edits"] if e["old"] in ("red", "blue")]
            assert attribute_category(edit["new"]) == "color"
        if n["type"] == "swap-obj":
            assert n["text"] == "A blue square to the left of a red circle"
        if n["type"] == "swap-att":
            assert n["text"] == "A blue circle to the left of a red square"


def test_articles_agree_after_replacement():
    vocab = _vocab(noun_attributes={"circle": Counter({"red": 1, "orange": 50})})
    rewriter = Rewriter(vocab, types=["replace-att"], per_type=1, seed=0, weight_power=1)
    graph = graph_of("a red circle", [("circle", ["red"])])
    (negative,) = rewriter.negatives("a red circle", graph, key="k")
    assert negative["text"] == "an orange circle"


def test_wordnet_rejects_synonyms_hypernyms_hyponyms_and_plurals():
    nouns = {"dog": 100, "dogs": 100, "canine": 100, "puppy": 100, "cat": 3}
    vocab = Vocabulary(
        objects=Counter(nouns),
        attributes={"size": Counter({"big": 100, "huge": 100, "small": 1})},
        noun_attributes={n: Counter({"large": 3, "big": 9, "huge": 9}) for n in nouns},
    )
    caption = "a large dog"
    graph = graph_of(caption, [("dog", ["large"])])
    rewriter = Rewriter(vocab, types=["replace-obj", "replace-att"], per_type=5, seed=1)
    texts = {n["text"] for n in rewriter.negatives(caption, graph, key="k")}
    assert texts == {"a large cat", "a small dog", "a little dog"}  # the opposite sizes


def test_spatial_replacements_stay_spatial_and_never_synonyms():
    vocab = Vocabulary(
        objects=Counter({"cat": 2, "table": 2}),
        relations={
            "spatial": Counter({"under": 50, "beneath": 50, "below": 50, "above": 1}),
            "action": Counter({"eat": 50}),
        },
        triples={
            f"cat\t{p}": Counter({"table": 2})  # MIN_RELATION_EVIDENCE
            for p in ("under", "beneath", "below", "above", "eat")
        },
    )
    caption = "a cat under a table"
    graph = graph_of(caption, [("cat", []), ("table", [])], [(0, "under", 1, "under")])
    rewriter = Rewriter(vocab, types=["replace-rel"], per_type=3, seed=0)
    assert [n["text"] for n in rewriter.negatives(caption, graph, key="k")] == [
        "a cat above a table"
    ]


def test_symmetric_relations_are_not_swapped():
    caption = "a cat next to a dog"
    graph = graph_of(caption, [("cat", []), ("dog", [])], [(0, "next to", 1, "next to")])
    rewriter = Rewriter(_vocab(), types=["swap-obj"], per_type=2, seed=0)
    assert rewriter.negatives(caption, graph, key="k") == []


@pytest.mark.parametrize(
    ("caption", "numeral", "value"),
    [("two circles are above a star", "two", 2), ("one circle is above a star", "one", 1)],
)
def test_count_changes_number_noun_and_copula(caption, numeral, value):
    head = "circles" if value > 1 else "circle"
    graph = graph_of(
        caption, [(head, []), ("star", [])], [(0, "above", 1, "above")], {0: (numeral, value)}
    )
    vocab = _vocab(attributes={"count": Counter({"1": 5, "2": 5})})
    for seed in range(4):
        rewriter = Rewriter(vocab, types=["count"], per_type=1, seed=seed)
        (negative,) = rewriter.negatives(caption, graph, key="k")
        words = negative["text"].split()
        n = WORD_NUMBERS[words[0]]
        assert n != value
        assert words[1:3] == (["circle", "is"] if n == 1 else ["circles", "are"])
        assert words[3:] == ["above", "a", "star"]


def test_plural_objects_stay_plural():
    caption = "two red circles"
    graph = graph_of(caption, [("circles", ["red"])], counts={0: ("two", 2)})
    rewriter = Rewriter(_vocab(), types=["replace-obj"], per_type=2, seed=0)
    for n in rewriter.negatives(caption, graph, key="k"):
        assert n["text"].endswith("s"), n


def test_deterministic_per_key_and_independent_of_other_types():
    rewriter = Rewriter(_vocab(), per_type=2, seed=5)
    a = rewriter.negatives(CAPTION, _graph(), key="img-1#0")
    b = Rewriter(_vocab(), per_type=2, seed=5).negatives(CAPTION, _graph(), key="img-1#0")
    assert a == b
    only = Rewriter(_vocab(), types=["replace-obj"], per_type=2, seed=5)
    assert only.negatives(CAPTION, _graph(), key="img-1#0") == [
        n for n in a if n["type"] == "replace-obj"
    ]
    others = {
        str(Rewriter(_vocab(), per_type=2, seed=s).negatives(CAPTION, _graph(), key="img-1#0"))
        for s in range(6)
    }
    assert len(others) > 1  # the seed matters


def test_per_type_gives_distinct_texts():
    rewriter = Rewriter(_vocab(), types=["replace-att"], per_type=4, seed=0)
    texts = [n["text"] for n in rewriter.negatives(CAPTION, _graph(), key="k")]
    assert len(texts) == len(set(texts)) >= 3


def test_verifier_drops_negatives_true_of_the_image():
    rewriter = Rewriter(_vocab(), types=["replace-att"], per_type=4, seed=0)
    negatives = rewriter.make(
        CAPTION, _graph(), key="k", verify=lambda g: any(
            a.text == "green" for e in g.entities for a in e.attributes
        ),
    )  # fmt: skip
    assert negatives and all("green" not in n.text for n in negatives)


def test_unknown_type_and_empty_input():
    with pytest.raises(ValueError, match="unknown negative type"):
        Rewriter(_vocab(), types=["replace-everything"])
    rewriter = Rewriter(_vocab())
    assert rewriter.negatives("", graph_of("", []), key="k") == []
    assert rewriter.negatives("hello", graph_of("hello", []), key="k") == []


def test_add_att_only_adds_categories_seen_with_the_noun():
    vocab = _vocab()
    vocab.attributes["material"] = Counter({"wooden": 9})
    rewriter = Rewriter(vocab, types=["add-att"], per_type=3, seed=0)
    texts = [n["text"] for n in rewriter.negatives(CAPTION, _graph(), key="k")]
    assert texts and all("wooden" not in t for t in texts)  # never seen with circle/square
    assert all(("small" in t) or ("large" in t) for t in texts)  # sizes are


@pytest.mark.parametrize(
    ("caption", "numeral", "value"),
    [("there are two circles above a star", "two", 2),
     ("There is one circle above a star", "one", 1)],
)  # fmt: skip
def test_count_after_there_is_makes_the_copula_agree(caption, numeral, value):
    """``there is`` + a re-counted phrase: the copula before it agrees (review finding 3)."""
    head = "circles" if value > 1 else "circle"
    graph = graph_of(
        caption, [(head, []), ("star", [])], [(0, "above", 1, "above")], {0: (numeral, value)}
    )
    vocab = _vocab(attributes={"count": Counter({"1": 5, "2": 5})})
    crossed = False
    for seed in range(12):
        rewriter = Rewriter(vocab, types=["count"], per_type=1, seed=seed)
        (negative,) = rewriter.negatives(caption, graph, key="k")
        words = negative["text"].split()
        n = WORD_NUMBERS[words[2]]
        crossed |= (n == 1) != (value == 1)
        assert words[0] == caption.split()[0]
        assert words[1] == ("is" if n == 1 else "are"), negative["text"]
        assert words[3] == ("circle" if n == 1 else "circles")
    assert crossed  # at least one negative changed the noun's number


def test_swap_obj_after_there_is_makes_the_copula_agree():
    """``there is`` + swapped phrases: the copula agrees with the phrase now first."""
    caption = "there is a brown diamond above two small circles"
    graph = graph_of(caption, [("diamond", ["brown"]), ("circles", ["small"])],
                     [(0, "above", 1, "above")], counts={1: ("two", 2)})  # fmt: skip
    rewriter = Rewriter(_vocab(), types=["swap-obj"], per_type=1, seed=0)
    (negative,) = rewriter.negatives(caption, graph, key="k")
    assert negative["text"] == "there are two small circles above a brown diamond"
    _check(caption, [negative])
    caption = "There are two rectangles to the right of a brown triangle"
    graph = graph_of(caption, [("rectangles", []), ("triangle", ["brown"])],
                     [(0, "to the right of", 1, "right of")], counts={0: ("two", 2)})  # fmt: skip
    (negative,) = rewriter.negatives(caption, graph, key="k")
    assert negative["text"] == "There is a brown triangle to the right of two rectangles"
