"""Run-to-run determinism: the same config and seed give the same checkpoint bytes."""

from __future__ import annotations

import hashlib

import pytest
from safetensors.torch import load_file

from unimo_kit.train import load_config, train


def _model_sha256(result) -> str:
    """sha256 of the saved model state (``final/model.safetensors``)."""
    return hashlib.sha256((result.final / "model.safetensors").read_bytes()).hexdigest()


def _overrides(tiny_overrides: dict, threads: int) -> dict:
    return {**tiny_overrides, "steps": 3, "save_every": 10, "val_pairs": None, "threads": threads}


@pytest.mark.slow
@pytest.mark.parametrize("threads", [1, 2])
def test_same_seed_gives_the_same_checkpoint_bytes(tmp_path, tiny_overrides, threads):
    config = load_config("tiny", _overrides(tiny_overrides, threads))
    first = train(config, tmp_path / "a", resume=False)
    second = train(config, tmp_path / "b", resume=False)
    assert first.final is not None and second.final is not None
    assert _model_sha256(first) == _model_sha256(second)
    assert first.last_losses == second.last_losses


@pytest.mark.slow
def test_another_seed_gives_other_weights(tmp_path, tiny_overrides):
    overrides = _overrides(tiny_overrides, 1)
    first = train(load_config("tiny", overrides), tmp_path / "a", resume=False)
    other = train(load_config("tiny", {**overrides, "seed": 1}), tmp_path / "c", resume=False)
    assert _model_sha256(other) != _model_sha256(first)
    want = load_file(str(first.final / "model.safetensors"))
    got = load_file(str(other.final / "model.safetensors"))
    changed = {k for k in want if not (want[k] == got[k]).all()}
    assert "embeddings.word_embeddings.weight" in changed  # the weights differ, not metadata
