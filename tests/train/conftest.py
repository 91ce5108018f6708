"""A tiny training world made in the test: pairs, texts, images, features, rewrites, retrieved."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

COLOURS = ["red", "blue", "green", "yellow"]
SHAPES = ["circle", "square", "star", "heart"]


def _write(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def make_world(root: Path, n_pairs: int = 24, dim: int = 16, seed: int = 0) -> Path:
    """Pairs whose features encode their caption (so contrastive learning can succeed)."""
    from unimo_kit.features import FeatureStoreWriter

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    pairs, rewrites, retrieved, texts, images = [], [], [], [], []
    codes = rng.normal(size=(len(COLOURS), len(SHAPES), dim)).astype(np.float32)
    with FeatureStoreWriter(
        root / "features", {"extractor": "test", "dim": dim}, chunk_size=8
    ) as w:
        for i in range(n_pairs):
            c, s = i % len(COLOURS), (i // len(COLOURS)) % len(SHAPES)
            pid = f"p{i:03d}"
            caption = f"a {COLOURS[c]} {SHAPES[s]}"
            split = "val" if i >= n_pairs - 6 else "train"
            n_tokens = 3 + i % 3  # variable token counts
            feats = codes[c, s] + 0.1 * rng.normal(size=(n_tokens, dim)).astype(np.float32)
            w.add(pid, feats, rng.uniform(size=(n_tokens, 5)).astype(np.float32))
            pairs.append(
                {
                    "id": pid,
                    "image": f"img/{pid}.png",
                    "split": split,
                    "captions": [caption, f"there is a {COLOURS[c]} {SHAPES[s]}"],
                }
            )
            for ci in range(2):
                rewrites.append(
                    {
                        "id": f"{pid}#{ci}",
                        "pair_id": pid,
                        "caption_index": ci,
                        "caption": caption,
                        "scene_graph": "",
                        "positives": [
                            {"type": "there-is", "text": f"one {COLOURS[c]} {SHAPES[s]}"}
                        ],
                        "negatives": [
                            {
                                "type": "replace-att",
                                "edits": [],
                                "text": f"a {COLOURS[(c + 1) % 4]} {SHAPES[s]}",
                            }
                        ],
                        "sentence_negatives": [],
                    }
                )
            retrieved.append(
                {
                    "id": pid,
                    "texts": [{"id": "t0", "text": f"{SHAPES[s]}", "score": 1}],
                    "images": [{"id": f"i{i % 4:03d}", "image": "x.png", "score": 1}],
                    "negatives": [],
                }
            )
        for j in range(8):
            iid = f"i{j:03d}"
            w.add(
                iid,
                rng.normal(size=(4, dim)).astype(np.float32),
                rng.uniform(size=(4, 5)).astype(np.float32),
            )
            images.append({"id": iid, "image": f"img/{iid}.png"})
    for j in range(12):
        texts.append({"id": f"t{j:03d}", "text": f"the {COLOURS[j % 4]} {SHAPES[j % 3]} is here"})
    _write(root / "pairs.jsonl", pairs)
    _write(root / "rewrites.jsonl", rewrites)
    _write(root / "retrieved.jsonl", retrieved)
    _write(root / "texts.jsonl", texts)
    _write(root / "images.jsonl", images)
    return root


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> Path:
    return make_world(tmp_path_factory.mktemp("train-world"))


@pytest.fixture(scope="session")
def tiny_overrides(world) -> dict:
    """The tiny preset pointed at the test world, all sources and objectives on."""
    return {
        "data_dir": str(world),
        "pairs": "pairs.jsonl",
        "val_pairs": "pairs.jsonl",
        "texts": "texts.jsonl",
        "images": "images.jsonl",
        "features": "features",
        "rewrites": "rewrites.jsonl",
        "retrieved": "retrieved.jsonl",
        "rewrite_negatives": True,
        "rewrite_positives": True,
        "retrieval_positives": True,
        "threads": 1,
        "eval_max_images": 6,
    }


@pytest.fixture(scope="session")
def tokenizer():
    """The tiny model's word-piece tokenizer."""
    from unimo_kit.model import load_tokenizer

    return load_tokenizer("unimo-tiny")
