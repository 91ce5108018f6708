"""rewrite and index build on Ray: byte-identical to the local stage, and a killed driver
(left-over unit files) rerun to the same output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("ray")

from unimo_kit.engine import EngineOptions, run_index_build, run_rewrite
from unimo_kit.engine import rewrite as engine_rewrite

RAY = EngineOptions("ray", max_retries=1, progress=False)
OPTIONS = {"per_type": 1, "sentence_negatives": 1, "chunk_size": 4, "progress": False}


@pytest.fixture(scope="module")
def local_rewrites(pairs_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "rewrites.jsonl"
    run_rewrite(pairs_file, out, engine="local", save_vocab=str(out) + ".vocab.json", **OPTIONS)
    return out


def test_rewrite_on_ray_is_byte_identical(ray_session, pairs_file, local_rewrites, tmp_path):
    out = tmp_path / "rewrites.jsonl"
    vocab = tmp_path / "vocab.json"
    summary = run_rewrite(
        pairs_file, out, engine=RAY, unit_records=4, save_vocab=str(vocab), **OPTIONS
    )
    assert out.read_bytes() == local_rewrites.read_bytes()
    assert vocab.read_bytes() == Path(str(local_rewrites) + ".vocab.json").read_bytes()
    for name in ("rewrites.jsonl.manifest.json", "rewrites.jsonl.meta.json"):  # resume record
        local = local_rewrites.parent / name
        assert (tmp_path / name).exists() == local.exists()
        if local.exists():
            assert json.loads((tmp_path / name).read_text()) == json.loads(local.read_text())
    assert summary.written == len(out.read_bytes().splitlines()) and summary.record_errors == 2
    assert not Path(f"{out}.engine").exists()


def test_rewrite_killed_driver_resumes_from_its_units(
    ray_session, pairs_file, local_rewrites, tmp_path, monkeypatch
):
    out = tmp_path / "rewrites.jsonl"
    work = Path(f"{out}.engine")
    monkeypatch.setattr(engine_rewrite, "remove_tree", lambda path: None)  # keep the units
    run_rewrite(pairs_file, out, engine=RAY, unit_records=4, **OPTIONS)
    monkeypatch.undo()
    # the state of a driver killed after two units: no output, the later parts missing, one
    # of them half written
    out.unlink()
    parts = sorted(work.glob("part-*.jsonl"))
    assert len(parts) == 4
    kept = sum(len(p.read_bytes().splitlines()) for p in parts[:2])
    half = parts[2].read_bytes().splitlines(keepends=True)
    Path(f"{parts[2]}.partial").write_bytes(b"".join(half[: len(half) // 2]))
    for part in parts[2:]:
        part.unlink()
    summary = run_rewrite(pairs_file, out, engine=RAY, unit_records=4, **OPTIONS)
    assert out.read_bytes() == local_rewrites.read_bytes()
    # two parts kept, the half-written one resumed where it stopped, one written afresh
    assert kept + len(half) // 2 == summary.skipped_done
    assert summary.written + summary.skipped_done == len(out.read_bytes().splitlines())
    assert not work.exists()


def test_rewrite_units_of_other_options_are_refused(ray_session, pairs_file, tmp_path):
    out = tmp_path / "rewrites.jsonl"
    work = Path(f"{out}.engine")
    work.mkdir()
    (work / "engine.json").write_text(json.dumps({"meta": {"seed": 99}, "units": 1}))
    with pytest.raises(ValueError, match="other options or input"):
        run_rewrite(pairs_file, out, engine=RAY, **OPTIONS)


def _index_files(folder: Path) -> dict[str, object]:
    meta = json.loads((folder / "meta.json").read_text())
    meta.pop("build_seconds")
    return {
        "index": (folder / "index.faiss").read_bytes(),
        "records": (folder / "records.jsonl").read_bytes(),
        "manifest": json.loads((folder / "manifest.json").read_text()),
        "meta": meta,
    }


@pytest.fixture(scope="module")
def index_config(texts_file, tiny_spec):
    from unimo_kit.index.build import BuildConfig

    return BuildConfig(
        input=str(texts_file), kind="texts", encoder=tiny_spec, index_type="flat", block_size=16
    )


@pytest.fixture(scope="module")
def local_index(index_config, tmp_path_factory):
    out = tmp_path_factory.mktemp("local_index") / "texts"
    return run_index_build(index_config, out, progress=False, engine="local")


def test_index_build_on_ray_is_identical(ray_session, index_config, local_index, tmp_path):
    out = run_index_build(index_config, tmp_path / "texts", progress=False, engine=RAY)
    assert _index_files(out) == _index_files(local_index)
    assert not list(tmp_path.glob(".texts.unit-*"))


def test_index_killed_driver_resumes_from_its_blocks(
    ray_session, index_config, local_index, tmp_path
):
    out = tmp_path / "texts"
    out.mkdir()
    shutil.copy(local_index / "manifest.json", out / "manifest.json")
    (out / "blocks").mkdir()
    for name in ("00000.npy", "00000.jsonl", "00002.npy", "00002.jsonl", "00003.jsonl"):
        shutil.copy(local_index / "blocks" / name, out / "blocks" / name)
    before = (out / "blocks" / "00002.npy").stat().st_mtime_ns
    run_index_build(index_config, out, progress=False, engine=RAY)
    assert _index_files(out) == _index_files(local_index)
    assert (out / "blocks" / "00002.npy").stat().st_mtime_ns == before  # not embedded again
