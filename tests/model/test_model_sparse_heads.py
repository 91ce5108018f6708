"""The fused word head against the dense computation, and the objectives table's aliases."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from unimo_kit.model.losses import linear_cross_entropy


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_linear_cross_entropy_matches_dense_cross_entropy(smoothing):
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(40, 16, generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.randn(300, 16, generator=gen, dtype=torch.float64, requires_grad=True)
    b = torch.randn(300, generator=gen, dtype=torch.float64, requires_grad=True)
    y = torch.randint(300, (40,), generator=gen)
    g = torch.rand(40, generator=gen, dtype=torch.float64)  # uneven row weights
    loss, correct = linear_cross_entropy(h, w, b, y, smoothing)
    grads = torch.autograd.grad((loss * g).sum(), (h, w, b))
    logits = F.linear(h, w, b)
    ref = F.cross_entropy(logits, y, reduction="none", label_smoothing=smoothing)
    ref_grads = torch.autograd.grad((ref * g).sum(), (h, w, b))
    torch.testing.assert_close(loss, ref, rtol=1e-10, atol=1e-10)
    for got, want in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    assert torch.equal(correct, logits.argmax(-1) == y)


def test_old_spellings_load_through_aliases():
    from unimo_kit.train import TrainConfig

    old = TrainConfig.from_dict(
        {"paraphrase_rank": True, "rewrite_negatives": True, "loss_weights": {"token": 0.5}}
    )
    assert old.paraphrase and old.loss_weights == {"token_alignment": 0.5}
    with pytest.raises(ValueError, match="unknown loss weights"):
        TrainConfig(loss_weights={"nope": 1.0})
