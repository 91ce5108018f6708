"""A tiny random open_clip model config and a small pair set with rewrites, built in the test."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("open_clip")

#: vision width 32, 1 layer, 32 px; text width 32, 1 layer, context 16 (no weights anywhere)
TINY_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
COLORS = {
    "red": (220, 30, 30),
    "blue": (30, 30, 220),
    "green": (30, 200, 30),
    "yellow": (230, 220, 0),
}


@pytest.fixture
def tiny_clip(tmp_path):
    """The path of the tiny model config JSON (its stem names the architecture)."""
    path = tmp_path / "unimo-test-clip.json"
    path.write_text(json.dumps(TINY_CLIP))
    return path


@pytest.fixture
def pair_data(tmp_path):
    """16 pairs (two colours side by side), rewrites with 0-2 swap/replace negatives each
    (some pairs have fewer than K = 2 and one has none)."""
    from PIL import Image

    (tmp_path / "img").mkdir()
    names = list(COLORS)
    pairs, rewrites = [], []
    for i in range(16):
        left, right = names[i % 4], names[(i // 4) % 4]
        if left == right:
            right = names[(i + 1) % 4]
        image = Image.new("RGB", (32, 32), (200, 200, 200))
        image.paste(COLORS[left], (2, 8, 14, 24))
        image.paste(COLORS[right], (18, 8, 30, 24))
        image.save(tmp_path / f"img/{i}.png")
        caption = f"a {left} square left of a {right} square"
        pairs.append({"id": f"p{i}", "image": f"img/{i}.png", "captions": [caption]})
        negatives = [
            {"type": "swap-att", "text": f"a {right} square left of a {left} square"},
            {
                "type": "replace-att",
                "text": f"a {names[(i + 2) % 4]} square left of a {right} square",
            },
        ][: i % 3]
        rewrites.append({"id": f"p{i}#0", "negatives": negatives, "positives": []})
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    (tmp_path / "rewrites.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rewrites))
    return tmp_path / "pairs.jsonl", tmp_path / "rewrites.jsonl"
