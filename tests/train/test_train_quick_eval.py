"""The quick retrieval check against a hand-computed ranking."""

from __future__ import annotations

import json

import numpy as np
import torch

from unimo_kit.features import FeatureStore, FeatureStoreWriter
from unimo_kit.train.quick_eval import retrieval_r1


class Oracle(torch.nn.Module):
    """Images embed as their first feature row; texts as a one-hot of their first word piece
    id modulo 4, so image k matches the texts whose first word maps to k."""

    def encode_image(self, feats, boxes, mask):
        return torch.nn.functional.normalize(feats[:, 0], dim=-1)  # (B, 4)

    def encode_text(self, ids, mask):
        return torch.nn.functional.one_hot(ids[:, 0] % 4, 4).float()  # (B, 4)


class Tokenizer:
    def __call__(self, texts, **_):
        ids = torch.tensor([[int(t.split()[0])] for t in texts])
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def test_r1_counts_hits_and_reports_chance(tmp_path):
    with FeatureStoreWriter(tmp_path / "f", {"extractor": "t", "dim": 4}) as writer:
        for k in range(4):
            writer.add(f"p{k}", np.eye(4, dtype=np.float32)[[k]], np.zeros((1, 5), np.float32))
    # image k's captions: "k" (a hit) and, for k = 3, also a caption pointing at image 0
    pairs = [{"id": f"p{k}", "image": f"{k}.png", "split": "val", "captions": [str(k)]}
             for k in range(3)]  # fmt: skip
    pairs.append({"id": "p3", "image": "3.png", "split": "val", "captions": ["0", "4"]})
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    result = retrieval_r1(
        Oracle(), Tokenizer(), tmp_path / "pairs.jsonl", FeatureStore(tmp_path / "f")
    )
    # Scored as `unimo eval retrieval` does: caption "0" belongs to p0 and p3, so it is right
    # for both; ties with a wrong candidate count against the query.
    # i2t: images 1, 2 hit; image 0's right "0"s tie with the wrong "4" (miss); image 3 scores
    # every text 0 and ties with the wrong "1", "2" (miss) -> 2/4.
    # t2i: "0", "1", "2", and "0" of p3 (p0 owns it too) hit; "4" ranks p0 first (miss) -> 4/5.
    assert result["i2t_r1"] == 0.5 and abs(result["t2i_r1"] - 0.8) < 1e-6
    assert result["t2i_chance"] == 0.25 and result["images"] == 4 and result["texts"] == 5


def test_max_visual_tokens_crops_the_images_as_training_did(tmp_path):
    with FeatureStoreWriter(tmp_path / "f", {"extractor": "t", "dim": 4}) as writer:
        for k in range(4):  # token 0 says which image it is; tokens 1-2 point at image 0
            feats = np.eye(4, dtype=np.float32)[[k, 0, 0]]
            writer.add(f"p{k}", feats, np.zeros((3, 5), np.float32))
    pairs = [{"id": f"p{k}", "image": f"{k}.png", "split": "val", "captions": [str(k)]}
             for k in range(4)]  # fmt: skip
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))

    class MeanOracle(Oracle):
        def encode_image(self, feats, boxes, mask):
            mean = (feats * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
            return torch.nn.functional.normalize(mean, dim=-1)  # (B, 4)

    store = FeatureStore(tmp_path / "f")
    path = tmp_path / "pairs.jsonl"
    all_tokens = retrieval_r1(MeanOracle(), Tokenizer(), path, store)
    first_only = retrieval_r1(MeanOracle(), Tokenizer(), path, store, max_visual_tokens=1)
    assert all_tokens["i2t_r1"] == 0.25  # tokens 1-2 pull every image to caption "0"
    assert first_only["i2t_r1"] == 1.0
