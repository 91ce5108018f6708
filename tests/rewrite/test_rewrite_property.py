"""Property-based robustness: thousands of arbitrary strings through parser + rewriter +
positives never crash, and every edit list reproduces its negative from the input."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unimo_kit.rewrite.edits import apply_edits
from unimo_kit.rewrite.negatives import Rewriter
from unimo_kit.rewrite.positives import make_positives
from unimo_kit.rewrite.vocab import Vocabulary

WORDS = [
    "a",
    "an",
    "the",
    "two",
    "three",
    "red",
    "blue",
    "small",
    "large",
    "wooden",
    "circle",
    "circles",
    "square",
    "man",
    "men",
    "horse",
    "dog",
    "is",
    "are",
    "riding",
    "rides",
    "sits",
    "on",
    "under",
    "above",
    "left",
    "right",
    "of",
    "to",
    "next",
    "in",
    "front",
    "behind",
    "and",
    "there",
    "that",
    "which",
    ",",
    ".",
    "!",
    "?",
    "'",
    "-",
    "'s",
    "holding",
    "3",
    "10",
]

SEED_CAPTIONS = [
    "a red circle to the left of a blue square",
    "two small dogs are sitting on a wooden bench",
    "a man riding a horse next to a large tree",
    "there are three green stars above the table",
]


@pytest.fixture(scope="module")
def tools(parser):
    vocab = Vocabulary.build(parser.parse_many(SEED_CAPTIONS))
    return parser, Rewriter(vocab, per_type=2, seed=0)


def _check(tools, text: str) -> None:
    parser, rewriter = tools
    graph = parser.parse(text)
    for negative in rewriter.negatives(text, graph, key=text[:20]):
        assert apply_edits(text, negative["edits"]) == negative["text"]
        assert negative["text"] != text
    for positive in make_positives(text, graph):
        assert isinstance(positive.text, str) and positive.text != text


FAST = settings(
    max_examples=1200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.mark.slow
@FAST
@given(st.text(max_size=80))
def test_arbitrary_unicode(tools, text):
    _check(tools, text)


@pytest.mark.slow
@FAST
@given(st.lists(st.sampled_from(WORDS), max_size=16).map(" ".join))
def test_caption_like_word_salad(tools, text):
    _check(tools, text)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=10).map(" ".join),
    st.sampled_from(["", " ", "  ", "\t", ".", "A ", "\u00a0"]),
)
def test_odd_spacing_and_case(tools, text, affix):
    _check(tools, affix + text.capitalize() + affix)
