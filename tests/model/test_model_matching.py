"""Image-text matching: negative sampling, the loss against hand-computed values, the head on
the model (and in checkpoints), and the objective feeding the right image-text combinations."""

from __future__ import annotations

import math

import pytest
import torch

from unimo_kit.model import UnimoPretraining, create_model, load_checkpoint, save_checkpoint
from unimo_kit.model.matching import MatchingLoss, sample_batch_negatives

FEAT_DIM = 16


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_batch_negatives_show_another_image_and_follow_the_similarity():
    ids = torch.tensor([10, 11, 11, 12, 13])
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        picked = sample_batch_negatives(ids, generator=g)
        assert (picked >= 0).all()
        assert (ids[picked] != ids).all()  # never the own image, nor a pair showing it
    sim = torch.zeros(5, 5)
    sim[:, 3] = 50.0  # everyone prefers column 3 ...
    sim[3, 0] = 50.0  # ... but row 3 cannot pick itself
    picked = sample_batch_negatives(ids, sim, generator=g)
    assert picked.tolist() == [3, 3, 3, 0, 3]


def test_rows_without_another_image_get_no_negative():
    picked = sample_batch_negatives(torch.tensor([7, 7, 8]))
    assert picked.tolist()[:2] == [2, 2] and picked[2].item() in (0, 1)
    assert sample_batch_negatives(torch.tensor([7, 7])).tolist() == [-1, -1]


def test_matching_loss_against_hand_computed_values():
    pos = torch.tensor([2.0, -1.0])
    neg = torch.tensor([0.5])
    hard = torch.tensor([1.0, -3.0])
    owner = torch.tensor([1, 0])
    out = MatchingLoss(rank_weight=0.5)(pos, neg, hard, owner)
    bce_pos = (_softplus(-2.0) + _softplus(1.0)) / 2  # -log sigmoid(logit)
    bce_neg = (_softplus(0.5) + _softplus(1.0) + _softplus(-3.0)) / 3  # -log(1 - sigmoid)
    rank = (_softplus(1.0 - (-1.0)) + _softplus(-3.0 - 2.0)) / 2
    assert out["itm_loss"].item() == pytest.approx((bce_pos + bce_neg) / 2 + 0.5 * rank, rel=1e-6)
    assert out["itm_hardneg_rank"].item() == pytest.approx(rank, rel=1e-6)
    assert out["itm_hardneg_acc"].item() == pytest.approx(0.5)  # pair 1 loses to its negative
    assert out["itm_acc"].item() == pytest.approx((1 / 2 + 1 / 3) / 2)  # 2 > 0; -3 < 0
    no_rank = MatchingLoss(rank_weight=0.0)(pos, neg, hard, owner)
    assert no_rank["itm_loss"].item() == pytest.approx((bce_pos + bce_neg) / 2, rel=1e-6)
    assert "itm_hardneg_rank" not in no_rank
    with pytest.raises(ValueError, match="one pair index per hard negative"):
        MatchingLoss()(pos, neg, hard, owner[:1])


def test_model_without_a_head_refuses_and_a_head_survives_checkpoints(tmp_path, visual_factory):
    g = torch.Generator().manual_seed(0)
    feats, boxes, mask = visual_factory(3, g)
    ids = torch.tensor([[101, 2000, 2001, 102]] * 3)
    plain = create_model("unimo-tiny", visual_feat_dim=FEAT_DIM).eval()
    assert plain.matching_head is None
    with pytest.raises(ValueError, match="no matching head"):
        plain.match_logits(ids, None, feats, boxes, mask)
    plain.add_matching_head()
    assert plain.config.matching_head
    logits = plain.match_logits(ids, None, feats, boxes, mask)
    assert logits.shape == (3,)
    save_checkpoint(plain, tmp_path / "ckpt")
    loaded = load_checkpoint(tmp_path / "ckpt")
    torch.testing.assert_close(loaded.match_logits(ids, None, feats, boxes, mask), logits)
    with_head = create_model("unimo-tiny", visual_feat_dim=FEAT_DIM, matching_head=True)
    assert with_head.matching_head is not None
    with pytest.raises(ValueError, match="matching head"):
        UnimoPretraining(create_model("unimo-tiny", visual_feat_dim=FEAT_DIM), itm=True)


def test_objective_scores_pairs_batch_negatives_and_hard_negatives(batch_factory, monkeypatch):
    """Each logit the loss receives is the model's matching logit of the intended image-text
    combination: the pairs, an in-batch image per text, an in-batch text per image, and each
    hard negative on its own pair's image."""
    torch.manual_seed(0)
    model = create_model("unimo-tiny", visual_feat_dim=FEAT_DIM, matching_head=True).eval()
    objective = UnimoPretraining(model, mlm=False, seq2seq=False, mrp=False, itm=True)
    batch = batch_factory(groups=("pairs", "neg"))
    seen = {}
    real_loss = objective.matching_loss.forward

    def record(pos, neg, hard, owner):
        seen.update(pos=pos, neg=neg, hard=hard, owner=owner)
        return real_loss(pos, neg, hard, owner)

    monkeypatch.setattr(objective.matching_loss, "forward", record)
    draws = []
    import unimo_kit.model.objectives as objectives

    real_sample = objectives.sample_batch_negatives

    def sample(ids, sim=None, generator=None):
        draws.append(real_sample(ids, sim, generator))
        return draws[-1]

    monkeypatch.setattr(objectives, "sample_batch_negatives", sample)
    out = objective(batch)
    assert {"cmcl_loss", "itm_loss", "itm_acc", "itm_hardneg_acc"} <= set(out)

    ids, amask = batch["text_input_ids"], batch["text_attention_mask"]
    feats, boxes, vmask = batch["visual_feats"], batch["visual_boxes"], batch["visual_mask"]

    def logits(text_rows, ids_, amask_, image_rows):
        with torch.no_grad():
            return model.match_logits(
                ids_[text_rows],
                amask_[text_rows],
                feats[image_rows],
                boxes[image_rows],
                vmask[image_rows],
            )

    every = torch.arange(4)
    torch.testing.assert_close(seen["pos"], logits(every, ids, amask, every))
    neg_image, neg_text = draws
    expected_neg = torch.cat(
        [logits(every, ids, amask, neg_image), logits(neg_text, ids, amask, every)]
    )
    torch.testing.assert_close(seen["neg"], expected_neg)
    owner = batch["neg_text_owner"]
    nids, nmask = batch["neg_text_input_ids"], batch["neg_text_attention_mask"]
    torch.testing.assert_close(seen["hard"], logits(torch.arange(len(owner)), nids, nmask, owner))
    assert torch.equal(seen["owner"], owner)


def test_matching_learns_to_reject_hard_negatives_on_a_fixed_batch(batch_factory, fit_factory):
    """A few steps of ITM alone on one batch rank every pair above its hard negatives (the
    same texts score differently on different images only through the joint pass)."""
    torch.manual_seed(0)
    model = create_model("unimo-tiny", visual_feat_dim=FEAT_DIM, matching_head=True).train()
    objective = UnimoPretraining(
        model,
        cmcl=False,
        mlm=False,
        seq2seq=False,
        mrp=False,
        itm=True,
        hard_negative_weight=1.0,
    )
    batch = batch_factory(groups=("pairs", "neg"))
    first, last = fit_factory(objective, batch, "itm_loss", steps=150)
    assert last["itm_loss"] < first["itm_loss"] / 3
    assert last["itm_hardneg_acc"] == 1.0
