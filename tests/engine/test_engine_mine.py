"""``unimo index mine`` on Ray: byte-identical to the local stage, a unit whose worker dies
once retried to the same output, and a killed driver rerun to the same output."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the crash-once wrapper

from unimo_kit.engine import EngineOptions  # noqa: E402
from unimo_kit.engine import mine as engine_mine  # noqa: E402
from unimo_kit.engine.mine import run_mine  # noqa: E402
from unimo_kit.index.mine import MineConfig  # noqa: E402

RAY = EngineOptions("ray", max_retries=1, progress=False)
CONFIG = MineConfig(
    k=3, negatives=2, min_score=-1.0, max_score=0.999, negative_max_score=0.999, chunk_size=2
)  # as the CLI test gives them


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory, make_caption) -> Path:
    """pairs.jsonl: 14 images (one file each, never opened) with 2 captions each, a line that
    is not JSON and a second line of p01."""
    caption = make_caption
    path = tmp_path_factory.mktemp("mine_pairs") / "pairs.jsonl"
    lines = [
        json.dumps(
            {"id": f"p{i:02d}", "image": f"img{i}.png", "captions": [caption(i), caption(i + 20)]}
        )
        for i in range(14)
    ]
    lines.insert(5, "not json")
    lines.insert(9, json.dumps({"id": "p01", "image": "img1.png", "captions": ["a cat"]}))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def text_index(texts_file, tiny_spec, tmp_path_factory) -> Path:
    from unimo_kit.index.build import BuildConfig, build

    config = BuildConfig(input=str(texts_file), kind="texts", encoder=tiny_spec, index_type="flat")
    return build(config, tmp_path_factory.mktemp("mine_index") / "texts", progress=False)


def _mine(pairs_file, text_index, out, engine, **kw):
    return run_mine(
        pairs_file,
        out,
        text_index=text_index,
        config=CONFIG,
        progress=False,
        engine=engine,
        unit_chunks=2,
        **kw,
    )


@pytest.fixture(scope="module")
def local_output(pairs_file, text_index, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("local_mine") / "retrieved.jsonl"
    return out, _mine(pairs_file, text_index, out, "local")


def test_mine_on_ray_is_byte_identical(ray_session, pairs_file, text_index, local_output, tmp_path):
    local, local_counts = local_output
    out = tmp_path / "retrieved.jsonl"
    counts = _mine(pairs_file, text_index, out, RAY)  # the caption index built on Ray too
    assert out.read_bytes() == local.read_bytes()
    # 14 pairs and a second line of p01 (mined again, as locally); one line not JSON
    assert counts == local_counts and counts["written"] == 15 and counts["malformed"] == 1
    assert counts["mean_negatives"] > 1 and counts["mean_texts"] == 3
    ours, theirs = (json.loads(Path(f"{o}.manifest.json").read_text()) for o in (out, local))
    assert ours["settings"].pop("negative_index") == f"{out}.captions"  # each has its own
    assert theirs["settings"].pop("negative_index") == f"{local}.captions" and ours == theirs
    for name in ("index.faiss", "records.jsonl"):  # the automatic caption index
        assert (
            Path(f"{out}.captions", name).read_bytes()
            == Path(f"{local}.captions", name).read_bytes()
        )
    assert not Path(f"{out}.engine").exists()
    # a rerun finds everything done
    again = _mine(pairs_file, text_index, out, RAY)
    assert again["written"] == 0 and again["skipped_done"] == 15
    assert out.read_bytes() == local.read_bytes()


def _crash_once_wrapper(fn, marker: str):
    def crash_once(miner, payload):
        if payload[1].endswith("part-00001.jsonl") and not os.path.exists(marker):
            Path(marker).write_text("")
            os._exit(1)  # the worker process dies
        return fn(miner, payload)

    return crash_once


def test_a_unit_whose_worker_dies_is_retried(
    ray_session, pairs_file, text_index, local_output, tmp_path, monkeypatch
):
    marker = str(tmp_path / "crashed")
    real = engine_mine.map_units
    monkeypatch.setattr(
        engine_mine,
        "map_units",
        lambda fn, units, options, **kw: real(
            _crash_once_wrapper(fn, marker), units, options, **kw
        ),
    )
    out = tmp_path / "retrieved.jsonl"
    _mine(
        pairs_file,
        text_index,
        out,
        RAY,
        negative_index=local_output[0].parent / (local_output[0].name + ".captions"),
    )
    assert os.path.exists(marker)
    assert out.read_bytes() == local_output[0].read_bytes()


def test_a_killed_driver_resumes_from_its_units(
    ray_session, pairs_file, text_index, local_output, tmp_path, monkeypatch
):
    captions = local_output[0].parent / (local_output[0].name + ".captions")
    out = tmp_path / "retrieved.jsonl"
    work = Path(f"{out}.engine")
    # the state of a driver killed before the join: every unit but two written
    monkeypatch.setattr(engine_mine, "_join", lambda out, parts: None)
    monkeypatch.setattr(engine_mine, "remove_tree", lambda path: None)
    _mine(pairs_file, text_index, out, RAY, negative_index=captions)
    monkeypatch.undo()
    parts = sorted(work.glob("part-*.jsonl"))
    assert len(parts) == 4 and out.read_bytes() == b""
    for part in parts[1:3]:
        part.unlink()
    Path(f"{parts[1]}.tmp").write_text('{"id": "torn')  # a write cut short
    kept = parts[0].stat().st_mtime_ns
    monkeypatch.setattr(engine_mine, "remove_tree", lambda path: None)  # to look at the parts
    counts = _mine(pairs_file, text_index, out, RAY, negative_index=captions)
    assert out.read_bytes() == local_output[0].read_bytes()
    assert counts["written"] == 15 and counts["skipped_done"] == 0
    assert parts[0].stat().st_mtime_ns == kept  # not mined again


def test_units_of_another_output_state_are_cut_again(
    ray_session, pairs_file, text_index, local_output, tmp_path, capsys
):
    captions = local_output[0].parent / (local_output[0].name + ".captions")
    out = tmp_path / "retrieved.jsonl"
    lines = local_output[0].read_bytes().splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:5]))  # a local run killed after 5 pairs
    work = Path(f"{out}.engine")
    work.mkdir()
    (work / "engine.json").write_text('{"settings": {}, "output_bytes": 0, "unit_pairs": 4}')
    (work / "part-00000.jsonl").write_text('{"id": "stale"}\n')
    counts = _mine(pairs_file, text_index, out, RAY, negative_index=captions)
    # p00-p04 and the second line of p01 are done
    assert counts["skipped_done"] == 6 and counts["written"] == 9
    assert b"stale" not in out.read_bytes()
    assert out.read_bytes().splitlines()[:5] == [line.rstrip(b"\n") for line in lines[:5]]
    assert "cutting them again" in capsys.readouterr().err


def test_cli_mine_on_ray(ray_session, pairs_file, text_index, local_output, tmp_path):
    from click.testing import CliRunner

    from unimo_kit.cli.index import index

    local, _ = local_output
    out = tmp_path / "retrieved.jsonl"
    args = ["mine", "--pairs", str(pairs_file), "--text-index", str(text_index), "-o", str(out)]
    args += ["-k", "3", "--negatives", "2", "--min-score", "-1", "--max-score", "0.999"]
    args += ["--chunk-size", "2", "--negative-index", f"{local}.captions", "--engine", "ray"]
    result = CliRunner().invoke(index, args)
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == local.read_bytes()
