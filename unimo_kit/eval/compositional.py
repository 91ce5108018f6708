"""Compositional evaluation: does the model score an image's true caption above minimally edited
false ones (SugarCrepe, Hsieh et al., NeurIPS 2023)?

An example is one image, one positive caption and one or more negatives. It counts as correct
when the positive's score is **strictly greater** than every negative's; a tie counts as wrong
(so a model that scores everything the same gets 0, not 50%). Accuracy is reported per category
and overall (``accuracy``: over all examples; ``macro_accuracy``: the mean of the categories),
with ``chance``, the expected accuracy of random scores (mean of ``1 / (1 + #negatives)``).

Input formats (all loaded by :func:`load_compositional`):

- **JSONL** (our synthetic ``compositional.test.jsonl`` and any generic set): one object per line,
  ``{"id"?, "image", "category"?, "subset"?, "positive", "negatives": [str, ...]}``; image paths
  relative to the file; a missing category is ``"all"``. ``subset`` names a slice reported
  on its own as well (the synthetic set: ``"held-out"`` when an item names a colour–shape
  composition never seen in training, else ``"seen"``).
- **SugarCrepe JSON**: ``{id: {"filename", "caption", "negative_caption"}}`` per file, the
  category from the file name (``replace_att.json`` -> ``replace-att``); images in a folder given
  separately (COCO val2017 for the published set). A folder of such files loads them all.

An item with a negative equal to its positive (after case folding and collapsing whitespace)
could never be correct; it is reported as a bad record (``FILE:LINE: negatives[0] equals the
positive``) and skipped.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from unimo_kit.data.records import caption_key, resolve_path
from unimo_kit.utils import ErrorReport, RecordError, iter_jsonl

OnError = Callable[[RecordError], None]


@dataclass
class CompositionalExample:
    """One image with its true caption and false ones."""

    id: str  # example id (line number or SugarCrepe key when the file has none)
    image: str  # image path
    category: str  # e.g. "replace-att" (SugarCrepe / rewrite type names)
    positive: str  # the true caption
    negatives: list[str]  # minimally edited false captions (at least one)
    subset: str | None = None  # optional slice, reported separately (e.g. "held-out")


def sugarcrepe_category(path: str | os.PathLike) -> str:
    """``replace_att.json`` -> ``replace-att`` (SugarCrepe file name to our type name)."""
    return Path(path).stem.replace("_", "-")


def _check_text(value: Any, name: str, where: tuple[Any, int]) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RecordError(where[0], where[1], f"{name} must be a non-empty string, got {value!r}")
    return value


def _check_differs(
    positive: str, negatives: Sequence[str], names: tuple[str, str], where: tuple[Any, int]
) -> None:
    """Refuse a negative that is the positive after normalisation (casefold, whitespace
    collapsed): such an item could never count as correct, whatever the model."""
    key = caption_key(positive)
    for i, negative in enumerate(negatives):
        if caption_key(negative) == key:
            name = names[1].format(i)
            raise RecordError(where[0], where[1], f"{name} equals the {names[0]} ({negative!r})")


def read_compositional_jsonl(
    path: str | os.PathLike, *, strict: bool = False, on_error: OnError | None = None
) -> Iterable[CompositionalExample]:
    """Stream a compositional JSONL file (see module docstring); bad lines are reported with
    their file and line and skipped, or raised when ``strict``."""
    report = on_error if on_error is not None else ErrorReport(strict=strict)
    base = Path(path).parent
    for line, d in iter_jsonl(path, strict=strict, on_error=report):
        try:
            where = (path, line)
            image = _check_text(d.get("image"), "image", where)
            positive = _check_text(d.get("positive"), "positive", where)
            negatives = d.get("negatives")
            if isinstance(negatives, str):
                negatives = [negatives]
            if not isinstance(negatives, list) or not negatives:
                raise RecordError(
                    path, line, f"negatives must be a non-empty list of strings, got {negatives!r}"
                )
            negatives = [_check_text(n, "each negative", where) for n in negatives]
            _check_differs(positive, negatives, ("positive", "negatives[{}]"), where)
            category = d.get("category") or "all"
            if not isinstance(category, str):
                raise RecordError(path, line, f"category must be a string, got {category!r}")
            subset = d.get("subset")
            if subset is not None and not (isinstance(subset, str) and subset):
                raise RecordError(path, line, f"subset must be a string, got {subset!r}")
        except RecordError as error:
            if strict:
                raise
            report(error)
            continue
        yield CompositionalExample(
            id=str(d.get("id", line)),
            image=resolve_path(image, base),
            category=category,
            positive=positive,
            negatives=negatives,
            subset=subset,
        )


def read_sugarcrepe(
    path: str | os.PathLike,
    images_dir: str | os.PathLike,
    *,
    category: str | None = None,
    strict: bool = False,
    on_error: OnError | None = None,
) -> list[CompositionalExample]:
    """One SugarCrepe JSON file (``{id: {filename, caption, negative_caption}}``).

    Args:
        path: the JSON file.
        images_dir: folder holding the ``filename`` images.
        category: default: from the file name (:func:`sugarcrepe_category`).

    Raises:
        RecordError: the file is not JSON / not an object (always), or an entry is malformed
            (when ``strict``; otherwise it is reported and skipped). Entries have no line
            numbers, so the message names the entry key: ``FILE:0: entry '12': ...``.
    """
    report = on_error if on_error is not None else ErrorReport(strict=strict)
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except json.JSONDecodeError as exc:
        raise RecordError(path, exc.lineno, f"invalid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise RecordError(path, 1, f"expected an object of entries, got {type(data).__name__}")
    category = category or sugarcrepe_category(path)
    out = []
    for key, entry in data.items():
        where = (path, 0)
        try:
            if not isinstance(entry, dict):
                raise RecordError(path, 0, f"entry {key!r}: expected an object")
            try:
                filename = _check_text(entry.get("filename"), "filename", where)
                positive = _check_text(entry.get("caption"), "caption", where)
                negative = _check_text(entry.get("negative_caption"), "negative_caption", where)
                _check_differs(positive, [negative], ("caption", "negative_caption"), where)
            except RecordError as error:
                raise RecordError(path, 0, f"entry {key!r}: {error.message}") from None
        except RecordError as error:
            if strict:
                raise
            report(error)
            continue
        image = resolve_path(filename, images_dir)
        out.append(CompositionalExample(str(key), image, category, positive, [negative]))
    return out


def load_compositional(
    path: str | os.PathLike,
    *,
    images_dir: str | os.PathLike | None = None,
    fmt: str = "auto",
    strict: bool = False,
    on_error: OnError | None = None,
) -> list[CompositionalExample]:
    """Load a compositional test set in any supported format.

    Args:
        path: a ``.jsonl`` file, a SugarCrepe ``.json`` file, or a folder of SugarCrepe files.
        images_dir: image folder for SugarCrepe (required there; ignored for JSONL).
        fmt: ``"auto"`` (by suffix / folder), ``"jsonl"`` or ``"sugarcrepe"``.
        strict, on_error: malformed records raise / go to ``on_error``.

    Returns:
        The examples in file order (SugarCrepe folders: files sorted by name).
    """
    path = Path(path)
    if fmt == "auto":
        fmt = "sugarcrepe" if path.is_dir() or path.suffix == ".json" else "jsonl"
    if fmt == "jsonl":
        return list(read_compositional_jsonl(path, strict=strict, on_error=on_error))
    if fmt != "sugarcrepe":
        raise ValueError(f"unknown format {fmt!r}: use auto, jsonl or sugarcrepe")
    if images_dir is None:
        raise ValueError("SugarCrepe files name COCO images: give the images folder")
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    if not files:
        raise ValueError(f"{path}: no SugarCrepe *.json files")
    out: list[CompositionalExample] = []
    for file in files:
        out.extend(read_sugarcrepe(file, images_dir, strict=strict, on_error=on_error))
    return out


def compositional_accuracy(
    positive_scores: np.ndarray,
    negative_scores: Sequence[np.ndarray],
    categories: Sequence[str],
    subsets: Sequence[str | None] | None = None,
) -> dict[str, Any]:
    """Per-category and overall accuracy from scores.

    Args:
        positive_scores: (N,) score of each example's positive.
        negative_scores: N arrays, each the scores of that example's negatives.
        categories: (N,) category names.
        subsets: (N,) optional slice of each example (``None``: in no slice).

    Returns:
        ``{"accuracy", "macro_accuracy", "chance", "num_examples", "categories":
        {name: {"accuracy", "chance", "count", "ci95", "p_above_chance"}}}``, plus
        ``"subsets": {slice: {the same keys over that slice's examples}}`` when some example
        has a slice; accuracies in [0, 1]. Correct means the positive scores strictly above
        every negative (ties are wrong). ``ci95`` is the Wilson 95 % interval of the
        accuracy; ``p_above_chance`` the one-sided exact binomial p-value of doing at least
        this well by guessing (at the category's mean chance, exact when its items have
        equally many negatives).
    """
    positive_scores = np.asarray(positive_scores, dtype=np.float64)
    if not (len(positive_scores) == len(negative_scores) == len(categories)):
        raise ValueError("positive_scores, negative_scores and categories differ in length")
    pairs = zip(positive_scores, negative_scores, strict=True)
    correct = np.array([bool(np.all(p > np.asarray(n))) for p, n in pairs], dtype=bool)
    chance = np.array([1.0 / (1 + len(n)) for n in negative_scores])
    out = _accuracies(correct, chance, np.asarray(categories, dtype=object))
    if subsets is not None:
        if len(subsets) != len(correct):
            raise ValueError("subsets and scores differ in length")
        names = np.asarray(subsets, dtype=object)
        slices = sorted({s for s in subsets if s is not None})
        if slices:
            out["subsets"] = {
                name: _accuracies(correct[sel], chance[sel], np.asarray(categories)[sel])
                for name in slices
                for sel in (names == name,)
            }
    return out


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95 % by default); ``(nan, nan)`` for
    ``n == 0``."""
    if n == 0:
        return float("nan"), float("nan")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def binomial_p_above(successes: int, n: int, p0: float) -> float:
    """One-sided exact binomial test: P(X >= successes) for X ~ Binomial(n, p0), the chance
    of doing at least this well by guessing. Summed in log space (no overflow for large n)."""
    if n == 0:
        return float("nan")
    if p0 <= 0:
        return 0.0 if successes > 0 else 1.0
    if p0 >= 1:
        return 1.0
    log_terms = [
        math.lgamma(n + 1)
        - math.lgamma(k + 1)
        - math.lgamma(n - k + 1)
        + k * math.log(p0)
        + (n - k) * math.log1p(-p0)
        for k in range(successes, n + 1)
    ]
    top = max(log_terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in log_terms))


def _accuracies(correct: np.ndarray, chance: np.ndarray, cats: np.ndarray) -> dict[str, Any]:
    per: dict[str, dict[str, Any]] = {}
    for name in sorted(set(cats.tolist())):
        sel = cats == name
        n, hits, p0 = int(sel.sum()), int(correct[sel].sum()), float(chance[sel].mean())
        per[name] = {
            "accuracy": hits / n,
            "chance": p0,
            "count": n,
            "ci95": list(wilson_interval(hits, n)),
            "p_above_chance": binomial_p_above(hits, n, p0),
        }
    n = len(correct)
    return {
        "accuracy": float(correct.mean()) if n else float("nan"),
        "macro_accuracy": float(np.mean([c["accuracy"] for c in per.values()]))
        if per
        else float("nan"),
        "chance": float(chance.mean()) if n else float("nan"),
        "num_examples": n,
        "categories": per,
    }


SCORES = ("contrastive", "generative", "token", "matching")
#: Scores read from what a unimo checkpoint trained: score -> the training objective it needs.
SCORE_OBJECTIVES = {"generative": "seq2seq", "token": "token_alignment", "matching": "itm"}


def score_examples(
    scorer: Any, examples: Sequence[CompositionalExample], score: str = "contrastive"
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Scores of each example's positive and negatives against its image.

    Args:
        scorer: a :class:`~unimo_kit.eval.scorers.Scorer`.
        examples: the test items.
        score: ``"contrastive"``: cosine of the CMCL (or CLIP) embeddings, each distinct image
            and text encoded once; ``"generative"``: ``log p(caption | image)`` per word piece
            of a unimo checkpoint's seq2seq head (:meth:`UnimoScorer.caption_log_likelihood`),
            which reads the image while it reads each word (per word piece, so a longer
            ``add-*`` negative is not wrong merely for being longer); ``"token"``: token
            alignment of a unimo checkpoint trained with it
            (:meth:`UnimoScorer.token_alignment_scores`: each word matched to its best image
            region, averaged); ``"matching"``: the image-text matching logit of a unimo
            checkpoint trained with ``itm`` (:meth:`UnimoScorer.matching_scores`: image and
            text encoded together).

    Returns:
        positive scores (N,), and per example an array of negative scores.
    """
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, got {score!r}")
    if score in SCORE_OBJECTIVES:
        from unimo_kit.eval.errors import EvalError

        objective = SCORE_OBJECTIVES[score]
        if not hasattr(scorer, "trained_with"):
            raise EvalError(f"{score} scoring needs a unimo checkpoint; {scorer.name} is not one")
        if scorer.trained_with(objective) is False:
            raise EvalError(
                f"{scorer.name} was trained without the {objective} objective, so {score} "
                "scores would mean nothing"
            )
        pairs = [(ex.image, t) for ex in examples for t in (ex.positive, *ex.negatives)]
        images, texts = [p[0] for p in pairs], [p[1] for p in pairs]
        if score == "generative":
            flat = scorer.caption_log_likelihood(images, texts, per_token=True)
        elif score == "matching":
            flat = scorer.matching_scores(images, texts)
        else:
            flat = scorer.token_alignment_scores(images, texts)
        pos, neg, at = [], [], 0
        for ex in examples:
            pos.append(float(flat[at]))
            neg.append(np.asarray(flat[at + 1 : at + 1 + len(ex.negatives)]))
            at += 1 + len(ex.negatives)
        return np.asarray(pos), neg
    images = sorted({ex.image for ex in examples})
    texts = sorted({t for ex in examples for t in (ex.positive, *ex.negatives)})
    image_row = {im: i for i, im in enumerate(images)}
    text_row = {t: i for i, t in enumerate(texts)}
    image_emb = scorer.encode_images(images)  # (I, E)
    text_emb = scorer.encode_texts(texts)  # (T, E)
    pos, neg = [], []
    for ex in examples:
        v = image_emb[image_row[ex.image]]  # (E,)
        pos.append(float(text_emb[text_row[ex.positive]] @ v))
        neg.append(text_emb[[text_row[t] for t in ex.negatives]] @ v)  # (K,)
    return np.asarray(pos), neg


def evaluate_compositional(
    scorer: Any,
    examples: Sequence[CompositionalExample],
    *,
    data: str = "",
    score: str = "contrastive",
) -> dict[str, Any]:
    """Score ``examples`` with ``scorer`` (``score``: see :func:`score_examples`) and compute
    :func:`compositional_accuracy`.

    Returns:
        The accuracies plus ``task``, ``data``, ``scorer`` and ``score``.
    """
    if not examples:
        raise ValueError(f"{data or 'compositional set'}: no valid examples to evaluate")
    pos, neg = score_examples(scorer, examples, score)
    metrics = compositional_accuracy(
        pos, neg, [ex.category for ex in examples], [ex.subset for ex in examples]
    )
    return {
        "task": "compositional",
        "data": data,
        "scorer": scorer.name,
        "score": score,
        **metrics,
    }


# ------------------------------------------------------------------------- batch task


def _run_task(run: Any) -> dict[str, Any]:
    """The batch task: :func:`load_compositional` then :func:`evaluate_compositional`."""
    report = ErrorReport()  # bad test records: a warning each, counted in the row
    examples = load_compositional(
        run.task.data,
        images_dir=run.task.images,
        fmt=run.options.get("format", "auto"),
        on_error=report,
    )
    result = evaluate_compositional(
        run.scorer, examples, data=run.task.data, score=run.options.get("score", "contrastive")
    )
    return {**result, "skipped_records": report.count}


def _table_columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Per category, then per subset (in the order the rows give them)."""
    cats = dict.fromkeys(c for r in rows for c in r.get("categories", {}))
    subsets = dict.fromkeys(s for r in rows for s in r.get("subsets", {}))
    return [*(f"acc/{c}" for c in cats), *(f"accuracy@{s}" for s in subsets)]


def _summary_columns(keys: Sequence[str]) -> list[str]:
    """Per category, then per subset (overall only; sorted)."""
    cats = sorted(k for k in keys if k.startswith("acc/") and "@" not in k)
    return [*cats, *sorted(k for k in keys if k.startswith("accuracy@"))]


def _plot(summary: Sequence[dict], rows: Sequence[dict], name: str, folder: Any) -> str:
    from unimo_kit.eval.report import plot_compositional

    path = folder / f"compositional-{name}.png"
    plot_compositional(summary, name, path)
    return str(path)


def _task() -> Any:
    from unimo_kit.eval.registry import EvalTask, Option

    return EvalTask(
        name="compositional",
        run=_run_task,
        options={
            "format": Option.one_of("auto", "jsonl", "sugarcrepe"),
            "score": Option.one_of(*SCORES),
        },
        metrics=("accuracy", "macro_accuracy", "chance"),
        plot=_plot,
        extra_columns=_table_columns,
        extra_summary_columns=_summary_columns,
        needs_checkpoint=lambda options: options.get("score") in SCORE_OBJECTIVES,
        needs_objective=lambda options: SCORE_OBJECTIVES.get(options.get("score")),
    )


TASK = _task()
