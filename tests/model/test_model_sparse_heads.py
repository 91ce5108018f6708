"""The fused word head against the dense computation, and the objectives table's aliases."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from unimo_kit.model.losses import linear_cross_entropy


@pytest.mark.parametrize("block", [None, 64, 300, 1])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_linear_cross_entropy_matches_dense_cross_entropy(smoothing, block):
    """Whole vocabulary or blocks of it (64: an uneven last block of 44; 1: one column each)."""
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(40, 16, generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.randn(300, 16, generator=gen, dtype=torch.float64, requires_grad=True)
    b = torch.randn(300, generator=gen, dtype=torch.float64, requires_grad=True)
    y = torch.randint(300, (40,), generator=gen)
    g = torch.rand(40, generator=gen, dtype=torch.float64)  # uneven row weights
    loss, correct = linear_cross_entropy(h, w, b, y, smoothing, block=block)
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


def _dense_word_losses(objective, batch, smoothing):
    """MLM and seq2seq as before sparse prediction: word logits (B, T, V) at every position of
    every pass, then the dense losses (:class:`MLMLoss`, :class:`Seq2SeqLoss`) with the
    unscored positions labelled -100. Draws the same random numbers, in the same order, as
    ``objective`` on a pairs + text-only batch with CMCL and MRP off."""
    model = objective.model
    mlm_logits, mlm_labels, s2s_logits, s2s_labels = [], [], [], []

    def mlm(ids, amask, **visual):
        masked, positions, labels = objective._mask_text(ids, amask)
        h = model(input_ids=masked, attention_mask=amask, **visual)["text_hidden"]  # (B, T, D)
        full = torch.full_like(ids, -100).scatter(1, positions, labels)  # (B, T)
        mlm_logits.append(model.lm_logits(h).flatten(0, 1))  # (B·T, V)
        mlm_labels.append(full.flatten())

    def seq2seq(ids, amask, source, **visual):
        h = model(
            input_ids=ids, attention_mask=amask, mode="seq2seq", text_prefix_length=source, **visual
        )["text_hidden"]
        pos = torch.arange(1, ids.shape[1])
        target = amask[:, 1:].bool() & (pos[None] >= source[:, None])
        s2s_logits.append(model.lm_logits(h[:, :-1]).flatten(0, 1))  # (B·(T-1), V)
        s2s_labels.append(ids[:, 1:].masked_fill(~target, -100).flatten())

    ids, amask = batch["text_input_ids"], batch["text_attention_mask"]
    visual = {f"visual_{k}": batch[f"visual_{k}"] for k in ("feats", "boxes", "mask")}
    mlm(ids, amask, **visual)
    seq2seq(ids, amask, torch.ones(ids.shape[0], dtype=torch.long), **visual)
    ids, amask = batch["textonly_input_ids"], batch["textonly_attention_mask"]
    mlm(ids, amask)
    n = amask.sum(1)
    lo, hi = objective.text_seq2seq_source
    source = ((lo + (hi - lo) * torch.rand(n.shape)) * n).long().clamp(min=1)
    seq2seq(ids, amask, torch.minimum(source, (n - 2).clamp(min=1)))
    out = {}
    for name, logits, labels, eps in [
        ("mlm", mlm_logits, mlm_labels, 0.0),
        ("seq2seq", s2s_logits, s2s_labels, smoothing),
    ]:
        logits, labels = torch.cat(logits), torch.cat(labels)  # (n, V), (n,)
        scored = labels != -100
        out[f"{name}_loss"] = F.cross_entropy(logits, labels, label_smoothing=eps)
        out[f"{name}_acc"] = (logits.argmax(-1) == labels)[scored].double().mean()
        out[f"{name}_tokens"] = scored.sum()
    return out


def _to_corpus_vocab(model, batch):
    """The model cut to a corpus vocabulary (the special pieces, the batch's and some more),
    and the batch in its ids."""
    from unimo_kit.model.vocabulary import restrict_vocabulary

    used = {0, 100, 101, 102, 103, *range(2000, 2100)}
    for key, value in batch.items():
        if key.endswith("input_ids"):
            used.update(value.unique().tolist())
    keep = sorted(used)
    restrict_vocabulary(model, keep, "corpus-tokenizer")
    new_id = torch.zeros(max(keep) + 1, dtype=torch.long)
    new_id[keep] = torch.arange(len(keep))
    return {k: new_id[v] if k.endswith("input_ids") else v for k, v in batch.items()}


@pytest.mark.parametrize("vocab", ["full", "corpus"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_sparse_word_heads_equal_dense_heads_on_the_scored_positions(
    batch_factory, smoothing, vocab
):
    """The objective's MLM and seq2seq losses, accuracies, token counts and every gradient
    (the word embeddings' sparse lookup gradients included) equal those of word logits over
    every position with the unscored ones ignored; with the full vocabulary and with a corpus
    vocabulary (new ids, special ids moved)."""
    from unimo_kit.model import UnimoPretraining, create_model

    torch.manual_seed(0)
    model = create_model("unimo-tiny", visual_feat_dim=16).double().eval()
    batch = batch_factory(groups=("pairs", "text"))
    batch = {k: v.double() if v.is_floating_point() else v for k, v in batch.items()}
    if vocab == "corpus":
        batch = _to_corpus_vocab(model, batch)
        assert model.config.vocab_size < 3000 and model.config.cls_token_id != 101
    objective = UnimoPretraining(model, cmcl=False, mrp=False, label_smoothing=smoothing)
    params = [p for p in objective.parameters() if p.requires_grad]

    torch.manual_seed(5)
    sparse = objective(batch)
    (sparse["mlm_loss"] + sparse["seq2seq_loss"]).backward()
    assert model.embeddings.word_embeddings.weight.grad is not None
    # the step's one view of the word table is gone with the step; lookups are dense again
    assert model.embeddings.word_table is None
    assert not model.embeddings.word_embeddings.sparse
    has_grad = [p.grad is not None for p in params]  # not the region head, for one
    used = [p for p, has in zip(params, has_grad, strict=True) if has]
    sparse_grads = [p.grad.to_dense() if p.grad.is_sparse else p.grad for p in used]
    objective.zero_grad(set_to_none=True)

    torch.manual_seed(5)
    dense = _dense_word_losses(objective, batch, smoothing)
    dense_grads = torch.autograd.grad(
        dense["mlm_loss"] + dense["seq2seq_loss"], params, allow_unused=True
    )
    assert [g is not None for g in dense_grads] == has_grad

    for key in ("mlm_loss", "seq2seq_loss"):
        torch.testing.assert_close(sparse[key].double(), dense[key].double(), rtol=1e-9, atol=1e-12)
    for key in ("mlm_acc", "seq2seq_acc"):  # a float32 share of the scored tokens
        torch.testing.assert_close(sparse[key].double(), dense[key].double(), rtol=1e-6, atol=0)
    for key in ("mlm_tokens", "seq2seq_tokens"):
        assert int(sparse[key]) == int(dense[key]) > 0, key
    dense_grads = [g for g in dense_grads if g is not None]
    for p, got, want in zip(used, sparse_grads, dense_grads, strict=True):
        torch.testing.assert_close(
            got, want, rtol=1e-8, atol=1e-9, msg=lambda m, p=p: f"{p.shape}: {m}"
        )
