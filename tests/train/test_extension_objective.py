"""A toy objective added through the public extension point trains end to end.

The extension contract (``unimo_kit.model.registry``, docs/extending.md): one loss module, one
``register_objective`` call, switched on by ``extra_objectives`` and weighed by
``loss_weights.NAME``; no edit to the trainer, the config or the objective.
"""

from __future__ import annotations

import csv

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from unimo_kit.model import registry
from unimo_kit.model.registry import ObjectiveSpec, register_objective
from unimo_kit.train import load_config, train


class TextNormLoss(nn.Module):
    """Pulls the sum of each (unit) CMCL text vector's coordinates towards a learned target (a
    loss with its own parameter)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.target = nn.Parameter(torch.tensor(2.0))

    def forward(self, batch, shared):
        sums = shared["text_features"].sum(dim=-1)
        loss = (sums - self.target).pow(2).mean()
        return {"toy_norm_loss": loss, "toy_norm_mean": sums.mean().detach()}


@pytest.fixture
def toy_objective():
    spec = register_objective(
        ObjectiveSpec("toy_norm", data=("pairs",), needs=("cmcl",), build=TextNormLoss)
    )
    yield spec
    registry.OBJECTIVES.pop(spec.name)


def _log(run_dir):
    with open(run_dir / "log.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _run(tmp_path, overrides, name, **extra):
    config = load_config(
        "tiny", {**overrides, "steps": 2, "val_pairs": None, "warmup_steps": 0, "lr": 1e-3, **extra}
    )
    return train(config, tmp_path / name)


def test_a_registered_objective_is_logged_weighted_and_trained(
    tmp_path, tiny_overrides, toy_objective
):
    on = _run(
        tmp_path,
        tiny_overrides,
        "on",
        extra_objectives=["toy_norm"],
        loss_weights={"toy_norm": 10.0},
    )
    rows = _log(tmp_path / "on")
    assert len(rows) == 2
    assert all(float(row["toy_norm_loss"]) > 0 for row in rows)
    assert "toy_norm_mean" in rows[0]  # its metrics reach the log too

    weights = load_file(str(on.final / "model.safetensors"))
    assert not any("toy_norm" in key for key in weights)  # the loss's parameter is not the model's

    # Weighted to zero it changes nothing but float summation order: the weights of a run
    # without it to 1e-5 (its gradient of zeros joins the autograd graph), while weighted
    # it moves them well beyond that.
    off = _run(tmp_path, tiny_overrides, "off")
    zero = _run(
        tmp_path,
        tiny_overrides,
        "zero",
        extra_objectives=["toy_norm"],
        loss_weights={"toy_norm": 0.0},
    )
    want = load_file(str(off.final / "model.safetensors"))
    got = load_file(str(zero.final / "model.safetensors"))
    assert max((want[key] - got[key]).abs().max().item() for key in want) < 1e-5
    changed = load_file(str(on.final / "model.safetensors"))
    assert max((want[key] - changed[key]).abs().max().item() for key in want) > 1e-4


def test_an_unregistered_extra_objective_is_refused(tiny_overrides):
    with pytest.raises(ValueError, match="not registered"):
        load_config("tiny", {**tiny_overrides, "extra_objectives": ["no_such_loss"]})
