"""Box relation bias: pairwise geometry by hand, the attention mask it builds (regions only,
-inf kept), invariance to moving the whole layout, and checkpoints that keep it."""

from __future__ import annotations

import math

import torch

from unimo_kit.model import create_model, load_checkpoint, save_checkpoint
from unimo_kit.model.geometry import BoxRelationBias, pairwise_geometry

FEAT_DIM = 16


def test_pairwise_geometry_by_hand():
    boxes = torch.tensor([[[0.0, 0.0, 0.2, 0.4, 0.08], [0.5, 0.1, 0.9, 0.3, 0.08]]])
    g = pairwise_geometry(boxes)
    assert g.shape == (1, 2, 2, 4)
    # query 0 (centre 0.1, 0.2; 0.2 x 0.4), key 1 (centre 0.7, 0.2; 0.4 x 0.2)
    want = [0.6, 0.0, math.log(2.0), math.log(0.5)]
    torch.testing.assert_close(g[0, 0, 1], torch.tensor(want))
    torch.testing.assert_close(g[0, 1, 0], -torch.tensor(want))  # the other way round
    torch.testing.assert_close(g[0, 0, 0], torch.zeros(4))


def test_bias_depends_on_relative_geometry_only():
    torch.manual_seed(0)
    bias = BoxRelationBias(num_heads=3)
    boxes = torch.rand(2, 5, 2) * 0.5
    boxes = torch.cat([boxes, boxes + 0.3, torch.zeros(2, 5, 1)], dim=-1)  # x1 y1 x2 y2 area
    moved = boxes + torch.tensor([0.1, -0.05, 0.1, -0.05, 0.0])
    out = bias(boxes)
    assert out.shape == (2, 3, 5, 5)
    torch.testing.assert_close(bias(moved), out, atol=1e-5, rtol=1e-5)
    assert out.std() > 1e-2  # not BERT's 0.02 init: it matters from the first step


def test_attention_mask_puts_the_bias_on_region_pairs_only(visual_factory, text_factory):
    g = torch.Generator().manual_seed(0)
    feats, boxes, vmask = visual_factory(2, g)
    ids, amask = text_factory(2, 6, g)
    plain = create_model("unimo-tiny", visual_feat_dim=FEAT_DIM)
    rel = create_model("unimo-tiny", visual_feat_dim=FEAT_DIM, box_relation_bias=True)
    _, valid, nv = rel.embed(ids, amask, feats, boxes, vmask)
    assert plain.attention_mask(valid, nv, boxes).dtype == torch.bool  # unchanged without it
    assert rel.attention_mask(valid, nv, None).dtype == torch.bool  # no boxes: no bias
    mask = rel.attention_mask(valid, nv, boxes)
    heads, length = rel.config.num_attention_heads, valid.shape[1]
    assert mask.shape == (2, heads, length, length) and mask.dtype == torch.float32
    allowed = valid[:, None, None, :].expand_as(mask)
    assert torch.isneginf(mask[~allowed]).all() and torch.isfinite(mask[allowed]).all()
    bias = rel.box_relation(boxes)  # (B, H, N, N)
    regions = slice(1, nv)
    keep = allowed[:, :, regions, regions]
    torch.testing.assert_close(mask[:, :, regions, regions][keep], bias[keep])
    outside = torch.ones(length, length, dtype=torch.bool)
    outside[regions, regions] = False
    assert (mask[:, :, outside][allowed[:, :, outside]] == 0).all()  # [IMG] and text: no bias
    seq = rel.attention_mask(valid, nv, boxes, torch.full((2,), nv))  # seq2seq: causal text
    assert torch.isneginf(seq[:, :, nv, nv + 1]).all()


def test_relation_bias_carries_the_layout_and_survives_checkpoints(tmp_path, visual_factory):
    """With the linear box term zeroed, a mirrored layout changes the region states only
    through the relation bias; the bias and its config come back from a checkpoint."""
    g = torch.Generator().manual_seed(0)
    feats, boxes, vmask = visual_factory(2, g)
    flipped = boxes.clone()
    flipped[..., [0, 2]] = 1 - boxes[..., [2, 0]]  # mirror left-right
    states = {}
    for relation in (False, True):
        torch.manual_seed(0)
        model = create_model(
            "unimo-tiny", visual_feat_dim=FEAT_DIM, box_relation_bias=relation
        ).eval()
        with torch.no_grad():
            model.visual_embeddings.box_proj.weight.zero_()  # no position in the embeddings
        a, b = (
            model(visual_feats=feats, visual_boxes=x, visual_mask=vmask)["visual_hidden"]
            for x in (boxes, flipped)
        )
        states[relation] = (a - b).abs().max().item()
    assert states[False] < 1e-6  # the contents alone: a mirror image looks the same
    assert states[True] > 1e-3  # the relation bias sees which region is on which side
    save_checkpoint(model, tmp_path / "rel")
    loaded = load_checkpoint(tmp_path / "rel")
    assert loaded.config.box_relation_bias
    torch.testing.assert_close(
        loaded(visual_feats=feats, visual_boxes=boxes, visual_mask=vmask)["visual_hidden"], a
    )
