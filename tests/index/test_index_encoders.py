"""The encoder contract (unimo_kit.encoders, imported through its old index path): order
restored, float32 unit rows, str vs list, bad texts named, bad images skipped or refused."""

from __future__ import annotations

import numpy as np
import pytest
from index_texts import make_texts

from unimo_kit.index.encoders import (
    Encoder,
    EncoderError,
    load_encoder,
    register_encoder,
    split_spec,
)


def test_sentence_transformer_matches_raw_encode(tiny_spec, tiny_st_path):
    from sentence_transformers import SentenceTransformer

    texts = make_texts(40, seed=3)
    encoder = load_encoder(tiny_spec)
    out = encoder.encode(texts, batch_size=8)
    raw = SentenceTransformer(tiny_st_path, device="cpu").encode(texts, batch_size=8)
    raw = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    assert out.dtype == np.float32 and out.shape == (40, encoder.dim)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(out, raw, atol=1e-5)


def test_order_restored_and_str_vs_list(tiny_spec):
    encoder = load_encoder(tiny_spec)
    texts = make_texts(30, seed=4)
    out = encoder.encode(texts, batch_size=4)
    perm = np.random.default_rng(0).permutation(30)
    shuffled = encoder.encode([texts[i] for i in perm], batch_size=4)
    np.testing.assert_allclose(shuffled, out[perm], atol=1e-5)
    single = encoder.encode(texts[7])
    assert single.shape == (encoder.dim,)
    np.testing.assert_allclose(single, out[7], atol=1e-5)
    assert encoder.encode([]).shape == (0, encoder.dim)


class Recording(Encoder):
    """Embeds a text as a fixed function of its content; records each batch."""

    spec = "rec:x"
    dim = 8
    modalities = ("text",)

    def __init__(self):
        self.batches: list[list[str]] = []

    def _encode_text_batch(self, texts):
        self.batches.append(list(texts))
        rows = [np.random.default_rng(abs(hash(t)) % 2**32).standard_normal(8) for t in texts]
        return 3.0 * np.array(rows)  # unnormalised on purpose


def test_base_class_sorts_batches_by_length_and_restores_order():
    encoder = Recording()
    texts = make_texts(25, seed=5)
    out = encoder.encode(texts, batch_size=6)
    lengths = [len(t) for batch in encoder.batches for t in batch]
    assert lengths == sorted(lengths, reverse=True)
    expected = np.stack([Recording().encode_text([t])[0] for t in texts])
    np.testing.assert_allclose(out, expected, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    with pytest.raises(EncoderError, match="not image"):
        encoder.encode(["x.png"], modality="image")


def test_registry_and_spec_errors():
    register_encoder("rec", lambda rest, device: Recording())
    encoder = load_encoder("rec:anything")
    assert isinstance(encoder, Recording) and encoder.spec == "rec:anything"
    assert split_spec("open_clip:ViT-B-32:openai") == ("open_clip", "ViT-B-32:openai")
    with pytest.raises(EncoderError, match="unknown encoder prefix"):
        load_encoder("nope:x")
    with pytest.raises(EncoderError, match="expected PREFIX:NAME"):
        load_encoder("all-MiniLM-L6-v2")
    with pytest.raises(EncoderError, match="invalid encoder prefix"):
        register_encoder("a:b", lambda rest, device: Recording())


@pytest.fixture(scope="module")
def image_files(tmp_path_factory):
    from PIL import Image

    folder = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(5):
        path = folder / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    corrupt = folder / "corrupt.png"
    corrupt.write_bytes((folder / "0.png").read_bytes()[:60])  # truncated
    return paths, str(corrupt), str(folder / "missing.png")


def test_image_encoder_skips_bad_images(image_files):
    from unimo_kit.data.images import ImageError, ImageLoader

    good, corrupt, missing = image_files
    encoder = load_encoder("timm:tf_efficientnet_lite0:random", device="cpu")
    assert encoder.modalities == ("image",) and encoder.dim == 1280
    loader = ImageLoader()
    items = [good[0], corrupt, good[1], missing, good[2]]
    out = encoder.encode_image_files(items, batch_size=2, loader=loader)
    assert out.ok.tolist() == [True, False, True, False, True]
    assert out.failures == {1: "corrupt", 3: "missing"}
    assert loader.stats.corrupt == 1 and loader.stats.missing == 1
    assert out.vectors.dtype == np.float32 and not out.vectors[[1, 3]].any()
    np.testing.assert_allclose(np.linalg.norm(out.vectors[out.ok], axis=1), 1.0, atol=1e-5)
    alone = encoder.encode(good[:3], batch_size=3)  # other batches: same vectors
    np.testing.assert_allclose(out.vectors[[0, 2, 4]], alone, atol=1e-4)
    assert encoder.encode(good[0]).shape == (1280,)
    with pytest.raises(ImageError):
        encoder.encode([good[0], missing])
    strict = encoder.encode_images(good[:3], batch_size=2)  # the contract: a plain array
    assert type(strict) is np.ndarray and strict.dtype == np.float32
    np.testing.assert_allclose(strict, alone, atol=1e-5)
    assert encoder.encode_images(good[1]).shape == (1280,)
    with pytest.raises(ImageError):
        encoder.encode_images([good[0], corrupt])
    with pytest.raises(EncoderError, match="not text"):
        encoder.encode(["a red circle"], modality="text")


@pytest.mark.slow
def test_packaged_default_encoders_load_offline(image_files):
    text = load_encoder("st:all-MiniLM-L6-v2", device="cpu")
    assert text.dim == 384
    a, b, c = text.encode(["a red circle", "a red round shape", "stock market prices"])
    assert a @ b > a @ c
    image = load_encoder("timm:tf_efficientnet_lite0", device="cpu")
    assert image.encode(image_files[0][0]).shape == (1280,)


@pytest.mark.slow
def test_open_clip_towers_share_one_space(image_files):
    encoder = load_encoder("open_clip:ViT-B-32", device="cpu")  # random weights: no download
    assert encoder.modalities == ("text", "image")
    texts = encoder.encode(["a red circle", "two blue squares and a star"])
    images = encoder.encode(image_files[0][:2], modality="image")
    assert texts.shape == images.shape == (2, encoder.dim) and texts.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1.0, atol=1e-5)
    reversed_texts = encoder.encode(["two blue squares and a star", "a red circle"])
    np.testing.assert_allclose(reversed_texts[::-1], texts, atol=1e-5)


