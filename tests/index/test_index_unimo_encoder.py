"""``unimo:CHECKPOINT`` encoder specs: a trained checkpoint's CMCL space behind the encoder
contract (so indexes can be built and mined with the model being trained)."""

import numpy as np
import pytest
from PIL import Image

from unimo_kit.index import load_encoder


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    import torch

    from unimo_kit.model import create_model, save_checkpoint

    torch.manual_seed(0)
    model = create_model("unimo-tiny")  # visual_feat_dim 1280: the effnet grid
    return str(save_checkpoint(model, tmp_path_factory.mktemp("run") / "final"))


def test_unimo_encoder_follows_the_contract(checkpoint, tmp_path):
    from unimo_kit.eval.scorers import UnimoScorer

    encoder = load_encoder(f"unimo:{checkpoint}", device="cpu")
    assert encoder.spec == f"unimo:{checkpoint}"
    assert set(encoder.modalities) == {"text", "image"}

    texts = ["a red circle", "two small blue squares above a star", "a star"]
    vectors = encoder.encode(texts, batch_size=2)
    assert vectors.shape == (3, encoder.dim) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    scorer = UnimoScorer(checkpoint, device="cpu")
    np.testing.assert_allclose(vectors, scorer.encode_texts(texts), atol=1e-5)
    np.testing.assert_allclose(encoder.encode(texts[1]), vectors[1], atol=1e-5)

    paths = []
    for i, rgb in enumerate([(200, 30, 30), (30, 30, 200)]):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.new("RGB", (64, 64), rgb).save(paths[-1])
    encoded = encoder.encode_image_files([*paths, str(tmp_path / "missing.png")])
    assert encoded.ok.tolist() == [True, True, False]
    np.testing.assert_allclose(encoded.vectors[:2], scorer.encode_images(paths), atol=1e-5)
    np.testing.assert_allclose(encoder.encode_images(paths), encoded.vectors[:2], atol=1e-5)
    assert isinstance(scorer, type(encoder))  # eval's scorer is the index's encoder, plus scores
