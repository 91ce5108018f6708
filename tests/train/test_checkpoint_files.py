"""Checkpoint files: the safetensors files of a step checkpoint get the umask's permissions."""

from __future__ import annotations

import os
import stat

import torch

from unimo_kit.model import create_model
from unimo_kit.train.checkpoint import read_checkpoint, rng_state_tensors, write_checkpoint


def test_checkpoint_files_are_readable_by_others_under_umask_022(tmp_path):
    model = create_model("unimo-tiny", visual_feat_dim=4)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    extra = {"temperature": torch.tensor(0.07)}
    old = os.umask(0o022)
    try:
        folder = write_checkpoint(
            tmp_path, 3, model, optimizer, [rng_state_tensors()], {"step": 3}, keep=1, extra=extra
        )
    finally:
        os.umask(old)
    for name in ("optimizer.safetensors", "rng.safetensors", "objective.safetensors"):
        mode = stat.S_IMODE((folder / name).stat().st_mode)
        assert mode == 0o644, f"{name}: {oct(mode)}"  # safetensors' save_file would give 0600
    assert not list(folder.glob("*.tmp"))
    loaded = read_checkpoint(folder, rank=0)
    torch.testing.assert_close(loaded["objective"]["temperature"], extra["temperature"])
    assert loaded["rng"] is not None and "torch" in loaded["rng"]
