"""UniLM attention masks: explicit values, and what the model can see under them."""

from __future__ import annotations

import torch

from unimo_kit.model.masks import bidirectional_mask, seq2seq_mask


def test_seq2seq_mask_values():
    valid = torch.tensor([[True, True, False, True, True, True, False]])
    prefix = torch.tensor([3])  # positions 0..2 are the source (2 is padding)
    got = seq2seq_mask(valid, prefix)[0, 0]
    expected = torch.zeros(7, 7, dtype=torch.bool)
    for i in range(7):
        for j in range(7):
            if valid[0, j] and (j < 3 or j <= i):
                expected[i, j] = True
        expected[i, i] = True
    # a source query never sees the target
    assert not got[:3, 3:].any()
    assert torch.equal(got, expected)


def test_bidirectional_is_seq2seq_with_full_prefix():
    valid = torch.tensor([[True, True, True, False], [True, False, True, True]])
    full = seq2seq_mask(valid, torch.tensor([4, 4]))
    bi = bidirectional_mask(valid).expand_as(full)
    off_diag = ~torch.eye(4, dtype=torch.bool)
    assert torch.equal(full[..., off_diag], bi[..., off_diag])


def _pair(model, ids, amask, feats, boxes, vmask, mode, prefix=None):
    return model(
        input_ids=ids,
        attention_mask=amask,
        visual_feats=feats,
        visual_boxes=boxes,
        visual_mask=vmask,
        mode=mode,
        text_prefix_length=prefix,
    )["hidden"]


def test_seq2seq_later_tokens_do_not_change_earlier_outputs(
    tiny_model, text_factory, visual_factory
):
    g = torch.Generator().manual_seed(1)
    ids, amask = text_factory(2, 10, g, min_len=10)
    feats, boxes, vmask = visual_factory(2, g)
    n_vis = 1 + feats.shape[1]
    changed = ids.clone()
    changed[:, 6] = 2222  # change text position 6
    before = _pair(tiny_model, ids, amask, feats, boxes, vmask, "seq2seq")
    after = _pair(tiny_model, changed, amask, feats, boxes, vmask, "seq2seq")
    cut = n_vis + 6
    torch.testing.assert_close(before[:, :cut], after[:, :cut], rtol=0, atol=1e-6)
    assert (before[:, cut:] - after[:, cut:]).abs().amax() > 1e-3  # later positions see it
    # bidirectional: every position sees it, visual tokens included
    before = _pair(tiny_model, ids, amask, feats, boxes, vmask, "bidirectional")
    after = _pair(tiny_model, changed, amask, feats, boxes, vmask, "bidirectional")
    assert (before[:, :n_vis] - after[:, :n_vis]).abs().amax(dim=-1).min() > 1e-4


def test_text_prefix_is_bidirectional_target_is_causal(tiny_model, text_factory):
    g = torch.Generator().manual_seed(2)
    ids, amask = text_factory(1, 10, g, min_len=10)
    prefix = torch.tensor([4])
    # changing a source token changes every earlier source position
    changed = ids.clone()
    changed[0, 3] = 2500
    a = tiny_model(input_ids=ids, attention_mask=amask, mode="seq2seq", text_prefix_length=prefix)
    b = tiny_model(
        input_ids=changed, attention_mask=amask, mode="seq2seq", text_prefix_length=prefix
    )
    assert (a["hidden"][0, :3] - b["hidden"][0, :3]).abs().amax(-1).min() > 1e-4
    # changing a target token leaves the source and the earlier targets alone
    changed = ids.clone()
    changed[0, 7] = 2500
    b = tiny_model(
        input_ids=changed, attention_mask=amask, mode="seq2seq", text_prefix_length=prefix
    )
    torch.testing.assert_close(a["hidden"][0, :7], b["hidden"][0, :7], rtol=0, atol=1e-6)


def test_padding_does_not_change_valid_outputs(tiny_model, text_factory, visual_factory):
    g = torch.Generator().manual_seed(3)
    ids, amask = text_factory(2, 8, g)
    feats, boxes, vmask = visual_factory(2, g)
    for mode in ("bidirectional", "seq2seq"):
        short = _pair(tiny_model, ids, amask, feats, boxes, vmask, mode)
        pad_ids = torch.cat([ids, torch.zeros(2, 5, dtype=torch.long)], 1)
        pad_mask = torch.cat([amask, torch.zeros(2, 5, dtype=torch.long)], 1)
        long = _pair(tiny_model, pad_ids, pad_mask, feats, boxes, vmask, mode)
        n_vis = 1 + feats.shape[1]
        valid = torch.cat([torch.ones(2, 1), vmask, amask], 1).bool()
        assert torch.isfinite(long).all()
        torch.testing.assert_close(short[valid], long[:, : n_vis + 8][valid], rtol=0, atol=1e-5)


def test_padded_regions_are_ignored(tiny_model, visual_factory):
    g = torch.Generator().manual_seed(4)
    feats, boxes, vmask = visual_factory(2, g)
    noisy = feats.clone()
    noisy[vmask == 0] = 100.0  # garbage in padded regions
    a = tiny_model.encode_image(feats, boxes, vmask)
    b = tiny_model.encode_image(noisy, boxes, vmask)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
