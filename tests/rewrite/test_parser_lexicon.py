"""Word tables and cached WordNet look-ups behind the parser."""

from __future__ import annotations

import pytest

from unimo_kit.rewrite.parse_lexicon import (
    container_preposition,
    has_verb_reading,
    is_clothing,
    is_compound_noun,
    is_material,
    noun_lemma,
    number_value,
    verb_lemma,
)


@pytest.mark.parametrize(
    ("word", "value"),
    [("two", 2), ("Two", 2), ("12", 12), ("dozen", 12), ("1,000", 1000), ("red", None),
     ("12345678", None)],
)  # fmt: skip
def test_number_value(word: str, value: int | None) -> None:
    assert number_value(word) == value


def test_verb_lemmas() -> None:
    cases = {"riding": "ride", "taped": "tape", "hopped": "hop", "sitting": "sit",
             "lying": "lie", "flies": "fly", "hanging": "hang", "visited": "visit"}  # fmt: skip
    assert {w: verb_lemma(w) for w in cases} == cases
    assert verb_lemma("xyzzying", "xyzzy") == "xyzzy"  # unknown to WordNet: the fallback


def test_noun_lemmas_word_by_word() -> None:
    assert noun_lemma("squares") == "square"
    assert noun_lemma("tennis balls") == "tennis ball"
    assert noun_lemma("t-shirts") == "t-shirts"  # non-alphabetic words are left alone


def test_wordnet_classes() -> None:
    assert is_compound_noun(("tennis", "courts")) and is_compound_noun(("bed", "spread"))
    assert not is_compound_noun(("lion", "design"))
    assert is_clothing("red shirt") and is_clothing("glasses") and not is_clothing("horse")
    assert is_material("metal") and is_material("brick") and not is_material("tennis")
    assert container_preposition("glasses") == "in" and container_preposition("plate") == "on"
    assert container_preposition("giraffe") is None
    assert has_verb_reading("riding") and not has_verb_reading("awning")


def test_number_value_of_digit_like_symbols():
    from unimo_kit.rewrite.parse_lexicon import number_value

    assert number_value("2") == 2 and number_value("two") == 2 and number_value("1,000") == 1000
    assert number_value("¹") is None  # str.isdigit() is True, int() fails (found by hypothesis)
    assert number_value("²3") is None
