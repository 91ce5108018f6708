"""CLIP fine-tuning with hard negatives (NegCLIP) over the toolkit's generator.

    >>> from unimo_kit.finetune import FinetuneConfig, finetune_clip
    >>> config = FinetuneConfig(model="open_clip:ViT-B-32:openai", pairs="pairs.jsonl",
    ...                         rewrites="rewrites.jsonl", out="runs/negclip")  # doctest: +SKIP
    >>> result = finetune_clip(config)  # doctest: +SKIP
    >>> result.final  # doctest: +SKIP

See docs/finetune.md. Names resolve lazily (torch and open_clip load on first use).
"""

from __future__ import annotations

from unimo_kit.utils.lazy import lazy_exports

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


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
