"""Mirrored layouts: boxes and spatial words, and how the training data applies them."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from unimo_kit.train import load_config
from unimo_kit.train.data import UnimoTrainData
from unimo_kit.train.mirror import (
    HORIZONTAL_WORDS,
    VERTICAL_WORDS,
    mirror_boxes,
    mirror_text,
    mirror_words,
)


def test_mirror_boxes_by_hand():
    boxes = np.array([[0.1, 0.2, 0.3, 0.6, 0.08], [0.0, 0.0, 1.0, 1.0, 1.0]], dtype=np.float32)
    h = mirror_boxes(boxes, horizontal=True, vertical=False)
    np.testing.assert_allclose(h, [[0.7, 0.2, 0.9, 0.6, 0.08], [0.0, 0.0, 1.0, 1.0, 1.0]])
    v = mirror_boxes(boxes, horizontal=False, vertical=True)
    np.testing.assert_allclose(v, [[0.1, 0.4, 0.3, 0.8, 0.08], [0.0, 0.0, 1.0, 1.0, 1.0]])
    both = mirror_boxes(boxes, horizontal=True, vertical=True)
    np.testing.assert_allclose(both, [[0.7, 0.4, 0.9, 0.8, 0.08], [0.0, 0.0, 1.0, 1.0, 1.0]])
    assert both.dtype == boxes.dtype
    np.testing.assert_allclose(boxes[0], [0.1, 0.2, 0.3, 0.6, 0.08])  # input untouched
    again = mirror_boxes(both, horizontal=True, vertical=True)
    np.testing.assert_allclose(again, boxes, atol=1e-7)  # a mirror twice is the identity
    four = mirror_boxes(boxes[:, :4], horizontal=True, vertical=False)  # no area column
    np.testing.assert_allclose(four, h[:, :4])


def test_mirror_text_exchanges_whole_words_at_once():
    words = mirror_words(horizontal=True, vertical=False)
    assert words == HORIZONTAL_WORDS
    assert (
        mirror_text("a red square to the left of a blue circle, right of a star", words)
        == "a red square to the right of a blue circle, left of a star"
    )
    assert mirror_text("Left of it; LEFT", words) == "Right of it; RIGHT"
    assert mirror_text("leftover bright", words) == "leftover bright"  # whole words only
    vertical = mirror_words(horizontal=False, vertical=True)
    assert vertical == VERTICAL_WORDS
    assert mirror_text("a star under a heart above a circle", vertical) == (
        "a star above a heart below a circle"
    )
    both = mirror_words(horizontal=True, vertical=True)
    assert mirror_text("left of and below", both) == "right of and above"
    assert mirror_text("left", {}) == "left"


@pytest.fixture
def spatial_world(world, tmp_path):
    """The test world with a relation in every caption and its negatives."""
    root = tmp_path / "world"
    shutil.copytree(world, root)
    for name, edit in (("pairs.jsonl", "captions"), ("rewrites.jsonl", "negatives")):
        records = [json.loads(line) for line in (root / name).read_text().splitlines()]
        for r in records:
            if edit == "captions":
                r["captions"] = [f"{c} to the left of a star" for c in r["captions"]]
            else:
                r["negatives"] = [
                    {**n, "text": f"{n['text']} to the right of a star"} for n in r["negatives"]
                ] + [{"type": "replace-att", "edits": [], "text": "a heart under a star"}]
                r["positives"] = [
                    {**q, "text": f"{q['text']} to the left of a star"} for q in r["positives"]
                ]
        (root / name).write_text("".join(json.dumps(r) + "\n" for r in records))
    return root


def _item(overrides, tokenizer, **mirror):
    config = load_config("tiny", {**overrides, "neg_texts_per_pair": 8, **mirror}).resolved()
    return UnimoTrainData(config, tokenizer)._pair_item(3, 0, 0)


def test_mirrored_pair_moves_its_boxes_and_exchanges_its_words(
    tiny_overrides, tokenizer, spatial_world
):
    overrides = {**tiny_overrides, "data_dir": str(spatial_world)}
    plain = _item(overrides, tokenizer)
    assert "left" in plain["text"]
    assert any("right" in t for t in plain["neg_texts"])

    h = _item(overrides, tokenizer, mirror_horizontal=1.0)
    words = mirror_words(horizontal=True, vertical=False)
    assert h["text"] == mirror_text(plain["text"], words) and "right" in h["text"]
    assert h["neg_texts"] == [mirror_text(t, words) for t in plain["neg_texts"]]
    assert h["pos_texts"] == [mirror_text(t, words) for t in plain["pos_texts"]]
    with_para = {**overrides, "paraphrase": True}
    para, para_h = _item(with_para, tokenizer), _item(with_para, tokenizer, mirror_horizontal=1.0)
    assert "left" in para["para_texts"][0]
    assert para_h["para_texts"] == [mirror_text(t, words) for t in para["para_texts"]]
    np.testing.assert_allclose(
        h["visual"]["boxes"],
        mirror_boxes(plain["visual"]["boxes"], horizontal=True, vertical=False),
    )
    np.testing.assert_array_equal(h["visual"]["feats"], plain["visual"]["feats"])

    v = _item(overrides, tokenizer, mirror_vertical=1.0)
    assert v["text"] == plain["text"]  # no vertical words in the caption
    assert "a heart above a star" in v["neg_texts"]
    np.testing.assert_allclose(
        v["visual"]["boxes"],
        mirror_boxes(plain["visual"]["boxes"], horizontal=False, vertical=True),
    )

    off = _item(overrides, tokenizer, mirror_horizontal=0.0, mirror_vertical=0.0)
    assert off["text"] == plain["text"] and off["neg_texts"] == plain["neg_texts"]
    np.testing.assert_array_equal(off["visual"]["boxes"], plain["visual"]["boxes"])


def test_a_negative_that_mirrors_into_the_caption_is_dropped(
    tiny_overrides, tokenizer, spatial_world
):
    """ "under" and "below" both become "above" in a top-bottom mirror: a negative that
    becomes the caption is no negative."""
    pairs = spatial_world / "pairs.jsonl"
    records = [json.loads(line) for line in pairs.read_text().splitlines()]
    for r in records:
        r["captions"] = ["a heart below a star"] * len(r["captions"])
    pairs.write_text("".join(json.dumps(r) + "\n" for r in records))
    overrides = {**tiny_overrides, "data_dir": str(spatial_world)}
    plain = _item(overrides, tokenizer)
    assert "a heart under a star" in plain["neg_texts"]
    v = _item(overrides, tokenizer, mirror_vertical=1.0)
    assert v["text"] == "a heart above a star"
    assert "a heart above a star" not in v["neg_texts"]
    assert len(v["neg_texts"]) == len(plain["neg_texts"]) - 1


def test_mirrored_batches_collate_and_probabilities_are_checked(tiny_overrides, tokenizer):
    config = load_config(
        "tiny", {**tiny_overrides, "mirror_horizontal": 0.5, "mirror_vertical": 0.5}
    )
    data = UnimoTrainData(config.resolved(), tokenizer)
    batch = data[data.make_sampler().next_spec()]
    assert batch["visual_boxes"].shape[:2] == batch["visual_feats"].shape[:2]
    with pytest.raises(ValueError, match="mirror_vertical is a probability"):
        load_config("tiny", {**tiny_overrides, "mirror_vertical": 1.5})
