"""CLIP fine-tuning with hard negatives (NegCLIP) over the toolkit's generator.

    >>> from unimo_kit.finetune import FinetuneConfig, finetune_clip
    >>> config = FinetuneConfig(model="open_clip:ViT-B-32:openai", pairs="pairs.jsonl",
    ...                         rewrites="rewrites.jsonl", out="runs/negclip")  # doctest: +SKIP
    >>> result = finetune_clip(config)  # doctest: +SKIP
    >>> result.final  # doctest: +SKIP

See docs/finetune.md. Names resolve lazily (torch and open_clip load on first use).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FinetuneConfig": "unimo_kit.finetune.config",
    "split_model_spec": "unimo_kit.finetune.config",
    "FinetuneResult": "unimo_kit.finetune.trainer",
    "finetune_clip": "unimo_kit.finetune.trainer",
    "load_open_clip": "unimo_kit.finetune.trainer",
    "NegClipLoss": "unimo_kit.finetune.loss",
    "PairBatches": "unimo_kit.finetune.data",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'unimo_kit.finetune' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
