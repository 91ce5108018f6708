"""``unimo rewrite`` from the command line: help, a run, and kill -9 + resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from unimo_kit.cli.rewrite import rewrite


def test_help_explains_with_examples():
    result = CliRunner().invoke(rewrite, ["--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.output and "--shard" in result.output
    assert "--sentence-negatives" in result.output


def test_run_and_options(world, parser, tmp_path):
    out = tmp_path / "r.jsonl"
    args = [str(world.pairs["val"]), "-o", str(out), "--types", "replace-att,swap-att",
            "--per-type", "2", "--no-positives", "--no-progress", "--sentence-negatives", "1",
            "--save-vocab", str(tmp_path / "v.json")]  # fmt: skip
    result = CliRunner().invoke(rewrite, args)
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert lines and all(x["positives"] == [] for x in lines)
    assert {n["type"] for x in lines for n in x["negatives"]} <= {"replace-att", "swap-att"}
    assert (tmp_path / "v.json").exists()
    bad = CliRunner().invoke(rewrite, [str(world.pairs["val"]), "-o", str(out), "--types", "x"])
    assert bad.exit_code != 0 and "unknown negative type" in bad.output
    bad = CliRunner().invoke(rewrite, [str(world.pairs["val"]), "-o", str(out), "--shard", "3/2"])
    assert bad.exit_code != 0 and "invalid shard" in bad.output


def test_resume_with_other_options_or_input_is_refused(parser, tmp_path):
    """OUT.meta.json keeps the options; a resume that would mix two configurations stops with
    one line naming what differs (review finding 4)."""
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        "".join(
            json.dumps({"id": str(i), "image": "x.png", "captions": [c]}) + "\n"
            for i, c in enumerate(["a red circle above a star", "two cats", "a green tree"])
        )
    )
    out = tmp_path / "out.jsonl"
    base = [str(pairs), "-o", str(out), "--format", "factual", "--no-progress"]
    assert CliRunner().invoke(rewrite, base).exit_code == 0
    whole = out.read_bytes()
    manifest = json.loads((tmp_path / "out.jsonl.manifest.json").read_text())
    assert manifest["stage"] == "rewrite" and manifest["settings"]["max_caption_chars"] == 1000
    assert len(manifest["inputs"]["pairs"]["sha256"]) == 64
    assert manifest["settings"]["seed"] is None  # a factual output: no rewriting options
    out.write_bytes(whole[: whole.index(b"\n") + 1])  # killed after one line
    result = CliRunner().invoke(rewrite, [*base, "--max-caption-chars", "12"])
    assert result.exit_code != 0
    (line,) = result.output.strip().splitlines()
    assert line == (
        f"Error: {out} was made with other settings or inputs (max_caption_chars: 1000 -> 12); "
        "rerun with the same ones, or pass --no-resume to start afresh"
    )
    assert len(out.read_bytes()) < len(whole)  # nothing was appended
    # options that do not shape a factual output (seed, workers) resume it
    assert CliRunner().invoke(rewrite, [*base, "--seed", "5", "--workers", "2"]).exit_code == 0
    assert out.read_bytes() == whole
    out.write_bytes(whole[: whole.index(b"\n") + 1])
    with open(pairs, "a") as handle:  # the input changed since
        handle.write(json.dumps({"id": "new", "image": "x.png", "captions": ["a dog"]}) + "\n")
    result = CliRunner().invoke(rewrite, base)
    assert result.exit_code != 0 and "(input pairs changed (" in result.output
    result = CliRunner().invoke(rewrite, [*base, "--no-resume", "--max-caption-chars", "50"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "out.jsonl.manifest.json").read_text())
    assert manifest["settings"]["max_caption_chars"] == 50
    result = CliRunner().invoke(rewrite, [*base, "--restart", "--max-caption-chars", "60"])
    assert result.exit_code == 0, result.output  # the deprecated spelling still works
    assert "--restart is deprecated; use --no-resume" in result.output


def test_an_older_runs_meta_json_is_checked_then_replaced(parser, tmp_path):
    """Outputs made before the resume manifest kept OUT.meta.json (flat options plus the
    input's path and sha256): a resume reads it, refuses other options, then replaces it."""
    from unimo_kit.rewrite.pipeline import RewriteConfig, output_meta
    from unimo_kit.utils import file_sha256

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"id": "0", "image": "x.png", "captions": ["a red car"]}) + "\n")
    out = tmp_path / "out.jsonl"
    base = [str(pairs), "-o", str(out), "--format", "factual", "--no-progress"]
    assert CliRunner().invoke(rewrite, base).exit_code == 0
    whole = out.read_bytes()
    (tmp_path / "out.jsonl.manifest.json").unlink()
    old = {"input": str(pairs), "input_sha256": file_sha256(pairs),
           **output_meta(pairs, RewriteConfig(output_format="factual"))}  # fmt: skip
    (tmp_path / "out.jsonl.meta.json").write_text(json.dumps(old))
    result = CliRunner().invoke(rewrite, [*base, "--max-caption-chars", "12"])
    assert result.exit_code != 0 and "max_caption_chars: 1000 -> 12" in result.output
    assert CliRunner().invoke(rewrite, base).exit_code == 0
    assert out.read_bytes() == whole
    assert not (tmp_path / "out.jsonl.meta.json").exists()
    assert (tmp_path / "out.jsonl.manifest.json").exists()


