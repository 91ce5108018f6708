"""Sentence-level hard negatives (UNIMO §2.2): for each caption, the captions of *other* images
most similar to it by TF-IDF cosine.

The vectorizer is fitted once on the whole caption set; similarities are computed in blocks of
rows (sparse ``X[rows] @ X.T``), so memory is bounded by the block, not by ``N²``. Captions of
the same image (same group) and captions with exactly the same text are never negatives.
Ties are broken by index, so the result is deterministic; :func:`tfidf_negatives_dense` is the
dense reference the tests compare against.

Exact search costs ``O(N · candidates)``; for corpora far beyond a million captions use the
FAISS index stage (``unimo index``) for neighbour negatives instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

Neighbours = list[list[tuple[int, float]]]
"""Per query row: ``[(caption index, score)]``, best first."""


def fit_tfidf(
    texts: Iterable[str],
    *,
    stop_words: str | None = "english",
    max_df: float = 0.5,
    min_df: int = 1,
    dtype: Any = np.float64,
) -> Any:
    """Fit a ``TfidfVectorizer`` on ``texts`` (L2-normalised rows, so dot = cosine).

    Args:
        texts: the whole caption set.
        stop_words: passed to scikit-learn (``None`` keeps every word).
        max_df: terms in more than this share of captions are dropped; they would make the
            similarity blocks dense without telling captions apart.
        min_df: terms in fewer captions are dropped.
        dtype: matrix dtype.

    Returns:
        The fitted ``sklearn.feature_extraction.text.TfidfVectorizer``.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(
        stop_words=stop_words, max_df=max_df, min_df=min_df, dtype=dtype, norm="l2"
    )
    texts = list(texts)
    try:
        vectorizer.fit(texts)
    except ValueError:  # every term pruned (tiny or stop-word-only corpus): keep all terms
        vectorizer = TfidfVectorizer(stop_words=None, dtype=dtype, norm="l2")
        vectorizer.fit(texts)
    return vectorizer


class TfidfNeighbours:
    """Blocked exact TF-IDF neighbour search over a fixed caption set.

    Args:
        texts: all captions.
        groups: the group (image id) of each caption; same-group captions are excluded.
        vectorizer: a fitted vectorizer (default: :func:`fit_tfidf` on ``texts``).
        matrix: ``vectorizer.transform(texts)`` if already computed.
        max_block_nnz: memory budget of one block of similarities, in stored entries.
    """

    def __init__(
        self,
        texts: Sequence[str],
        groups: Sequence[str],
        *,
        vectorizer: Any = None,
        matrix: Any = None,
        max_block_nnz: int = 50_000_000,
    ):
        if len(texts) != len(groups):
            raise ValueError(f"{len(texts)} texts but {len(groups)} groups")
        if matrix is None:
            vectorizer = vectorizer or fit_tfidf(texts)
            matrix = vectorizer.transform(texts)
        self.matrix = matrix.tocsr()  # (N, V) L2-normalised rows
        self.transposed = self.matrix.T.tocsc()  # (V, N)
        self.group_codes = _codes(groups)
        self.text_codes = _codes(" ".join(t.lower().split()) for t in texts)
        self.max_block_nnz = max_block_nnz

    def __len__(self) -> int:
        return self.matrix.shape[0]

    def query(self, rows: Iterable[int], k: int, chunk_size: int | None = None) -> Neighbours:
        """Top-``k`` neighbours of the captions at ``rows`` (see :func:`tfidf_negatives`)."""
        rows = list(rows)
        n = len(self)
        if not rows or k <= 0 or n == 0:
            return [[] for _ in rows]
        size = chunk_size or max(1, min(4096, self.max_block_nnz // max(n, 1)))
        out: Neighbours = []
        for begin in range(0, len(rows), size):
            block_rows = rows[begin : begin + size]
            block = (self.matrix[block_rows] @ self.transposed).tocsr()  # (b, N) sparse cosine
            for local, row in enumerate(block_rows):
                lo, hi = block.indptr[local], block.indptr[local + 1]
                index = block.indices[lo:hi]
                score = block.data[lo:hi]
                keep = (
                    (self.group_codes[index] != self.group_codes[row])
                    & (self.text_codes[index] != self.text_codes[row])
                    & (score > 0)
                )
                out.append(_top(index[keep], score[keep], k))
        return out


def tfidf_negatives(
    texts: Sequence[str],
    groups: Sequence[str],
    k: int = 5,
    *,
    rows: Iterable[int] | None = None,
    vectorizer: Any = None,
    chunk_size: int | None = None,
    max_block_nnz: int = 50_000_000,
) -> Neighbours:
    """Top-``k`` TF-IDF neighbours of each query caption among captions of other groups.

    Args:
        texts: all captions.
        groups: the group (image id) of each caption; same-group captions are excluded.
        k: neighbours per query.
        rows: query rows (default: all), e.g. one shard's captions.
        vectorizer: a fitted vectorizer (default: :func:`fit_tfidf` on ``texts``).
        chunk_size: query rows per block (default: as many as keep a block under
            ``max_block_nnz`` stored similarities).
        max_block_nnz: memory budget of one block, in stored similarities.

    Returns:
        For each query row: up to ``k`` ``(index, score)`` pairs with ``score > 0``, best
        first, ties by index. Captions with the same text as the query are excluded too.
    """
    index = TfidfNeighbours(texts, groups, vectorizer=vectorizer, max_block_nnz=max_block_nnz)
    return index.query(range(len(texts)) if rows is None else rows, k, chunk_size)


def tfidf_negatives_dense(
    texts: Sequence[str], groups: Sequence[str], k: int = 5, *, vectorizer: Any = None
) -> Neighbours:
    """Dense reference of :func:`tfidf_negatives` (``N × N`` in memory; for tests)."""
    vectorizer = vectorizer or fit_tfidf(texts)
    dense = vectorizer.transform(texts).toarray()
    scores = dense @ dense.T  # (N, N)
    group_codes = _codes(groups)
    text_codes = _codes(" ".join(t.lower().split()) for t in texts)
    out: Neighbours = []
    for row in range(len(texts)):
        keep = (
            (group_codes != group_codes[row]) & (text_codes != text_codes[row]) & (scores[row] > 0)
        )
        index = np.flatnonzero(keep)
        out.append(_top(index, scores[row][index], k))
    return out


def _top(index: np.ndarray, score: np.ndarray, k: int) -> list[tuple[int, float]]:
    if index.size == 0:
        return []
    # rounded, so sums taken in another order (sparse vs dense) rank ties the same way
    score = np.round(score.astype(np.float64), 9)
    if index.size > k:
        # the k-th best score; keep everything at least that good, then order exactly
        threshold = np.partition(score, index.size - k)[index.size - k]
        mask = score >= threshold
        index, score = index[mask], score[mask]
    order = np.lexsort((index, -score))[:k]
    return [(int(index[i]), round(float(score[i]), 6)) for i in order]


def _codes(values: Iterable[str]) -> np.ndarray:
    table: dict[str, int] = {}
    return np.fromiter((table.setdefault(v, len(table)) for v in values), dtype=np.int64)
