"""Paraphrase ranking: the loss against hand-computed values, and the objective ranking the
model's own encodings of each caption's paraphrases against its hard negatives."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from unimo_kit.model import ParaphraseRankLoss, UnimoPretraining, create_model
from unimo_kit.model.token_alignment import paired_token_similarity

FEAT_DIM = 16


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def _unit(*rows: list[float]) -> torch.Tensor:
    return F.normalize(torch.tensor(rows, dtype=torch.float64), dim=-1)


def test_loss_against_hand_computed_values():
    captions = _unit([1.0, 0.0], [0.0, 1.0])
    paraphrases = _unit([1.0, 1.0], [0.0, 1.0])  # cos 0.707 with caption 0; 1.0 with caption 1
    negatives = _unit([1.0, 0.0], [-1.0, 0.0], [1.0, 0.0])  # cos 1, -1 (caption 0); 0 (caption 1)
    para_owner, neg_owner = torch.tensor([0, 1]), torch.tensor([0, 0, 1])
    out = ParaphraseRankLoss()(captions, paraphrases, para_owner, negatives, neg_owner, 10.0)
    c = math.sqrt(0.5)
    margins = [1.0 - c, -1.0 - c, 0.0 - 1.0]  # negative minus paraphrase, per couple
    expected = sum(_softplus(10.0 * m) for m in margins) / 3
    assert out["paraphrase_loss"].item() == pytest.approx(expected, rel=1e-9)
    assert out["paraphrase_acc"].item() == pytest.approx(2 / 3)  # caption 0 prefers its negative
    assert "paraphrase_token_acc" not in out


def test_token_term_adds_the_same_ranking_on_the_token_score():
    g = torch.Generator().manual_seed(0)

    def words(n: int, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = F.normalize(torch.randn(n, t, 4, generator=g, dtype=torch.float64), dim=-1)
        valid = torch.ones(n, t, dtype=torch.bool)
        valid[0, -1] = False
        return tokens, valid

    captions = _unit([1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0])
    para, para_owner = _unit([1.0, 1.0, 0.0, 0.0]), torch.tensor([1])
    negs, neg_owner = _unit([0.0, 0.0, 1.0, 0.0], [0.0, 1.0, 1.0, 0.0]), torch.tensor([1, 1])
    cap_tok, para_tok, neg_tok = words(2, 5), words(1, 4), words(2, 6)
    loss = ParaphraseRankLoss()
    pooled = loss(captions, para, para_owner, negs, neg_owner, 5.0)
    both = loss(
        captions,
        para,
        para_owner,
        negs,
        neg_owner,
        5.0,
        caption_tokens=cap_tok,
        paraphrase_tokens=para_tok,
        negative_tokens=neg_tok,
    )
    s_para = paired_token_similarity(*para_tok, cap_tok[0][[1]], cap_tok[1][[1]])  # (1,)
    s_neg = paired_token_similarity(*neg_tok, cap_tok[0][[1, 1]], cap_tok[1][[1, 1]])  # (2,)
    token_term = F.softplus(5.0 * (s_neg - s_para)).mean()
    assert both["paraphrase_loss"].item() == pytest.approx(
        pooled["paraphrase_loss"].item() + token_term.item(), rel=1e-9
    )
    assert both["paraphrase_token_acc"].item() == pytest.approx((s_neg < s_para).double().mean())


def test_no_couple_gives_a_zero_loss_that_still_reaches_the_graph():
    captions = torch.randn(2, 3, requires_grad=True)
    para, negs = torch.randn(1, 3, requires_grad=True), torch.randn(1, 3, requires_grad=True)
    out = ParaphraseRankLoss()(captions, para, torch.tensor([0]), negs, torch.tensor([1]), 10.0)
    assert out["paraphrase_loss"].item() == 0.0 and set(out) == {"paraphrase_loss"}
    out["paraphrase_loss"].backward()  # no error: every input is part of the graph
    assert captions.grad is not None and not captions.grad.any()


def test_objective_ranks_the_models_encodings_of_each_group(batch_factory, monkeypatch):
    """The loss receives the model's own text encodings of the captions, the paraphrases and
    the hard negatives (each group encoded alone gives the same), with their owners."""
    torch.manual_seed(0)
    model = create_model("unimo-tiny", visual_feat_dim=FEAT_DIM).eval()
    objective = UnimoPretraining(
        model, mlm=False, seq2seq=False, mrp=False, token_alignment=True, paraphrase=True
    )
    batch = batch_factory(groups=("pairs", "pos", "neg", "para"))
    seen = {}
    real = objective.paraphrase_loss.forward

    def record(captions, paraphrases, para_owner, negatives, neg_owner, scale, **tokens):
        seen.update(captions=captions, paraphrases=paraphrases, negatives=negatives, **tokens)
        seen.update(para_owner=para_owner, neg_owner=neg_owner)
        return real(captions, paraphrases, para_owner, negatives, neg_owner, scale, **tokens)

    monkeypatch.setattr(objective.paraphrase_loss, "forward", record)
    with torch.no_grad():
        out = objective(batch)
    assert {"paraphrase_loss", "paraphrase_acc", "paraphrase_token_acc"} <= set(out)

    def encoded(group: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            return model.encode_text_tokens(
                batch[f"{group}_input_ids"], batch[f"{group}_attention_mask"]
            )

    for group, key in (
        ("text", "captions"),
        ("para_text", "paraphrases"),
        ("neg_text", "negatives"),
    ):
        pooled, tokens, valid = encoded(group)
        torch.testing.assert_close(seen[key], pooled, atol=1e-5, rtol=1e-4)
        name = {"captions": "caption", "paraphrases": "paraphrase", "negatives": "negative"}[key]
        got_tokens, got_valid = seen[f"{name}_tokens"]
        t = tokens.shape[1]
        torch.testing.assert_close(got_tokens[:, :t], tokens, atol=1e-5, rtol=1e-4)
        assert torch.equal(got_valid[:, :t], valid) and not got_valid[:, t:].any()
    assert torch.equal(seen["para_owner"], batch["para_text_owner"])
    assert torch.equal(seen["neg_owner"], batch["neg_text_owner"])
    without = UnimoPretraining(model, mlm=False, seq2seq=False, mrp=False)
    with torch.no_grad():
        plain = without(batch)
    assert "paraphrase_loss" not in plain
    assert plain["cmcl_loss"].item() == pytest.approx(out["cmcl_loss"].item(), rel=1e-5)


def test_paraphrase_ranking_needs_cmcl_and_hard_negatives():
    model = create_model("unimo-tiny", visual_feat_dim=FEAT_DIM)
    with pytest.raises(ValueError, match="needs cmcl=True and use_hard_negatives=True"):
        UnimoPretraining(model, cmcl=False, paraphrase=True)
    with pytest.raises(ValueError, match="needs cmcl=True and use_hard_negatives=True"):
        UnimoPretraining(model, use_hard_negatives=False, paraphrase=True)


def test_paraphrase_ranking_learns_a_fixed_batch(batch_factory, fit_factory):
    """Optimising the paraphrase loss alone puts every paraphrase above its caption's
    negatives: the text encoder can be taught what image-text contrast leaves tied."""
    torch.manual_seed(0)
    model = create_model("unimo-tiny", visual_feat_dim=FEAT_DIM).train()
    objective = UnimoPretraining(model, mlm=False, seq2seq=False, mrp=False, paraphrase=True)
    batch = batch_factory(groups=("pairs", "neg", "para"))
    first, last = fit_factory(objective, batch, "paraphrase_loss", steps=60)
    assert last["paraphrase_loss"] < first["paraphrase_loss"] / 3
    assert last["paraphrase_acc"] == 1.0
