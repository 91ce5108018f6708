"""``unimo export``: the shards read back with only tarfile + json (the layout of
docs/formats.md), resume after a lost shard, FILE:LINE for a missing image, the parquet extra."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from unimo_kit.cli.main import cli


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "img").mkdir()
    pairs, rewrites = [], []
    for i in range(7):
        Image.new("RGB", (8, 8), (i * 30, 0, 0)).save(tmp_path / f"img/p{i}.png")
        pairs.append({"id": f"p{i}", "image": f"img/p{i}.png", "captions": [f"a red cube {i}"]})
        negatives = [{"type": "swap-att", "text": f"a blue cube {i}"}]
        positives = [{"type": "passive", "text": f"a cube, red {i}"}]
        sentence = [{"text": f"a dog {i}"}]
        rewrites.append({"id": f"p{i}#0", "negatives": negatives, "positives": positives,
                         "sentence_negatives": sentence})  # fmt: skip
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    (tmp_path / "rewrites.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rewrites))
    return tmp_path / "pairs.jsonl", tmp_path / "rewrites.jsonl"


def _export(pairs, rewrites, out, *extra):
    args = ["export", str(pairs), "--rewrites", str(rewrites), "-o", str(out),
            "--samples-per-shard", "3", "--no-progress", *extra]  # fmt: skip
    return CliRunner().invoke(cli, args)


def read_shards(out: Path) -> dict[str, dict[str, bytes]]:
    """The samples of every ``*.tar`` under ``out``, by key, as a webdataset reader groups them."""
    samples: dict[str, dict[str, bytes]] = {}
    for shard in sorted(out.glob("*.tar")):
        with tarfile.open(shard) as tar:
            for member in tar.getmembers():
                key, _, ext = member.name.partition(".")
                samples.setdefault(key, {})[ext] = tar.extractfile(member).read()
    return samples


def test_export_round_trip_with_tarfile_and_json(files, tmp_path):
    pairs, rewrites = files
    result = _export(pairs, rewrites, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").glob("*.tar")) == [
        "shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]  # fmt: skip
    samples = read_shards(tmp_path / "out")
    assert len(samples) == 7
    for key, sample in samples.items():
        assert set(sample) == {"png", "txt", "json"}
        meta = json.loads(sample["json"])
        i = int(meta["pair_id"][1:])
        assert sample["txt"].decode() == f"a red cube {i}" and meta["id"] == f"p{i}#0"
        assert sample["png"] == (tmp_path / f"img/p{i}.png").read_bytes()  # the file as it is
        assert {"text": f"a blue cube {i}", "type": "swap-att"} in meta["negatives"]
        assert {"text": f"a dog {i}", "type": "sentence"} in meta["negatives"]
        assert meta["positives"] == [{"text": f"a cube, red {i}", "type": "passive"}]
        assert key == f"{i:09d}"
    manifest = json.loads((tmp_path / "out/export.json").read_text())
    assert manifest["complete"] and manifest["samples"] == 7


def test_export_resumes_and_refuses_other_options(files, tmp_path):
    pairs, rewrites = files
    out = tmp_path / "out"
    assert _export(pairs, rewrites, out).exit_code == 0
    kept = (out / "shard-000000.tar").stat().st_mtime_ns
    (out / "shard-000001.tar").unlink()  # as if killed before this shard was finished
    result = _export(pairs, rewrites, out)
    assert result.exit_code == 0, result.output
    assert "2 shard(s) kept" in result.output
    assert (out / "shard-000000.tar").stat().st_mtime_ns == kept
    assert len(read_shards(out)) == 7
    refused = _export(pairs, rewrites, out, "--no-sentence-negatives")
    assert refused.exit_code != 0 and "--no-resume" in refused.output
    again = _export(pairs, rewrites, out, "--no-sentence-negatives", "--no-resume")
    assert again.exit_code == 0, again.output
    assert not any("a dog" in s["json"].decode() for s in read_shards(out).values())


def test_missing_image_is_named_by_file_and_line(files, tmp_path):
    pairs, rewrites = files
    (tmp_path / "img/p4.png").unlink()
    result = _export(pairs, rewrites, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert f"{pairs}:5: pair p4" in result.output
    assert len(read_shards(tmp_path / "out")) == 6
    strict = _export(pairs, rewrites, tmp_path / "strict", "--strict")
    assert strict.exit_code != 0 and f"{pairs}:5:" in strict.output


def test_bad_line_is_named_by_file_and_line(files, tmp_path):
    pairs, rewrites = files
    with pairs.open("a") as handle:
        handle.write("{not json\n")
    result = _export(pairs, rewrites, tmp_path / "out")
    assert result.exit_code == 0 and f"{pairs}:8:" in result.output


def test_parquet_needs_pyarrow_or_round_trips(files, tmp_path):
    pairs, rewrites = files
    result = _export(pairs, rewrites, tmp_path / "out", "--format", "parquet")
    try:
        import pyarrow.parquet as pq
    except ImportError:
        assert result.exit_code != 0 and "pyarrow" in result.output
        return
    assert result.exit_code == 0, result.output
    rows = [r for p in sorted((tmp_path / "out").glob("*.parquet"))
            for r in pq.read_table(p).to_pylist()]  # fmt: skip
    assert len(rows) == 7
    assert rows[0]["caption"] == "a red cube 0" and rows[0]["image_ext"] == "png"
    assert {"text": "a blue cube 0", "type": "swap-att"} in rows[0]["negatives"]


def test_export_needs_something_beside_the_captions(files, tmp_path):
    pairs, _ = files
    result = CliRunner().invoke(cli, ["export", str(pairs), "-o", str(tmp_path / "o")])
    assert result.exit_code == 2 and "--rewrites" in result.output


def test_help_explains_the_layout():
    result = CliRunner().invoke(cli, ["export", "--help"])
    assert result.exit_code == 0 and "KEY.json" in result.output and "resume" in result.output


def test_resume_is_decided_by_the_shared_manifest(files, tmp_path):
    pairs, rewrites = files
    out = tmp_path / "out"
    assert _export(pairs, rewrites, out).exit_code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "export" and manifest["settings"]["samples_per_shard"] == 3
    assert set(manifest["inputs"]) == {"pairs", "rewrites"}
    with rewrites.open("a") as handle:  # the same options, another input
        handle.write(json.dumps({"id": "p9#0", "negatives": [], "positives": []}) + "\n")
    refused = _export(pairs, rewrites, out)
    assert refused.exit_code != 0
    assert "input rewrites changed" in refused.output and "--no-resume" in refused.output


def test_an_export_of_before_the_manifest_is_read_once(files, tmp_path):
    pairs, rewrites = files
    out = tmp_path / "out"
    assert _export(pairs, rewrites, out).exit_code == 0
    (out / "manifest.json").unlink()  # what an older unimo_kit left: export.json only
    (out / "shard-000002.tar").unlink()
    kept = (out / "shard-000000.tar").stat().st_mtime_ns
    result = _export(pairs, rewrites, out)
    assert result.exit_code == 0, result.output
    assert "2 shard(s) kept" in result.output
    assert (out / "shard-000000.tar").stat().st_mtime_ns == kept
    assert (out / "manifest.json").is_file() and len(read_shards(out)) == 7
    index = json.loads((out / "export.json").read_text())  # still there, for readers
    assert index["complete"] and index["samples"] == 7 and len(index["shards"]) == 3
    (out / "manifest.json").unlink()
    refused = _export(pairs, rewrites, out, "--no-sentence-negatives")
    assert refused.exit_code != 0 and "sentence_negatives" in refused.output
