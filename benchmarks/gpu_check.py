"""GPU check (issue 26): every GPU path of the toolkit against the CPU on the same small input.

One command, about five minutes on one GPU, stops by itself::

    python benchmarks/gpu_check.py                  # writes benchmarks/results/gpu_check.json
    python benchmarks/gpu_check.py --dry-run        # tiny inputs (the CPU halves; on a GPU too)
    python benchmarks/gpu_check.py --only faiss_flat,train_bf16 --budget-s 120

Checks (each against the CPU, or fp32, on the same input; the library's own entry points):

==============  ============================================================================
faiss_flat      ``build_index(.., "flat")`` searched on the CPU and copied to the GPU: identical
                ids (ties allowed), queries/s both ways
faiss_ivf       ``build_index(.., "ivf")`` with k-means on the CPU and on the GPU (the library's
                GPU path), each searched on the CPU, and the GPU-trained index searched on the
                GPU: recall@10 against exact search >= the CPU figure (within a stated band)
text_encoder    ``load_encoder("st:all-MiniLM-L6-v2")`` on cuda vs cpu: cosine, max abs diff
image_encoder   ``load_encoder("timm:tf_efficientnet_lite0")`` on cuda vs cpu, likewise
features        ``unimo features --device cuda`` vs ``--device cpu`` (float32 store), likewise
train_bf16      ``unimo train --config synth-small`` 200 steps, precision auto (bf16 on the GPU)
                vs fp32 on the same GPU: losses, no NaN, steps/s, pairs/s
train_resume    ``--stop-after`` half way then the same command again, against one
                uninterrupted run: the final weights bit-identical
torchrun_nccl   torchrun, world size 1: a process group of the trainer's backends
                (``cpu:gloo,cuda:nccl``) doing the trainer's collectives (nccl on CUDA
                tensors, gloo gathers of the checkpoint's CPU RNG states), then
                ``unimo train`` itself under torchrun
mfu             FLOPs of one training step (forward + backward, ``FlopCounterMode``) over its
                time, against the GPU's dense bf16 peak, for synth-small and unimo-minilm at
                the largest batch (a short doubling search) that fits
==============  ============================================================================

Each check runs in its own process (a crash, a hang or a CUDA error in one is recorded with
its output and the rest go on) under its own time budget and the run's global deadline
(``--budget-s``). Without CUDA each GPU check is ``skipped`` with the reason "no CUDA device"
and its CPU half still runs, on tiny inputs, so the script is exercised on any machine.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import datetime as _dt
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "benchmarks" / "results" / "gpu_check.json"
NO_CUDA = "no CUDA device (torch.cuda.is_available() is False): the CPU half ran on tiny inputs"
STATUSES = ("pass", "fail", "skipped")

#: Dense bf16 tensor-core peaks (TFLOP/s, no sparsity), by a substring of the device name;
#: the first match wins, so the more specific names come first.
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),  # SXM: "NVIDIA H100 80GB HBM3"
    ("H200", 989.0),
    ("A100", 312.0),
)


def peak_bf16_flops(device_name: str | None) -> float | None:
    """Dense bf16 peak in FLOP/s of the device named ``device_name`` (``None``: unknown)."""
    for key, tflops in PEAK_BF16_TFLOPS:
        if device_name and key.lower() in device_name.lower():
            return tflops * 1e12
    return None


# ----------------------------------------------------------------------------- framework


@dataclasses.dataclass
class Context:
    """What a check knows about its run."""

    cuda: bool  # a CUDA device is visible to torch
    dry_run: bool  # tiny inputs (always so without CUDA)
    work: Path  # scratch folder of this check (removed afterwards)
    deadline: float  # time.monotonic() by which the check must have returned
    text_encoder: str = "st:all-MiniLM-L6-v2"  # spec for text_encoder
    image_encoder: str = "timm:tf_efficientnet_lite0"  # spec for image_encoder

    def left(self) -> float:
        """Seconds left before the check's deadline."""
        return self.deadline - time.monotonic()


@dataclasses.dataclass
class Check:
    """One entry of :data:`CHECKS`."""

    run: Callable[[Context], dict[str, Any]]  # returns the result dict (see result())
    budget_s: float  # wall-clock ceiling on a GPU run (process start included)
    gpu: bool = True  # has a GPU half (skipped without CUDA)


