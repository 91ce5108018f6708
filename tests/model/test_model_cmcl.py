"""CMCLLoss against a dense per-row reference written out here, both directions."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from unimo_kit.model.losses import CMCLLoss


def random_features(seed: int, b: int = 6, p_t: int = 4, p_v: int = 3, h: int = 5, e: int = 8):
    g = torch.Generator().manual_seed(seed)

    def unit(n):
        return F.normalize(torch.randn(n, e, generator=g, dtype=torch.float64), dim=-1)

    return {
        "image_features": unit(b),
        "text_features": unit(b),
        "image_ids": torch.tensor([5, 6, 6, 7, 8, 5])[:b],  # pairs (0, 5) and (1, 2) share images
        "pos_text_features": unit(p_t),
        "pos_text_owner": torch.randint(b, (p_t,), generator=g),
        "pos_image_features": unit(p_v),
        "pos_image_owner": torch.randint(b, (p_v,), generator=g),
        "neg_text_features": unit(h),
        "neg_text_owner": torch.randint(b, (h,), generator=g),
    }


def reference_cmcl(
    f: dict, tau: float, hard_negatives: bool = True, positives: bool = True, own: bool = False
):
    """UNIMO eq. 1 one row at a time: -log(Σ_pos exp(d/τ) / Σ_all exp(d/τ)); with ``own`` a
    hard negative is a candidate of its owner's row only."""
    ids = f["image_ids"].tolist()
    b = len(ids)
    # candidate texts for image rows: (feature, owner pair or None for a hard negative)
    texts = [(f["text_features"][j], j) for j in range(b)]
    if positives:
        texts += [
            (x, int(o)) for x, o in zip(f["pos_text_features"], f["pos_text_owner"], strict=True)
        ]
    negatives = []
    if hard_negatives:
        negatives = list(zip(f["neg_text_features"], f["neg_text_owner"].tolist(), strict=True))
        if not own:
            texts += [(x, None) for x, _ in negatives]
    images = [(f["image_features"][j], j) for j in range(b)]
    if positives:
        images += [
            (x, int(o)) for x, o in zip(f["pos_image_features"], f["pos_image_owner"], strict=True)
        ]

    def row_loss(query, i, candidates):
        num, den = 0.0, 0.0
        for feat, owner in candidates:
            e = math.exp(float(query @ feat) / tau)
            den += e
            if owner is not None and (owner == i or ids[owner] == ids[i]):
                num += e
        return -math.log(num / den)

    def own_negatives(i):
        return [(x, None) for x, o in negatives if o == i] if own else []

    i2t = sum(row_loss(f["image_features"][i], i, texts + own_negatives(i)) for i in range(b)) / b
    t2i = sum(row_loss(f["text_features"][i], i, images) for i in range(b)) / b
    return i2t, t2i


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("hard_negatives,positives", [(True, True), (False, True), (True, False)])
def test_cmcl_matches_reference(seed, hard_negatives, positives):
    f = random_features(seed)
    kwargs = dict(f)
    if not hard_negatives:
        kwargs.pop("neg_text_features")
        kwargs.pop("neg_text_owner")
    if not positives:
        for k in ("pos_text_features", "pos_text_owner", "pos_image_features", "pos_image_owner"):
            kwargs.pop(k)
    out = CMCLLoss(temperature=0.1)(**kwargs)
    i2t, t2i = reference_cmcl(f, 0.1, hard_negatives, positives)
    assert out["cmcl_i2t"].item() == pytest.approx(i2t, rel=1e-6)
    assert out["cmcl_t2i"].item() == pytest.approx(t2i, rel=1e-6)
    assert out["cmcl_loss"].item() == pytest.approx((i2t + t2i) / 2, rel=1e-6)


def test_cmcl_gradient_matches_reference():
    f = random_features(3)
    leaves = {k: v.clone().requires_grad_() for k, v in f.items() if v.is_floating_point()}
    out = CMCLLoss(temperature=0.05)(**{**f, **leaves})
    out["cmcl_loss"].backward()

    def ref_loss(**feats):  # the reference in autograd-friendly form (same loop, torch ops)
        ids = f["image_ids"]
        rows = []
        for direction in ("i2t", "t2i"):
            q = feats["image_features"] if direction == "i2t" else feats["text_features"]
            if direction == "i2t":
                cols = [
                    feats["text_features"],
                    feats["pos_text_features"],
                    feats["neg_text_features"],
                ]
                owners = [torch.arange(6), f["pos_text_owner"], None]
            else:
                cols = [feats["image_features"], feats["pos_image_features"]]
                owners = [torch.arange(6), f["pos_image_owner"]]
            for i in range(6):
                num, den = 0, 0
                for c, o in zip(cols, owners, strict=True):
                    e = torch.exp(c @ q[i] / 0.05)
                    den = den + e.sum()
                    if o is not None:
                        pos = (o == i) | (ids[o] == ids[i])
                        num = num + e[pos].sum()
                rows.append(-torch.log(num / den) / 12)
        return sum(rows)

    ref_leaves = {k: v.clone().requires_grad_() for k, v in f.items() if v.is_floating_point()}
    ref_loss(**ref_leaves).backward()
    for k in leaves:
        torch.testing.assert_close(leaves[k].grad, ref_leaves[k].grad, rtol=1e-6, atol=1e-9)


