"""Property test: the parser never raises, whatever the text.

Hypothesis draws ``max_examples=400`` batches of up to 8 arbitrary strings each (any unicode,
control characters, surrogate-free; some very long), so a few thousand strings go through
``parse_many`` in one batched ``nlp.pipe`` call per example. Runs in well under a minute.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unimo_kit.data.scene_graph import SceneGraph
from unimo_kit.rewrite.parser import MAX_CHARS, SceneGraphParser

PARSER = SceneGraphParser(batch_size=16)

words = st.sampled_from(
    ["a", "the", "red", "dog", "on", "of", "and", "is", "two", "left", "each", "other", "it",
     "there", "by", "with", "next", "to", "top", "front", "in", "'s", "-", ",", "which", "that"]
)  # fmt: skip
texts = st.one_of(
    st.text(max_size=200),
    st.lists(words, max_size=30).map(" ".join),
    st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=3000),
    st.just("x" * 5000),
)


@pytest.mark.slow
@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(texts, min_size=1, max_size=8))
def test_parser_never_raises(batch: list[str]) -> None:
    graphs = list(PARSER.parse_many(batch))
    assert len(graphs) == len(batch)
    for text, graph in zip(batch, graphs, strict=True):
        assert isinstance(graph, SceneGraph) and graph.text == text
        graph.to_factual()
        for entity in graph.entities:
            assert 0 <= entity.span[0] < entity.span[1] <= min(len(text), MAX_CHARS)
        for relation in graph.relations:
            assert 0 <= relation.subject < len(graph.entities)
            assert 0 <= relation.object < len(graph.entities)


@pytest.mark.parametrize("text", ["LET by IT", "let by it"])
def test_a_pronoun_whose_referent_search_leads_back_to_itself_parses(text: str) -> None:
    """Found by the fuzz test: "LET by IT" parses IT as the agent of LET, and resolving IT
    excluded LET's subjects, which is IT again — an endless recursion before the cycle guard."""
    graph = PARSER.parse(text)
    assert isinstance(graph, SceneGraph) and graph.text == text


def test_lone_surrogate_never_raises_and_spans_point_into_the_original(parser):
    """The JSON escape \\ud800 decodes to a lone surrogate that spaCy cannot encode (issue 20.7)."""
    text = "a dog \ud800 on a red mat"
    graph = parser.parse(text)
    assert graph.text == text
    names = {e.name for e in graph.entities}
    assert {"dog", "mat"} <= names
    for e in graph.entities:
        assert text[e.span[0] : e.span[1]] == e.name
    assert parser.parse_each(["\udc00", "a cat"])[1].entities[0].name == "cat"
