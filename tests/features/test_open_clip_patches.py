"""open_clip ViT patch tokens, with random weights (no CLIP weights ship offline)."""

import numpy as np
import pytest
import torch
from PIL import Image

from unimo_kit.features import build_extractor


@pytest.mark.slow
def test_vit_patch_tokens_and_grid_boxes():
    torch.manual_seed(0)
    extractor = build_extractor("open_clip:ViT-B-32", device="cpu")  # no tag: random weights
    assert (extractor.tokens, extractor.dim, extractor.image_size) == (49, 768, 224)
    images = [Image.new("RGB", (64, 48), (200, 30, 30)), Image.new("RGB", (48, 64), (30, 30, 200))]
    pixels = torch.stack([extractor.preprocess(image) for image in images])  # (2, 3, 224, 224)
    items = extractor(pixels)
    assert len(items) == 2
    for item in items:
        assert item.feats.shape == (49, 768) and np.isfinite(item.feats).all()
        assert item.boxes.shape == (49, 5)
        assert np.allclose(item.boxes[:, 4].sum(), 1.0)  # the grid cells tile the image
    assert not np.allclose(items[0].feats, items[1].feats)


def test_non_vit_open_clip_model_is_refused():
    with pytest.raises(ValueError, match="only ViT patch tokens"):
        build_extractor("open_clip:RN50", device="cpu")
