"""Visual tokens for evaluation when no features store is given.

The extractors are those of :mod:`unimo_kit.features` (``effnet`` by default, the one the trainer
uses); this module adds two things evaluation needs:

- :func:`grid_extractor`: the EfficientNet-Lite0 grid at another input size (easy-VQA's 64x64
  images gain nothing from 224x224: at 128 the grid is 4x4 and extraction is 3x faster);
- :func:`extract_images` / :func:`cached_grid_features`: features for image paths or PIL images,
  optionally cached once in an ``.npz`` file (float16).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from unimo_kit.encoders.unimo import extract_images  # it lives with the unimo encoder


def grid_extractor(
    image_size: int = 224,
    *,
    pretrained: bool = True,
    multi_scale: bool = False,
    device: str | None = None,
) -> Any:
    """The ``effnet`` (``multi_scale``: ``effnet-ms``) extractor of :mod:`unimo_kit.features`
    with input side ``image_size`` (a multiple of 32; the grid is ``image_size / 32``
    squared). 224 is exactly ``effnet`` / ``effnet-ms``."""
    from unimo_kit.features.extractors import EfficientNetGrid, grid_boxes

    if image_size % 32:
        raise ValueError(f"image_size must be a multiple of 32, got {image_size}")
    extractor = EfficientNetGrid(pretrained=pretrained, device=device, multi_scale=multi_scale)
    if image_size != extractor.image_size:
        side = image_size // 32
        extractor.image_size = image_size
        extractor.tokens = side * side
        extractor._boxes = grid_boxes(side, side)
        extractor.name = f"{extractor.name}@{image_size}"
    return extractor


def cached_grid_features(
    paths: Sequence[str | os.PathLike],
    cache: str | os.PathLike | None,
    *,
    image_size: int = 224,
    batch_size: int = 64,
    progress: bool = True,
    extractor: Any | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Grid features for ``paths``, read from (or written once to) an ``.npz`` cache.

    The cache holds float16 features, the boxes, the extractor name and the image paths; it is
    used only when the name and the paths match (a changed image list or size recomputes it).

    Args:
        paths: image files.
        cache: the ``.npz`` path, or ``None`` for no cache.
        image_size: input side of :func:`grid_extractor` (when ``extractor`` is not given).
        extractor: an extractor with a fixed number of tokens per image.

    Returns:
        feats (N, G, F) float16, boxes (G, 5) float32.
    """
    from tqdm import tqdm

    from unimo_kit.utils import atomic_write

    keys = np.asarray([os.fspath(p) for p in paths])
    name = extractor.name if extractor is not None else f"effnet@{image_size}"
    if cache is not None and os.path.exists(cache):
        with np.load(cache, allow_pickle=False) as data:
            if str(data["extractor"]) == name and np.array_equal(data["paths"], keys):
                return data["feats"], data["boxes"]
    extractor = extractor or grid_extractor(image_size)
    feats = np.zeros((len(keys), extractor.tokens, extractor.dim), dtype=np.float16)
    boxes = None
    bar = tqdm(total=len(keys), desc="grid features", unit="img", disable=not progress)
    step = batch_size * 4
    for start in range(0, len(keys), step):
        chunk = list(keys[start : start + step])
        part, part_boxes, _ = extract_images(extractor, chunk, batch_size=batch_size)
        feats[start : start + len(chunk)] = part
        boxes = part_boxes[0]
        bar.update(len(chunk))
    bar.close()
    if boxes is None:
        boxes = np.zeros((extractor.tokens, 5), dtype=np.float32)
    if cache is not None:
        with atomic_write(cache, mode="wb") as handle:
            np.savez(handle, feats=feats, boxes=boxes, extractor=np.asarray(name), paths=keys)
    return feats, boxes
