"""The real extractors: EfficientNet-Lite0 grid tokens and their boxes."""

from __future__ import annotations

import numpy as np
import pytest

from unimo_kit.features.extractors import EfficientNetGrid, grid_boxes


def test_grid_boxes_tile_the_unit_square_row_major():
    boxes = grid_boxes(7, 7)
    assert boxes.shape == (49, 5)
    np.testing.assert_allclose(boxes[0], [0, 0, 1 / 7, 1 / 7, 1 / 49], rtol=1e-6)
    np.testing.assert_allclose(boxes[1], [1 / 7, 0, 2 / 7, 1 / 7, 1 / 49], rtol=1e-6)  # next col
    np.testing.assert_allclose(boxes[7], [0, 1 / 7, 1 / 7, 2 / 7, 1 / 49], rtol=1e-6)  # next row
    np.testing.assert_allclose(boxes[48], [6 / 7, 6 / 7, 1, 1, 1 / 49], rtol=1e-6)
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    np.testing.assert_allclose(widths * heights, boxes[:, 4], rtol=1e-5)
    assert np.isclose(boxes[:, 4].sum(), 1.0)


@pytest.fixture(scope="module")
def effnet():
    return EfficientNetGrid(pretrained=True, device="cpu")


@pytest.mark.slow
def test_effnet_grid_tokens_are_the_feature_map_cells(effnet):
    import torch
    from PIL import Image

    assert (effnet.dim, effnet.tokens, effnet.name) == (1280, 49, "effnet")
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, size=(60, 90, 3), dtype=np.uint8))
    pixels = effnet.preprocess(image)[None]
    assert pixels.shape == (1, 3, 224, 224)
    (item,) = effnet(pixels)
    assert item.feats.shape == (49, 1280) and item.feats.dtype == np.float32
    np.testing.assert_array_equal(item.boxes, grid_boxes(7, 7))
    with torch.no_grad():
        grid = effnet.model.forward_features(pixels)[0].numpy()  # (1280, 7, 7)
    np.testing.assert_allclose(item.feats[2 * 7 + 5], grid[:, 2, 5], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_effnet_tokens_see_where_things_are(effnet):
    """A bright square in the top-left changes the top-left tokens more than the bottom-right."""
    from PIL import Image

    blank = np.zeros((224, 224, 3), np.uint8)
    marked = blank.copy()
    marked[:64, :64] = 255
    (a,), (b,) = (effnet(effnet.preprocess(Image.fromarray(x))[None]) for x in (blank, marked))
    change = np.linalg.norm(a.feats - b.feats, axis=1)  # (49,)
    assert change[0] > 3 * change[48]


@pytest.mark.slow
def test_effnet_multi_scale_adds_pooled_early_stages_to_the_grid():
    """``effnet-ms``: the final grid unchanged, then stage 4 (112 ch, stride 16) and stage 2
    (40 ch, stride 8) average-pooled onto the same 7×7 cells."""
    import torch
    import torch.nn.functional as F
    from PIL import Image

    from unimo_kit.features.extractors import build_extractor

    ms = build_extractor("effnet-ms", device="cpu")
    assert (ms.dim, ms.tokens, ms.name) == (1432, 49, "effnet-ms")
    rng = np.random.default_rng(1)
    pixels = ms.preprocess(Image.fromarray(rng.integers(0, 256, (80, 80, 3), dtype=np.uint8)))
    (item,) = ms(pixels[None])
    m = ms.model
    with torch.no_grad():
        final = m.forward_features(pixels[None])[0].numpy()  # (1280, 7, 7)
        x = m.bn1(m.conv_stem(pixels[None]))
        stages = []
        for stage in m.blocks:
            x = stage(x)
            stages.append(x)
        s4 = F.avg_pool2d(stages[4], 2)[0].numpy()  # (112, 7, 7) from 14×14
        s2 = F.avg_pool2d(stages[2], 4)[0].numpy()  # (40, 7, 7) from 28×28
    cell = 3 * 7 + 1
    expected = np.concatenate([final[:, 3, 1], s4[:, 3, 1], s2[:, 3, 1]])
    np.testing.assert_allclose(item.feats[cell], expected, rtol=1e-4, atol=1e-5)