def test_array_and_generator_inputs_are_lists_not_one_text():
    """Only a str (or path / PIL image) is one input: arrays, tuples and generators are lists,
    as in sentence-transformers."""
    encoder = Recording()
    texts = ["a red circle", "a blue square", "two stars"]
    expected = encoder.encode(texts)
    np.testing.assert_allclose(encoder.encode(np.array(texts)), expected, atol=1e-6)
    np.testing.assert_allclose(encoder.encode(tuple(texts)), expected, atol=1e-6)
    np.testing.assert_allclose(encoder.encode(t for t in texts), expected, atol=1e-6)
    assert encoder.encode(texts[0]).shape == (8,)


def test_pil_image_is_one_input(image_files):
    from PIL import Image

    encoder = load_encoder("timm:resnet18:random", device="cpu")
    image = Image.open(image_files[0][0])
    assert encoder.encode(image).shape == (encoder.dim,)
    np.testing.assert_allclose(
        encoder.encode([image, image])[1], encoder.encode(image_files[0][0]), atol=1e-5
    )


@pytest.fixture(scope="module")
def resnet_weights(tmp_path_factory):
    """resnet18 state dicts: plain, Lightning-wrapped with a ``model.`` prefix and a classifier,
    DataParallel-prefixed, and one of another architecture."""
    import timm
    import torch

    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    with_head = timm.create_model("resnet18", pretrained=False, num_classes=10)
    state = with_head.state_dict()
    backbone = {k: v for k, v in state.items() if not k.startswith("fc.")}
    files = {
        "plain": backbone,
        "wrapped": {"state_dict": {"model." + k: v for k, v in state.items()}, "epoch": 3},
        "module": {"module." + k: v for k, v in backbone.items()},
        "renamed": {"backbone." + k: v for k, v in backbone.items()},
        "other": timm.create_model("resnet10t", pretrained=False, num_classes=0).state_dict(),
    }
    for name, data in files.items():
        torch.save(data, folder / f"{name}.pt")
    return folder


def test_timm_state_dict_layouts_load_the_same_features(resnet_weights, image_files):
    image = image_files[0][0]
    plain = load_encoder(f"timm:resnet18:{resnet_weights / 'plain.pt'}", device="cpu")
    random = load_encoder("timm:resnet18:random", device="cpu")
    assert float(plain.encode(image) @ random.encode(image)) < 0.99  # the weights matter
    for name in ("wrapped", "module"):
        encoder = load_encoder(f"timm:resnet18:{resnet_weights / name}.pt", device="cpu")
        np.testing.assert_allclose(encoder.encode(image), plain.encode(image), atol=1e-5)


def test_timm_weights_that_do_not_fit_are_refused(resnet_weights, tmp_path):
    import torch

    renamed = resnet_weights / "renamed.pt"
    with pytest.raises(EncoderError, match=r"do not fit the model: \d+ missing key\(s\) \(conv1"):
        load_encoder(f"timm:resnet18:{renamed}", device="cpu")
    with pytest.raises(EncoderError, match="do not fit"):
        load_encoder(f"timm:resnet18:{resnet_weights / 'other.pt'}", device="cpu")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(EncoderError, match="cannot read weights"):
        load_encoder(f"timm:resnet18:{tmp_path / 'junk.pt'}", device="cpu")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(EncoderError, match="holds a list, not a state dict"):
        load_encoder(f"timm:resnet18:{tmp_path / 'list.pt'}", device="cpu")


@pytest.mark.parametrize("bad", ["caf\ud800", "\udfff tail", "x\udc80y"])
def test_a_lone_surrogate_is_named_by_position_before_any_batch(bad):
    """A JSON ``"\\ud800"`` decodes to a lone surrogate, which no tokenizer can encode: one
    EncoderInputError (a ValueError) names the input's position, and nothing is encoded."""
    from unimo_kit.encoders import EncoderInputError

    encoder = Recording()
    with pytest.raises(EncoderInputError, match=r"^input 2: .*lone surrogate") as caught:
        encoder.encode_texts(["a red circle", "two stars", bad, "a square"], batch_size=1)
    assert caught.value.index == 2 and isinstance(caught.value, ValueError)
    assert encoder.batches == []
    with pytest.raises(EncoderInputError, match=r"^input 0: "):
        encoder.encode(bad)
    with pytest.raises(EncoderInputError, match=r"^input 1: expected a str, got NoneType"):
        encoder.encode_texts(["fine", None])


def test_a_real_tokenizer_never_sees_a_lone_surrogate(tiny_spec):
    from unimo_kit.encoders import EncoderInputError

    encoder = load_encoder(tiny_spec)
    with pytest.raises(EncoderInputError, match=r"^input 1: text holds '\\ud800'"):
        encoder.encode_texts(["a red circle", "caf\ud800"])
    assert encoder.encode_texts(["café", "naïve"]).shape == (2, encoder.dim)  # real accents fine
