"""Token alignment: the word-to-region score by hand, why it binds, its loss, the model's token
encoders and the objective switch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from unimo_kit.model import TokenAlignmentLoss, UnimoPretraining, token_similarity
from unimo_kit.model.token_alignment import paired_token_similarity


def _unit(*rows: list[float]) -> torch.Tensor:
    return F.normalize(torch.tensor(rows, dtype=torch.float32), dim=-1)


def test_token_similarity_hand_computed():
    """Mean over valid words of the best valid region; padded regions and words do not count."""
    words = torch.stack([_unit([1, 0], [0, 1], [1, 1]), _unit([0, 1], [1, 0], [0, 1])])
    word_valid = torch.tensor([[True, True, False], [True, False, False]])
    regions = torch.stack([_unit([1, 0], [0.6, 0.8]), _unit([0, 1], [1, 0])])
    region_valid = torch.tensor([[True, True], [True, False]])
    s = token_similarity(words, word_valid, regions, region_valid)
    # text 0 (words e1, e2) vs image 0 (e1, (.6, .8)): max(1, .6) = 1, max(0, .8) = .8
    # text 0 vs image 1 (e2 only, e1 padded): e1 -> 0, e2 -> 1
    # text 1 (word e2) vs image 0: .8; vs image 1: 1
    want = torch.tensor([[0.9, 0.5], [0.8, 1.0]])
    torch.testing.assert_close(s, want)
    torch.testing.assert_close(
        paired_token_similarity(words, word_valid, regions, region_valid), want.diagonal()
    )
    none = token_similarity(words, torch.zeros_like(word_valid), regions, region_valid)
    assert torch.equal(none, torch.zeros(2, 2))


def test_token_alignment_binds_what_pooling_cannot():
    """With additive features (a region and a word are colour + shape), the pooled vectors of
    a caption and its attribute swap are equal, but matching each word to its best region
    prefers the caption: only the true pairing finds both halves in one region."""
    blue, red, oval, star = torch.eye(4)
    regions = F.normalize(torch.stack([blue + oval, red + star]), dim=-1)[None]  # (1, 2, 4)
    caption = F.normalize(torch.stack([blue + oval, star]), dim=-1)[None]  # "blue oval, star"
    swapped = F.normalize(torch.stack([oval, blue + star]), dim=-1)[None]  # "oval, blue star"
    valid_r = torch.ones(1, 2, dtype=torch.bool)
    valid_w = torch.ones(1, 2, dtype=torch.bool)
    pooled = [F.normalize(x.sum(1), dim=-1) for x in (caption, swapped, regions)]
    assert float(pooled[0] @ pooled[2].T) == pytest.approx(float(pooled[1] @ pooled[2].T))
    s_caption = token_similarity(caption, valid_w, regions, valid_r).item()
    s_swapped = token_similarity(swapped, valid_w, regions, valid_r).item()
    assert s_caption == pytest.approx((1 + 2**-0.5) / 2)
    assert s_swapped == pytest.approx((2**-0.5 + 0.5) / 2)
    assert s_caption > s_swapped


def test_token_alignment_loss_terms():
    g = torch.Generator().manual_seed(0)
    b, n, t, e = 4, 3, 5, 8
    regions = F.normalize(torch.randn(b, n, e, generator=g), dim=-1).requires_grad_()
    words = F.normalize(torch.randn(b, t, e, generator=g), dim=-1).requires_grad_()
    valid_r, valid_w = torch.ones(b, n, dtype=torch.bool), torch.ones(b, t, dtype=torch.bool)
    negs = F.normalize(torch.randn(6, t, e, generator=g), dim=-1)
    owner = torch.tensor([0, 0, 1, 2, 3, 3])
    loss = TokenAlignmentLoss(0.1, hard_negative_weight=1.0)
    out = loss(
        regions,
        valid_r,
        words,
        valid_w,
        neg_text_tokens=negs,
        neg_text_valid=valid_w[:1].expand(6, t),
        neg_text_owner=owner,
    )
    out["token_alignment_loss"].backward()
    assert regions.grad.abs().sum() > 0 and words.grad.abs().sum() > 0
    # the loss is the in-batch InfoNCE (both directions) plus the rank term, recomputed here
    s = token_similarity(words, valid_w, regions, valid_r).detach() / 0.1  # (texts, images)
    nce = (F.cross_entropy(s, torch.arange(b)) + F.cross_entropy(s.T, torch.arange(b))) / 2
    s_neg = paired_token_similarity(
        negs, valid_w[:1].expand(6, t), regions[owner].detach(), valid_r[owner]
    )
    rank = F.softplus(s_neg / 0.1 - s.diagonal()[owner]).mean()
    assert out["token_alignment_loss"].item() == pytest.approx((nce + rank).item(), rel=1e-5)
    assert out["token_alignment_hardneg_rank"].item() == pytest.approx(rank.item(), rel=1e-5)
    # two pairs showing one image are not each other's negatives
    same = loss(regions, valid_r, words, valid_w, torch.tensor([0, 0, 1, 2]))[
        "token_alignment_loss"
    ]
    assert same.item() < loss(regions, valid_r, words, valid_w)["token_alignment_loss"].item()
    with pytest.raises(ValueError, match="temperature"):
        TokenAlignmentLoss(0.0)


def test_model_token_encoders_agree_with_cmcl_encoders(tiny_model, batch_factory):
    batch = batch_factory(0, ("pairs",))
    ids, mask = batch["text_input_ids"], batch["text_attention_mask"]
    with torch.no_grad():
        z, words, valid = tiny_model.encode_text_tokens(ids, mask)
        torch.testing.assert_close(z, tiny_model.encode_text(ids, mask))
        cfg = tiny_model.config
        want = mask.bool() & (ids != cfg.cls_token_id) & (ids != cfg.sep_token_id)
        assert torch.equal(valid, want) and not valid[:, 0].any()
        torch.testing.assert_close(words.norm(dim=-1), torch.ones(words.shape[:2]))
        feats, boxes, vmask = batch["visual_feats"], batch["visual_boxes"], batch["visual_mask"]
        zi, regions, rvalid = tiny_model.encode_image_tokens(feats, boxes, vmask)
        torch.testing.assert_close(zi, tiny_model.encode_image(feats, boxes, vmask))
        assert regions.shape[:2] == feats.shape[:2] and torch.equal(rvalid, vmask.bool())


def test_objective_adds_token_loss_with_its_weight(tiny_model, batch_factory):
    batch = batch_factory(0)
    plain = UnimoPretraining(tiny_model, mlm=False, seq2seq=False, mrp=False)
    assert "token_alignment_loss" not in plain(batch)
    torch.manual_seed(0)
    on = UnimoPretraining(
        tiny_model,
        mlm=False,
        seq2seq=False,
        mrp=False,
        token_alignment=True,
        hard_negative_weight=1.0,
    )(batch)
    torch.manual_seed(0)
    half = UnimoPretraining(
        tiny_model,
        mlm=False,
        seq2seq=False,
        mrp=False,
        token_alignment=True,
        hard_negative_weight=1.0,
        weights={"token_alignment": 0.5},
    )(batch)
    assert {
        "token_alignment_loss",
        "token_alignment_acc",
        "token_alignment_hardneg_acc",
        "token_alignment_hardneg_rank",
    } <= set(on)
    # the same as the loss on the model's own encodings of the pairs and their negatives
    with torch.no_grad():
        _, regions, rvalid = tiny_model.encode_image_tokens(
            batch["visual_feats"], batch["visual_boxes"], batch["visual_mask"]
        )
        _, words, wvalid = tiny_model.encode_text_tokens(
            batch["text_input_ids"], batch["text_attention_mask"]
        )
        _, neg, nvalid = tiny_model.encode_text_tokens(
            batch["neg_text_input_ids"], batch["neg_text_attention_mask"]
        )
    direct = TokenAlignmentLoss(0.07, hard_negative_weight=1.0)(
        regions,
        rvalid,
        words,
        wvalid,
        batch["pair_image_ids"],
        neg_text_tokens=neg,
        neg_text_valid=nvalid,
        neg_text_owner=batch["neg_text_owner"],
    )
    for key in (
        "token_alignment_loss",
        "token_alignment_hardneg_acc",
        "token_alignment_hardneg_rank",
    ):
        assert on[key].item() == pytest.approx(direct[key].item(), rel=1e-4, abs=1e-6), key
    assert half["token_alignment_loss"].item() == pytest.approx(
        on["token_alignment_loss"].item() / 2, rel=1e-5
    )
    assert half["cmcl_loss"].item() == pytest.approx(on["cmcl_loss"].item(), rel=1e-6)
    with pytest.raises(ValueError, match="needs cmcl=True"):
        UnimoPretraining(tiny_model, cmcl=False, token_alignment=True)


def test_images_without_regions_and_empty_batches_score_zero_not_nan():
    g = torch.Generator().manual_seed(1)
    words = F.normalize(torch.randn(3, 4, 8, generator=g), dim=-1)
    regions = F.normalize(torch.randn(3, 5, 8, generator=g), dim=-1).requires_grad_()
    wvalid = torch.ones(3, 4, dtype=torch.bool)
    rvalid = torch.ones(3, 5, dtype=torch.bool)
    rvalid[1] = False  # image 1 has no valid region
    s = token_similarity(words, wvalid, regions, rvalid)
    assert torch.isfinite(s).all() and torch.equal(s[:, 1], torch.zeros(3))
    out = TokenAlignmentLoss(0.1)(regions, rvalid, words, wvalid)
    out["token_alignment_loss"].backward()
    assert torch.isfinite(out["token_alignment_loss"]) and torch.isfinite(regions.grad).all()
    assert torch.equal(regions.grad[1], torch.zeros(5, 8))
    none = torch.zeros(3, 0, 8)
    assert torch.equal(
        token_similarity(words, wvalid, none, torch.zeros(3, 0, dtype=torch.bool)),
        torch.zeros(3, 3),
    )
    empty = TokenAlignmentLoss(0.1)(regions[:0], rvalid[:0], words[:0], wvalid[:0])
    assert empty["token_alignment_loss"].item() == 0.0 and "token_alignment_acc" not in empty


def test_hard_negative_inputs_are_checked_and_scale_can_be_given():
    g = torch.Generator().manual_seed(2)
    words = F.normalize(torch.randn(2, 3, 4, generator=g), dim=-1)
    regions = F.normalize(torch.randn(2, 3, 4, generator=g), dim=-1)
    valid = torch.ones(2, 3, dtype=torch.bool)
    loss = TokenAlignmentLoss(0.1, hard_negative_weight=1.0)
    with pytest.raises(ValueError, match="together"):
        loss(
            regions, valid, words, valid, neg_text_tokens=words, neg_text_owner=torch.tensor([0, 1])
        )
    with pytest.raises(ValueError, match="3 hard negative owners but 2 token rows"):
        loss(
            regions,
            valid,
            words,
            valid,
            neg_text_tokens=words,
            neg_text_valid=valid,
            neg_text_owner=torch.tensor([0, 1, 1]),
        )
    with pytest.raises(ValueError, match="must index the 2 pairs"):
        loss(
            regions,
            valid,
            words,
            valid,
            neg_text_tokens=words,
            neg_text_valid=valid,
            neg_text_owner=torch.tensor([0, 2]),
        )
    at_10 = loss(regions, valid, words, valid)["token_alignment_loss"]
    at_5 = loss(regions, valid, words, valid, logit_scale=torch.tensor(5.0))["token_alignment_loss"]
    same = TokenAlignmentLoss(0.2)(regions, valid, words, valid)["token_alignment_loss"]
    assert at_5.item() == pytest.approx(same.item()) and at_5.item() != pytest.approx(at_10.item())
