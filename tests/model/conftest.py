"""Shared fixtures for the model tests: tiny models and synthetic batches made here."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest
import torch

FEAT_DIM = 16
NUM_REGIONS = 5
NUM_CLASSES = 7


def random_text(n: int, t: int, generator: torch.Generator, min_len: int = 4):
    """(n, t) ids ``[CLS] words [SEP] [PAD]...`` with random lengths, and their mask."""
    ids = torch.randint(1000, 3000, (n, t), generator=generator)
    lengths = torch.randint(min_len, t + 1, (n,), generator=generator)
    ar = torch.arange(t)[None]
    ids[:, 0] = 101
    ids[ar == lengths[:, None] - 1] = 102
    mask = ar < lengths[:, None]
    ids[~mask] = 0
    return ids, mask.long()


def random_visual(n: int, generator: torch.Generator, n_regions: int = NUM_REGIONS):
    """Features (n, N, F), boxes (n, N, 5), mask (n, N) with some padded regions."""
    feats = torch.randn(n, n_regions, FEAT_DIM, generator=generator)
    xy = torch.rand(n, n_regions, 2, generator=generator) * 0.5
    wh = torch.rand(n, n_regions, 2, generator=generator) * 0.5
    boxes = torch.cat([xy, xy + wh, (wh[..., :1] * wh[..., 1:])], dim=-1)
    mask = torch.ones(n, n_regions, dtype=torch.long)
    mask[0, -2:] = 0
    return feats, boxes, mask


def make_batch(seed: int = 0, groups: tuple[str, ...] = ("pairs", "pos", "neg", "text", "image")):
    """A training batch per docs/model.md with the requested key groups."""
    g = torch.Generator().manual_seed(seed)
    b, t = 4, 12
    batch: dict[str, torch.Tensor] = {}
    if "pairs" in groups:
        batch["pair_image_ids"] = torch.tensor([10, 11, 11, 12])  # pairs 1 and 2: same image
        batch["text_input_ids"], batch["text_attention_mask"] = random_text(b, t, g)
        batch["visual_feats"], batch["visual_boxes"], batch["visual_mask"] = random_visual(b, g)
        batch["visual_class_probs"] = torch.softmax(
            torch.randn(b, NUM_REGIONS, NUM_CLASSES, generator=g), -1
        )
    if "pos" in groups:
        batch["pos_text_input_ids"], batch["pos_text_attention_mask"] = random_text(3, t - 2, g)
        batch["pos_text_owner"] = torch.tensor([0, 0, 3])
        feats, boxes, mask = random_visual(2, g)
        batch["pos_visual_feats"], batch["pos_visual_boxes"], batch["pos_visual_mask"] = (
            feats,
            boxes,
            mask,
        )
        batch["pos_visual_owner"] = torch.tensor([1, 3])
    if "neg" in groups:
        batch["neg_text_input_ids"], batch["neg_text_attention_mask"] = random_text(5, t, g)
        batch["neg_text_owner"] = torch.tensor([0, 1, 2, 3, 3])
    if "para" in groups:  # not in the default groups: only paraphrase ranking reads them
        batch["para_text_input_ids"], batch["para_text_attention_mask"] = random_text(3, t - 1, g)
        batch["para_text_owner"] = torch.tensor([0, 2, 3])
    if "text" in groups:
        batch["textonly_input_ids"], batch["textonly_attention_mask"] = random_text(3, t + 4, g)
    if "image" in groups:
        feats, boxes, mask = random_visual(3, g)
        batch["imageonly_visual_feats"] = feats
        batch["imageonly_visual_boxes"] = boxes
        batch["imageonly_visual_mask"] = mask
        batch["imageonly_visual_class_probs"] = torch.softmax(
            torch.randn(3, NUM_REGIONS, NUM_CLASSES, generator=g), -1
        )
    return batch


@pytest.fixture
def tiny_model():
    from unimo_kit.model import create_model

    torch.manual_seed(0)
    return create_model(
        "unimo-tiny", visual_feat_dim=FEAT_DIM, visual_num_classes=NUM_CLASSES
    ).eval()


@pytest.fixture(scope="session")
def minilm_model():
    from unimo_kit.model import create_model

    torch.manual_seed(0)
    return create_model("unimo-minilm", visual_feat_dim=FEAT_DIM).eval()


@pytest.fixture(scope="session")
def tokenizer():
    from unimo_kit.model import load_tokenizer

    return load_tokenizer("unimo-tiny")


def fit_fixed_batch(objective, batch: dict, loss_key: str, steps: int, lr: float = 1e-3):
    """Train ``objective`` on one batch with ``loss_key`` alone (AdamW); its outputs before
    training and, in eval mode without gradients, after."""
    optimizer = torch.optim.AdamW(objective.parameters(), lr=lr)
    first = objective(batch)
    for _ in range(steps):
        optimizer.zero_grad()
        objective(batch)[loss_key].backward()
        optimizer.step()
    objective.eval()
    with torch.no_grad():
        last = objective(batch)
    return first, last


@pytest.fixture
def fit_factory():
    """``fit_factory(objective, batch, loss_key, steps)`` -> outputs before and after."""
    return fit_fixed_batch


@pytest.fixture
def batch_factory():
    """``batch_factory(seed=0, groups=(...))`` -> a synthetic training batch."""
    return make_batch


@pytest.fixture
def text_factory():
    """``text_factory(n, t, generator)`` -> random (ids, mask)."""
    return random_text


@pytest.fixture
def visual_factory():
    """``visual_factory(n, generator)`` -> random (feats, boxes, mask)."""
    return random_visual
