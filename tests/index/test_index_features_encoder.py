"""Image indexes built with the ``features:DIR`` encoder: the store is an input of the build
(a store extracted again is refused like an edited input file), the spec is recorded so that
queries load it from any directory, and images the store lacks are counted like unreadable
files. Handmade stores (random tokens, no CNN), so these run fast."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from unimo_kit.index.build import BuildConfig, InputChangedError, build
from unimo_kit.index.store import IndexStore, IndexStoreError

N_IMAGES = 12


@pytest.fixture
def world(tmp_path: Path) -> Path:
    """``images.jsonl`` of 12 tiny PNGs ``images/im-00K.png`` (ids ``im-00K``)."""
    from PIL import Image

    (tmp_path / "images").mkdir()
    lines = []
    for i in range(N_IMAGES):
        Image.new("RGB", (8, 8), (20 * i, 0, 0)).save(tmp_path / "images" / f"im-{i:03d}.png")
        lines.append(json.dumps({"id": f"im-{i:03d}", "image": f"images/im-{i:03d}.png"}))
    (tmp_path / "images.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path


def make_store(out: Path, *, seed: int = 0, extractor: str = "import:regions", ids=None) -> Path:
    """A features store of random tokens (4 per image, 8-d) for ``ids`` (default: all)."""
    from unimo_kit.features.extractors import grid_boxes
    from unimo_kit.features.store import FeatureStoreWriter

    if out.exists():
        shutil.rmtree(out)
    rng = np.random.default_rng(seed)
    meta = {"extractor": extractor, "dim": 8, "tokens": 4}
    with FeatureStoreWriter(out, meta, dtype="float32") as writer:
        for image_id in ids if ids is not None else [f"im-{i:03d}" for i in range(N_IMAGES)]:
            writer.add(image_id, rng.normal(size=(4, 8)), grid_boxes(2, 2))
    return out


def config(world: Path, spec: str, **kwargs) -> BuildConfig:
    return BuildConfig(
        input=str(world / "images.jsonl"), kind="images", encoder=spec, index_type="flat", **kwargs
    )


def test_a_store_extracted_again_is_a_changed_input(world):
    store = make_store(world / "features")
    out = build(config(world, f"features:{store}"), world / "index", progress=False)
    saved = json.loads((out / "manifest.json").read_text())
    assert saved["inputs"]["features"]["path"] == str(store)
    make_store(store)  # the same tokens written again: same content, new files
    build(config(world, f"features:{store}"), out, progress=False)  # reused, not refused
    for changed in ({"seed": 1}, {"extractor": "import:other"}):
        make_store(store, **changed)
        with pytest.raises(InputChangedError, match=r"\(input features changed .*--no-resume"):
            build(config(world, f"features:{store}"), out, progress=False)
    rebuilt = build(config(world, f"features:{store}"), out, overwrite=True, progress=False)
    index = IndexStore.open(rebuilt)
    hits = index.search_images([str(world / "images" / "im-003.png")], k=1)
    assert hits[0][0]["id"] == "im-003"


def test_an_unfinished_build_over_a_changed_store_is_refused(world):
    store = make_store(world / "features")
    spec = f"features:{store}"
    out = world / "index"
    build(config(world, spec, block_size=4), out, progress=False)
    (out / "meta.json").unlink()  # as if killed after embedding
    make_store(store, ids=[f"im-{i:03d}" for i in range(N_IMAGES - 1)])  # other images
    with pytest.raises(IndexStoreError, match=r"input features changed"):
        build(config(world, spec, block_size=4), out, progress=False)


def test_a_record_without_the_store_takes_the_store_as_it_is(world):
    """A folder built before the store was fingerprinted is reused, and recorded from then on."""
    store = make_store(world / "features")
    spec = f"features:{store}"
    out = build(config(world, spec), world / "index", progress=False)
    saved = json.loads((out / "manifest.json").read_text())
    del saved["inputs"]["features"]
    (out / "manifest.json").write_text(json.dumps(saved))
    build(config(world, spec), out, progress=False)  # "already built"
    assert "features" in json.loads((out / "manifest.json").read_text())["inputs"]


def test_a_relative_store_is_recorded_so_queries_run_from_another_directory(
    world, tmp_path_factory, monkeypatch
):
    """``unimo index build ... --encoder features:features`` typed in the world's folder;
    searched later from elsewhere (the search loads the index's own encoder)."""
    from click.testing import CliRunner

    from unimo_kit.cli.main import cli

    store = make_store(world / "features")
    monkeypatch.chdir(world)
    args = ["index", "build", "--images", "images.jsonl", "--name", "im", "--root", "indexes"]
    result = CliRunner().invoke(cli, [*args, "--encoder", "features:features"])
    assert result.exit_code == 0, result.output
    folder = world / "indexes" / "im"
    for record in ("meta.json", "manifest.json"):
        saved = json.loads((folder / record).read_text())
        assert saved.get("encoder", saved.get("settings", {}).get("encoder")) == (
            f"features:{store}"
        )
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    from unimo_kit.encoders.registry import _load_cached

    _load_cached.cache_clear()  # a fresh process, as a later command is
    index = IndexStore.open(folder)
    hits = index.search_images([str(world / "images" / "im-005.png")], k=1)
    assert hits[0][0]["id"] == "im-005"
    index.check_query_encoder(f"features:{store}")  # the same store, however it is named
    with pytest.raises(IndexStoreError, match="another vector space"):
        index.check_query_encoder("features:features")  # from here: another folder


def test_images_the_store_lacks_are_counted_like_unreadable_files(world, capsys):
    stored = [f"im-{i:03d}" for i in range(N_IMAGES) if i != 7]
    store = make_store(world / "features", ids=stored)
    out = build(config(world, f"features:{store}"), world / "index", progress=False)
    err = capsys.readouterr().err
    lacking = world / "images" / "im-007.png"
    why = f"id 'im-007' is not in the features store {store}"
    assert f"images: {N_IMAGES - 1} ok, 0 missing, 1 corrupt ({lacking} ({why}))" in err
    (failed,) = [json.loads(line) for line in (out / "failed.jsonl").read_text().splitlines()]
    assert failed["id"] == "im-007" and failed["failed"] == why
    assert json.loads((out / "meta.json").read_text())["failed"] == 1
