"""A quick retrieval check during training: image→text and text→image R@1 on val pairs.

Not the evaluator (``unimo eval`` is): just enough to see that CMCL learns, with the chance
level next to each figure.
"""

from __future__ import annotations

import itertools
import os
from typing import Any

import numpy as np
import torch

from unimo_kit.data.readers import read_pairs
from unimo_kit.features import FeatureStore
from unimo_kit.train.data import crop_visual, pad_visual


def val_pairs(
    pairs_path: str | os.PathLike,
    store: FeatureStore | None,
    *,
    split: str | None = "val",
    max_images: int = 200,
) -> list[Any]:
    """The first ``max_images`` pairs of ``split`` with features in ``store`` (the trainer
    calls it at start-up with ``max_images=1`` to fail before training, not after).

    Raises:
        ValueError: when there is no such pair (or no features store).
    """
    if store is None:
        raise ValueError(f"val_pairs={pairs_path}: the quick val check needs a features store")
    pairs = (
        p for p in read_pairs(pairs_path) if (split is None or p.split == split) and p.id in store
    )
    found = list(itertools.islice(pairs, max_images))
    if not found:
        raise ValueError(f"val_pairs={pairs_path}: no pairs of split {split!r} with features")
    return found


@torch.no_grad()
def retrieval_r1(
    model: torch.nn.Module,
    tokenizer: Any,
    pairs_path: str | os.PathLike,
    store: FeatureStore,
    *,
    split: str | None = "val",
    max_images: int = 200,
    max_text_length: int = 40,
    max_visual_tokens: int | None = None,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    """R@1 of the CMCL embeddings on up to ``max_images`` pairs (all their captions).

    Args:
        model: a :class:`~unimo_kit.model.UnimoModel` (put in eval mode for the call).
        tokenizer: its tokenizer.
        pairs_path: a pairs.jsonl; pairs of ``split`` with features in ``store`` are used.
        store: the features store.
        max_visual_tokens: keep the first this many visual tokens per image, as training did
            (``TrainConfig.max_visual_tokens``; ``None``: all).

    Returns:
        ``{"i2t_r1", "t2i_r1", "i2t_chance", "t2i_chance", "images", "texts"}`` (fractions):
        R@1 by :func:`unimo_kit.eval.retrieval.retrieval_metrics` under ``unimo eval``'s rules
        (a caption string shared by several images is right for each; ties count against the
        query); chance is the hit rate of a random ranking (captions per image / texts, and
        1 / images).
    """
    from unimo_kit.eval.retrieval import caption_key, retrieval_metrics

    pairs = val_pairs(pairs_path, store, split=split, max_images=max_images)
    was_training = model.training
    model.eval()
    texts, owner = [], []
    for k, pair in enumerate(pairs):
        texts += pair.captions
        owner += [k] * len(pair.captions)
    z_img, z_txt = [], []
    for start in range(0, len(pairs), batch_size):
        items = [store[p.id] for p in pairs[start : start + batch_size]]
        if max_visual_tokens:
            items = [crop_visual(item, max_visual_tokens) for item in items]
        visual = pad_visual(items, "v")
        z_img.append(
            model.encode_image(
                visual["v_feats"].to(device),
                visual["v_boxes"].to(device),
                visual["v_mask"].to(device),
            ).float()
        )
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(
            texts[start : start + batch_size],
            padding=True,
            truncation=True,
            max_length=max_text_length,
            return_tensors="pt",
        )
        z_txt.append(
            model.encode_text(enc["input_ids"].to(device), enc["attention_mask"].to(device)).float()
        )
    metrics = retrieval_metrics(
        torch.cat(z_img).cpu().numpy(),
        torch.cat(z_txt).cpu().numpy(),
        np.asarray(owner),
        ks=(1,),
        text_keys=[caption_key(t) for t in texts],
        image_keys=[p.image for p in pairs],
    )
    model.train(was_training)
    return {
        "i2t_r1": metrics["i2t_r1"] / 100,
        "t2i_r1": metrics["t2i_r1"] / 100,
        "i2t_chance": len(texts) / len(pairs) / len(texts),
        "t2i_chance": 1.0 / len(pairs),
        "images": len(pairs),
        "texts": len(texts),
    }
