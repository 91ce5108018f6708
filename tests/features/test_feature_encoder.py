"""The ``features:DIR`` encoder: image vectors pooled from a features store, equal to the CNN
encoder's on the same pixels, and images the store lacks named clearly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from unimo_kit.encoders import EncoderError, EncoderInputError, load_encoder

# Measured on the 10 random images below: max |features - timm| over the L2-normalised
# vectors is 2e-8 with a float32 store and 4e-6 with a float16 one (its rounding, averaged
# over 49 tokens); two different images differ by at least 9e-3.
TOLERANCE = {"float32": 1e-6, "float16": 5e-5}


@pytest.fixture(scope="module")
def extractor():
    """EfficientNet-Lite0 ``effnet-ms`` grid with random weights (no download)."""
    from unimo_kit.features.extractors import EfficientNetGrid

    return EfficientNetGrid(pretrained=False, device="cpu", multi_scale=True)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """images.jsonl of 10 random 16x16 PNGs ``images/img-00K.png`` (ids = file stems)."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("feature-encoder")
    rng = np.random.default_rng(0)
    (folder / "images").mkdir()
    lines = []
    for i in range(10):
        pixels = rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / "images" / f"img-{i:03d}.png")
        lines.append(json.dumps({"id": f"img-{i:03d}", "image": f"images/img-{i:03d}.png"}))
    (folder / "images.jsonl").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="module")
def stores(world, extractor) -> dict[str, Path]:
    """The world's ``effnet-ms`` features, stored as float32 and as float16."""
    from unimo_kit.features.extract import extract_features

    out = {}
    for dtype in ("float32", "float16"):
        out[dtype] = world / f"features-{dtype}"
        extract_features(
            world / "images.jsonl", out[dtype], extractor=extractor, dtype=dtype, progress=False
        )
    return out


def _paths(folder: Path) -> list[str]:
    return [
        str(folder / json.loads(line)["image"])
        for line in (folder / "images.jsonl").read_text().splitlines()
    ]


def _timm_like(extractor):
    """``timm:tf_efficientnet_lite0`` holding the extractor's weights and preprocessing."""
    from unimo_kit.encoders.cnn import TimmImageEncoder

    encoder = TimmImageEncoder("tf_efficientnet_lite0:random", device="cpu")
    encoder.model.load_state_dict(extractor.model.state_dict())
    encoder.transform = extractor.preprocess
    return encoder


@pytest.mark.slow  # builds EfficientNet-Lite0 (random weights) and runs it
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_pooled_store_vectors_equal_the_cnn_encoders(world, extractor, stores, dtype):
    store = stores[dtype]
    paths = _paths(world)
    from_store = load_encoder(f"features:{store}").encode_images(paths)
    from_cnn = _timm_like(extractor).encode_images(paths)
    assert from_store.shape == from_cnn.shape == (10, 1280)
    assert np.allclose(np.linalg.norm(from_store, axis=1), 1.0, atol=1e-5)
    assert np.abs(from_store - from_cnn).max() < TOLERANCE[dtype]
    # not trivially equal: every two images are told apart far beyond the tolerance
    apart = np.abs(from_store[:, None] - from_store[None]).max(axis=-1)  # (10, 10)
    np.fill_diagonal(apart, np.inf)
    assert apart.min() > 100 * TOLERANCE[dtype]


def _handmade(world: Path, extractor: str, dim: int) -> Path:
    """A store of random tokens (49 per image) for the world's images, as ``extractor``."""
    from unimo_kit.features.extractors import grid_boxes
    from unimo_kit.features.store import FeatureStoreWriter

    out = world / f"handmade-{extractor.replace(':', '-')}"
    if out.exists():
        return out
    rng = np.random.default_rng(1)
    meta = {"extractor": extractor, "dim": dim, "tokens": 49}
    with FeatureStoreWriter(out, meta, dtype="float32") as writer:
        for i in range(10):
            writer.add(f"img-{i:03d}", rng.normal(size=(49, dim)), grid_boxes(7, 7))
    return out


