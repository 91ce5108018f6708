"""rewrite on the engine parses each caption once: a vocabulary unit keeps its slice's graphs
(``graphs-NNNNN.pkl``) and the rewrite unit of the same records rewrites from them, to the
bytes of the local stage; a ``--shard`` run whose slices differ parses again; a killed
driver rerun with graph files left resumes from them."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest

from unimo_kit.engine import EngineOptions, run_rewrite
from unimo_kit.engine import rewrite as engine_rewrite
from unimo_kit.rewrite import pipeline
from unimo_kit.rewrite.pipeline import RewriteConfig, read_graph_file, write_graph_file
from unimo_kit.utils import Shard

OPTIONS = {"per_type": 1, "sentence_negatives": 1, "chunk_size": 4, "progress": False}
UNIT = 4  # records per unit: 4 units of the 16 records of pairs_file


@pytest.fixture(scope="module")
def local_rewrites(pairs_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("local_graphs") / "rewrites.jsonl"
    run_rewrite(pairs_file, out, engine="local", **OPTIONS)
    return out.read_bytes()


def _units_in_process(pairs_file: Path, out: Path) -> None:
    """The engine's own vocabulary and rewrite units, run one after another in this process
    (``map_units`` on the local engine), so a test can watch what they call."""
    from unimo_kit.rewrite.pipeline import output_manifest
    from unimo_kit.utils import count_lines

    config = RewriteConfig(**OPTIONS)
    manifest = output_manifest(str(pairs_file), config)
    total = count_lines(str(pairs_file))
    work = Path(f"{out}.engine")
    work.mkdir()
    source = engine_rewrite._Input(str(pairs_file), manifest.inputs["pairs"]["sha256"], total)
    layout = {"units": total // UNIT, "vocab_units": total // UNIT}
    options = EngineOptions("local", progress=False)
    _, parts, _ = engine_rewrite._run_units(source, str(out), config, work, layout, options)
    engine_rewrite._join(parts, str(out), manifest)


def test_rewrite_units_parse_no_caption_again(pairs_file, local_rewrites, tmp_path, monkeypatch):
    parsed = []  # (in a rewrite unit?, captions) of every caption parse
    rewriting = []
    parse, rewrite_unit = pipeline._parse, engine_rewrite._rewrite_unit

    def watched_parse(captions):
        parsed.append((bool(rewriting), list(captions)))
        if rewriting and captions:  # (a chunk whose captions all have graphs asks for none)
            raise AssertionError(f"a rewrite unit parsed again: {captions[:1]}")
        return parse(captions)

    def watched_unit(state, payload):
        rewriting.append(True)
        try:
            return rewrite_unit(state, payload)
        finally:
            rewriting.pop()

    monkeypatch.setattr(pipeline, "_parse", watched_parse)
    monkeypatch.setattr(engine_rewrite, "_rewrite_unit", watched_unit)
    out = tmp_path / "rewrites.jsonl"
    _units_in_process(pairs_file, out)
    assert out.read_bytes() == local_rewrites
    once = [c for in_unit, captions in parsed if not in_unit for c in captions]
    lines = out.read_bytes().splitlines()
    assert len(once) == sum(b'"error"' not in line for line in lines) > 0  # each caption once
    assert not list(Path(f"{out}.engine").glob("graphs-*.pkl"))  # every one consumed


def test_a_graph_file_of_other_records_or_too_few_graphs_is_refused(tmp_path):
    path = tmp_path / "graphs-00000.pkl"
    blob = pickle.dumps(["g0", "g1"], protocol=pickle.HIGHEST_PROTOCOL)
    write_graph_file(path, "abc", (4, 8), iter([blob]))
    graphs = read_graph_file(str(path), "abc", (4, 8))
    assert [next(graphs), next(graphs)] == ["g0", "g1"]
    with pytest.raises(ValueError, match="holds 2 graphs, fewer than"):
        next(graphs)
    with pytest.raises(ValueError, match=r"graphs-00000\.pkl:1: graphs of .*not of"):
        next(read_graph_file(str(path), "abc", (0, 4)))
    with pytest.raises(ValueError, match="not of"):
        next(read_graph_file(str(path), "other input", (4, 8)))
    assert not list(tmp_path.glob("*.tmp"))  # written atomically


RAY = EngineOptions("ray", max_retries=1, progress=False)


def test_a_shard_whose_slices_differ_parses_again(ray_session, pairs_file, tmp_path, monkeypatch):
    """Shard 0/3 of 16 records is records 0-4, cut into 0-1 and 2-4; the vocabulary units
    cut 0-3, 4-7, ...: no slice coincides, so no graphs are kept and the units parse."""
    local = tmp_path / "local.jsonl"
    run_rewrite(pairs_file, local, engine="local", shard=Shard(0, 3), **OPTIONS)
    out = tmp_path / "rewrites.jsonl"
    monkeypatch.setattr(engine_rewrite, "remove_tree", lambda path: None)  # keep the units
    run_rewrite(pairs_file, out, engine=RAY, unit_records=UNIT, shard=Shard(0, 3), **OPTIONS)
    assert out.read_bytes() == local.read_bytes()
    work = Path(f"{out}.engine")
    assert len(list(work.glob("vocab-*.json"))) == 4 and len(list(work.glob("part-*"))) == 2
    assert not list(work.glob("graphs-*"))  # none kept (none consumed)


class _Killed(Exception):
    """The driver's death, in the test."""


def test_a_killed_driver_resumes_from_the_graph_files_left(
    ray_session, pairs_file, local_rewrites, tmp_path, monkeypatch
):
    """The state of a driver killed after the vocabulary and two rewrite units, the third
    half written: graph files of units 2 and 3 left. The rerun rewrites from them (each is
    deleted once read; a parsing unit leaves it) to the local bytes."""
    real_map_units = engine_rewrite.map_units
    out = tmp_path / "rewrites.jsonl"
    work = Path(f"{out}.engine")

    def killed_after_two(fn, units, options, **kwargs):
        if kwargs.get("desc") != "rewrite":
            return real_map_units(fn, units, options, **kwargs)
        graphs = work / "graphs-00002.pkl"
        shutil.copyfile(graphs, tmp_path / "kept.pkl")
        real_map_units(fn, units[:3], options, **kwargs)
        shutil.copyfile(tmp_path / "kept.pkl", graphs)  # unit 2 not finished: not consumed
        part = units[2].done
        lines = part.read_bytes().splitlines(keepends=True)
        Path(f"{part}.partial").write_bytes(b"".join(lines[: len(lines) // 2]))
        part.unlink()
        raise _Killed

    monkeypatch.setattr(engine_rewrite, "map_units", killed_after_two)
    with pytest.raises(_Killed):
        run_rewrite(pairs_file, out, engine=RAY, unit_records=UNIT, **OPTIONS)
    monkeypatch.undo()
    assert sorted(p.name for p in work.glob("graphs-*")) == ["graphs-00002.pkl", "graphs-00003.pkl"]
    kept = sum(len(p.read_bytes().splitlines()) for p in sorted(work.glob("part-*.jsonl")))
    half = len(next(work.glob("part-*.partial")).read_bytes().splitlines())
    monkeypatch.setattr(engine_rewrite, "remove_tree", lambda path: None)  # keep the units
    summary = run_rewrite(pairs_file, out, engine=RAY, unit_records=UNIT, **OPTIONS)
    assert out.read_bytes() == local_rewrites
    assert summary.skipped_done == kept + half > 0
    assert summary.written + summary.skipped_done == len(local_rewrites.splitlines())
    assert not list(work.glob("graphs-*"))  # both read by their rewrite units
