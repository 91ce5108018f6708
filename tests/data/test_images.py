"""ImageLoader: RGB images out, missing and corrupt files counted (or raised when strict)."""

import pickle
import threading

import pytest
from PIL import Image

from unimo_kit.data import ImageError, ImageLoader


@pytest.fixture
def files(tmp_path):
    good = tmp_path / "good.png"
    Image.new("L", (32, 24), color=128).save(good)
    rgba = tmp_path / "rgba.png"
    Image.new("RGBA", (8, 8), color=(255, 0, 0, 10)).save(rgba)
    # A noisy image so the PNG has enough compressed data to cut.
    noisy = Image.effect_noise((64, 64), 60).convert("RGB")
    full = tmp_path / "noisy.png"
    noisy.save(full)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"this is not an image at all")
    return {
        "good": good,
        "rgba": rgba,
        "truncated": truncated,
        "garbage": garbage,
        "missing": tmp_path / "missing.png",
    }


def test_loads_rgb(files):
    loader = ImageLoader()
    image = loader.load(files["good"])
    assert image.mode == "RGB" and image.size == (32, 24)
    assert image.getpixel((0, 0)) == (128, 128, 128)
    assert loader.load(files["rgba"]).mode == "RGB"
    assert (loader.stats.ok, loader.stats.missing, loader.stats.corrupt) == (2, 0, 0)


def test_counts_missing_and_corrupt(files):
    loader = ImageLoader(max_examples=1)
    assert loader.load(files["missing"]) is None
    assert loader.load(files["truncated"]) is None
    assert loader.load(files["garbage"]) is None
    assert not loader.check(files["missing"])
    assert loader.check(files["good"])
    stats = loader.stats
    assert (stats.ok, stats.missing, stats.corrupt, stats.bad) == (1, 2, 2, 4)
    assert stats.missing_paths == [str(files["missing"])]
    assert len(stats.corrupt_paths) == 1
    assert stats.corrupt_paths[0].startswith(f"{files['truncated']} (")
    summary = stats.summary()
    assert summary.startswith("images: 1 ok, 2 missing (")
    assert ", ...)" in summary and "2 corrupt (" in summary


@pytest.mark.parametrize("name, kind", [("missing", "missing"), ("truncated", "corrupt")])
def test_strict_raises(files, name, kind):
    with pytest.raises(ImageError) as info:
        ImageLoader(strict=True).load(files[name])
    assert info.value.kind == kind
    assert str(info.value).startswith(f"{files[name]}: {kind} image (")
    assert str(pickle.loads(pickle.dumps(info.value))) == str(info.value)


def test_threads_count_exactly(files):
    loader = ImageLoader()
    paths = [files["good"], files["missing"], files["garbage"]] * 10

    def work(chunk):
        for path in chunk:
            loader.load(path)

    threads = [threading.Thread(target=work, args=(paths[i::3],)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (loader.stats.ok, loader.stats.missing, loader.stats.corrupt) == (10, 10, 10)
