"""Shared fixtures for the features tests: tiny images and a fast fake extractor."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from unimo_kit.features.extractors import ImageExtractor, grid_boxes


class MeanColourGrid(ImageExtractor):
    """A deterministic stand-in for a CNN: a 2×2 grid, each token the mean colour of its cell
    repeated to ``dim``; counts its forward calls."""

    def __init__(self, dim: int = 6, fail_after: int | None = None):
        self.name, self.dim, self.tokens, self.image_size = "mean-colour", dim, 4, 8
        self.mean, self.std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
        self.calls = 0
        self.fail_after = fail_after

    def forward(self, pixels):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt("simulated kill")
        cells = pixels.unflatten(2, (2, 4)).unflatten(4, (2, 4)).mean(dim=(3, 5))  # (B, 3, 2, 2)
        tokens = cells.flatten(2).transpose(1, 2)  # (B, 4, 3)
        return tokens.repeat(1, 1, self.dim // 3), grid_boxes(2, 2)


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """images.jsonl with 10 small random PNGs, ids img-000..img-009."""
    from PIL import Image

    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    lines = []
    for i in range(10):
        pixels = rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / "images" / f"img-{i:03d}.png")
        lines.append(json.dumps({"id": f"img-{i:03d}", "image": f"images/img-{i:03d}.png"}))
    (tmp_path / "images.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path


@pytest.fixture(name="MeanColourGrid")
def mean_colour_grid_class() -> type[MeanColourGrid]:
    """The fake extractor class (a fixture, so test modules need not import conftest)."""
    return MeanColourGrid
