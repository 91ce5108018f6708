"""The objective under bf16 autocast and under torch.compile's graph capture (no graph
breaks), the two things the trainer turns on for speed."""

from __future__ import annotations

import pytest
import torch

from unimo_kit.model import UnimoPretraining


@pytest.mark.slow  # CPU bf16 matmuls are slow
def test_bf16_autocast_runs_and_backpropagates(tiny_model, batch_factory):
    objective = UnimoPretraining(tiny_model.train())
    torch.manual_seed(0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = objective(batch_factory())
    assert {"cmcl_loss", "mlm_loss", "seq2seq_loss", "mrp_loss"} <= set(out)
    assert all(torch.isfinite(v) for v in out.values())
    assert out["cmcl_loss"].dtype == torch.float32  # similarities are computed in float32
    sum(v for k, v in out.items() if k.endswith("_loss")).backward()
    grads = [p.grad for p in objective.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.slow
def test_objective_captures_without_graph_breaks(tiny_model, batch_factory):
    import torch._dynamo as dynamo

    dynamo.reset()
    explanation = dynamo.explain(UnimoPretraining(tiny_model))(batch_factory())
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1
