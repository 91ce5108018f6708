"""Training: the UNIMO pre-training loop over pairs, text-only and image-only data.

    >>> from unimo_kit.train import load_config, train
    >>> config = load_config("synth-small", ["pairs=world/pairs.train.jsonl"])  # doctest: +SKIP
    >>> result = train(config, "runs/synth-small")  # doctest: +SKIP

This subpackage imports torch.
"""

from unimo_kit.train.config import TrainConfig, list_presets, load_config, parse_override
from unimo_kit.train.schedule import lr_at
from unimo_kit.train.trainer import TrainResult, TrainState, train

__all__ = [
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "list_presets",
    "load_config",
    "lr_at",
    "parse_override",
    "train",
]
