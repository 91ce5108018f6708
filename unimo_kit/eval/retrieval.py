"""Image-text retrieval metrics: R@K in both directions and RSUM, several captions per image.

The protocol is the Karpathy-split test protocol UNIMO reports on Flickr30k / COCO:

- **image -> text**: an image query is a hit at K when ANY of its captions is among the top K
  texts;
- **text -> image**: a caption query is a hit at K when its own image is among the top K images.

**Ties** are resolved pessimistically and deterministically: the rank of a query is
``1 + (number of WRONG candidates whose score is >= the best right candidate's score)``. A wrong
candidate that ties with the right one counts against the query, so a model that scores every
candidate the same gets rank = number of wrong candidates + 1, never a lucky R@1. Scores are the
float32 dot products of the (L2-normalised) embeddings as computed; "tie" means exact equality.

Similarities are computed in blocks of ``chunk`` queries against all candidates (one matmul, one
comparison per block), so memory is ``chunk x candidates`` and 5k images x 25k captions takes a
few seconds on a CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

DEFAULT_KS = (1, 5, 10)


def _as_float32(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N, E), got shape {x.shape}")
    return np.ascontiguousarray(x, dtype=np.float32)


def retrieval_ranks(
    image_emb: np.ndarray,
    text_emb: np.ndarray,
    text_to_image: np.ndarray,
    *,
    chunk: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """Pessimistic 1-based ranks of every query in both directions.

    Args:
        image_emb: (N_i, E) image embeddings (normalised for cosine similarity).
        text_emb: (N_t, E) text embeddings.
        text_to_image: (N_t,) index of each text's image in ``image_emb``.
        chunk: queries per similarity block.

    Returns:
        ``(i2t_ranks (N_i,), t2i_ranks (N_t,))`` int64. An image with no caption gets rank 0
        and is left out of the image->text metrics by :func:`retrieval_metrics`.
    """
    image_emb = _as_float32(image_emb, "image_emb")
    text_emb = _as_float32(text_emb, "text_emb")
    t2i = np.asarray(text_to_image, dtype=np.int64)
    n_img, n_txt = len(image_emb), len(text_emb)
    if image_emb.shape[1] != text_emb.shape[1]:
        raise ValueError(
            f"embedding sizes differ: images {image_emb.shape}, texts {text_emb.shape}"
        )
    if t2i.shape != (n_txt,):
        raise ValueError(f"text_to_image must have shape ({n_txt},), got {t2i.shape}")
    if n_txt and (t2i.min() < 0 or t2i.max() >= n_img):
        raise ValueError(f"text_to_image holds indices outside [0, {n_img})")
    chunk = max(1, int(chunk))

    # text -> image: one right candidate per query
    t2i_ranks = np.zeros(n_txt, dtype=np.int64)
    for start in range(0, n_txt, chunk):
        stop = min(start + chunk, n_txt)
        scores = text_emb[start:stop] @ image_emb.T  # (c, N_i)
        right = scores[np.arange(stop - start), t2i[start:stop]]  # (c,)
        # ">=" counts the right candidate itself once: subtract it, add the 1 of a 1-based rank
        t2i_ranks[start:stop] = (scores >= right[:, None]).sum(axis=1)

    # image -> text: several right candidates, the best one decides
    i2t_ranks = np.zeros(n_img, dtype=np.int64)
    for start in range(0, n_img, chunk):
        stop = min(start + chunk, n_img)
        scores = image_emb[start:stop] @ text_emb.T  # (c, N_t)
        is_right = t2i[None, :] == np.arange(start, stop)[:, None]  # (c, N_t)
        best = np.where(is_right, scores, -np.inf).max(axis=1)  # (c,)
        wrong_above = ((scores >= best[:, None]) & ~is_right).sum(axis=1)  # (c,)
        has_caption = is_right.any(axis=1)
        i2t_ranks[start:stop] = np.where(has_caption, wrong_above + 1, 0)
    return i2t_ranks, t2i_ranks


def recall_at(ranks: np.ndarray, ks: Sequence[int]) -> dict[int, float]:
    """Fraction of ranks <= K (in percent, as papers report R@K), for each K."""
    ranks = np.asarray(ranks)
    if not len(ranks):
        return {k: float("nan") for k in ks}
    return {k: float(100.0 * np.mean(ranks <= k)) for k in ks}


def chance_recall(captions_per_image: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    """Expected R@K (percent) of random scores: ``t2i``: K / N_i; ``i2t``: the chance that one
    of an image's c captions is among K texts drawn from N_t, averaged over images."""
    counts = np.asarray(captions_per_image, dtype=np.float64)
    counts = counts[counts > 0]
    n_img, n_txt = len(captions_per_image), counts.sum()
    out = {}
    for k in ks:
        miss = np.ones_like(counts)
        for j in range(min(k, int(n_txt))):  # P(none of c in k draws without replacement)
            miss *= np.clip((n_txt - counts - j) / (n_txt - j), 0.0, None)
        out[f"i2t_r{k}"] = float(100.0 * np.mean(1.0 - miss)) if len(counts) else float("nan")
        out[f"t2i_r{k}"] = float(100.0 * min(k, n_img) / n_img) if n_img else float("nan")
    return out