def test_resume_of_rewrites_under_another_seed_is_refused(parser, tmp_path):
    """In the default format the seed picks the negatives: a resume under another is refused."""
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"id": "0", "image": "x.png", "captions": ["a red circle"]}) + "\n")
    out = tmp_path / "out.jsonl"
    base = [str(pairs), "-o", str(out), "--no-progress"]
    assert CliRunner().invoke(rewrite, base).exit_code == 0
    out.write_bytes(b"")  # killed before its first line
    result = CliRunner().invoke(rewrite, [*base, "--seed", "5"])
    assert result.exit_code == 0, result.output  # an empty output has nothing to mix with
    result = CliRunner().invoke(rewrite, [*base, "--seed", "6"])
    assert result.exit_code != 0 and "(seed: 5 -> 6)" in result.output


@pytest.mark.slow
def test_kill_9_then_resume_equals_uninterrupted(world, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    records = [json.loads(x) for x in Path(world.pairs["train"]).read_text().splitlines()]
    with open(pairs, "w") as handle:
        for copy in range(8):  # enough captions that the run is still going when killed
            for r in records:
                handle.write(json.dumps({**r, "id": f"{r['id']}-{copy}"}) + "\n")
    unimo = [sys.executable, "-m", "unimo_kit.cli.main", "rewrite", str(pairs)]
    common = ["--no-progress", "--chunk-size", "4", "--sentence-negatives", "2"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    full, killed = tmp_path / "full.jsonl", tmp_path / "killed.jsonl"
    subprocess.run([*unimo, "-o", str(full), *common], check=True, env=env, capture_output=True)

    process = subprocess.Popen([*unimo, "-o", str(killed), *common], env=env,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if killed.exists() and killed.stat().st_size > 2000:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    partial = killed.read_bytes()
    assert 0 < len(partial) < full.stat().st_size, "the run was not interrupted mid-way"
    subprocess.run([*unimo, "-o", str(killed), *common], check=True, env=env, capture_output=True)
    assert killed.read_bytes() == full.read_bytes()


def test_imports_stay_light():
    code = (
        "import sys, unimo_kit.rewrite as r, unimo_kit.rewrite.pipeline, unimo_kit.cli.rewrite\n"
        "r.Rewriter, r.Vocabulary, r.rewrite_file, r.tfidf_negatives, r.make_positives\n"
        "heavy = [m for m in ('spacy', 'torch', 'transformers', 'sklearn') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