def result(
    status: str,
    reason: str | None = None,
    figures: dict[str, Any] | None = None,
    tolerance: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A check's outcome: ``status`` (pass / fail / skipped), why, its figures, its bounds."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
    return {
        "status": status,
        "reason": reason,
        "figures": figures or {},
        "tolerance": tolerance or {},
    }


def verdict(
    failures: list[str], figures: dict[str, Any], tolerance: dict[str, Any]
) -> dict[str, Any]:
    """``pass`` when ``failures`` is empty, else ``fail`` naming each."""
    if failures:
        return result("fail", "; ".join(failures), figures, tolerance)
    return result("pass", None, figures, tolerance)


def scrub(text: str) -> str:
    """``text`` with this machine's paths replaced (results never hold absolute paths)."""
    prefixes = {
        str(REPO): ".",
        sys.prefix: "<python>",
        sys.base_prefix: "<python>",
        tempfile.gettempdir(): "<tmp>",
        str(Path.home()): "~",
    }
    for prefix, name in sorted(prefixes.items(), key=lambda kv: -len(kv[0])):
        if prefix and prefix not in ("/", "."):
            text = text.replace(prefix, name)
    return text


def run_in_process(check: Check, ctx: Context) -> dict[str, Any]:
    """Run ``check`` here; an exception becomes a ``fail`` with its traceback."""
    t0 = time.perf_counter()
    try:
        out = check.run(ctx)
    except Exception as exc:  # a check's failure is data, never the end of the run
        out = result("fail", f"{type(exc).__name__}: {exc}")
        out["traceback"] = traceback.format_exc()
    out["seconds"] = round(time.perf_counter() - t0, 2)
    return json.loads(scrub(json.dumps(out, default=_jsonable)))


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return repr(value)


def child_env(dry_run: bool) -> dict[str, str]:
    """Environment of a check's process: offline, quiet, the repo importable."""
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env.update(TQDM_DISABLE="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)  # a check decides itself whether it runs under torchrun
    return env


def run_child(name: str, args: argparse.Namespace, timeout: float) -> dict[str, Any]:
    """Run check ``name`` in a fresh process (its own session, killed whole on timeout)."""
    with tempfile.TemporaryDirectory(prefix=f"gpu_check_{name}_") as tmp:
        out_file = Path(tmp) / "result.json"
        command = [sys.executable, str(Path(__file__).resolve()), "--child", name]
        command += ["--child-out", str(out_file), "--child-budget-s", f"{timeout:.1f}"]
        command += ["--text-encoder", args.text_encoder, "--image-encoder", args.image_encoder]
        if args.dry_run:
            command.append("--dry-run")
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            command,
            cwd=tmp,
            env=child_env(args.dry_run),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            output, _ = proc.communicate(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
            timed_out = True
        seconds = round(time.perf_counter() - t0, 2)
        if out_file.is_file():
            out = json.loads(out_file.read_text())
        elif timed_out:
            out = result("fail", f"timed out after {timeout:.0f} s (its budget, or the deadline)")
        else:
            out = result("fail", f"the check's process exited with code {proc.returncode}")
        if out["status"] == "fail" or proc.returncode:
            out["output_tail"] = scrub(output[-4000:])
        out["process_seconds"] = seconds
        return out


def environment() -> dict[str, Any]:
    """Device name, versions, and whether faiss sees a GPU."""
    info: dict[str, Any] = {"python": platform.python_version()}
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_cuda"] = torch.version.cuda
        info["cuda"] = torch.cuda.is_available()
        if info["cuda"]:
            props = torch.cuda.get_device_properties(0)
            info["device_name"] = props.name
            info["device_count"] = torch.cuda.device_count()
            info["capability"] = f"{props.major}.{props.minor}"
            info["memory_gib"] = round(props.total_memory / 2**30, 1)
            info["bf16"] = torch.cuda.is_bf16_supported()
            info["peak_bf16_tflops"] = (peak_bf16_flops(props.name) or 0) / 1e12 or None
        else:
            info["device_name"] = None
    except ImportError as exc:
        info["torch"] = f"not importable: {exc}"
        info["cuda"] = False
    try:
        from unimo_kit.resources import import_faiss

        faiss = import_faiss()

        info["faiss"] = faiss.__version__
        info["faiss_gpus"] = int(getattr(faiss, "get_num_gpus", lambda: 0)())
    except ImportError as exc:
        info["faiss"] = f"not importable: {exc}"
        info["faiss_gpus"] = 0
    return info


# ----------------------------------------------------------------------------- inputs


def clustered_vectors(n: int, nq: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """L2-normalised database and query vectors around shared centres (so IVF lists mean
    something, as with real embeddings): ``(n, dim)`` and ``(nq, dim)`` float32."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(8, int(math.sqrt(n))), dim)).astype(np.float32)

    def draw(m: int) -> np.ndarray:
        x = centres[rng.integers(len(centres), size=m)]
        x = x + 0.6 * rng.standard_normal((m, dim)).astype(np.float32)
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    return draw(n), draw(nq)


def synth_world(root: Path, n_images: int) -> Any:
    """A small synthetic world (rendered images, captions): :func:`generate_world`."""
    from unimo_kit.data.synth import generate_world

    return generate_world(
        root, seed=0, n_images=n_images, n_texts=n_images, n_image_only=n_images // 2,
        workers=1, progress=False,
    )  # fmt: skip


def training_world(root: Path, n_pairs: int, n_extra: int) -> Path:
    """The trainer benchmark's generated world (random 49×1280 grids, template captions,
    rewrites and retrieved files named as synth-small expects): ``bench_trainer.make_world``."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_trainer import make_world

    root.mkdir(parents=True, exist_ok=True)
    make_world(root, n_pairs=n_pairs, n_extra=n_extra)
    return root


def cli_group() -> Any:
    """The ``unimo`` click group (needs the package installed: ``pip install -e .``)."""
    from unimo_kit.cli.main import cli

    return cli


def invoke(args: list[str]) -> str:
    """Run ``unimo ARGS`` in this process; raise with its output when it fails."""
    from click.testing import CliRunner

    outcome = CliRunner().invoke(cli_group(), args, catch_exceptions=True)
    if outcome.exit_code != 0:
        if outcome.exception is not None and not isinstance(outcome.exception, SystemExit):
            raise RuntimeError(f"unimo {args[0]} failed: {outcome.output[-2000:]}") from (
                outcome.exception
            )
        raise RuntimeError(f"unimo {args[0]} exited {outcome.exit_code}: {outcome.output[-2000:]}")
    return outcome.output


def compare_vectors(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Row cosines and element differences of two same-shaped float arrays (rows: dim 0)."""
    a2 = a.reshape(len(a), -1).astype(np.float64)
    b2 = b.reshape(len(b), -1).astype(np.float64)
    norms = np.linalg.norm(a2, axis=1) * np.linalg.norm(b2, axis=1)
    cosine = (a2 * b2).sum(axis=1) / np.maximum(norms, 1e-30)
    diff = np.abs(a2 - b2)
    return {
        "rows": len(a2),
        "min_cosine": float(cosine.min()),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "max_abs_value": float(np.abs(a2).max()),
    }


EMBEDDING_TOLERANCE = {"min_cosine": 0.9999, "max_abs_diff": 1e-3}


def embedding_failures(stats: dict[str, float]) -> list[str]:
    """What breaks :data:`EMBEDDING_TOLERANCE` in ``stats`` (from :func:`compare_vectors`)."""
    failures = []
    if stats["min_cosine"] < EMBEDDING_TOLERANCE["min_cosine"]:
        failures.append(f"min cosine {stats['min_cosine']:.6f} < 0.9999")
    if stats["max_abs_diff"] > EMBEDDING_TOLERANCE["max_abs_diff"]:
        failures.append(f"max abs diff {stats['max_abs_diff']:.2e} > 1e-3")
    return failures


def tf32_settings() -> dict[str, bool]:
    """torch's TF32 switches: cuDNN convolutions use TF32 by default, matmuls do not."""
    import torch

    return {
        "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
        "matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
    }


# ----------------------------------------------------------------------------- faiss


def _timed_search(index: Any, xq: np.ndarray, k: int, params: dict | None = None):
    """``(D, I, queries per second)`` with the library's ``search`` (best of three)."""
    from unimo_kit.index import search

    search(index, xq[: min(len(xq), 16)], k, params)  # warm-up (GPU kernels, caches)
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        D, I = search(index, xq, k, params)
        best = min(best, time.perf_counter() - t0)
    return D, I, len(xq) / best


def _faiss_gpu_missing() -> str | None:
    """Why faiss cannot put an index on the GPU here (``None``: it can)."""
    from unimo_kit.resources import faiss_gpu_available, import_faiss

    faiss = import_faiss()

    if faiss_gpu_available():
        return None
    return (
        f"faiss {faiss.__version__} has no GPU support or sees no GPU (faiss-cpu installed? "
        "docs/install.md installs faiss-gpu alone)"
    )


def _untied_mismatches(
    xq: np.ndarray, xb: np.ndarray, I_a: np.ndarray, I_b: np.ndarray, eps: float
) -> int:
    """Rows whose two id lists differ other than by ties: the true inner products of the two
    lists, sorted, differ by more than ``eps`` somewhere."""
    bad = 0
    for row in np.nonzero((I_a != I_b).any(axis=1))[0]:
        q = xq[row].astype(np.float64)
        sa = np.sort(xb[I_a[row][I_a[row] >= 0]].astype(np.float64) @ q)
        sb = np.sort(xb[I_b[row][I_b[row] >= 0]].astype(np.float64) @ q)
        if len(sa) != len(sb) or np.abs(sa - sb).max() > eps:
            bad += 1
    return bad


def check_faiss_flat(ctx: Context) -> dict[str, Any]:
    """Flat index: GPU search of the library's index gives the CPU's ids; queries/s."""
    from unimo_kit.index import build_index
    from unimo_kit.resources import import_faiss

    faiss = import_faiss()

    n, nq, dim, k = (2_000, 64, 32, 10) if ctx.dry_run else (200_000, 5_000, 384, 10)
    xb, xq = clustered_vectors(n, nq, dim)
    tol = {"ids": "identical up to ties", "tie_eps": 1e-5, "max_distance_diff": 1e-4}
    cpu = build_index(xb, "flat", use_gpu=False)
    D_cpu, I_cpu, qps_cpu = _timed_search(cpu, xq, k)
    figures: dict[str, Any] = {"n": n, "nq": nq, "dim": dim, "k": k, "cpu_qps": qps_cpu}
    if not ctx.cuda:
        return result("skipped", NO_CUDA, figures, tol)
    missing = _faiss_gpu_missing()
    if missing:
        return result("fail", missing, figures, tol)
    gpu = faiss.index_cpu_to_all_gpus(cpu)
    D_gpu, I_gpu, qps_gpu = _timed_search(gpu, xq, k)
    untied = _untied_mismatches(xq, xb, I_cpu, I_gpu, tol["tie_eps"])
    figures.update(
        gpu_qps=qps_gpu,
        speedup=qps_gpu / qps_cpu,
        rows_identical=float((I_cpu == I_gpu).all(axis=1).mean()),
        untied_mismatched_rows=untied,
        max_distance_diff=float(np.abs(D_cpu - D_gpu).max()),
    )
    failures = []
    if untied:
        failures.append(f"{untied} rows with other neighbours than the CPU's (not ties)")
    if figures["max_distance_diff"] > tol["max_distance_diff"]:
        failures.append(f"distances differ by {figures['max_distance_diff']:.2e}")
    return verdict(failures, figures, tol)


def _gpu_ivf_copy(index: Any, params: dict[str, int]) -> tuple[Any, dict[str, Any]]:
    """The CPU IVF ``index`` copied to the GPU with ``nprobe`` set, and notes on how."""
    from unimo_kit.resources import import_faiss

    faiss = import_faiss()

    notes: dict[str, Any] = {}
    gpu = faiss.index_cpu_to_all_gpus(index)
    notes["gpu_index_type"] = type(gpu).__name__
    try:  # the library's own setter (faiss.ParameterSpace) on a GPU index
        from unimo_kit.index.factory import set_search_params

        set_search_params(gpu, params)
        notes["library_set_search_params_on_gpu"] = "ok"
    except Exception as exc:  # record it; GpuParameterSpace is what GPU indexes take
        notes["library_set_search_params_on_gpu"] = f"{type(exc).__name__}: {exc}"[:300]
        faiss.GpuParameterSpace().set_index_parameter(gpu, "nprobe", params["nprobe"])
    return gpu, notes


def check_faiss_ivf(ctx: Context) -> dict[str, Any]:
    """IVF index: k-means on the GPU (``train_index(use_gpu=True)``) keeps the CPU's recall;
    the index searched on the GPU keeps it too; queries/s both ways."""
    from unimo_kit.index import build_index, exact_search, plan_index, recall_at_k

    n, nq, dim, k = (2_000, 64, 32, 10) if ctx.dry_run else (200_000, 5_000, 384, 10)
    xb, xq = clustered_vectors(n, nq, dim, seed=1)
    plan = plan_index(n, dim, index_type="ivf")
    params = {"nprobe": plan.search_params["nprobe"]}  # the plan's, the same for every index
    tol = {"recall_band": 0.01, "rule": "recall@10 of each GPU path >= CPU recall@10 - band"}
    _, I_ref = exact_search(xq, xb, k)
    cpu = build_index(xb, "ivf", tune_recall=None, use_gpu=False)
    _, I_cpu, qps_cpu = _timed_search(cpu, xq, k, params)
    recall_cpu = recall_at_k(I_cpu, I_ref)
    figures: dict[str, Any] = {
        "n": n, "nq": nq, "dim": dim, "k": k, "factory": plan.factory, "search_params": params,
        "cpu_recall_at_10": recall_cpu, "cpu_qps": qps_cpu,
    }  # fmt: skip
    if not ctx.cuda:
        return result("skipped", NO_CUDA, figures, tol)
    missing = _faiss_gpu_missing()
    if missing:
        return result("fail", missing, figures, tol)
    t0 = time.perf_counter()
    gpu_trained = build_index(xb, "ivf", tune_recall=None, use_gpu=True)  # GPU k-means
    figures["gpu_kmeans_build_seconds"] = time.perf_counter() - t0
    _, I_gt, _ = _timed_search(gpu_trained, xq, k, params)
    figures["gpu_kmeans_recall_at_10"] = recall_at_k(I_gt, I_ref)
    gpu, notes = _gpu_ivf_copy(gpu_trained, params)
    figures.update(notes)
    _, I_gpu, qps_gpu = _timed_search(gpu, xq, k)
    figures.update(gpu_search_recall_at_10=recall_at_k(I_gpu, I_ref), gpu_qps=qps_gpu)
    figures["speedup"] = qps_gpu / qps_cpu
    floor = recall_cpu - tol["recall_band"]
    failures = [
        f"{key} {figures[key]:.4f} < CPU {recall_cpu:.4f} - {tol['recall_band']}"
        for key in ("gpu_kmeans_recall_at_10", "gpu_search_recall_at_10")
        if figures[key] < floor
    ]
    return verdict(failures, figures, tol)


# ----------------------------------------------------------------------------- encoders


def _encode_both(
    ctx: Context, spec: str, items: list[Any], encode: Callable[[Any, list[Any]], np.ndarray]
) -> dict[str, Any]:
    """CPU figures, and the CUDA comparison when there is a device (each side warmed up on a
    few items first, so the rates leave model loading and first calls out)."""
    from unimo_kit.index import load_encoder

    def timed(encoder: Any) -> tuple[np.ndarray, float]:
        encode(encoder, items[:4])  # warm-up
        t0 = time.perf_counter()
        vectors = encode(encoder, items)
        return vectors, len(items) / (time.perf_counter() - t0)

    v_cpu, cpu_rate = timed(load_encoder(spec, device="cpu"))
    figures: dict[str, Any] = {
        "spec": spec, "items": len(items), "dim": int(v_cpu.shape[1]), "cpu_items_per_s": cpu_rate,
    }  # fmt: skip
    if not ctx.cuda:
        return result("skipped", NO_CUDA, figures, EMBEDDING_TOLERANCE)
    v_gpu, figures["gpu_items_per_s"] = timed(load_encoder(spec, device="cuda"))
    figures.update(compare_vectors(v_cpu, v_gpu), **tf32_settings())
    return verdict(embedding_failures(figures), figures, EMBEDDING_TOLERANCE)


def check_text_encoder(ctx: Context) -> dict[str, Any]:
    """The default text encoder on CUDA gives the CPU's embeddings."""
    world = synth_world(ctx.work / "world", 8 if ctx.dry_run else 200)
    texts = [
        caption
        for line in world.pairs["train"].read_text().splitlines()
        for caption in json.loads(line)["captions"]
    ][: 32 if ctx.dry_run else 1024]
    return _encode_both(ctx, ctx.text_encoder, texts, lambda enc, batch: enc.encode_text(batch))


def check_image_encoder(ctx: Context) -> dict[str, Any]:
    """The default image encoder on CUDA gives the CPU's embeddings."""
    world = synth_world(ctx.work / "world", 8 if ctx.dry_run else 256)
    images = [
        str(world.out_dir / json.loads(line)["image"])
        for split in ("train", "val", "test")
        for line in world.pairs[split].read_text().splitlines()
    ]

    def encode(encoder: Any, batch: list[str]) -> np.ndarray:
        encoded = encoder.encode_images(batch)  # an array (or EncodedImages, older API)
        return np.asarray(getattr(encoded, "vectors", encoded))

    return _encode_both(ctx, ctx.image_encoder, images, encode)


def check_features(ctx: Context) -> dict[str, Any]:
    """``unimo features --device cuda`` writes the CPU's visual tokens (float32 store)."""
    from unimo_kit.features import FeatureStore

    world = synth_world(ctx.work / "world", 8 if ctx.dry_run else 128)
    images = str(world.pairs["train"])

    def extract(device: str) -> tuple[np.ndarray, float]:
        out = ctx.work / f"features-{device}"
        t0 = time.perf_counter()
        invoke(["features", images, "-o", str(out), "--device", device, "--dtype", "float32"])
        seconds = time.perf_counter() - t0
        store = FeatureStore(out)
        ids = sorted(store.ids())
        return np.stack([store.get(i).feats for i in ids]), seconds  # (n, N, F)

    cpu, cpu_s = extract("cpu")
    figures: dict[str, Any] = {"images": len(cpu), "tokens": cpu.shape[1], "dim": cpu.shape[2]}
    figures["cpu_images_per_s"] = len(cpu) / cpu_s
    if not ctx.cuda:
        return result("skipped", NO_CUDA, figures, EMBEDDING_TOLERANCE)
    gpu, gpu_s = extract("cuda")
    figures["gpu_images_per_s"] = len(gpu) / gpu_s  # model load included, as a user sees it
    figures.update(compare_vectors(cpu, gpu), **tf32_settings())
    return verdict(embedding_failures(figures), figures, EMBEDDING_TOLERANCE)


# ----------------------------------------------------------------------------- training


def _train_args(world: Path, out: Path, steps: int, **sets: Any) -> list[str]:
    """``unimo train --config synth-small`` on ``world`` without val checks or progress bar."""
    fields = {
        "data_dir": str(world), "val_pairs": None, "steps": steps, "warmup_steps": 10,
        "log_every": 1, "save_every": max(1, steps), "eval_every": 0, "progress": False,
        **sets,
    }  # fmt: skip
    args = ["train", "--config", "synth-small", "-o", str(out), "--no-resume"]
    for key, value in fields.items():
        args += ["--set", f"{key}={json.dumps(value)}"]
    return args


def _read_log(run: Path) -> list[dict[str, float]]:
    with open(run / "log.csv", newline="") as handle:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(handle)]


def _run_figures(rows: list[dict[str, float]], batch_pairs: int, skip: int) -> dict[str, Any]:
    """Losses and speed of one logged run (the first ``skip`` steps left out of the speed)."""
    timed = rows[skip:] or rows
    seconds = sum(r["step_seconds"] for r in timed)
    losses = [r["loss"] for r in rows]
    tail = losses[-min(20, len(losses)) :]
    return {
        "steps": len(rows),
        "first_loss": losses[0],
        "last20_mean_loss": float(np.mean(tail)),
        "nan_or_inf": int(sum(not math.isfinite(x) for x in losses)),
        "steps_per_s": len(timed) / seconds,
        "pairs_per_s": batch_pairs * len(timed) / seconds,
        "samples_per_s": float(np.median([r["samples_per_second"] for r in timed])),
    }


def check_train_bf16(ctx: Context) -> dict[str, Any]:
    """synth-small, precision auto (bf16 autocast on the GPU) against fp32 on the same GPU."""
    world = training_world(ctx.work / "world", *((48, 24) if ctx.dry_run else (400, 200)))
    steps = 3 if ctx.dry_run else 200
    tol = {
        "first_loss_rel": 0.01,
        "last20_mean_loss_rel": 0.05,
        "rule": "same weights and batches: the first loss within 1 %, the mean of the last 20 "
        "within 5 % (bf16 rounding makes the trajectories drift apart); no NaN",
    }
    batch = 32  # synth-small's batch_pairs

    def run(device: str, precision: str) -> dict[str, Any]:
        out = ctx.work / f"run-{device}-{precision}"
        invoke(_train_args(world, out, steps, device=device, precision=precision))
        return _run_figures(_read_log(out), batch, skip=min(5, steps - 1))

    figures: dict[str, Any] = {"preset": "synth-small", "steps": steps}
    figures["cpu_auto"] = run("cpu", "auto")
    if not ctx.cuda:
        return result("skipped", NO_CUDA, figures, tol)
    bf16, fp32 = run("cuda", "auto"), run("cuda", "fp32")
    figures.update(gpu_auto_bf16=bf16, gpu_fp32=fp32)
    figures["bf16_speedup"] = bf16["steps_per_s"] / fp32["steps_per_s"]
    failures = [f"{name}: {r['nan_or_inf']} non-finite losses" for name, r in
                (("bf16", bf16), ("fp32", fp32)) if r["nan_or_inf"]]  # fmt: skip
    for key, bound in (
        ("first_loss", "first_loss_rel"),
        ("last20_mean_loss", "last20_mean_loss_rel"),
    ):
        rel = abs(bf16[key] - fp32[key]) / max(abs(fp32[key]), 1e-12)
        figures[f"{key}_rel_diff"] = rel
        if rel > tol[bound]:
            failures.append(f"{key}: bf16 {bf16[key]:.4f} vs fp32 {fp32[key]:.4f} ({rel:.1%})")
    return verdict(failures, figures, tol)


def _weights(run: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(run / "final" / "model.safetensors"))


def _differing(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    import torch

    return sorted(k for k in a.keys() | b.keys() if k not in a or k not in b
                  or not torch.equal(a[k], b[k]))  # fmt: skip


def check_train_resume(ctx: Context) -> dict[str, Any]:
    """Stopped half way and rerun, a GPU run ends with the weights of an unstopped run."""
    world = training_world(ctx.work / "world", *((48, 24) if ctx.dry_run else (400, 200)))
    steps = 4 if ctx.dry_run else 60
    device = "cuda" if ctx.cuda else "cpu"
    tol = {"final_weights": "bit-identical (torch.equal on every tensor)"}

    straight = ctx.work / "straight"
    invoke(_train_args(world, straight, steps, device=device, save_every=steps // 2))
    resumed = ctx.work / "resumed"
    args = _train_args(world, resumed, steps, device=device, save_every=steps // 2)
    invoke([*args, "--stop-after", str(steps // 2)])
    invoke([a for a in args if a != "--no-resume"])  # the same command again: resumes
    differ = _differing(_weights(straight), _weights(resumed))
    figures: dict[str, Any] = {"device": device, "steps": steps, "stopped_at": steps // 2}
    figures["tensors_differing"] = len(differ)
    figures["first_differing"] = differ[:5]
    if differ:  # is it the resume, or does the same run twice differ already?
        again = ctx.work / "straight-again"
        invoke(_train_args(world, again, steps, device=device, save_every=steps // 2))
        figures["rerun_tensors_differing"] = len(_differing(_weights(straight), _weights(again)))
    cpu_note = {"cpu_half": "ran on the CPU"} if not ctx.cuda else {}
    if not ctx.cuda:
        status = "fail" if differ else "skipped"
        reason = "resumed CPU run differs" if differ else NO_CUDA
        return result(status, reason, {**figures, **cpu_note}, tol)
    failures = []
    if differ:
        why = (
            " (two uninterrupted runs differ too: CUDA kernels are not deterministic here)"
            if figures["rerun_tensors_differing"]
            else " (uninterrupted reruns agree: the resume loses state)"
        )
        failures.append(f"{len(differ)} tensors differ after the resume{why}")
    return verdict(failures, figures, tol)


# ----------------------------------------------------------------------------- torchrun


def dist_worker(out_file: str) -> None:
    """Run under torchrun: the trainer's process group and collectives, results to a file."""
    import torch
    import torch.distributed as dist

    from unimo_kit.train import checkpoint as ckpt
    from unimo_kit.train.distributed import GPU_BACKEND, init_distributed

    cuda = torch.cuda.is_available()
    info = init_distributed("cuda" if cuda else "cpu")  # world size 1: no group (by design)
    figures: dict[str, Any] = {"init_distributed_device": info.device, "world": info.world_size}
    backend = GPU_BACKEND if cuda else "gloo"
    device = torch.device(info.device)
    if cuda:
        torch.cuda.set_device(device)
        torch.randn(1, device=device)  # CUDA initialised: its RNG joins the checkpoint's states
    dist.init_process_group(backend=backend)
    figures["backend"] = str(dist.get_backend())
    ops: dict[str, str] = {}

    def op(name: str, fn: Callable[[], bool]) -> None:
        try:
            ops[name] = "ok" if fn() else "wrong result"
        except Exception as exc:  # each collective is reported on its own
            ops[name] = f"{type(exc).__name__}: {exc}"[:300]

    grads = torch.arange(8, dtype=torch.float32, device=device)  # as all_reduce_gradients
    op("all_reduce_on_device", lambda: (dist.all_reduce(grads), grads.sum().item() == 28.0)[1])
    weights = torch.ones(4, device=device)  # as broadcast_parameters
    op("broadcast_on_device", lambda: (dist.broadcast(weights, src=0), bool(weights.all()))[1])
    feats = torch.randn(3, 5, device=device)  # as gather_features for the contrastive loss
    gathered = [torch.empty_like(feats)]
    op("all_gather_on_device", lambda: (dist.all_gather(gathered, feats), torch.equal(
        gathered[0], feats))[1])  # fmt: skip
    rng = ckpt.rng_state_tensors()  # CPU tensors: gloo's part of the group
    figures["rng_state_keys"] = sorted(rng)

    def gather_rng() -> bool:
        for value in rng.values():
            parts = [torch.empty_like(value)]
            dist.all_gather(parts, value.contiguous())
            if not torch.equal(parts[0], value):
                return False
        return True

    op("all_gather_cpu_rng_states", gather_rng)
    step = torch.tensor([7])  # as check_same_step
    out = [torch.empty_like(step)]
    op("all_gather_cpu_step", lambda: (dist.all_gather(out, step), int(out[0]) == 7)[1])
    op("barrier", lambda: (dist.barrier(), True)[1])
    dist.destroy_process_group()
    figures["collectives"] = ops
    Path(out_file).write_text(json.dumps(figures))


def _torchrun(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc-per-node", "1", *args]
    env = child_env(False)
    env["OMP_NUM_THREADS"] = env.get("OMP_NUM_THREADS", "1")
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


def check_torchrun_nccl(ctx: Context) -> dict[str, Any]:
    """torchrun at world size 1: the cpu:gloo,cuda:nccl group, then ``unimo train``."""
    tol = {"collectives": "every one 'ok'", "train": "exit 0 and a final model"}
    figures: dict[str, Any] = {}
    failures = []
    out_file = ctx.work / "dist.json"
    done = _torchrun(
        [str(Path(__file__).resolve()), "--dist-worker", str(out_file)], max(30.0, ctx.left() / 2)
    )
    if done.returncode or not out_file.is_file():
        failures.append(f"the torchrun worker exited {done.returncode}: {done.stderr[-1500:]}")
    else:
        figures.update(json.loads(out_file.read_text()))
        bad = {k: v for k, v in figures["collectives"].items() if v != "ok"}
        failures += [f"{k}: {v}" for k, v in bad.items()]
    world = training_world(ctx.work / "world", 48, 24)
    run = ctx.work / "run"
    device = "cuda" if ctx.cuda else "cpu"
    train_args = _train_args(world, run, 3, device=device)
    done = _torchrun(["-m", "unimo_kit.cli.main", *train_args], max(30.0, ctx.left() - 5))
    figures["train_exit_code"] = done.returncode
    figures["train_final_model"] = (run / "final" / "model.safetensors").is_file()
    if done.returncode or not figures["train_final_model"]:
        failures.append(f"unimo train under torchrun failed: {done.stderr[-1500:]}")
    if not ctx.cuda:
        if failures:
            return result("fail", "CPU half (gloo): " + "; ".join(failures), figures, tol)
        return result("skipped", NO_CUDA, figures, tol)
    return verdict(failures, figures, tol)


# ----------------------------------------------------------------------------- MFU


class StepBench:
    """The trainer's step (objective forward + backward + fused AdamW, bf16 autocast on the
    GPU) on one fixed batch of a training config: FLOPs counted, time measured."""

    def __init__(self, config: Any, device: str):
        import torch

        from unimo_kit.features import FeatureStore
        from unimo_kit.model import load_tokenizer
        from unimo_kit.train.data import UnimoTrainData
        from unimo_kit.train.distributed import DistInfo
        from unimo_kit.train.trainer import build_model, build_objective, param_groups
        from unimo_kit.utils import seed_everything

        seed_everything(config.seed)
        self.device = device
        self.cuda = device.startswith("cuda")
        dist = DistInfo(device=device)
        model = build_model(config, FeatureStore(config.features).meta).to(device)
        self.objective = build_objective(config, model, dist).to(device).train()
        data = UnimoTrainData(config, load_tokenizer(model.config))
        spec = data.make_sampler().next_spec()
        self.batch = {k: v.to(device) for k, v in data[spec].items()}
        self.optimizer = torch.optim.AdamW(
            param_groups(self.objective, config.weight_decay), lr=config.lr, fused=self.cuda or None
        )
        self.params = sum(p.numel() for p in model.parameters())

    def forward_backward(self) -> None:
        import torch

        device_type = "cuda" if self.cuda else "cpu"
        with torch.autocast(device_type=device_type, dtype=torch.bfloat16, enabled=self.cuda):
            out = self.objective(self.batch)
            loss = sum(v for k, v in out.items() if k.endswith("_loss"))
        loss.backward()

    def step(self) -> None:
        self.forward_backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def flops(self) -> int:
        """FLOPs of one forward + backward, as FlopCounterMode counts them."""
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            self.forward_backward()
        self.optimizer.zero_grad(set_to_none=True)
        return int(counter.get_total_flops())

    def seconds_per_step(self, steps: int) -> float:
        import torch

        self.step()  # warm-up
        if self.cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(steps):
            self.step()
        if self.cuda:
            torch.cuda.synchronize()
        return (time.perf_counter() - t0) / steps


MFU_MODELS = {  # name -> overrides of synth-small
    "synth-small": {},
    "unimo-minilm": {"model": "unimo-minilm", "model_overrides": {}},
}


def _mfu_config(world: Path, overrides: dict[str, Any], batch_pairs: int, device: str) -> Any:
    from unimo_kit.train import load_config

    half = max(1, batch_pairs // 2)
    return load_config(
        "synth-small",
        {
            "data_dir": str(world), "val_pairs": None, "device": device, "progress": False,
            "batch_pairs": batch_pairs, "batch_texts": half, "batch_images": half, **overrides,
        },
    ).resolved()  # fmt: skip


def _batch_search(world: Path, overrides: dict, cap: int, ctx: Context, seconds: float) -> dict:
    """The largest batch_pairs (doubling from 32, at most ``cap``) whose step fits in 85 % of
    the GPU's memory, within ``seconds``."""
    import torch

    total = torch.cuda.get_device_properties(0).total_memory
    tried: list[dict[str, Any]] = []
    best = None
    batch = 32
    stop = time.monotonic() + seconds
    while batch <= cap and time.monotonic() < stop:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        try:
            bench = StepBench(_mfu_config(world, overrides, batch, "cuda"), "cuda")
            bench.step()
            bench.step()
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
        except torch.cuda.OutOfMemoryError:
            tried.append({"batch_pairs": batch, "oom": True})
            break
        finally:
            bench = None
        tried.append({"batch_pairs": batch, "peak_memory_gib": round(peak / 2**30, 2)})
        if peak > 0.85 * total:
            break
        best = batch
        if peak * 2.2 > 0.85 * total:  # the next doubling would not fit
            break
        batch *= 2
    return {"batch_pairs": best or 32, "tried": tried}


def check_mfu(ctx: Context) -> dict[str, Any]:
    """Model FLOPs utilisation of the training step, synth-small and unimo-minilm."""
    import torch

    cap = 64 if ctx.dry_run else 2048
    world = training_world(ctx.work / "world", cap, cap // 2)
    name = torch.cuda.get_device_name(0) if ctx.cuda else platform.processor() or "cpu"
    peak = peak_bf16_flops(name) if ctx.cuda else None
    tol = {"peak_bf16_tflops": peak / 1e12 if peak else None, "rule": "reported, not judged"}
    figures: dict[str, Any] = {"device": name}
    for model, overrides in MFU_MODELS.items():
        entry: dict[str, Any] = {}
        if ctx.cuda:
            share = max(10.0, (ctx.left() - 20) / (2 * len(MFU_MODELS)))
            entry["search"] = _batch_search(world, overrides, cap, ctx, share)
            batch, device, steps = entry["search"]["batch_pairs"], "cuda", 10
        else:
            batch, device, steps = 2, "cpu", 1
        bench = StepBench(_mfu_config(world, overrides, batch, device), device)
        flops = bench.flops()
        seconds = bench.seconds_per_step(steps)
        entry.update(
            batch_pairs=batch, batch_texts=max(1, batch // 2), batch_images=max(1, batch // 2),
            params=bench.params, flops_per_step=flops, step_seconds=seconds,
            achieved_tflops=flops / seconds / 1e12, mfu=flops / seconds / peak if peak else None,
        )  # fmt: skip
        figures[model] = entry
        del bench
        if ctx.cuda:
            torch.cuda.empty_cache()
    if not ctx.cuda:
        return result("skipped", NO_CUDA, figures, tol)
    if peak is None:
        return result("fail", f"no bf16 peak known for {name!r}: add it to PEAK_BF16_TFLOPS",
                      figures, tol)  # fmt: skip
    return result("pass", None, figures, tol)


# ----------------------------------------------------------------------------- registry

#: name -> check, in the order they run (the most informative first, should time run out).
CHECKS: dict[str, Check] = {
    "faiss_flat": Check(check_faiss_flat, budget_s=30),
    "faiss_ivf": Check(check_faiss_ivf, budget_s=45),
    "text_encoder": Check(check_text_encoder, budget_s=30),
    "image_encoder": Check(check_image_encoder, budget_s=30),
    "features": Check(check_features, budget_s=30),
    "train_bf16": Check(check_train_bf16, budget_s=60),
    "train_resume": Check(check_train_resume, budget_s=45),
    "torchrun_nccl": Check(check_torchrun_nccl, budget_s=45),
    "mfu": Check(check_mfu, budget_s=60),
}
DRY_BUDGET_SCALE = 2.0  # a dry run on a loaded CPU machine may take longer than a GPU run


def run_checks(args: argparse.Namespace) -> dict[str, Any]:
    """Every selected check in its own process, under the global deadline."""
    start = time.monotonic()
    deadline = start + args.budget_s
    env = environment()
    names = [n.strip() for n in args.only.split(",")] if args.only else list(CHECKS)
    unknown = sorted(set(names) - set(CHECKS))
    if unknown:
        raise SystemExit(f"unknown checks {unknown}; known: {', '.join(CHECKS)}")
    checks: dict[str, Any] = {}
    for name in names:
        check = CHECKS[name]
        budget = check.budget_s * (DRY_BUDGET_SCALE if args.dry_run else 1.0)
        left = deadline - time.monotonic()
        if left < 5:
            checks[name] = result("skipped", f"global deadline ({args.budget_s:.0f} s) reached")
            continue
        print(f"[gpu_check] {name} (budget {min(budget, left):.0f} s) ...", file=sys.stderr)
        checks[name] = run_child(name, args, timeout=min(budget, left))
        checks[name]["budget_s"] = budget
        print(f"[gpu_check] {name}: {checks[name]['status']}"
              f"{' - ' + checks[name]['reason'] if checks[name]['reason'] else ''}",
              file=sys.stderr)  # fmt: skip
    counts = {s: sum(c["status"] == s for c in checks.values()) for s in STATUSES}
    return {
        "script": "benchmarks/gpu_check.py",
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "dry_run": args.dry_run,
        "budget_s": args.budget_s,
        "elapsed_s": round(time.monotonic() - start, 1),
        "environment": env,
        "summary": counts,
        "checks": checks,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help=f"result JSON (default: {DEFAULT_OUT.relative_to(REPO)}; "
                        "a dry run: gpu_check.dry.json in the temp folder)")  # fmt: skip
    parser.add_argument("--budget-s", type=float, default=300.0, help="global deadline (s)")
    parser.add_argument("--dry-run", action="store_true",
                        help="tiny inputs (the default without CUDA)")  # fmt: skip
    parser.add_argument("--only", help="comma-separated check names (default: all)")
    parser.add_argument("--text-encoder", default="st:all-MiniLM-L6-v2")
    parser.add_argument("--image-encoder", default="timm:tf_efficientnet_lite0")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    parser.add_argument("--child-budget-s", type=float, default=60.0, help=argparse.SUPPRESS)
    parser.add_argument("--dist-worker", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.dist_worker:
        dist_worker(args.dist_worker)
        return 0
    cuda = _cuda_available()
    if args.child:
        with tempfile.TemporaryDirectory(prefix=f"gpu_check_{args.child}_work_") as work:
            ctx = Context(
                cuda=cuda,
                dry_run=args.dry_run or not cuda,
                work=Path(work),
                deadline=time.monotonic() + args.child_budget_s,
                text_encoder=args.text_encoder,
                image_encoder=args.image_encoder,
            )
            out = run_in_process(CHECKS[args.child], ctx)
        Path(args.child_out).write_text(json.dumps(out, indent=2))
        return 0
    args.dry_run = args.dry_run or not cuda
    report = run_checks(args)
    default = Path(tempfile.gettempdir()) / "gpu_check.dry.json" if args.dry_run else DEFAULT_OUT
    out = Path(args.out) if args.out else default
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp, out)
    print(f"[gpu_check] {report['summary']} in {report['elapsed_s']} s -> {out}", file=sys.stderr)
    return 1 if report["summary"]["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
