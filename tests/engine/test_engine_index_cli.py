"""``unimo index build --engine ray``: the index rows and records byte-identical to
``--engine local``, and a unit that keeps failing a clean click error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("ray")

from unimo_kit.cli.index import index


def _build(texts_file: Path, spec: str, root: Path, *extra: str):
    args = ["build", "--texts", str(texts_file), "--name", "texts", "--root", str(root)]
    args += ["--encoder", spec, "--type", "flat", "--block-size", "16", *extra]
    return CliRunner().invoke(index, args)


def _files(folder: Path) -> dict[str, object]:
    meta = json.loads((folder / "meta.json").read_text())
    meta.pop("build_seconds")
    return {
        "index": (folder / "index.faiss").read_bytes(),
        "records": (folder / "records.jsonl").read_bytes(),
        "blocks": {p.name: p.read_bytes() for p in sorted((folder / "blocks").iterdir())},
        "meta": meta,
    }


def test_cli_build_on_ray_equals_local(ray_session, texts_file, tiny_spec, tmp_path):
    local = _build(texts_file, tiny_spec, tmp_path / "local")
    assert local.exit_code == 0, local.output
    ray = _build(texts_file, tiny_spec, tmp_path / "ray", "--engine", "ray")
    assert ray.exit_code == 0, ray.output
    assert _files(tmp_path / "ray" / "texts") == _files(tmp_path / "local" / "texts")
    assert len(list((tmp_path / "ray" / "texts" / "blocks").glob("*.npy"))) == 4  # 4 units
    assert "60 vectors" in ray.output


def test_cli_ray_address_from_the_environment(monkeypatch, texts_file, tiny_spec, tmp_path):
    """``$RAY_ADDRESS`` and ``--workers`` reach the engine."""
    import unimo_kit.engine.index as engine_index

    seen = {}

    def fake(config, out_dir, *, overwrite, engine, progress=True):
        seen["engine"] = engine
        raise ValueError("stop here")

    monkeypatch.setattr(engine_index, "run_index_build", fake)
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    result = _build(texts_file, tiny_spec, tmp_path, "--engine", "ray", "--workers", "3")
    assert result.exit_code == 1 and "stop here" in result.output
    assert seen["engine"].engine == "ray" and seen["engine"].ray_address == "10.0.0.1:6379"
    assert seen["engine"].workers == 3


def test_cli_engine_error_is_a_clean_message(monkeypatch, texts_file, tiny_spec, tmp_path):
    import unimo_kit.engine.index as engine_index
    from unimo_kit.engine import EngineError

    def failing(*args, **kwargs):
        raise EngineError("index block 2 (rows 32-47 of texts.jsonl) failed after 2 attempt(s)")

    monkeypatch.setattr(engine_index, "run_index_build", failing)
    result = _build(texts_file, tiny_spec, tmp_path, "--engine", "ray")
    assert result.exit_code == 1
    assert "Error: index block 2 (rows 32-47" in result.output
    assert "Traceback" not in result.output
