"""TF-IDF sentence negatives: blocked sparse search equals the dense reference."""

from __future__ import annotations

import random

import pytest

from unimo_kit.rewrite.tfidf import TfidfNeighbours, tfidf_negatives, tfidf_negatives_dense

WORDS = [
    "red",
    "blue",
    "green",
    "small",
    "large",
    "circle",
    "square",
    "star",
    "dog",
    "cat",
    "park",
    "beach",
    "runs",
    "sits",
]


def _corpus(n: int, seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    texts = [" ".join(rng.choices(WORDS, k=rng.randint(2, 7))) for _ in range(n)]
    texts[5] = texts[9]  # a duplicate text in another group
    groups = [f"img{i // 3}" for i in range(n)]
    return texts, groups


@pytest.mark.parametrize("chunk_size", [1, 7, 64, None])
def test_chunked_equals_dense(chunk_size):
    texts, groups = _corpus(120, seed=0)
    dense = tfidf_negatives_dense(texts, groups, k=4)
    assert tfidf_negatives(texts, groups, k=4, chunk_size=chunk_size) == dense


def test_excludes_same_group_and_same_text_and_orders_best_first():
    texts, groups = _corpus(90, seed=1)
    result = tfidf_negatives(texts, groups, k=5)
    for row, neighbours in enumerate(result):
        scores = [s for _, s in neighbours]
        assert scores == sorted(scores, reverse=True)
        for j, score in neighbours:
            assert groups[j] != groups[row] and texts[j] != texts[row] and score > 0


def test_rows_subset_matches_full_and_block_budget():
    texts, groups = _corpus(60, seed=2)
    full = tfidf_negatives(texts, groups, k=3)
    index = TfidfNeighbours(texts, groups, max_block_nnz=10)  # one row per block
    assert index.query([4, 30, 59], k=3) == [full[4], full[30], full[59]]
    with pytest.raises(ValueError):
        tfidf_negatives(texts, groups[:-1])
