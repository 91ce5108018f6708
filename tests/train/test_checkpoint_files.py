"""Checkpoint files: the safetensors files of a step checkpoint get the umask's permissions, and
the RNG states written by one rank come back as the same generator positions."""

from __future__ import annotations

import os
import random
import stat

import numpy as np
import torch

from unimo_kit.model import create_model
from unimo_kit.train.checkpoint import (
    gather_rng_states,
    read_checkpoint,
    restore_rng_states,
    rng_state_tensors,
    write_checkpoint,
)


def _draws() -> tuple[float, float, float]:
    """One draw from each generator a checkpoint restores."""
    return random.random(), float(np.random.rand()), float(torch.rand(()))


def _tiny_checkpoint(tmp_path, rng_states):
    model = create_model("unimo-tiny", visual_feat_dim=4)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    return write_checkpoint(tmp_path, 3, model, optimizer, rng_states, {"step": 3}, keep=1)


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


def test_gathered_rng_states_restore_the_same_draws(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    _draws()  # move every generator off its seed position
    states = gather_rng_states(world_size=1)
    assert len(states) == 1 and set(states[0]) >= {"python", "numpy", "torch"}
    expected = _draws()
    folder = _tiny_checkpoint(tmp_path, states)  # building the model draws further on
    rng = read_checkpoint(folder, rank=0)["rng"]
    assert restore_rng_states(rng, saved_world_size=1, world_size=1, source=folder)
    assert _draws() == expected


def test_rng_states_of_another_world_size_are_left_alone_with_a_warning(tmp_path, caplog):
    folder = _tiny_checkpoint(tmp_path, gather_rng_states(world_size=1))
    rng = read_checkpoint(folder, rank=0)["rng"]
    torch.manual_seed(5)
    expected = float(torch.rand(()))
    torch.manual_seed(5)
    with caplog.at_level("WARNING", logger="unimo_kit.train.checkpoint"):
        assert not restore_rng_states(rng, saved_world_size=1, world_size=2, source=folder)
        assert not restore_rng_states(None, saved_world_size=2, world_size=2, source=folder)
    assert float(torch.rand(())) == expected  # the generator was not moved
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2 and all(str(folder) in m and "world size" in m for m in messages)
