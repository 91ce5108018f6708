"""UnimoPretraining on synthetic batches with every key group, and with groups missing;
masking rules; seq2seq loss against the generation scorer."""

from __future__ import annotations

import pytest
import torch

from unimo_kit.model import UnimoPretraining, create_model
from unimo_kit.model.generation import score_sequences
from unimo_kit.model.masking import mask_regions, mask_tokens, select_positions

ALL_LOSSES = {"cmcl_loss", "mlm_loss", "seq2seq_loss", "mrp_loss"}


def _losses(out):
    return {k for k in out if k.endswith("_loss")}


def test_every_group_every_loss_and_gradients(tiny_model, batch_factory):
    objective = UnimoPretraining(tiny_model.train(), learn_temperature=True)
    torch.manual_seed(0)
    out = objective(batch_factory())
    assert _losses(out) == ALL_LOSSES
    assert {"cmcl_acc", "cmcl_hardneg_acc", "mlm_acc", "seq2seq_acc", "mrp_kl"} <= set(out)
    for key, value in out.items():
        assert value.dim() == 0 and torch.isfinite(value), key
        assert value.requires_grad == key.endswith("_loss"), key
    total = sum(v for k, v in out.items() if k.endswith("_loss"))
    total.backward()
    missing = [n for n, p in objective.named_parameters() if p.grad is None]
    assert missing == []
    assert all(torch.isfinite(p.grad).all() for p in objective.parameters())


@pytest.mark.parametrize(
    "groups,expected",
    [
        (("pairs",), ALL_LOSSES),
        (("pairs", "neg"), ALL_LOSSES),
        (("text",), {"mlm_loss", "seq2seq_loss"}),
        (("image",), {"mrp_loss"}),
        (("text", "image"), {"mlm_loss", "seq2seq_loss", "mrp_loss"}),
        ((), set()),
    ],
)
def test_missing_groups_are_skipped(tiny_model, batch_factory, groups, expected):
    out = UnimoPretraining(tiny_model)(batch_factory(groups=groups))
    assert _losses(out) == expected
    assert all(torch.isfinite(v) for v in out.values())


def test_switches_and_ablation_flags(tiny_model, batch_factory):
    batch = batch_factory()
    only_cmcl = UnimoPretraining(tiny_model, mlm=False, seq2seq=False, mrp=False)
    assert _losses(only_cmcl(batch)) == {"cmcl_loss"}
    # in-batch negatives only == the batch without the extra keys
    plain = batch_factory(groups=("pairs",))
    ablated = UnimoPretraining(
        tiny_model,
        mlm=False,
        seq2seq=False,
        mrp=False,
        use_hard_negatives=False,
        use_extra_positives=False,
    )
    torch.testing.assert_close(ablated(batch)["cmcl_loss"], only_cmcl(plain)["cmcl_loss"])
    assert "cmcl_hardneg_acc" not in ablated(batch)
    with_neg = only_cmcl(batch_factory(groups=("pairs", "neg")))["cmcl_loss"]
    assert with_neg > only_cmcl(plain)["cmcl_loss"]  # more negatives, larger loss


def test_loss_weights(tiny_model, batch_factory):
    batch = batch_factory(groups=("text",))
    torch.manual_seed(1)
    base = UnimoPretraining(tiny_model)(batch)
    torch.manual_seed(1)
    half = UnimoPretraining(tiny_model, weights={"mlm": 0.5})(batch)
    torch.testing.assert_close(half["mlm_loss"], base["mlm_loss"] / 2)
    torch.testing.assert_close(half["seq2seq_loss"], base["seq2seq_loss"])
    with pytest.raises(ValueError, match="unknown loss weights"):
        UnimoPretraining(tiny_model, weights={"vqa": 1.0})


def test_seeded_masking_is_reproducible(tiny_model, batch_factory):
    objective = UnimoPretraining(tiny_model)  # eval mode: no dropout, only masking is random
    batch = batch_factory()
    torch.manual_seed(3)
    a = objective(batch)
    torch.manual_seed(3)
    b = objective(batch)
    torch.manual_seed(4)
    c = objective(batch)
    for key in ("mlm_loss", "mrp_loss", "seq2seq_loss"):
        assert torch.equal(a[key], b[key]), key
    assert not torch.equal(a["mlm_loss"], c["mlm_loss"])


def test_class_probs_need_a_class_head(batch_factory):
    model = create_model("unimo-tiny", visual_feat_dim=16)
    with pytest.raises(ValueError, match="visual_num_classes=7"):
        UnimoPretraining(model)(batch_factory(groups=("image",)))


def test_pair_seq2seq_loss_is_caption_log_likelihood(tiny_model, batch_factory):
    batch = batch_factory(groups=("pairs",))
    out = UnimoPretraining(tiny_model, cmcl=False, mlm=False, mrp=False)(batch)
    ids, amask = batch["text_input_ids"], batch["text_attention_mask"]
    lengths = amask.sum(1)
    assert out["seq2seq_tokens"] == (lengths - 1).sum()  # every word after [CLS], and [SEP]
    captions = [row[1 : n - 1].tolist() for row, n in zip(ids, lengths, strict=True)]
    forced = score_sequences(
        tiny_model,
        batch["visual_feats"],
        batch["visual_boxes"],
        batch["visual_mask"],
        captions,
        [True] * len(captions),
    )
    mean_nll = -forced.sum() / (lengths - 1).sum()
    torch.testing.assert_close(out["seq2seq_loss"], mean_nll, rtol=1e-5, atol=1e-5)


def test_select_positions_counts():
    g = torch.Generator().manual_seed(0)
    eligible = torch.rand(50, 40, generator=g) < torch.linspace(0, 1, 50)[:, None]
    positions, picked = select_positions(eligible, 0.15, generator=g)
    n = eligible.sum(1)
    expected = torch.clamp(torch.round(n * 0.15), min=1).long().minimum(n)
    assert torch.equal(picked.sum(1), expected)
    assert eligible.gather(1, positions)[picked].all()
    for row, ok in zip(positions, picked, strict=True):  # picked positions are distinct
        assert len(set(row[ok].tolist())) == int(ok.sum())


def test_mask_tokens_80_10_10():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 30000, (400, 64), generator=g)
    eligible = torch.ones_like(ids, dtype=torch.bool)
    eligible[:, :2] = False
    masked, positions, labels = mask_tokens(
        ids, eligible, mask_token_id=103, vocab_size=30522, probability=0.15, generator=g
    )
    picked = labels != -100
    assert torch.equal(labels[picked], ids.gather(1, positions)[picked])
    changed = masked != ids
    hit = torch.zeros_like(eligible).scatter(1, positions, picked)
    assert not changed[~hit].any()  # only picked tokens change
    new = masked.gather(1, positions)[picked]
    old = labels[picked]
    frac_mask = (new == 103).float().mean().item()
    frac_same = (new == old).float().mean().item()
    assert abs(frac_mask - 0.8) < 0.02 and abs(frac_same - 0.1) < 0.02


def test_mask_regions_zeroes_only_picked():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(8, 20, 4, generator=g) + 5
    eligible = torch.ones(8, 20, dtype=torch.bool)
    eligible[:, 15:] = False
    masked, _, picked = mask_regions(feats, eligible, probability=0.15, generator=g)
    zero = (masked == 0).all(-1)
    assert torch.equal(zero.sum(1), picked.sum(1))
    assert not zero[:, 15:].any()
    assert torch.equal(masked[~zero], feats[~zero])
