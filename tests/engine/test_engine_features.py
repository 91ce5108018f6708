"""features on Ray: the store byte-identical to the local stage (with an extractor whose
output depends on its batch, bad images, a duplicate id and a bad line in the input), a worker
that dies once retried to the same store, and a driver killed while encoding or while joining
rerun to the same store."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the extractor below

from unimo_kit.engine import EngineOptions, run_features  # noqa: E402
from unimo_kit.engine import features as engine_features  # noqa: E402
from unimo_kit.features.extractors import ImageExtractor, grid_boxes  # noqa: E402

RAY = EngineOptions("ray", max_retries=1, progress=False)
OPTIONS = {"batch_size": 3, "chunk_size": 4, "dtype": "float16", "progress": False}


class BatchSensitiveGrid(ImageExtractor):
    """A 2×2 grid of mean colours plus a trace of the batch (its mean and size): like a CNN
    on a CPU, an image's tokens depend on which images share its batch, so only the local
    run's batches give the local run's bytes. ``crash_marker``: the worker process exits at
    its second forward pass the first time (the marker file remembers it)."""

    def __init__(self, crash_marker: str | None = None):
        self.name, self.dim, self.tokens, self.image_size = "batch-sensitive", 6, 4, 8
        self.mean, self.std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
        self.crash_marker = crash_marker
        self.calls = 0

    def forward(self, pixels):
        self.calls += 1
        if self.crash_marker and self.calls == 2 and not os.path.exists(self.crash_marker):
            Path(self.crash_marker).write_text("")
            os._exit(1)
        cells = pixels.unflatten(2, (2, 4)).unflatten(4, (2, 4)).mean(dim=(3, 5))  # (B, 3, 2, 2)
        tokens = cells.flatten(2).transpose(1, 2).repeat(1, 1, 2)  # (B, 4, 6)
        return tokens + 1e-3 * pixels.mean() + 1e-4 * len(pixels), grid_boxes(2, 2)


@pytest.fixture(scope="module")
def images_file(tmp_path_factory) -> Path:
    """images.jsonl: 16 images, one missing and one corrupt file, a duplicate id, a bad line."""
    from PIL import Image

    root = tmp_path_factory.mktemp("engine_images")
    (root / "img").mkdir()
    rng = np.random.default_rng(0)
    lines = []
    for i in range(16):
        path = root / "img" / f"{i:02d}.png"
        if i == 4:
            path.write_bytes(b"\x89PNG not really")  # corrupt
        elif i != 9:  # 9 is missing
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(path)
        lines.append(json.dumps({"id": f"im{i:02d}", "image": str(path)}))
    lines.insert(7, "not json")
    lines.insert(12, json.dumps({"id": "im02", "image": str(root / "img" / "02.png")}))
    (root / "images.jsonl").write_text("\n".join(lines) + "\n")
    return root / "images.jsonl"


def _files(store: Path) -> dict[str, bytes]:
    """Every file of a store (chunks, meta.json, manifest.json), by relative path."""
    return {
        str(p.relative_to(store)): p.read_bytes()
        for p in sorted(store.rglob("*"))
        if p.is_file() and ".engine" not in p.parts
    }


def _counts(report) -> tuple:
    images = report.images
    return (
        report.written,
        report.skipped_done,
        report.duplicates,
        report.records_skipped,
        images.ok,
        images.missing,
        images.corrupt,
        images.missing_paths,
        len(images.corrupt_paths),
    )


@pytest.fixture(scope="module")
def local_store(images_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("features_local") / "features"
    report = run_features(images_file, out, extractor=BatchSensitiveGrid(), **OPTIONS)
    return out, report


def test_batches_matter_for_the_test_extractor(images_file, local_store, tmp_path):
    """The check below can fail: other batches give other bytes."""
    out = tmp_path / "features"
    other = {**OPTIONS, "batch_size": 2}
    run_features(images_file, out, extractor=BatchSensitiveGrid(), **other)
    chunks = [name for name in _files(out) if name.startswith("chunks/")]
    assert chunks and any(_files(out)[n] != _files(local_store[0])[n] for n in chunks)


def test_features_on_ray_are_byte_identical(ray_session, images_file, local_store, tmp_path):
    out = tmp_path / "features"
    report = run_features(
        images_file, out, extractor=BatchSensitiveGrid(), engine=RAY, unit_images=4, **OPTIONS
    )
    local, local_report = local_store
    assert _files(out) == _files(local)
    assert len([n for n in _files(out) if n.startswith("chunks/")]) == 4  # 14 images by 4
    assert _counts(report) == _counts(local_report) and report.images.corrupt == 1
    assert not (out / ".engine").exists()


def test_a_worker_that_dies_once_is_retried_to_the_same_store(
    ray_session, images_file, local_store, tmp_path
):
    marker = tmp_path / "crashed"
    out = tmp_path / "features"
    extractor = BatchSensitiveGrid(crash_marker=str(marker))
    run_features(images_file, out, extractor=extractor, engine=RAY, unit_images=6, **OPTIONS)
    assert marker.exists()  # a worker died
    assert _files(out) == _files(local_store[0])


def _keep_units(monkeypatch) -> None:
    monkeypatch.setattr(engine_features, "remove_tree", lambda path: None)


def test_a_driver_killed_while_encoding_resumes_from_its_units(
    ray_session, images_file, local_store, tmp_path, monkeypatch
):
    out = tmp_path / "features"
    _keep_units(monkeypatch)
    run_features(
        images_file, out, extractor=BatchSensitiveGrid(), engine=RAY, unit_images=4, **OPTIONS
    )
    # the state of a driver killed after the checks and two of the three encode units
    (work,) = (out / ".engine").iterdir()
    encodes = sorted(work.glob("encode-*.safetensors"))
    assert len(encodes) == 3 and len(list(work.glob("check-*.json"))) == 3  # 18 lines by 6
    encodes[1].unlink()
    for chunk in (out / "chunks").iterdir():
        chunk.unlink()
    before = [p.stat().st_mtime_ns for p in (encodes[0], encodes[2])]
    report = run_features(
        images_file, out, extractor=BatchSensitiveGrid(), engine=RAY, unit_images=4, **OPTIONS
    )
    assert _files(out) == _files(local_store[0])
    assert _counts(report) == _counts(local_store[1])
    assert [p.stat().st_mtime_ns for p in (encodes[0], encodes[2])] == before  # not redone
    assert encodes[1].exists()


def test_a_driver_killed_while_joining_resumes_to_the_same_store(
    ray_session, images_file, local_store, tmp_path, monkeypatch
):
    out = tmp_path / "features"
    _keep_units(monkeypatch)
    run_features(
        images_file, out, extractor=BatchSensitiveGrid(), engine=RAY, unit_images=4, **OPTIONS
    )
    monkeypatch.undo()
    chunks = sorted((out / "chunks").iterdir())
    for chunk in chunks[2:]:  # two chunks of four were written when it was killed
        chunk.unlink()
    report = run_features(
        images_file, out, extractor=BatchSensitiveGrid(), engine=RAY, unit_images=4, **OPTIONS
    )
    assert _files(out) == _files(local_store[0])
    assert (report.written, report.skipped_done) == (6, 8)  # as a local resume counts them


def test_units_of_other_options_are_refused_and_no_resume_starts_afresh(
    ray_session, images_file, local_store, tmp_path, monkeypatch
):
    out = tmp_path / "features"
    _keep_units(monkeypatch)
    run_features(
        images_file, out, extractor=BatchSensitiveGrid(), engine=RAY, unit_images=4, **OPTIONS
    )
    monkeypatch.undo()
    with pytest.raises(ValueError, match=r"other options or input \(unit differ\)"):
        run_features(
            images_file, out, extractor=BatchSensitiveGrid(), engine=RAY, unit_images=9, **OPTIONS
        )
    run_features(
        images_file,
        out,
        extractor=BatchSensitiveGrid(),
        engine=RAY,
        unit_images=9,
        resume=False,
        **OPTIONS,
    )
    assert _files(out) == _files(local_store[0])


def test_cli_help_lists_the_engine_flags():
    from click.testing import CliRunner

    from unimo_kit.cli.features import features

    result = CliRunner().invoke(features, ["--help"])
    assert result.exit_code == 0
    for flag in ("--engine [local|ray]", "--ray-address", "RAY_ADDRESS", "--workers", "--resume"):
        assert flag in result.output


def test_cli_ray_with_effnet_is_byte_identical_to_cli_local(
    ray_session, images_file, tmp_path, monkeypatch
):
    """The real extractor (EfficientNet-Lite0 on the CPU, whose tokens depend on the batch)
    through the CLI: the ray store's bytes are the local store's."""
    from click.testing import CliRunner

    from unimo_kit.cli.features import features

    pytest.importorskip("timm")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    args = [str(images_file), "--batch-size", "4", "--chunk-size", "5", "--no-progress"]
    args += ["--device", "cpu"]
    local = CliRunner().invoke(features, [*args, "-o", str(tmp_path / "local")])
    if local.exit_code and "not installed" in local.output:
        pytest.skip("EfficientNet-Lite0 weights are not installed")
    assert local.exit_code == 0, local.output
    result = CliRunner().invoke(
        features, [*args, "-o", str(tmp_path / "ray"), "--engine", "ray", "--workers", "2"]
    )
    assert result.exit_code == 0, result.output
    assert _files(tmp_path / "ray") == _files(tmp_path / "local")
    assert "14 ok, 1 missing" in result.output and "1 corrupt" in result.output
