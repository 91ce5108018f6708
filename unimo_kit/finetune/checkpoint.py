"""Checkpoints of an open_clip model in the trainer's layout (:mod:`unimo_kit.train.checkpoint`).

``OUT/checkpoints/step-000100/`` holds ``model.safetensors`` (the open_clip state dict, keys as
open_clip names them, so ``open_clip.create_model(ARCH, pretrained=".../model.safetensors")``
loads it), ``open_clip_config.json`` (the model config and preprocessing, the layout of
open_clip's ``local-dir:`` folders), and the trainer's ``optimizer.safetensors``,
``rng.safetensors`` and ``state.json``, read back by
:func:`unimo_kit.train.checkpoint.read_checkpoint`. Folders are written as ``*.tmp`` and renamed
when complete.
"""

from __future__ import annotations

import json
import os
import shutil
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


def write_checkpoint(
    run_dir: str | os.PathLike,
    step: int,
    model: torch.nn.Module,
    open_clip_config: dict[str, Any],
    optimizer: torch.optim.Optimizer,
    rng_states: list[dict[str, torch.Tensor]],
    state: dict[str, Any],
    keep: int,
) -> Path:
    """``checkpoints/step-NNNNNN`` as :func:`unimo_kit.train.checkpoint.write_checkpoint` writes
    it, with the open_clip model in place of a UNIMO one; all but the newest ``keep`` dropped."""
    final = Path(run_dir) / "checkpoints" / f"{ckpt.CHECKPOINT_PREFIX}{step:06d}"
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    save_model(model, tmp, open_clip_config, metadata={"step": str(step)})
    tensors, rest = ckpt.optimizer_state_tensors(optimizer)
    ckpt._save_tensors(tensors, tmp / "optimizer.safetensors")
    rng = {f"rank{r}.{k}": v.contiguous() for r, s in enumerate(rng_states) for k, v in s.items()}
    ckpt._save_tensors(rng, tmp / "rng.safetensors")
    with atomic_write(tmp / "state.json") as handle:
        handle.write(json.dumps({**state, "optimizer": rest}, indent=2) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in ckpt.list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final