@pytest.mark.parametrize(
    ("extractor", "dim", "pooled"), [("effnet-ms", 1432, 1280), ("open_clip:ViT-B-32", 96, 96)]
)
def test_the_vector_is_the_mean_token_of_the_final_stage(world, extractor, dim, pooled):
    from unimo_kit.features.store import FeatureStore

    store = _handmade(world, extractor, dim)
    encoder = load_encoder(f"features:{store}")
    assert encoder.dim == pooled and encoder.modalities == ("image",)
    feats = FeatureStore(store).get("img-003").feats  # (49, dim)
    mean = feats[:, :pooled].mean(axis=0)
    vector = encoder.encode_images(_paths(world)[3])
    assert vector.shape == (pooled,)
    assert np.abs(vector - mean / np.linalg.norm(mean)).max() < 1e-6


def test_an_image_the_store_lacks_is_named_by_path_and_id(world):
    store = _handmade(world, "effnet-ms", 1432)
    paths = _paths(world)
    from PIL import Image

    extra = world / "images" / "new-001.png"
    Image.new("RGB", (16, 16), "red").save(extra)
    gone = str(world / "images" / "gone-002.png")
    encoder = load_encoder(f"features:{store}")
    encoded = encoder.encode_image_files([paths[0], str(extra), gone])
    assert encoded.ok.tolist() == [True, False, False]
    assert "'new-001' is not in the features store" in encoded.failures[1]
    assert str(store) in encoded.failures[1]
    assert encoded.failures[2] == "missing"
    assert not encoded.vectors[1:].any()
    with pytest.raises(EncoderInputError, match=r"input 1: .*new-001\.png: id 'new-001' is not"):
        encoder.encode_images([paths[0], str(extra)])


def test_record_ids_are_tried_before_the_path_and_the_file_stem(world, tmp_path):
    """COCO-style: the store holds ``391895``, the file is ``000000391895.png``; two files with
    one stem in two folders are told apart by their records' ids."""
    from PIL import Image

    from unimo_kit.features.extractors import grid_boxes
    from unimo_kit.features.store import FeatureStore, FeatureStoreWriter, stored_key

    rng = np.random.default_rng(2)
    meta = {"extractor": "open_clip:ViT-B-32", "dim": 8, "tokens": 49}
    out = tmp_path / "store"
    with FeatureStoreWriter(out, meta, dtype="float32") as writer:
        for image_id in ("391895", "a-x", "b-x"):
            writer.add(image_id, rng.normal(size=(49, 8)), grid_boxes(7, 7))
    paths = []
    for name in ("coco/000000391895.png", "a/x.png", "b/x.png"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        Image.new("RGB", (8, 8), "red").save(tmp_path / name)
        paths.append(str(tmp_path / name))
    encoder = load_encoder(f"features:{out}")
    store = FeatureStore(out)
    encoded = encoder.encode_image_files(paths, ids=["391895", "a-x", "b-x"])
    assert encoded.ok.all()
    for row, image_id in enumerate(("391895", "a-x", "b-x")):
        mean = store.feats(image_id).mean(axis=0)
        assert np.abs(encoded.vectors[row] - mean / np.linalg.norm(mean)).max() < 1e-6
    assert not encoder.encode_image_files(paths).ok.any()  # the stems are not stored
    assert stored_key(store, paths[0], "391895") == "391895"
    assert stored_key({"x": 1}, paths[1], "a-x") == "x"  # the stem is the last resort


def test_pil_images_and_folders_that_are_no_store_are_refused(world, tmp_path):
    from PIL import Image

    store = _handmade(world, "effnet-ms", 1432)
    with pytest.raises(EncoderInputError, match="takes paths, not a"):
        load_encoder(f"features:{store}").encode_images([Image.new("RGB", (8, 8))])
    with pytest.raises(EncoderError, match="not a features store"):
        load_encoder(f"features:{tmp_path / 'nothing'}")


@pytest.mark.slow
def test_index_build_takes_the_features_encoder_without_new_options(world, stores):
    """``unimo index build --images X --encoder features:DIR``: each image finds itself."""
    from click.testing import CliRunner

    from unimo_kit.cli.main import cli
    from unimo_kit.index.store import IndexStore

    store = stores["float16"]
    root = world / "indexes"
    args = ["index", "build", "--images", str(world / "images.jsonl"), "--name", "im"]
    args += ["--root", str(root), "--encoder", f"features:{store}"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    index = IndexStore.open(root / "im")
    assert index.encoder_spec == f"features:{store}"
    hits = index.search_images(_paths(world), k=1)
    assert [h[0]["id"] for h in hits] == [f"img-{i:03d}" for i in range(10)]
