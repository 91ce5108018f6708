"""Evaluation: retrieval, compositional (SugarCrepe-style), captioning, VQA and batch tables.

    >>> from unimo_kit.eval import UnimoScorer, evaluate_retrieval  # doctest: +SKIP
    >>> scorer = UnimoScorer("runs/synth/final")  # doctest: +SKIP
    >>> evaluate_retrieval(scorer, "synth/pairs.test.jsonl")["rsum"]  # doctest: +SKIP

Importing this package loads nothing beyond it: each name below is imported from its module
on first use (as :mod:`unimo_kit.encoders` does), so ``unimo eval --help``, which reads the
task registry (:mod:`unimo_kit.eval.registry`), loads no task module and not numpy. torch,
open_clip and pycocoevalcap load when a scorer is built or a metric is computed.
"""

from __future__ import annotations

import importlib

#: public name -> the module that defines it
_LAZY = {
    "group_summary": "unimo_kit.eval.batch",
    "parse_config": "unimo_kit.eval.batch",
    "run_batch": "unimo_kit.eval.batch",
    "caption_metrics": "unimo_kit.eval.caption",
    "evaluate_captioning": "unimo_kit.eval.caption",
    "generate_captions": "unimo_kit.eval.caption",
    "CompositionalExample": "unimo_kit.eval.compositional",
    "compositional_accuracy": "unimo_kit.eval.compositional",
    "evaluate_compositional": "unimo_kit.eval.compositional",
    "load_compositional": "unimo_kit.eval.compositional",
    "EvalError": "unimo_kit.eval.errors",
    "evaluate_retrieval": "unimo_kit.eval.retrieval",
    "retrieval_metrics": "unimo_kit.eval.retrieval",
    "retrieval_ranks": "unimo_kit.eval.retrieval",
    "OpenClipScorer": "unimo_kit.eval.scorers",
    "Scorer": "unimo_kit.eval.scorers",
    "SentenceTransformerClipScorer": "unimo_kit.eval.scorers",
    "UnimoScorer": "unimo_kit.eval.scorers",
    "build_scorer": "unimo_kit.eval.scorers",
    "VqaConfig": "unimo_kit.eval.vqa",
    "VqaExample": "unimo_kit.eval.vqa",
    "load_easy_vqa": "unimo_kit.eval.vqa",
    "train_vqa": "unimo_kit.eval.vqa",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> object:
    """The public names of the eval modules, each imported on first use.

    Args:
        name: an attribute of :data:`__all__`.

    Returns:
        The object, from its module.

    Raises:
        AttributeError: ``name`` is not one of them (nor a submodule already imported).
    """
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
