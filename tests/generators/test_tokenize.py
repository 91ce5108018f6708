"""TextTokenizer's cache gives the same ids and masks as tokenising every call afresh, for a
fixed-width tokenizer (open_clip), callables padded to the longest text and a full cache."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from unimo_kit.generators.tokenize import TextTokenizer  # noqa: E402

CALLS = [
    ["a red circle", "a blue square left of a red circle", "a red circle"],
    ["a blue square left of a red circle"],
    ["", "a tiny green triangle", "a red circle", "two big stars"],
    ["a tiny green triangle", "a red circle"],
]


def _words(texts):  # a plain callable: unpadded id lists, one per word
    return [[len(w) for w in t.split()] for t in texts]


def _same(tokenizer, **options):
    plain = TextTokenizer(tokenizer, **options)
    cached = TextTokenizer(tokenizer, cache_size=100, **options)
    for texts in CALLS * 2:
        (ids, mask), (want_ids, want_mask) = cached(texts), plain(texts)
        assert torch.equal(ids, want_ids) and torch.equal(mask, want_mask), texts
    return cached


def test_cache_matches_open_clip():
    open_clip = pytest.importorskip("open_clip")
    cached = _same(open_clip.get_tokenizer("ViT-B-32"))
    assert len(cached._cache) == len({t for call in CALLS for t in call})
    _same(open_clip.get_tokenizer("ViT-B-32"), max_length=5)  # cut after tokenising


def test_cache_matches_a_callable_padded_to_the_longest():
    cached = _same(_words)
    assert "a red circle" in cached._cache


def _six(texts):  # a tensor callable of one width (6) that does not say it
    ids = torch.zeros((len(texts), 6), dtype=torch.long)
    for i, t in enumerate(texts):
        row = [len(w) for w in t.split()][:6]
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return ids


def _longest_tensor(texts):  # a tensor callable padded to the longest text
    rows = [[len(w) for w in t.split()] or [1] for t in texts]
    ids = torch.zeros((len(rows), max(map(len, rows))), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
    return ids


@pytest.mark.parametrize("tokenizer", [_six, _longest_tensor])
def test_cache_matches_a_tensor_callable_whichever_its_padding(tokenizer):
    first = ["one two three four five six seven", "a b"]  # fills the width: ambiguous
    plain, cached = TextTokenizer(tokenizer), TextTokenizer(tokenizer, cache_size=100)
    for texts in [first, ["a b"], *CALLS, ["a b"], *CALLS]:
        assert all(torch.equal(a, b) for a, b in zip(cached(texts), plain(texts), strict=True))


class _Longest:
    """A Hugging Face-like tokenizer: padding=True pads to the longest text, pad id 7."""

    pad_token_id = 7
    padding_side = "right"

    def batch_decode(self, ids):  # marks it as a Hugging Face tokenizer
        raise NotImplementedError

    def __call__(self, texts, padding=True, return_tensors="pt", truncation=False, max_length=None):
        rows = [[100 + len(w) for w in t.split()] or [1] for t in texts]
        if truncation:
            rows = [r[:max_length] for r in rows]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_token_id)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)], mask[i, : len(r)] = torch.tensor(r), 1
        return {"input_ids": ids, "attention_mask": mask}


def test_cache_matches_a_hugging_face_like_tokenizer():
    _same(_Longest())
    _same(_Longest(), max_length=2)


def test_left_padding_is_not_cached():
    left = _Longest()
    left.padding_side = "left"
    assert TextTokenizer(left, cache_size=10).cache_size == 0


def test_a_full_cache_keeps_what_it_has_and_still_answers_right():
    plain, cached = TextTokenizer(_words), TextTokenizer(_words, cache_size=2)
    for texts in CALLS:
        assert all(torch.equal(a, b) for a, b in zip(cached(texts), plain(texts), strict=True))
    assert len(cached._cache) == 2


def test_cache_size_must_not_be_negative():
    with pytest.raises(ValueError, match="cache_size"):
        TextTokenizer(_words, cache_size=-1)
