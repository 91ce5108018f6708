"""The negative-type registry: the built-in types are registered in SugarCrepe's order, and a
toy type added through the public extension point is made by the Rewriter, accepted by
RewriteConfig and written by the stage, without any other edit."""

from __future__ import annotations

import json

import pytest
from rewrite_graphs import graph_of

from unimo_kit.data.scene_graph import COMPOSITIONAL_CATEGORIES
from unimo_kit.rewrite.edits import Edit, copy_graph
from unimo_kit.rewrite.negatives import (
    NEGATIVE_TYPES,
    NegativeType,
    RewriteContext,
    Rewriter,
    negative_type,
    negative_types,
    register_negative_type,
    unregister_negative_type,
)
from unimo_kit.rewrite.pipeline import RewriteConfig, rewrite_file
from unimo_kit.rewrite.vocab import Vocabulary

CAPTION = "A red circle to the left of a blue square"


def drop_attribute(rewriter: Rewriter, c: RewriteContext, rng):
    """A toy type: delete one attribute word (and the space after it)."""
    choices = [
        (i, j)
        for i, e in enumerate(c.graph.entities)
        for j, a in enumerate(e.attributes)
        if a.span is not None
    ]
    if not choices:
        return False  # nothing this type can change
    i, j = rng.choice(choices)
    start, end = c.graph.entities[i].attributes[j].span
    end += c.caption[end:].startswith(" ")
    graph = copy_graph(c.graph)
    del graph.entities[i].attributes[j]
    return [Edit(start, end, c.caption[start:end], "")], graph


@pytest.fixture
def toy():
    """``drop-att`` registered for the test, unregistered after it."""
    spec = register_negative_type(NegativeType("drop-att", drop_attribute, "other", "toy"))
    yield spec
    unregister_negative_type("drop-att")


def _graph():
    return graph_of(
        CAPTION,
        [("circle", ["red"]), ("square", ["blue"])],
        [(0, "to the left of", 1, "left of")],
    )


def test_builtin_types_are_registered_in_sugarcrepe_order():
    assert tuple(NEGATIVE_TYPES) == (*COMPOSITIONAL_CATEGORIES, "count")
    assert negative_types() == NEGATIVE_TYPES  # a live view of the registry
    assert NEGATIVE_TYPES[:2] == ("replace-obj", "replace-att")
    families = {t: negative_type(t).category for t in NEGATIVE_TYPES}
    assert families["swap-att"] == "swap" and families["count"] == "other"
    assert [t for t in NEGATIVE_TYPES if families[t] != "other"] == list(COMPOSITIONAL_CATEGORIES)


def test_toy_type_is_made_validated_and_listed(toy):
    assert "drop-att" in NEGATIVE_TYPES and NEGATIVE_TYPES[-1] == "drop-att"
    rewriter = Rewriter(Vocabulary(), types=["drop-att"], per_type=2, seed=0)
    texts = {n["text"] for n in rewriter.negatives(CAPTION, _graph(), key="k")}
    assert texts == {
        "A circle to the left of a blue square",
        "A red circle to the left of a square",
    }
    made = rewriter.make(CAPTION, _graph(), key="k")
    assert all(n.type == "drop-att" and sum(map(len, (e.attributes for e in n.graph.entities))) == 1
               for n in made)  # fmt: skip
    assert RewriteConfig(types=("drop-att",)).types == ("drop-att",)
    assert "drop-att" in RewriteConfig().types  # the default is every registered type
    assert "drop-att" in Rewriter(Vocabulary()).types


def test_toy_type_leaves_the_builtin_output_unchanged(toy):
    """Per-type seeds: registering a type changes nothing another type makes."""
    builtins = [t for t in NEGATIVE_TYPES if t != "drop-att"]
    with_toy = Rewriter(Vocabulary(), seed=3).negatives(CAPTION, _graph(), key="k")
    alone = Rewriter(Vocabulary(), types=builtins, seed=3).negatives(CAPTION, _graph(), key="k")
    assert [n for n in with_toy if n["type"] != "drop-att"] == alone
    assert with_toy[-1]["type"] == "drop-att"  # new types come after the built-in ones


def test_unknown_and_duplicate_types_are_refused(toy):
    with pytest.raises(ValueError, match=r"unknown negative type.*'nope'"):
        RewriteConfig(types=("nope",))
    with pytest.raises(ValueError, match="unknown negative type"):
        Rewriter(Vocabulary(), types=["nope"])
    with pytest.raises(ValueError, match="already registered"):
        register_negative_type(NegativeType("drop-att", drop_attribute))
    with pytest.raises(ValueError, match="without commas"):
        NegativeType("a,b", drop_attribute)
    with pytest.raises(KeyError, match="no negative type 'nope'"):
        unregister_negative_type("nope")


def test_unregistered_type_is_gone():
    register_negative_type(NegativeType("drop-att", drop_attribute))
    unregister_negative_type("drop-att")
    assert "drop-att" not in NEGATIVE_TYPES
    with pytest.raises(ValueError, match="unknown negative type"):
        RewriteConfig(types=("drop-att",))


def test_the_stage_writes_the_toy_type(toy, tmp_path, parser):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"id": "p", "captions": ["a red car next to a tall tree"]}) + "\n")
    out = tmp_path / "rewrites.jsonl"
    rewrite_file(pairs, out, types=("drop-att",), per_type=2, progress=False, positives=False)
    (line,) = [json.loads(x) for x in out.read_text().splitlines()]
    assert {n["type"] for n in line["negatives"]} == {"drop-att"}
    assert {n["text"] for n in line["negatives"]} == {
        "a car next to a tall tree",
        "a red car next to a tree",
    }
