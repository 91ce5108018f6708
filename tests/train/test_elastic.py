"""A two-node torchrun launch (c10d rendezvous, ``--max-restarts``) that loses a rank mid-run.

Two torchrun agents on this machine play two nodes (``--nnodes 2 --nproc-per-node 1``), meet
at a c10d rendezvous and train the tiny preset with a checkpoint every 2 steps. A wrapper
script (written by the test, run as the worker) kills rank 1 once, right after its step 3:
torchrun restarts the group, the trainer resumes from ``step-000002`` by itself (``--resume``
is the default), and the final weights must equal those of the same launch without the kill.
torchrun runs with ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1``: without it the restarted group
read the dead attempt's addresses from the shared store and failed to connect (torch 2.14).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from unimo_kit.train.distributed import SHARED_STORE_OPT_OUT, restart_hazard

#: The worker: the CLI with the trainer's optimizer step wrapped to log each step it takes
#: (one line ``PID STEP`` per step) and, when asked, to kill rank ``FAULT_RANK`` right after
#: step ``FAULT_STEP``, once per run (a marker file remembers that it did).
WRAPPER = """\
import inspect
import os
import sys

import unimo_kit.train.trainer as trainer

_step = trainer.optimizer_step
_signature = inspect.signature(_step)


def traced_step(*args, **kwargs):
    out = _step(*args, **kwargs)
    step = _signature.bind(*args, **kwargs).arguments["step"]  # steps done before this one
    rank = int(os.environ["RANK"])
    with open(os.path.join(os.environ["TRACE_DIR"], f"rank{rank}.txt"), "a") as handle:
        handle.write(f"{os.getpid()} {step + 1}\\n")
    fault = os.environ.get("FAULT_STEP")
    if fault and step + 1 == int(fault) and rank == int(os.environ["FAULT_RANK"]):
        try:
            os.close(os.open(os.environ["FAULT_MARKER"], os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return out  # died once already
        os._exit(17)  # no checkpoint, no cleanup: as a lost node
    return out


trainer.optimizer_step = traced_step

from unimo_kit.cli.main import cli

cli(sys.argv[1:], prog_name="unimo")
"""

STEPS, SAVE_EVERY, FAULT_STEP = 6, 2, 3
TIMEOUT_S = 240  # both launches together; a hang fails the test instead of blocking it


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _overrides(tiny_overrides: dict) -> list[str]:
    """CMCL on the tiny world, few steps, a checkpoint every ``SAVE_EVERY``."""
    values = {
        **tiny_overrides,
        "batch_texts": 0,
        "batch_images": 0,
        "mlm": False,
        "seq2seq": False,
        "mrp": False,
        "steps": STEPS,
        "save_every": SAVE_EVERY,
        "keep_checkpoints": 10,
        "val_pairs": None,
    }
    return [arg for k, v in values.items() for arg in ("--set", f"{k}={json.dumps(v)}")]


def _start(root: Path, name: str, tiny_overrides: dict, fault: bool) -> list[subprocess.Popen]:
    """Start two torchrun agents ("nodes") of one launch, each in its own process group."""
    out, trace = root / name, root / f"{name}-trace"
    trace.mkdir(parents=True)
    wrapper = root / "worker.py"  # written once by the test, before any agent starts
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "TRACE_DIR": str(trace),
        SHARED_STORE_OPT_OUT: "1",  # else the restarted group fails to connect (docs/train.md)
    }
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    if fault:
        env.update(FAULT_STEP=str(FAULT_STEP), FAULT_RANK="1", FAULT_MARKER=str(root / "died"))
    command = [
        sys.executable, "-m", "torch.distributed.run",
        "--nnodes", "2", "--nproc-per-node", "1",
        "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{_free_port()}",
        "--rdzv-id", name, "--rdzv-conf", "join_timeout=120",
        "--max-restarts", "1", "--monitor-interval", "0.5", "--local-addr", "127.0.0.1",
        str(wrapper), "train", "--config", "tiny", "-o", str(out), *_overrides(tiny_overrides),
    ]  # fmt: skip
    agents = []
    for node in range(2):
        with open(root / f"{name}-node{node}.log", "w") as log:  # the agent keeps its own copy
            agents.append(
                subprocess.Popen(
                    command,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                    start_new_session=True,
                )
            )
    return agents


def _wait(launches: dict[str, list[subprocess.Popen]], root: Path) -> None:
    """Wait for every agent, at most ``TIMEOUT_S`` in all; kill what is left, then check that
    every agent exited 0 (the agents' logs in the message otherwise)."""
    deadline = time.monotonic() + TIMEOUT_S
    codes: dict[str, list[int | None]] = {}
    try:
        for name, agents in launches.items():
            codes[name] = [a.wait(timeout=max(1.0, deadline - time.monotonic())) for a in agents]
    except subprocess.TimeoutExpired:
        pass
    finally:
        for agent in [a for agents in launches.values() for a in agents]:
            if agent.poll() is None:
                os.killpg(agent.pid, signal.SIGKILL)
                agent.wait()
    for name in launches:
        logs = "\n".join((root / f"{name}-node{i}.log").read_text()[-2000:] for i in range(2))
        assert codes.get(name) == [0, 0], f"{name}: agents exited {codes.get(name)}\n{logs}"


def _steps_per_process(trace: Path) -> dict[int, list[list[int]]]:
    """Per rank, the optimizer steps each of its worker processes took, in start order."""
    ranks: dict[int, list[list[int]]] = {}
    for path in sorted(trace.glob("rank*.txt")):
        steps: dict[str, list[int]] = {}  # insertion order = the order the processes ran
        for line in path.read_text().split("\n"):
            if line:
                pid, step = line.split()
                steps.setdefault(pid, []).append(int(step))
        ranks[int(path.stem.removeprefix("rank"))] = list(steps.values())
    return ranks


def _logged_steps(run_dir: Path) -> list[int]:
    with open(run_dir / "log.csv", newline="") as handle:
        return [int(row["step"]) for row in csv.DictReader(handle)]


def _sha256(path: Path) -> str:
    from safetensors.torch import load_file

    digest = hashlib.sha256()
    for key, tensor in sorted(load_file(str(path)).items()):
        digest.update(key.encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


@pytest.mark.slow
@pytest.mark.distributed
def test_a_lost_rank_restarts_from_the_last_checkpoint_to_the_same_weights(
    tmp_path, tiny_overrides
):
    (tmp_path / "worker.py").write_text(WRAPPER, encoding="utf-8")
    # Both launches at once: each spends most of its time importing, so the two cores overlap.
    _wait(
        {
            "clean": _start(tmp_path, "clean", tiny_overrides, fault=False),
            "faulty": _start(tmp_path, "faulty", tiny_overrides, fault=True),
        },
        tmp_path,
    )
    clean, faulty = tmp_path / "clean", tmp_path / "faulty"

    assert (tmp_path / "died").exists()  # the fault did fire
    # First attempt: both ranks took steps 1..3, then rank 1 died. The restarted group (new
    # processes) resumed from the step-2 checkpoint: step 3 again, then to the end.
    # Rank 0 may be stopped by its agent before it records step 3 (a loaded machine), so its
    # first attempt ends at step 2 or 3; rank 1 took exactly 1..3.
    first, restart = list(range(1, FAULT_STEP + 1)), list(range(SAVE_EVERY + 1, STEPS + 1))
    faulty_steps = _steps_per_process(tmp_path / "faulty-trace")
    assert faulty_steps[1] == [first, restart], faulty_steps
    assert faulty_steps[0][0] in (first, first[:-1]) and faulty_steps[0][1:] == [restart]
    clean_steps = _steps_per_process(tmp_path / "clean-trace")
    assert clean_steps == {0: [list(range(1, STEPS + 1))], 1: [list(range(1, STEPS + 1))]}
    assert _logged_steps(faulty) == _logged_steps(clean) == list(range(1, STEPS + 1))
    state = json.loads((faulty / "checkpoints/step-000006/state.json").read_text())
    assert state["train_state"]["world_size"] == 2
    # Bit-identical, not merely close: model, optimizer, RNG and data position all resume.
    for name in ("final/model.safetensors", "checkpoints/step-000006/optimizer.safetensors"):
        assert _sha256(faulty / name) == _sha256(clean / name), name
    logs = "".join(p.read_text() for p in tmp_path.glob("*-node*.log"))
    assert SHARED_STORE_OPT_OUT not in logs  # restart_hazard sees the opt-out in the workers


@pytest.mark.parametrize(
    ("env", "warned"),
    [
        ({"TORCHELASTIC_USE_AGENT_STORE": "True", "TORCHELASTIC_MAX_RESTARTS": "1"}, True),
        ({"TORCHELASTIC_USE_AGENT_STORE": "False", "TORCHELASTIC_MAX_RESTARTS": "1"}, False),
        ({"TORCHELASTIC_USE_AGENT_STORE": "True", "TORCHELASTIC_MAX_RESTARTS": "0"}, False),
        ({}, False),  # not under torchrun
    ],
)
def test_restart_hazard_names_the_opt_out_only_when_a_restart_would_reuse_the_store(env, warned):
    message = restart_hazard(env)
    assert (message is not None) == warned
    if warned:
        assert f"{SHARED_STORE_OPT_OUT}=1" in message and "--max-restarts 1" in message