def retrieval_metrics(
    image_emb: np.ndarray,
    text_emb: np.ndarray,
    text_to_image: np.ndarray,
    ks: Sequence[int] = DEFAULT_KS,
    chunk: int = 1024,
) -> dict[str, Any]:
    """R@K (percent) for image->text and text->image, RSUM, median and mean ranks.

    Args:
        image_emb, text_emb, text_to_image, chunk: see :func:`retrieval_ranks`.
        ks: the cut-offs.

    Returns:
        ``{"i2t_r1": .., "i2t_r5": .., ..., "t2i_r1": .., ..., "rsum": sum of all R@K,
        "i2t_medr", "t2i_medr", "i2t_meanr", "t2i_meanr", "num_images", "num_texts"}``.

    Example:
        >>> img = np.eye(2, dtype=np.float32); txt = np.eye(2, dtype=np.float32)
        >>> retrieval_metrics(img, txt, np.array([0, 1]), ks=(1,))["rsum"]
        200.0
    """
    i2t, t2i = retrieval_ranks(image_emb, text_emb, text_to_image, chunk=chunk)
    i2t = i2t[i2t > 0]  # images without captions take no part
    out: dict[str, Any] = {}
    for direction, ranks in (("i2t", i2t), ("t2i", t2i)):
        for k, value in recall_at(ranks, ks).items():
            out[f"{direction}_r{k}"] = value
    out["rsum"] = float(sum(out[f"{d}_r{k}"] for d in ("i2t", "t2i") for k in ks))
    for direction, ranks in (("i2t", i2t), ("t2i", t2i)):
        out[f"{direction}_medr"] = float(np.median(ranks)) if len(ranks) else float("nan")
        out[f"{direction}_meanr"] = float(np.mean(ranks)) if len(ranks) else float("nan")
    out["num_images"] = len(i2t)
    out["num_texts"] = len(t2i)
    per_image = np.bincount(np.asarray(text_to_image, dtype=np.int64), minlength=len(image_emb))
    out["chance"] = chance_recall(per_image, ks)
    return out


def evaluate_retrieval(
    scorer: Any,
    pairs_path: str,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    chunk: int = 1024,
    max_images: int | None = None,
    strict: bool = False,
    on_error: Any = None,
) -> dict[str, Any]:
    """Encode a ``pairs.jsonl`` test set with ``scorer`` and compute :func:`retrieval_metrics`.

    Args:
        scorer: a :class:`~unimo_kit.eval.scorers.Scorer`.
        pairs_path: pairs JSONL (one image, several captions per line).
        max_images: evaluate on the first N images only (e.g. the 1k test subset).
        strict, on_error: malformed lines raise / go to ``on_error`` (see
            :func:`unimo_kit.data.read_pairs`).

    Returns:
        The metrics plus ``task``, ``data`` and ``scorer``.
    """
    from unimo_kit.data.readers import read_pairs

    images: list[str] = []
    texts: list[str] = []
    owners: list[int] = []
    for pair in read_pairs(pairs_path, strict=strict, on_error=on_error):
        if max_images is not None and len(images) >= max_images:
            break
        for caption in pair.captions:
            texts.append(caption)
            owners.append(len(images))
        images.append(pair.image)
    if not images:
        raise ValueError(f"{pairs_path}: no valid pairs to evaluate")
    image_emb = scorer.encode_images(images)  # (N_i, E)
    text_emb = scorer.encode_texts(texts)  # (N_t, E)
    metrics = retrieval_metrics(image_emb, text_emb, np.asarray(owners), ks=ks, chunk=chunk)
    return {"task": "retrieval", "data": str(pairs_path), "scorer": scorer.name, **metrics}
