"""Greedy and beam-search captioning: beam 1 = greedy, scores agree with teacher forcing
(cached decoding = the seq2seq mask), beam search scores at least as high as greedy."""

from __future__ import annotations

import pytest
import torch

from unimo_kit.model import create_model
from unimo_kit.model.generation import generate, score_sequences

SEP = 102


@pytest.fixture(params=[False, True], ids=["linear-boxes", "box-relations"])
def peaky_model(request):
    """A tiny random model whose next-word distribution depends strongly on the context, over
    12 words and [SEP] (so greedy and beam search can disagree); with and without the box
    relation bias (the cached prefix must carry it)."""
    torch.manual_seed(1)
    model = create_model(
        "unimo-tiny", visual_feat_dim=16, initializer_range=0.5, box_relation_bias=request.param
    )
    with torch.no_grad():
        model.lm_head.bias.fill_(-30.0)
        model.lm_head.bias[1000:1012] = 0.0
        model.lm_head.bias[SEP] = 0.0
    return model


def _ended(seqs, max_length):
    return [len(s) < max_length for s in seqs]


def test_beam_one_is_greedy(peaky_model):
    feats = torch.randn(5, 4, 16, generator=torch.Generator().manual_seed(0))
    greedy = generate(peaky_model, feats, max_length=6, return_scores=True)
    beam1 = peaky_model.generate(feats, max_length=6, num_beams=1, return_scores=True)
    assert greedy == beam1


def test_scores_match_teacher_forcing_and_beam_beats_greedy(peaky_model):
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(6, 4, 16, generator=g)
    boxes = torch.rand(6, 4, 5, generator=g)
    vmask = torch.ones(6, 4, dtype=torch.long)
    vmask[2, 1:] = 0
    greedy, g_scores = generate(peaky_model, feats, boxes, vmask, max_length=6, return_scores=True)
    beam, b_scores = generate(
        peaky_model, feats, boxes, vmask, max_length=6, num_beams=4, return_scores=True
    )
    for seqs, scores in ((greedy, g_scores), (beam, b_scores)):
        assert all(len(s) <= 6 and SEP not in s for s in seqs)
        forced = score_sequences(peaky_model, feats, boxes, vmask, seqs, _ended(seqs, 6))
        torch.testing.assert_close(forced, torch.tensor(scores), rtol=1e-5, atol=1e-4)
    assert all(b >= gs - 1e-4 for b, gs in zip(b_scores, g_scores, strict=True))
    assert any(b > gs + 1e-3 for b, gs in zip(b_scores, g_scores, strict=True))


def test_batched_equals_one_by_one(peaky_model):
    g = torch.Generator().manual_seed(3)
    feats = torch.randn(3, 4, 16, generator=g)
    vmask = torch.ones(3, 4, dtype=torch.long)
    vmask[0, 2:] = 0
    for beams in (1, 3):
        batched = generate(peaky_model, feats, None, vmask, max_length=5, num_beams=beams)
        single = [
            generate(
                peaky_model,
                feats[i : i + 1, : int(vmask[i].sum())],
                max_length=5,
                num_beams=beams,
            )[0]
            for i in range(3)
        ]
        assert batched == single


def test_min_length_and_mode_restored(peaky_model):
    peaky_model.train()
    feats = torch.randn(4, 4, 16, generator=torch.Generator().manual_seed(5))
    for beams in (1, 2):
        out = generate(peaky_model, feats, max_length=7, min_length=4, num_beams=beams)
        assert all(len(s) >= 4 for s in out)
    assert peaky_model.training
    with pytest.raises(ValueError, match="num_beams"):
        generate(peaky_model, feats, num_beams=0)
    with pytest.raises(ValueError, match="max_position_embeddings"):
        generate(peaky_model, feats, max_length=500)
