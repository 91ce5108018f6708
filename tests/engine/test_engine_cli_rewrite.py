"""``unimo rewrite --engine local|ray``: the flags in --help, the ray output byte-identical to
local through the CLI, and a failing engine run as a one-line error (no traceback)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from unimo_kit.cli.rewrite import rewrite
from unimo_kit.engine import EngineError

ARGS = ["--per-type", "1", "--sentence-negatives", "1", "--chunk-size", "4", "--no-progress"]


def test_help_lists_the_engine_flags():
    result = CliRunner().invoke(rewrite, ["--help"])
    assert result.exit_code == 0
    for flag in ("--engine [local|ray]", "--ray-address", "RAY_ADDRESS", "units in flight"):
        assert flag in result.output


@pytest.fixture(scope="module")
def local_cli_output(pairs_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli_local") / "rewrites.jsonl"
    result = CliRunner().invoke(rewrite, [str(pairs_file), "-o", str(out), *ARGS])
    assert result.exit_code == 0, result.output
    return out


def test_cli_ray_is_byte_identical_to_cli_local(
    ray_session, pairs_file, local_cli_output, tmp_path, monkeypatch
):
    pytest.importorskip("ray")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    out = tmp_path / "rewrites.jsonl"
    args = [str(pairs_file), "-o", str(out), *ARGS, "--engine", "ray", "--workers", "2"]
    result = CliRunner().invoke(rewrite, args)
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == local_cli_output.read_bytes()
    assert "wrote" in result.output


def test_engine_options_reach_run_rewrite(pairs_file, tmp_path, monkeypatch):
    """--engine, --ray-address ($RAY_ADDRESS) and --workers become EngineOptions; local
    keeps --workers as the stage's process count."""
    import unimo_kit.engine

    seen = {}

    def fake_run_rewrite(pairs, output, config, *, engine):
        seen["engine"], seen["config"] = engine, config
        raise EngineError("rewrite unit 3 (records 6-7 of pairs.jsonl) failed after 4 attempt(s)")

    monkeypatch.setattr(unimo_kit.engine, "run_rewrite", fake_run_rewrite, raising=False)
    monkeypatch.setattr(unimo_kit.engine, "ray_version", lambda: "2.60.0")
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    out = str(tmp_path / "r.jsonl")
    result = CliRunner().invoke(
        rewrite, [str(pairs_file), "-o", out, "--engine", "ray", "--workers", "3"]
    )
    assert result.exit_code == 1
    assert "Error: rewrite unit 3 (records 6-7 of pairs.jsonl) failed" in result.output
    assert "Traceback" not in result.output and result.exception.__class__ is SystemExit
    options = seen["engine"]
    assert (options.engine, options.ray_address, options.workers) == ("ray", "ray://head:10001", 3)
    result = CliRunner().invoke(rewrite, [str(pairs_file), "-o", out, "--workers", "3"])
    options = seen["engine"]
    assert (options.engine, options.ray_address, options.workers) == ("local", None, None)
    assert seen["config"].workers == 3


def test_ray_without_ray_installed_is_a_usage_error(pairs_file, tmp_path, monkeypatch):
    import unimo_kit.engine

    monkeypatch.setattr(unimo_kit.engine, "ray_version", lambda: None)
    out = str(tmp_path / "r.jsonl")
    result = CliRunner().invoke(rewrite, [str(pairs_file), "-o", out, "--engine", "ray"])
    assert result.exit_code == 2 and "--engine ray needs Ray" in result.output
