"""Checkpoints of an open_clip model in the trainer's layout (:mod:`unimo_kit.train.checkpoint`).

``OUT/checkpoints/step-000100/`` holds ``model.safetensors`` (the open_clip state dict, keys as
open_clip names them, so ``open_clip.create_model(ARCH, pretrained=".../model.safetensors")``
loads it), ``open_clip_config.json`` (the model config and preprocessing, the layout of
open_clip's ``local-dir:`` folders), and the trainer's ``optimizer.safetensors``,
``rng.safetensors`` and ``state.json``. The folder is written by the trainer's own
:func:`unimo_kit.train.checkpoint.write_checkpoint` (as ``*.tmp``, renamed when complete) with
:func:`model_saver` as its ``save_model`` hook, and read back by
:func:`unimo_kit.train.checkpoint.read_checkpoint`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from unimo_kit.train import checkpoint as ckpt
from unimo_kit.utils import atomic_write

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "open_clip_config.json"


def save_model(
    model: torch.nn.Module,
    folder: str | os.PathLike,
    open_clip_config: dict[str, Any],
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write ``folder/model.safetensors`` and ``folder/open_clip_config.json`` atomically.

    Args:
        model: the open_clip model.
        folder: created if needed.
        open_clip_config: ``{"model_cfg": ..., "preprocess_cfg": ...}``.
        metadata: strings for the safetensors header (e.g. the step).
    """
    from safetensors.torch import save

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_write(folder / WEIGHTS_NAME, "wb") as handle:
        handle.write(save(state, metadata=metadata))
    with atomic_write(folder / CONFIG_NAME) as handle:
        handle.write(json.dumps(open_clip_config, indent=2) + "\n")
    return folder


def model_saver(open_clip_config: dict[str, Any]) -> ckpt.ModelSaver:
    """The ``save_model`` hook of :func:`unimo_kit.train.checkpoint.write_checkpoint` for an
    open_clip model: :func:`save_model` with ``open_clip_config``.

    Args:
        open_clip_config: ``{"model_cfg": ..., "preprocess_cfg": ...}`` of the run's model.

    Returns:
        A callable ``(model, folder, metadata)``.
    """

    def save(model: torch.nn.Module, folder: Path, metadata: dict[str, str]) -> None:
        save_model(model, folder, open_clip_config, metadata=metadata)

    return save
