"""Evaluation: retrieval, compositional (SugarCrepe-style), captioning, VQA and batch tables.

    >>> from unimo_kit.eval import UnimoScorer, evaluate_retrieval  # doctest: +SKIP
    >>> scorer = UnimoScorer("runs/synth/final")  # doctest: +SKIP
    >>> evaluate_retrieval(scorer, "synth/pairs.test.jsonl")["rsum"]  # doctest: +SKIP

Importing this package loads numpy only; torch, open_clip and pycocoevalcap load when a scorer
is built or a metric is computed.
"""

from unimo_kit.eval.batch import group_summary, parse_config, run_batch
from unimo_kit.eval.caption import caption_metrics, evaluate_captioning, generate_captions
from unimo_kit.eval.compositional import (
    CompositionalExample,
    compositional_accuracy,
    evaluate_compositional,
    load_compositional,
)
from unimo_kit.eval.errors import EvalError
from unimo_kit.eval.retrieval import evaluate_retrieval, retrieval_metrics, retrieval_ranks
from unimo_kit.eval.scorers import (
    OpenClipScorer,
    Scorer,
    SentenceTransformerClipScorer,
    UnimoScorer,
    build_scorer,
)
from unimo_kit.eval.vqa import VqaConfig, VqaExample, load_easy_vqa, train_vqa

__all__ = [
    "CompositionalExample",
    "EvalError",
    "OpenClipScorer",
    "Scorer",
    "SentenceTransformerClipScorer",
    "UnimoScorer",
    "VqaConfig",
    "VqaExample",
    "build_scorer",
    "caption_metrics",
    "compositional_accuracy",
    "evaluate_captioning",
    "evaluate_compositional",
    "evaluate_retrieval",
    "generate_captions",
    "group_summary",
    "load_compositional",
    "load_easy_vqa",
    "parse_config",
    "retrieval_metrics",
    "retrieval_ranks",
    "run_batch",
    "train_vqa",
]
