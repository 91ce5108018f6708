"""Two real gloo processes (torchrun) against one process on the doubled batch."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest
from safetensors.torch import load_file

from unimo_kit.train import load_config, train

NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}


def _overrides(tiny_overrides: dict, batch_pairs: int) -> dict:
    # CMCL only (deterministic given the data: no masking, no dropout), rewrite negatives on so
    # gathered owners are exercised too.
    return {
        **tiny_overrides,
        "model_overrides": NO_DROPOUT,
        "batch_pairs": batch_pairs,
        "batch_texts": 0,
        "batch_images": 0,
        "mlm": False,
        "seq2seq": False,
        "mrp": False,
        "retrieval_positives": False,
        "rewrite_positives": False,
        "steps": 3,
        "save_every": 2,
        "val_pairs": None,
    }


@pytest.mark.slow
@pytest.mark.distributed
def test_two_gloo_processes_match_one_process_on_the_doubled_batch(tmp_path, tiny_overrides):
    overrides = _overrides(tiny_overrides, batch_pairs=4)
    args = [f"{k}={json.dumps(v)}" for k, v in overrides.items()]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("WORLD_SIZE", None)
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "unimo_kit.cli.main", "train", "--config", "tiny", "-o", str(tmp_path / "ddp"),
    ]  # fmt: skip
    for arg in args:
        command += ["--set", arg]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    # Rank 0 alone writes: one log row per step, one set of checkpoints.
    with open(tmp_path / "ddp" / "log.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["step"] for r in rows] == ["1", "2", "3"]
    assert sorted(p.name for p in (tmp_path / "ddp" / "checkpoints").iterdir()) == [
        "step-000002",
        "step-000003",
    ]
    state = json.loads((tmp_path / "ddp/checkpoints/step-000003/state.json").read_text())
    assert state["train_state"]["world_size"] == 2
    rng = load_file(str(tmp_path / "ddp/checkpoints/step-000003/rng.safetensors"))
    assert {"rank0.torch", "rank1.torch"} <= rng.keys()

    # The dense reference: one process, batch 8 = the union of the two ranks' batches.
    single = train(load_config("tiny", _overrides(tiny_overrides, batch_pairs=8)), tmp_path / "one")
    want = load_file(str(single.final / "model.safetensors"))
    got = load_file(str(tmp_path / "ddp" / "final" / "model.safetensors"))
    worst = max((want[k] - got[k]).abs().max().item() for k in want)
    assert worst < 1e-5, worst
