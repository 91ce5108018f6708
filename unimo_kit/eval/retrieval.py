"""Image-text retrieval metrics: R@K in both directions and RSUM, several captions per image.

The protocol is the Karpathy-split test protocol UNIMO reports on Flickr30k / COCO:

- **image -> text**: an image query is a hit at K when ANY of its captions is among the top K
  texts;
- **text -> image**: a caption query is a hit at K when its own image is among the top K images.

**Shared captions.** Test sets hold the same caption string for several images ("a dog on the
grass"), and sometimes the same image file in several records. With ``text_keys`` /
``image_keys`` (what :func:`evaluate_retrieval` passes: the normalised caption string, casefold
and whitespace collapsed, and the image path) a candidate is *right* when it is the same caption
or the same image: in image->text, a text is right when it is the same caption as one of the
query image's captions (or belongs to the same image); in text->image, an image is right when it
owns the same caption as the query (or is the same image). Without keys every text and every
image is distinct and only the owner counts (``text_to_image``). ``num_shared_captions`` in the
results counts the distinct caption strings that belong to more than one image.

**Ties** are resolved pessimistically and deterministically: the rank of a query is
``1 + (number of WRONG candidates whose score is >= the best right candidate's score)``. A wrong
candidate that ties with the right one counts against the query, so a model that scores every
candidate the same gets rank = number of wrong candidates + 1, never a lucky R@1. Scores are the
float32 dot products of the (L2-normalised) embeddings as computed; "tie" means exact equality.

Similarities are computed in blocks of ``chunk`` queries against all candidates (one matmul, one
comparison per block), so memory is ``chunk x candidates`` and 5k images x 25k captions takes a
few seconds on a CPU. Which candidates are right is looked up per block from the sparse
(image, caption) ownership relation, never as a texts x images matrix.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np

from unimo_kit.data.records import caption_key

DEFAULT_KS = (1, 5, 10)
# bumped when the way retrieval is scored changes, so that batch rows made before are recomputed
PROTOCOL = "shared-captions"


def _as_float32(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N, E), got shape {x.shape}")
    return np.ascontiguousarray(x, dtype=np.float32)


def _codes(keys: Sequence[Hashable] | None, n: int, name: str) -> np.ndarray:
    """Dense int codes of ``keys`` (equal keys, equal code); ``None``: every item distinct."""
    if keys is None:
        return np.arange(n, dtype=np.int64)
    keys = list(keys)
    if len(keys) != n:
        raise ValueError(f"{name} must have {n} entries, got {len(keys)}")
    index: dict[Hashable, int] = {}
    return np.fromiter((index.setdefault(k, len(index)) for k in keys), np.int64, count=n)


class _Ownership:
    """Which candidates are right for which queries, kept sparse: "image group g owns caption c"
    (groups: images with equal keys; captions: texts with equal keys) in CSR form both ways,
    plus the members of each caption and of each group."""

    def __init__(self, t2i: np.ndarray, text_codes: np.ndarray, image_codes: np.ndarray):
        self.text_codes, self.image_codes = text_codes, image_codes
        n_cap = int(text_codes.max()) + 1 if len(text_codes) else 0
        n_grp = int(image_codes.max()) + 1 if len(image_codes) else 0
        width = max(n_cap, 1)
        pairs = np.unique(image_codes[t2i] * width + text_codes)  # sorted by group
        groups, captions = pairs // width, pairs % width
        self.group_captions = _csr(groups, captions, n_grp)
        self.caption_groups = _csr(captions, groups, n_cap)
        self.caption_texts = _csr(text_codes, np.arange(len(text_codes)), n_cap)
        self.group_images = _csr(image_codes, np.arange(len(image_codes)), n_grp)

    def shared_captions(self) -> int:
        """How many distinct captions belong to more than one image group."""
        return int((np.diff(self.caption_groups[0]) > 1).sum())

    def right_texts(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, texts)``: text ``texts[k]`` is right for image query ``images[rows[k]]``
        (same caption as one of the image group's captions)."""
        rows, captions = _expand(self.image_codes[images], *self.group_captions)
        inner, texts = _expand(captions, *self.caption_texts)
        return rows[inner], texts

    def right_images(self, texts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, images)``: image ``images[k]`` is right for text query ``texts[rows[k]]``
        (it owns the same caption)."""
        rows, groups = _expand(self.text_codes[texts], *self.caption_groups)
        inner, images = _expand(groups, *self.group_images)
        return rows[inner], images


def _csr(keys: np.ndarray, values: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(indptr, values sorted by key)``: the values of key k are
    ``values[indptr[k]:indptr[k + 1]]``."""
    order = np.argsort(keys, kind="stable")
    indptr = np.concatenate([[0], np.cumsum(np.bincount(keys, minlength=n))])
    return indptr.astype(np.int64), values[order]


