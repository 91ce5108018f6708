"""extract_features: resume after a kill, shard union, bad images, region-feature import, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from unimo_kit.features import FeatureStore, extract_features
from unimo_kit.features.extractors import grid_boxes
from unimo_kit.utils import Shard


def _as_dict(store: FeatureStore) -> dict[str, np.ndarray]:
    return {i: store[i]["feats"] for i in store.ids()}


def test_full_run_matches_direct_extractor(image_folder, MeanColourGrid):
    from PIL import Image

    ext = MeanColourGrid()
    report = extract_features(
        image_folder / "images.jsonl",
        image_folder / "out",
        extractor=ext,
        batch_size=4,
        dtype="float32",
        progress=False,
    )
    assert report.written == 10 and report.images.ok == 10
    store = FeatureStore(image_folder / "out")
    image = Image.open(image_folder / "images" / "img-003.png")
    expected = MeanColourGrid()(ext.preprocess(image)[None])[0]
    np.testing.assert_allclose(store["img-003"]["feats"], expected.feats, rtol=1e-6)
    np.testing.assert_array_equal(store["img-003"]["boxes"], grid_boxes(2, 2))


def test_resume_after_interruption_equals_uninterrupted(image_folder, MeanColourGrid):
    jsonl = image_folder / "images.jsonl"
    extract_features(
        jsonl,
        image_folder / "ref",
        extractor=MeanColourGrid(),
        batch_size=2,
        chunk_size=2,
        progress=False,
    )
    killed = MeanColourGrid(fail_after=3)  # dies in its 4th batch: 3 batches = 6 images done
    with pytest.raises(KeyboardInterrupt):
        extract_features(
            jsonl,
            image_folder / "out",
            extractor=killed,
            batch_size=2,
            chunk_size=2,
            progress=False,
        )
    assert len(FeatureStore(image_folder / "out")) == 6
    again = MeanColourGrid()
    report = extract_features(
        jsonl, image_folder / "out", extractor=again, batch_size=2, chunk_size=2, progress=False
    )
    assert (report.skipped_done, report.written, again.calls) == (6, 4, 2)
    ref, got = (
        _as_dict(FeatureStore(image_folder / "ref")),
        _as_dict(FeatureStore(image_folder / "out")),
    )
    assert ref.keys() == got.keys()
    for key in ref:
        np.testing.assert_array_equal(ref[key], got[key])


def test_shard_outputs_union_equals_full(image_folder, MeanColourGrid):
    jsonl = image_folder / "images.jsonl"
    extract_features(jsonl, image_folder / "full", extractor=MeanColourGrid(), progress=False)
    for index in range(3):
        extract_features(
            jsonl,
            image_folder / "sharded",
            extractor=MeanColourGrid(),
            shard=Shard(index, 3),
            progress=False,
        )
    full, sharded = FeatureStore(image_folder / "full"), FeatureStore(image_folder / "sharded")
    assert sorted(full.ids()) == sorted(sharded.ids()) and len(full) == 10
    for key in full.ids():
        np.testing.assert_array_equal(full[key]["feats"], sharded[key]["feats"])


def test_corrupt_and_missing_images_are_counted_not_fatal(image_folder, MeanColourGrid):
    (image_folder / "images" / "img-004.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (image_folder / "images" / "img-007.png").unlink()
    with open(image_folder / "images.jsonl", "a") as handle:
        handle.write("{broken json\n")
    report = extract_features(
        image_folder / "images.jsonl",
        image_folder / "out",
        extractor=MeanColourGrid(),
        progress=False,
    )
    assert (report.written, report.images.corrupt, report.images.missing) == (8, 1, 1)
    assert report.records_skipped == 1
    assert "1 corrupt" in report.summary() and "1 missing" in report.summary()
    assert "img-004" not in FeatureStore(image_folder / "out")


def test_import_region_features_folder_and_bundle(image_folder):
    rng = np.random.default_rng(1)
    folder = image_folder / "butd"
    folder.mkdir()
    ids = [f"img-{i:03d}" for i in range(10)]
    feats = rng.normal(size=(10, 5, 12)).astype(np.float32)
    pixel_boxes = np.tile(np.array([[0, 0, 32, 16], [8, 8, 16, 16]], np.float32), (10, 3, 1))[:, :5]
    probs = rng.dirichlet(np.ones(4), size=(10, 5)).astype(np.float32)
    for k, image_id in enumerate(ids[:9]):  # img-009 has no features
        np.savez(
            folder / f"{image_id}.npz",
            x=feats[k],
            bbox=pixel_boxes[k],
            num_bbox=4,
            image_w=32,
            image_h=16,
            cls_prob=probs[k],
        )
    report = extract_features(
        image_folder / "images.jsonl",
        image_folder / "out",
        extractor=f"import:{folder}",
        progress=False,
    )
    assert (report.written, report.missing_features) == (9, 1)
    store = FeatureStore(image_folder / "out")
    assert store.meta["has_class_probs"] and store.meta["num_classes"] == 4
    item = store["img-002"]
    assert item["feats"].shape == (4, 12)  # num_bbox keeps the first 4 regions
    np.testing.assert_allclose(item["feats"], feats[2, :4], atol=1e-2)
    np.testing.assert_allclose(item["boxes"][0], [0, 0, 1, 1, 1])
    np.testing.assert_allclose(item["boxes"][1], [0.25, 0.5, 0.5, 1.0, 0.125])
    np.testing.assert_allclose(item["class_probs"], probs[2, :4])

    bundle = image_folder / "bundle.npz"
    np.savez(bundle, ids=np.array(ids), features=feats, boxes=pixel_boxes / 32.0)
    extract_features(
        image_folder / "images.jsonl",
        image_folder / "out2",
        extractor=f"import:{bundle}",
        dtype="float32",
        progress=False,
    )
    store = FeatureStore(image_folder / "out2")
    assert len(store) == 10 and not store.meta["has_class_probs"]
    np.testing.assert_array_equal(store["img-009"]["feats"], feats[9])


def test_import_rejects_pixel_boxes_without_size(image_folder):
    folder = image_folder / "butd"
    folder.mkdir()
    np.savez(folder / "img-000.npz", features=np.ones((2, 3)), boxes=np.full((2, 4), 50.0))
    _write(image_folder / "nosize.jsonl", [{"id": "img-000", "image": "nowhere.png"}])
    with pytest.raises(ValueError, match="image_w/image_h"):
        extract_features(
            image_folder / "nosize.jsonl",
            image_folder / "out",
            extractor=f"import:{folder}",
            progress=False,
        )


def _write(path, records) -> bool:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return True


def test_cli_import_and_pairs_input(image_folder):
    from unimo_kit.cli.features import features

    folder = image_folder / "butd"
    folder.mkdir()
    for i in range(3):
        np.savez(
            folder / f"img-{i:03d}.npz",
            features=np.full((2, 4), i, np.float32),
            boxes=np.array([[0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1]], np.float32),
        )
    _write(
        image_folder / "pairs.jsonl",
        [
            {"id": f"img-{i:03d}", "image": f"images/img-{i:03d}.png", "captions": ["x"]}
            for i in range(3)
        ],
    )
    result = CliRunner().invoke(
        features,
        [
            str(image_folder / "pairs.jsonl"),
            "-o",
            str(image_folder / "f"),
            "--extractor",
            f"import:{folder}",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "3 written" in result.output
    assert FeatureStore(image_folder / "f")["img-002"]["feats"][0, 0] == 2.0
    bad = CliRunner().invoke(
        features,
        [str(image_folder / "pairs.jsonl"), "-o", str(image_folder / "g"), "--extractor", "resnet"],
    )
    assert bad.exit_code != 0 and "unknown extractor" in bad.output


def test_cli_shared_options_reach_each_input(image_folder, monkeypatch):
    """--shard, --strict, --device, --no-progress and --no-resume (cli/options.py) reach
    run_features; --no-resume clears the shard once, before the first input only."""
    from types import SimpleNamespace

    import unimo_kit.engine as engine
    from unimo_kit.cli.features import features
    from unimo_kit.utils import Shard

    calls = []

    def record(input_path, out, **kwargs):
        calls.append((input_path, kwargs))
        return SimpleNamespace(summary=lambda: "recorded")

    monkeypatch.setattr(engine, "run_features", record)
    bundle = image_folder / "bundle.npz"
    boxes = np.tile(np.array([0, 0, 1, 1], np.float32), (1, 2, 1))  # (1, 2, 4)
    np.savez(
        bundle, ids=np.array(["img-000"]), features=np.zeros((1, 2, 4), np.float32), boxes=boxes
    )
    first, second = image_folder / "a.jsonl", image_folder / "b.jsonl"
    _write(first, [{"id": "img-000", "image": "images/img-000.png"}])
    _write(second, [{"id": "img-001", "image": "images/img-001.png"}])
    args = [str(first), str(second), "-o", str(image_folder / "f"), "--extractor"]
    args += [f"import:{bundle}", "--shard", "1/2", "--strict", "--device", "cpu"]
    result = CliRunner().invoke(features, [*args, "--no-progress", "--no-resume"])
    assert result.exit_code == 0, result.output
    assert [path for path, _ in calls] == [str(first), str(second)]
    assert [kw["resume"] for _, kw in calls] == [False, True]
    for _, kw in calls:
        assert kw["shard"] == Shard(1, 2) and kw["strict"] and not kw["progress"]
        assert kw["device"] == "cpu"
    text = CliRunner().invoke(features, ["--help"], terminal_width=120).output
    assert "--shard I/N" in text and "Stop at the first bad record or image." in text
    assert "--resume / --no-resume" in text and "Skip images already stored" in text


def test_import_bundle_is_read_once_and_named_by_absolute_path(image_folder, monkeypatch):
    from unimo_kit.features.extractors import RegionImport

    ids = [f"img-{i:03d}" for i in range(10)]
    feats = np.arange(10 * 2 * 3, dtype=np.float32).reshape(10, 2, 3)
    boxes = np.tile(np.array([0, 0, 0.5, 0.5], np.float32), (10, 2, 1))
    np.savez(image_folder / "bundle.npz", ids=np.array(ids), features=feats, boxes=boxes)
    monkeypatch.chdir(image_folder)
    reads = []
    member = np.lib.npyio.NpzFile.__getitem__
    monkeypatch.setattr(
        np.lib.npyio.NpzFile,
        "__getitem__",
        lambda self, key: reads.append(key) or member(self, key),
    )
    imported = RegionImport("bundle.npz")
    assert imported.name == f"import:{(image_folder / 'bundle.npz').resolve()}"  # typed relative
    opened = len(reads)
    for image_id in ids:
        np.testing.assert_array_equal(imported.lookup(image_id).feats, feats[int(image_id[4:])])
    assert len(reads) == opened <= 3  # each member read once, when opened; not per image


def test_duplicate_ids_in_one_batch_are_counted_and_warned_once(
    image_folder, MeanColourGrid, capsys
):
    records = [
        json.loads(line) for line in (image_folder / "images.jsonl").read_text().splitlines()
    ]
    _write(image_folder / "dup.jsonl", [*records[:5], records[4], records[4], *records[5:]])
    report = extract_features(
        image_folder / "dup.jsonl",
        image_folder / "out",
        extractor=MeanColourGrid(),
        batch_size=32,  # all in one batch: the copies are queued before anything is stored
        progress=False,
    )
    assert (report.written, report.duplicates) == (10, 2)
    assert "10 written" in report.summary() and "2 duplicate id(s) skipped" in report.summary()
    warnings = [line for line in capsys.readouterr().err.splitlines() if "more than once" in line]
    assert len(warnings) == 1 and "'img-004'" in warnings[0]
    store = FeatureStore(image_folder / "out")
    from safetensors import safe_open

    from unimo_kit.features import list_chunks

    (chunk,) = list_chunks(image_folder / "out")
    with safe_open(str(chunk), framework="numpy") as handle:
        assert len(json.loads(handle.metadata()["ids"])) == len(store) == 10


def test_cli_names_a_broken_chunk_in_one_line(image_folder):
    from unimo_kit.cli.features import features
    from unimo_kit.features import list_chunks

    folder = image_folder / "butd"
    folder.mkdir()
    for i in range(10):
        np.savez(folder / f"img-{i:03d}.npz", features=np.ones((2, 4)), boxes=np.zeros((2, 4)))
    args = [str(image_folder / "images.jsonl"), "-o", str(image_folder / "out")]
    args += ["--extractor", f"import:{folder}", "--chunk-size", "3"]
    assert CliRunner().invoke(features, args).exit_code == 0
    chunk = list_chunks(image_folder / "out")[1]
    chunk.write_bytes(chunk.read_bytes()[:100])  # a copy cut short
    result = CliRunner().invoke(features, args)
    assert result.exit_code == 1
    (line,) = result.output.splitlines()
    assert line.startswith(f"Error: {image_folder / 'images.jsonl'}: {chunk}: not a complete")
    assert line.endswith("delete it and rerun unimo features to recompute its images")
    chunk.unlink()
    result = CliRunner().invoke(features, args)
    assert result.exit_code == 0 and "3 written, 7 already stored" in result.output
