"""The last layer run only at the positions a head scores (``hidden_positions``): the same
states, losses and gradients as the full pass."""

from __future__ import annotations

import pytest
import torch

from unimo_kit.model import UnimoPretraining, create_model

FEAT_DIM, NUM_CLASSES = 16, 7  # as the batches of conftest.py


def _model(**overrides):
    torch.manual_seed(0)
    return create_model(
        "unimo-tiny",
        visual_feat_dim=FEAT_DIM,
        visual_num_classes=NUM_CLASSES,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        **overrides,
    ).double()


def _double(batch: dict) -> dict:
    return {k: v.double() if v.is_floating_point() else v for k, v in batch.items()}


@pytest.mark.parametrize("box_relation_bias", [False, True])  # bool or float (B, H, L, L) mask
@pytest.mark.parametrize("mode", ["bidirectional", "seq2seq"])
def test_hidden_positions_equal_the_full_pass_there(batch_factory, mode, box_relation_bias):
    model = _model(box_relation_bias=box_relation_bias).eval()
    batch = _double(batch_factory(groups=("pairs",)))
    inputs = {
        "input_ids": batch["text_input_ids"],
        "attention_mask": batch["text_attention_mask"],
        "visual_feats": batch["visual_feats"],
        "visual_boxes": batch["visual_boxes"],
        "visual_mask": batch["visual_mask"],  # row 0 has padded regions
        "mode": mode,
    }
    full = model(**inputs)["hidden"]  # (B, L, D)
    gen = torch.Generator().manual_seed(1)
    positions = torch.randint(full.shape[1], (full.shape[0], 5), generator=gen)  # (B, 5)
    positions[:, 0] = 0  # [IMG]
    positions[0, 1] = positions[0, 2]  # a position twice
    got = model(**inputs, hidden_positions=positions)
    assert list(got) == ["hidden"]
    want = full.gather(1, positions[..., None].expand(-1, -1, full.shape[-1]))
    torch.testing.assert_close(got["hidden"], want)


@pytest.mark.parametrize("token_alignment", [False, True])
def test_objective_with_the_last_layer_at_scored_positions_equals_full_passes(
    batch_factory, token_alignment
):
    """Every loss, metric and gradient of the objective (MLM, seq2seq and MRP on pairs, text
    and images) equals that of full passes; under dropout the full passes run."""
    model = _model().train()
    objective = UnimoPretraining(model, token_alignment=token_alignment).train()
    batch = _double(batch_factory())
    params = [p for p in objective.parameters() if p.requires_grad]
    last_layer_rows = []
    model.encoder.layers[-1].fc1.register_forward_hook(
        lambda _m, args, _o: last_layer_rows.append(args[0].shape[:-1].numel())
    )

    def run() -> tuple[dict, list, int]:
        last_layer_rows.clear()
        torch.manual_seed(3)
        out = objective(batch)
        loss = sum(v for k, v in out.items() if k.endswith("_loss"))
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        return out, [None if g is None else g.to_dense() for g in grads], sum(last_layer_rows)

    sparse, sparse_grads, sparse_rows = run()
    assert not model.draws_dropout()
    model.draws_dropout = lambda: True  # as under dropout: full passes everywhere
    full, full_grads, full_rows = run()
    assert sparse_rows < full_rows  # the last layer did run on fewer positions
    assert sparse.keys() == full.keys()
    for key in sparse:
        torch.testing.assert_close(sparse[key].double(), full[key].double(), msg=key)
    for p, got, want in zip(params, sparse_grads, full_grads, strict=True):
        assert (got is None) == (want is None)
        if got is not None:
            torch.testing.assert_close(got, want, msg=lambda m, p=p: f"{tuple(p.shape)}: {m}")


def test_cmcl_embeddings_from_the_last_layer_at_cls_and_img_equal_full_passes(batch_factory):
    model = _model().train()
    batch = _double(batch_factory(groups=("pairs",)))
    ids, amask = batch["text_input_ids"], batch["text_attention_mask"]
    visual = (batch["visual_feats"], batch["visual_boxes"], batch["visual_mask"])
    text, image = model.encode_text(ids, amask), model.encode_image(*visual)
    model.draws_dropout = lambda: True  # the full pass
    torch.testing.assert_close(text, model.encode_text(ids, amask))
    torch.testing.assert_close(image, model.encode_image(*visual))
    torch.testing.assert_close(text, model.encode_text_tokens(ids, amask)[0])
