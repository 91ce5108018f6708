"""``unimo train`` through click's CliRunner."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from unimo_kit.cli.train import train


def test_list_presets_and_bad_overrides():
    runner = CliRunner()
    listed = runner.invoke(train, ["--list-presets"])
    assert listed.exit_code == 0 and "synth-small" in listed.output.split()
    bad = runner.invoke(train, ["--config", "tiny", "-o", "x", "--set", "stepz=2"])
    assert bad.exit_code != 0 and "unknown TrainConfig fields ['stepz']" in bad.output
    typed = runner.invoke(train, ["--config", "tiny", "-o", "x", "--set", "mlm=False"])
    assert typed.exit_code != 0 and 'Error: mlm must be true or false, got "False"' in typed.output
    missing = runner.invoke(train, ["--config", "tiny"])
    assert missing.exit_code != 0 and "-o/--output" in missing.output


def test_help_names_the_one_resume_pair():
    text = CliRunner().invoke(train, ["--help"]).output
    assert "--resume / --no-resume" in text and "[default: resume]" in text
    assert "Continue from the newest checkpoint in OUTPUT" in text


@pytest.mark.slow
def test_stop_after_then_resume_from_the_cli(tmp_path, tiny_overrides):
    sets = [f"{k}={json.dumps(v)}" for k, v in {**tiny_overrides, "steps": 2, "save_every": 1,
                                                 "num_workers": 1}.items()]  # fmt: skip
    args = ["--config", "tiny", "-o", str(tmp_path / "run")]
    for s in sets:
        args += ["--set", s]
    first = CliRunner().invoke(train, [*args, "--stop-after", "1"])
    assert first.exit_code == 0, first.output
    assert "stopped at step 1 of 2 (checkpoint saved)" in first.output
    assert not (tmp_path / "run" / "final").exists()
    second = CliRunner().invoke(train, args)
    assert second.exit_code == 0, second.output
    assert "step 2:" in second.output and "val R@1 image->text" in second.output
    assert (tmp_path / "run" / "final" / "model.safetensors").exists()
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["pairs"].startswith("/") and config["num_workers"] == 1
    rows = (tmp_path / "run" / "eval.jsonl").read_text()
    again = CliRunner().invoke(train, args)  # a rerun of the finished run
    assert again.exit_code == 0, again.output
    assert "already trained (2 steps); nothing to do" in again.output
    assert (tmp_path / "run" / "eval.jsonl").read_text() == rows  # no second val row

    # a typo in a data path fails before the finished run is touched, even with --no-resume
    weights = (tmp_path / "run" / "final" / "model.safetensors").read_bytes()
    typo = CliRunner().invoke(train, [*args, "--set", "features=/nonexistent", "--no-resume"])
    assert typo.exit_code != 0
    assert (tmp_path / "run" / "final" / "model.safetensors").read_bytes() == weights
    assert (tmp_path / "run" / "checkpoints").is_dir()
    assert json.loads((tmp_path / "run" / "config.json").read_text()) == config