def test_same_image_rows_are_not_negatives():
    # Two captions of one image with identical features: with the id mask they are both
    # positives, so a perfect model gets loss -> 0 (not log 2).
    x = F.normalize(torch.eye(3, 4, dtype=torch.float64), dim=-1)
    img = x[[0, 1, 1]]
    txt = x[[0, 1, 1]]
    loss = CMCLLoss(temperature=0.01)(img, txt, torch.tensor([0, 1, 1]))["cmcl_loss"]
    assert loss.item() < 1e-6
    no_mask = CMCLLoss(temperature=0.01)(img, txt)["cmcl_loss"]
    assert no_mask.item() == pytest.approx(2 / 3 * math.log(2), rel=1e-4)


def test_metrics_and_learned_temperature():
    f = random_features(0)
    loss = CMCLLoss(temperature=0.07, learn_temperature=True)
    out = loss(**f)
    assert set(out) >= {"cmcl_loss", "cmcl_acc", "cmcl_hardneg_acc", "cmcl_logit_scale"}
    assert out["cmcl_logit_scale"].item() == pytest.approx(1 / 0.07, rel=1e-5)
    out["cmcl_loss"].backward()
    assert loss.log_scale.grad is not None and loss.log_scale.grad.abs() > 0
    # metrics are detached
    assert all(not v.requires_grad for k, v in out.items() if not k.endswith("_loss"))


def test_hard_negative_rank_loss_matches_reference():
    """With ``hard_negative_weight`` w: cmcl_loss = batch CMCL + w * mean_h log(1 + exp((s(v,
    w⁻_h) - s(v, w))/τ)), v and w the image and text of the negative's own pair."""
    f = random_features(2)
    out = CMCLLoss(temperature=0.1, hard_negative_weight=0.5)(**f)
    i2t, t2i = reference_cmcl(f, 0.1)
    terms = []
    for h, owner in enumerate(f["neg_text_owner"].tolist()):
        v, w = f["image_features"][owner], f["text_features"][owner]
        s_pos, s_neg = float(v @ w) / 0.1, float(v @ f["neg_text_features"][h]) / 0.1
        terms.append(math.log1p(math.exp(s_neg - s_pos)))
    rank = sum(terms) / len(terms)
    assert out["cmcl_hardneg_rank"].item() == pytest.approx(rank, rel=1e-6)
    assert out["cmcl_loss"].item() == pytest.approx((i2t + t2i) / 2 + 0.5 * rank, rel=1e-6)
    plain = CMCLLoss(temperature=0.1)(**f)  # weight 0: the batch loss alone, no rank metric
    assert "cmcl_hardneg_rank" not in plain
    assert plain["cmcl_loss"].item() == pytest.approx((i2t + t2i) / 2, rel=1e-6)
    with pytest.raises(ValueError, match="hard_negative_weight"):
        CMCLLoss(hard_negative_weight=-1.0)


def test_rank_loss_needs_one_owner_per_hard_negative():
    f = random_features(4)
    f["neg_text_owner"] = f["neg_text_owner"][:-1]
    with pytest.raises(ValueError, match="one pair index per hard negative"):
        CMCLLoss(hard_negative_weight=1.0)(**f)
    assert "cmcl_hardneg_acc" not in CMCLLoss()(**f)  # without the loss: metric skipped


@pytest.mark.parametrize("seed", [0, 5])
def test_own_scope_hard_negatives_are_columns_of_their_pair_only(seed):
    f = random_features(seed)
    out = CMCLLoss(temperature=0.1, hard_negative_scope="own")(**f)
    i2t, t2i = reference_cmcl(f, 0.1, own=True)
    assert out["cmcl_i2t"].item() == pytest.approx(i2t, rel=1e-6)
    assert out["cmcl_t2i"].item() == pytest.approx(t2i, rel=1e-6)
    everyone, _ = reference_cmcl(f, 0.1)
    assert i2t != pytest.approx(everyone)  # the scope changes the loss
    with pytest.raises(ValueError, match="hard_negative_scope"):
        CMCLLoss(hard_negative_scope="some")


def test_rank_scope_keeps_hard_negatives_out_of_the_batch_softmax():
    """scope "rank": the batch loss is the one without hard negatives, plus w * rank loss."""
    f = random_features(3)
    out = CMCLLoss(temperature=0.1, hard_negative_weight=0.5, hard_negative_scope="rank")(**f)
    i2t, t2i = reference_cmcl(f, 0.1, hard_negatives=False)
    assert out["cmcl_i2t"].item() == pytest.approx(i2t, rel=1e-6)
    assert out["cmcl_t2i"].item() == pytest.approx(t2i, rel=1e-6)
    rank = out["cmcl_hardneg_rank"].item()
    assert out["cmcl_loss"].item() == pytest.approx((i2t + t2i) / 2 + 0.5 * rank, rel=1e-6)
    with pytest.raises(ValueError, match="hard_negative_weight > 0"):
        CMCLLoss(hard_negative_scope="rank")
