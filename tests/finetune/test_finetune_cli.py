"""``unimo finetune-clip``: help, a short run, errors; two real gloo processes under torchrun."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from unimo_kit.cli.main import cli

torch = pytest.importorskip("torch")


def _args(tiny_clip, pair_data, out, *extra):
    pairs, rewrites = pair_data
    return [
        "finetune-clip", "--model", f"open_clip:{tiny_clip}", "--pairs", str(pairs),
        "--rewrites", str(rewrites), "-o", str(out), "--negatives", "2", "--batch-size", "4",
        "--lr", "1e-3", "--warmup-steps", "1", "--log-every", "1", "--threads", "1",
        "--device", "cpu", "--no-progress", *extra,
    ]  # fmt: skip


def test_help_names_the_model_spec_and_the_eval_command():
    result = CliRunner().invoke(cli, ["finetune-clip", "--help"])
    assert result.exit_code == 0, result.output
    assert "open_clip:ARCH[:WEIGHTS]" in result.output
    assert "--negatives" in result.output and "--type-mix" in result.output
    assert "unimo eval compositional --open-clip" in result.output
    assert "finetune-clip" in CliRunner().invoke(cli, ["--help"]).output


def test_the_shared_options_reach_the_config(pair_data, tmp_path, monkeypatch):
    """--seed, --device, --resume/--no-resume and --no-progress (cli/options.py) arrive in
    FinetuneConfig and the run call; the run itself is recorded, not done."""
    from types import SimpleNamespace

    import unimo_kit.finetune as finetune

    calls = []

    def record(config, *, resume, stop_after):
        calls.append((config, resume, stop_after))
        return SimpleNamespace(last_losses={}, final=None, state=SimpleNamespace(step=0))

    monkeypatch.setattr(finetune, "finetune_clip", record)
    pairs, rewrites = pair_data
    base = ["finetune-clip", "--model", "open_clip:ViT-B-32", "--pairs", str(pairs),
            "--rewrites", str(rewrites), "-o", str(tmp_path / "run")]  # fmt: skip
    assert CliRunner().invoke(cli, base).exit_code == 0
    given = [*base, "--seed", "5", "--device", "cpu", "--no-resume", "--no-progress"]
    assert CliRunner().invoke(cli, [*given, "--stop-after", "1"]).exit_code == 0
    (default, _, _), (config, resume, stop_after) = calls
    assert (default.seed, default.device, default.progress, calls[0][1]) == (0, None, True, True)
    assert (config.seed, config.device, config.progress) == (5, "cpu", False)
    assert resume is False and stop_after == 1
    text = CliRunner().invoke(cli, ["finetune-clip", "--help"], terminal_width=120).output
    assert "torch device (default: cuda when visible, else cpu)." in text
    assert "--seed INTEGER" in text and "No progress bars." in text


def test_a_short_run_then_the_same_command_finishes_it(tiny_clip, pair_data, tmp_path):
    out = tmp_path / "run"
    args = _args(tiny_clip, pair_data, out, "--steps", "3", "--type-mix", "swap-att=1")
    result = CliRunner().invoke(cli, [*args, "--stop-after", "2"])
    assert result.exit_code == 0, result.output
    assert "stopped at step 2 of 3" in result.output
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "model:" in result.output and (out / "final" / "model.safetensors").is_file()
    config = json.loads((out / "config.json").read_text())
    assert config["type_mix"] == {"swap-att": 1.0} and config["num_negatives"] == 2


def test_errors_are_one_line_messages(tiny_clip, pair_data, tmp_path):
    pairs, _ = pair_data
    no_source = ["finetune-clip", "--model", f"open_clip:{tiny_clip}", "--pairs", str(pairs),
                 "-o", str(tmp_path / "x")]  # fmt: skip
    result = CliRunner().invoke(cli, no_source)
    assert result.exit_code != 0 and "needs a source of negatives" in result.output
    bad_arch = _args(tiny_clip, pair_data, tmp_path / "y")
    bad_arch[2] = "open_clip:No-Such-Arch"
    result = CliRunner().invoke(cli, bad_arch)
    assert result.exit_code != 0 and "No-Such-Arch" in result.output
    result = CliRunner().invoke(cli, [*_args(tiny_clip, pair_data, tmp_path / "z"),
                                      "--type-mix", "swap-att"])  # fmt: skip
    assert result.exit_code != 0 and "TYPE=WEIGHT" in result.output


@pytest.mark.slow
@pytest.mark.distributed
def test_two_gloo_processes_match_one_process_on_the_doubled_batch(tiny_clip, pair_data, tmp_path):
    from safetensors.torch import load_file

    from unimo_kit.finetune import FinetuneConfig, finetune_clip

    common = ["--steps", "3", "--save-every", "2"]
    args = _args(tiny_clip, pair_data, tmp_path / "ddp", *common)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    env.pop("WORLD_SIZE", None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
               "2", "-m", "unimo_kit.cli.main", *args]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(tmp_path / "ddp" / "log.csv", newline="") as handle:
        assert [r["step"] for r in csv.DictReader(handle)] == ["1", "2", "3"]  # rank 0 alone
    state = json.loads((tmp_path / "ddp/checkpoints/step-000003/state.json").read_text())
    assert state["train_state"]["world_size"] == 2

    # One process on batch 8 = the union of the two ranks' batches of 4 (every step).
    pairs, rewrites = pair_data
    single = finetune_clip(
        FinetuneConfig(model=f"open_clip:{tiny_clip}", pairs=str(pairs), rewrites=str(rewrites),
                       out=str(tmp_path / "one"), num_negatives=2, batch_size=8, lr=1e-3,
                       warmup_steps=1, steps=3, save_every=2, threads=1, device="cpu",
                       progress=False)
    )  # fmt: skip
    want = load_file(str(single.final / "model.safetensors"))
    got = load_file(str(tmp_path / "ddp" / "final" / "model.safetensors"))
    worst = max((want[k] - got[k]).abs().max().item() for k in want)
    assert worst < 1e-5, worst
