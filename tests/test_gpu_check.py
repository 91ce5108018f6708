"""benchmarks/gpu_check.py on the CPU: its framework, its dry run, and a GPU-path bug it reads."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_peaks_by_device_name(gpu_check):
    assert gpu_check.peak_bf16_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert gpu_check.peak_bf16_flops("NVIDIA H100 PCIe") == 756e12
    assert gpu_check.peak_bf16_flops("NVIDIA H200") == 989e12
    assert gpu_check.peak_bf16_flops("NVIDIA A100-SXM4-80GB") == 312e12
    assert gpu_check.peak_bf16_flops("Tesla T4") is None
    assert gpu_check.peak_bf16_flops(None) is None


def test_a_raising_check_is_a_fail_with_its_traceback(gpu_check, tmp_path):
    def broken(ctx):
        raise RuntimeError("tensor left on the CPU")

    ctx = gpu_check.Context(cuda=False, dry_run=True, work=tmp_path, deadline=1e18)
    out = gpu_check.run_in_process(gpu_check.Check(broken, budget_s=1), ctx)
    assert out["status"] == "fail"
    assert "tensor left on the CPU" in out["reason"]
    assert "RuntimeError" in out["traceback"]
    assert str(REPO) not in json.dumps(out)  # paths of this machine scrubbed


def test_vector_comparison_and_tolerance(gpu_check):
    a = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    same = gpu_check.compare_vectors(a, a.copy())
    assert same["max_abs_diff"] == 0 and same["min_cosine"] == pytest.approx(1.0)
    assert gpu_check.embedding_failures(same) == []
    off = gpu_check.compare_vectors(a, a + 0.01)
    assert any("max abs diff" in f for f in gpu_check.embedding_failures(off))


def test_ties_are_not_mismatches(gpu_check):
    xb = np.eye(4, dtype=np.float32)[[0, 1, 1, 2]]  # rows 1 and 2 are the same vector
    xq = np.array([[0.0, 1.0, 0.0, 0.0]], dtype=np.float32)
    assert gpu_check._untied_mismatches(xq, xb, np.array([[1, 2]]), np.array([[2, 1]]), 1e-5) == 0
    assert gpu_check._untied_mismatches(xq, xb, np.array([[1, 2]]), np.array([[1, 0]]), 1e-5) == 1


def test_a_spent_budget_skips_every_check(gpu_check, tmp_path):
    out = tmp_path / "r.json"
    assert gpu_check.main(["--dry-run", "--budget-s", "0", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["checks"]) == set(gpu_check.CHECKS)
    assert all(c["status"] == "skipped" for c in report["checks"].values())
    assert all("global deadline" in c["reason"] for c in report["checks"].values())
    assert {"torch", "faiss", "cuda", "device_name"} <= set(report["environment"])


@pytest.mark.slow
def test_dry_run_skips_the_gpu_halves_and_runs_the_cpu_halves(tmp_path):
    """The whole script as a user runs it, on a machine without CUDA."""
    out = tmp_path / "gpu_check.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--dry-run", "--budget-s", "900", "--out", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    report = json.loads(out.read_text())
    checks = report["checks"]
    assert report["dry_run"] is True and report["environment"]["cuda"] is False
    failed = {k: (c["reason"], c.get("output_tail", "")[-800:]) for k, c in checks.items()
              if c["status"] != "skipped"}  # fmt: skip
    assert not failed, failed
    assert done.returncode == 0, done.stderr[-2000:]
    for name, check in checks.items():
        assert check["reason"].startswith("no CUDA device"), name
        assert check["figures"], f"{name}: the CPU half left no figures"
        assert set(check) >= {"status", "reason", "figures", "tolerance", "seconds"}
    assert checks["faiss_flat"]["figures"]["cpu_qps"] > 0
    assert checks["train_bf16"]["figures"]["cpu_auto"]["nan_or_inf"] == 0
    assert checks["torchrun_nccl"]["figures"]["collectives"]["all_gather_cpu_rng_states"] == "ok"
    assert checks["mfu"]["figures"]["synth-small"]["flops_per_step"] > 0
    assert str(REPO) not in out.read_text()  # no absolute path of this machine


def test_gpu_kmeans_index_stays_alive_during_training():
    """Caught on the CPU: faiss.index_cpu_to_all_gpus mocked by a CPU flat index whose
    deletion is recorded, and index.train wrapped to see whether it is still alive."""
    import faiss

    from unimo_kit.index.factory import IndexPlan, create_index, train_index

    events: list[str] = []

    class Probe(faiss.IndexFlatL2):
        def __del__(self):
            events.append("deleted")

    index = create_index(IndexPlan("IVF8,Flat", {}, 400), 16, "ip")
    train = index.train

    def spy(x):
        events.append("train")
        return train(x)

    x = np.random.default_rng(0).standard_normal((400, 16)).astype(np.float32)
    with (
        mock.patch.object(faiss, "index_cpu_to_all_gpus", lambda i: Probe(i.d)),
        mock.patch.object(type(index), "train", lambda self, x: spy(x)),
    ):
        train_index(index, x, use_gpu=True)
    assert "deleted" not in events[: events.index("train")], events