def _expand(
    keys: np.ndarray, indptr: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, found)``: for each ``r``, every value stored under ``keys[r]``."""
    starts, counts = indptr[keys], indptr[keys + 1] - indptr[keys]
    rows = np.repeat(np.arange(len(keys)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return rows, values[np.repeat(starts, counts) + offsets]


def _ownership(
    text_to_image: np.ndarray,
    n_img: int,
    text_keys: Sequence[Hashable] | None,
    image_keys: Sequence[Hashable] | None,
) -> _Ownership:
    t2i = np.asarray(text_to_image, dtype=np.int64)
    text_codes = _codes(text_keys, len(t2i), "text_keys")
    return _Ownership(t2i, text_codes, _codes(image_keys, n_img, "image_keys"))


def _check(
    image_emb: np.ndarray,
    text_emb: np.ndarray,
    text_to_image: np.ndarray,
    text_keys: Sequence[Hashable] | None,
    image_keys: Sequence[Hashable] | None,
) -> tuple[np.ndarray, np.ndarray, _Ownership]:
    """Validated float32 embeddings and the ownership relation."""
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
    return image_emb, text_emb, _ownership(t2i, n_img, text_keys, image_keys)


def retrieval_ranks(
    image_emb: np.ndarray,
    text_emb: np.ndarray,
    text_to_image: np.ndarray,
    *,
    chunk: int = 1024,
    text_keys: Sequence[Hashable] | None = None,
    image_keys: Sequence[Hashable] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pessimistic 1-based ranks of every query in both directions.

    Args:
        image_emb: (N_i, E) image embeddings (normalised for cosine similarity).
        text_emb: (N_t, E) text embeddings.
        text_to_image: (N_t,) index of each text's image in ``image_emb``.
        chunk: queries per similarity block.
        text_keys: (N_t,) optional caption identities (e.g. :func:`caption_key` of each
            caption): texts with equal keys are the same caption, right for every image that
            owns one of them. ``None``: every text is distinct.
        image_keys: (N_i,) optional image identities (e.g. the image path): images with equal
            keys are the same image. ``None``: every image is distinct.

    Returns:
        ``(i2t_ranks (N_i,), t2i_ranks (N_t,))`` int64. An image with no caption gets rank 0
        and is left out of the image->text metrics by :func:`retrieval_metrics`.
    """
    image_emb, text_emb, owners = _check(image_emb, text_emb, text_to_image, text_keys, image_keys)
    n_img, n_txt = len(image_emb), len(text_emb)
    chunk = max(1, int(chunk))

    def ranks(
        queries: np.ndarray,
        candidates: np.ndarray,
        right_of: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
        n: int,
    ) -> np.ndarray:
        """Ranks of ``n`` queries; ``right_of(query indices)`` lists their right candidates."""
        out = np.zeros(n, dtype=np.int64)
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            scores = queries[start:stop] @ candidates.T  # (c, candidates)
            rows, right = right_of(np.arange(start, stop))  # sparse (query, right candidate)
            right_scores = scores[rows, right]
            best = np.full(stop - start, -np.inf, dtype=np.float32)  # the best right one decides
            np.maximum.at(best, rows, right_scores)
            right_above = np.bincount(rows, right_scores >= best[rows], minlength=stop - start)
            above = (scores >= best[:, None]).sum(axis=1)  # right and wrong ones
            has_right = np.bincount(rows, minlength=stop - start) > 0
            out[start:stop] = np.where(has_right, above - right_above.astype(np.int64) + 1, 0)
        return out

    t2i_ranks = ranks(text_emb, image_emb, owners.right_images, n_txt)
    i2t_ranks = ranks(image_emb, text_emb, owners.right_texts, n_img)
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
    *,
    text_keys: Sequence[Hashable] | None = None,
    image_keys: Sequence[Hashable] | None = None,
) -> dict[str, Any]:
    """R@K (percent) for image->text and text->image, RSUM, median and mean ranks.

    Args:
        image_emb, text_emb, text_to_image, chunk, text_keys, image_keys: see
            :func:`retrieval_ranks`.
        ks: the cut-offs.

    Returns:
        ``{"i2t_r1": .., "i2t_r5": .., ..., "t2i_r1": .., ..., "rsum": sum of all R@K,
        "i2t_medr", "t2i_medr", "i2t_meanr", "t2i_meanr", "num_images", "num_texts"}``, plus
        ``num_shared_captions`` (distinct captions that belong to more than one image) when
        ``text_keys`` or ``image_keys`` is given. ``chance`` assumes distinct captions.

    Example:
        >>> img = np.eye(2, dtype=np.float32); txt = np.eye(2, dtype=np.float32)
        >>> retrieval_metrics(img, txt, np.array([0, 1]), ks=(1,))["rsum"]
        200.0
    """
    i2t, t2i = retrieval_ranks(
        image_emb,
        text_emb,
        text_to_image,
        chunk=chunk,
        text_keys=text_keys,
        image_keys=image_keys,
    )
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
    if text_keys is not None or image_keys is not None:
        owners = _ownership(text_to_image, len(per_image), text_keys, image_keys)
        out["num_shared_captions"] = owners.shared_captions()
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
    shared_captions: bool = True,
) -> dict[str, Any]:
    """Encode a ``pairs.jsonl`` test set with ``scorer`` and compute :func:`retrieval_metrics`.

    Args:
        scorer: a :class:`~unimo_kit.eval.scorers.Scorer`.
        pairs_path: pairs JSONL (one image, several captions per line).
        max_images: evaluate on the first N images only (e.g. the 1k test subset).
        strict, on_error: malformed lines raise / go to ``on_error`` (see
            :func:`unimo_kit.data.read_pairs`).
        shared_captions: the same caption string (:func:`caption_key`) or image path in
            several records is one caption / image (module docstring); ``False``: only a
            text's own record counts (the protocol before shared captions were merged).

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
    keys: dict[str, Any] = {}
    if shared_captions:
        keys = {"text_keys": [caption_key(t) for t in texts], "image_keys": images}
    metrics = retrieval_metrics(image_emb, text_emb, np.asarray(owners), ks=ks, chunk=chunk, **keys)
    return {"task": "retrieval", "data": str(pairs_path), "scorer": scorer.name, **metrics}


# ------------------------------------------------------------------------- batch task


def _run_task(run: Any) -> dict[str, Any]:
    """The batch task: :func:`evaluate_retrieval` of the checkpoint's scorer."""
    from unimo_kit.utils import ErrorReport

    report = ErrorReport()  # bad test records: a warning each, counted in the row
    result = evaluate_retrieval(
        run.scorer,
        run.task.data,
        ks=tuple(run.options.get("ks", DEFAULT_KS)),
        max_images=run.options.get("max_images"),
        on_error=report,
    )
    return {**result, "skipped_records": report.count}


def _plot(summary: Sequence[dict], rows: Sequence[dict], name: str, folder: Any) -> str:
    from unimo_kit.eval.report import plot_retrieval

    path = folder / f"retrieval-{name}.png"
    first = next(r for r in rows if r["name"] == name)
    plot_retrieval(summary, name, path, chance=first.get("chance"))
    return str(path)


def _task() -> Any:
    from unimo_kit.eval.registry import EvalTask, Option

    return EvalTask(
        name="retrieval",
        run=_run_task,
        options={
            "ks": Option.positive_int_list(),
            "max_images": Option.positive_int(optional=True),
        },
        metrics=("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "rsum"),
        digits=2,
        plot=_plot,
        protocol=lambda: PROTOCOL,
    )


TASK = _task()
