"""``unimo index build --max-build-time``: it reaches the plan (``plan_for``), the choice at
its boundary, and a record written before the option existed still matches."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import pytest
from click.testing import CliRunner

from unimo_kit.cli.index import index
from unimo_kit.index.build import (
    BuildConfig,
    build_manifest,
    folder_state,
    plan_for,
)
from unimo_kit.index.factory import estimate_cost
from unimo_kit.index.store import IndexStoreError
from unimo_kit.utils.manifest import write_manifest

CONFIG = BuildConfig(input="big.jsonl", kind="texts", encoder="st:x", index_type="auto")


def test_the_choice_at_the_boundary():
    n, d = 1_000_000, 384
    _, seconds = estimate_cost("hnsw", n, d)
    assert plan_for(replace(CONFIG, max_build_seconds=seconds), n, d).factory == "HNSW32"
    slow = plan_for(replace(CONFIG, max_build_seconds=seconds * 0.99), n, d)
    assert slow.factory.startswith("IVF") and slow.factory.endswith(",Flat")
    assert f"graph build ~{seconds:.0f} s > " in slow.reason
    assert plan_for(replace(CONFIG, max_build_seconds=None), 50_000_000, d).factory == "HNSW32"


def test_cli_passes_max_build_time(monkeypatch, tmp_path):
    import unimo_kit.engine.index as engine_index

    texts = tmp_path / "texts.jsonl"
    texts.write_text('{"id": "a", "text": "a red circle"}\n')
    seen = {}

    def capture(config, out_dir, **kwargs):
        seen["config"] = config
        raise ValueError("captured")

    monkeypatch.setattr(engine_index, "run_index_build", capture)
    args = ["build", "--texts", str(texts), "--name", "t", "--root", str(tmp_path)]
    result = CliRunner().invoke(index, [*args, "--max-build-time", "90"])
    assert result.exit_code == 1 and "captured" in result.output
    assert seen["config"].max_build_seconds == 90.0
    CliRunner().invoke(index, args)
    assert seen["config"].max_build_seconds == 3600.0
    result = CliRunner().invoke(index, [*args, "--max-build-time", "0"])
    assert result.exit_code == 2 and "Invalid value" in result.output


def test_an_older_record_without_the_field_still_matches(tmp_path):
    saved = asdict(CONFIG)
    del saved["max_build_seconds"]  # written before the option existed
    texts = tmp_path / "texts.jsonl"
    texts.write_text('{"id": "a", "text": "a red circle"}\n')
    config = replace(CONFIG, input=str(texts))
    out = tmp_path / "t"
    out.mkdir()
    (out / "meta.json").write_text("{}")
    manifest = build_manifest(config)
    del manifest.settings["max_build_seconds"]
    write_manifest(out / "manifest.json", manifest)
    assert folder_state(out, config, overwrite=False) == "finished"
    with pytest.raises(IndexStoreError, match=r"max_build_seconds: 3600.0 -> null"):
        folder_state(out, replace(config, max_build_seconds=None), overwrite=False)
    (out / "manifest.json").unlink()  # a folder of the previous release: build.json only
    (out / "build.json").write_text(json.dumps({**saved, "input": str(texts)}))
    assert folder_state(out, config, overwrite=False) == "finished"
    (out / "manifest.json").unlink(missing_ok=True)  # read again from build.json
    with pytest.raises(IndexStoreError, match=r"max_build_seconds: 3600.0 -> 60.0"):
        folder_state(out, replace(config, max_build_seconds=60.0), overwrite=False)
