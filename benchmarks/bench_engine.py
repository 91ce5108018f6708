"""The engine on this machine, in one run: ``unimo rewrite`` of N real captions (FACTUAL train)
and a text index build of N texts (the same captions, all-MiniLM-L6-v2, ``--type flat``), each
three ways: the local engine in 1 process, locally with 2 workers (rewrite ``--workers 2``;
the index as two ``--shard i/2`` processes, then ``unimo index merge``, the
by-hand fallback of docs/scaling.md) and ``--engine ray`` with 2 workers on a local Ray.
Reports wall times, the CPU seconds of the process tree (this process, Ray's and the shard
processes, sampled from /proc), the throughput ratio of each to 1 process, Ray's fixed
start-up cost, the machine's load average around each arm (the 2 cores are shared with other
jobs), and whether every output is byte-identical to the 1-process one. Writes
benchmarks/results/engine.json (after the rewrite arms too, so a cut run keeps them).

    python benchmarks/bench_engine.py --captions 20000 --texts 20000 \
        --data ../shared/data/factual_train.csv
    python benchmarks/bench_engine.py --captions 20000 --skip-index   # the rewrite arms only
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "factual_train.csv"
ENCODER = "st:all-MiniLM-L6-v2"

SHARD_BUILD = """
import sys
from unimo_kit.index.build import BuildConfig, build
texts, out, shard, block = sys.argv[1:5]
config = BuildConfig(input=texts, kind="texts", encoder="{encoder}", index_type="flat",
                     block_size=int(block), shard=shard)
build(config, out, progress=False)
"""


def captions(source: Path, n: int) -> list[str]:
    """The first ``n`` captions of the CSV."""
    out = []
    with open(source, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if len(out) == n:
                break
            out.append(row["caption"])
    return out


def write_jsonl(path: Path, records: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record) + "\n")


LOADS: dict[str, list[float]] = {}  # arm -> 1-minute load average before and after it
CPU: dict[str, float | None] = {}  # arm -> CPU seconds of the process tree during it


def _proc_times() -> dict[int, tuple[int, float]]:
    """``pid -> (parent pid, user + system CPU seconds)`` of every process in /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except OSError:  # gone since the listing
            continue
        out[int(name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    return out


class TreeCPU:
    """CPU seconds (user + system) of this process and every process below it while the block
    runs, sampled from /proc every ``interval`` s: Ray's workers are grandchildren that a
    ``wait`` never counts. A process that ends between two samples loses at most its last
    ``interval``. ``seconds`` is ``None`` without /proc (not Linux)."""

    def __init__(self, interval: float = 0.25):
        self.interval = interval
        self.seconds: float | None = None
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        procs = _proc_times()
        tree, todo = set(), [os.getpid()]
        children: dict[int, list[int]] = {}
        for pid, (parent, _) in procs.items():
            children.setdefault(parent, []).append(pid)
        while todo:
            pid = todo.pop()
            tree.add(pid)
            todo += children.get(pid, [])
        for pid in tree & procs.keys():
            self._last[pid] = procs[pid][1]

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> TreeCPU:
        if os.path.isdir("/proc/self"):
            self._sample()
            self._first = dict(self._last)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if not self._thread.is_alive():
            return
        self._stop.set()
        self._thread.join()
        self._sample()
        self.seconds = sum(t - self._first.get(pid, 0.0) for pid, t in self._last.items())


def timed(fn, *args, arm: str = "", **kwargs) -> float:
    """Wall seconds of ``fn(*args, **kwargs)``, with the load average around it in LOADS and
    the process tree's CPU seconds in CPU."""
    before = os.getloadavg()[0]
    with TreeCPU() as cpu:
        began = time.perf_counter()
        fn(*args, **kwargs)
        seconds = time.perf_counter() - began
    LOADS[arm] = [round(before, 1), round(os.getloadavg()[0], 1)]
    CPU[arm] = None if cpu.seconds is None else round(cpu.seconds, 1)
    return seconds


def arm_summary(
    n: int, seconds: dict[str, float], same: dict[str, bool], startup: float, stage: str
) -> dict:
    """Wall times, process-tree CPU seconds, records/s, ratios to the 1-process arm and the
    load around each arm."""
    one = seconds["local_1_process"]
    return {
        "load_before_after": {arm: LOADS[f"{stage}/{arm}"] for arm in seconds},
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "cpu_seconds": {arm: CPU[f"{stage}/{arm}"] for arm in seconds},
        "records_per_s": {k: round(n / v, 1) for k, v in seconds.items()},
        "ratio_to_1_process": {k: round(one / v, 2) for k, v in seconds.items()},
        "ratio_ray_incl_startup": round(one / (seconds["ray_2_workers"] + startup), 2),
        "byte_identical_to_1_process": same,
    }


def bench_rewrite(work: Path, texts: list[str], unit_records: int, ray_options) -> tuple:
    from unimo_kit.engine import run_rewrite

    pairs = work / "pairs.jsonl"
    records = [{"id": f"f{i}", "image": "x.png", "captions": [t]} for i, t in enumerate(texts)]
    write_jsonl(pairs, records)
    outs = {arm: work / f"rewrite-{arm}.jsonl" for arm in ARMS}
    seconds = {
        "local_1_process": timed(
            run_rewrite,
            pairs,
            outs["local_1_process"],
            arm="rewrite/local_1_process",
            engine="local",
            progress=False,
        ),
        "local_2_workers": timed(
            run_rewrite,
            pairs,
            outs["local_2_workers"],
            arm="rewrite/local_2_workers",
            engine="local",
            workers=2,
            progress=False,
        ),
        "ray_2_workers": timed(
            run_rewrite,
            pairs,
            outs["ray_2_workers"],
            arm="rewrite/ray_2_workers",
            engine=ray_options,
            unit_records=unit_records,
            progress=False,
        ),
    }
    reference = outs["local_1_process"].read_bytes()
    same = {arm: outs[arm].read_bytes() == reference for arm in ARMS[1:]}
    return seconds, same


def bench_index(work: Path, texts: list[str], block_size: int, ray_options) -> tuple:
    from unimo_kit.engine import run_index_build
    from unimo_kit.index.build import BuildConfig, merge_indexes

    corpus = work / "texts.jsonl"
    write_jsonl(corpus, [{"id": f"t{i}", "text": t} for i, t in enumerate(texts)])
    config = BuildConfig(
        input=str(corpus), kind="texts", encoder=ENCODER, index_type="flat", block_size=block_size
    )
    outs = {arm: work / f"index-{arm}" for arm in ARMS}

    def two_shards() -> None:
        env = dict(os.environ)  # torch's default threads, as in 1 process: the same bits
        script = SHARD_BUILD.format(encoder=ENCODER)
        shards = [work / f"index-shard{i}" for i in range(2)]
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", script, str(corpus), str(s), f"{i}/2", str(block_size)],
                env=env,
            )
            for i, s in enumerate(shards)
        ]
        if any(p.wait() != 0 for p in procs):
            raise RuntimeError("a shard build failed")
        merge_indexes(shards, outs["local_2_workers"])

    seconds = {
        "local_1_process": timed(
            run_index_build,
            config,
            outs["local_1_process"],
            arm="index_build/local_1_process",
            progress=False,
            engine="local",
        ),
        "local_2_workers": timed(two_shards, arm="index_build/local_2_workers"),
        "ray_2_workers": timed(
            run_index_build,
            config,
            outs["ray_2_workers"],
            arm="index_build/ray_2_workers",
            progress=False,
            engine=ray_options,
        ),
    }

    def files(folder: Path) -> tuple[bytes, bytes]:
        return (folder / "index.faiss").read_bytes(), (folder / "records.jsonl").read_bytes()

    same = {arm: files(outs[arm]) == files(outs["local_1_process"]) for arm in ARMS[1:]}
    return seconds, same


ARMS = ("local_1_process", "local_2_workers", "ray_2_workers")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--captions", type=int, default=20_000, help="rewrite input size")
    parser.add_argument("--texts", type=int, default=20_000, help="index build input size")
    parser.add_argument("--unit-records", type=int, default=1000, help="rewrite units")
    parser.add_argument("--block-size", type=int, default=2000, help="index build units")
    parser.add_argument("--data", type=Path, default=DATA, help="FACTUAL train CSV")
    parser.add_argument(
        "--skip-index",
        action="store_true",
        help="run the rewrite arms only (the file written then has no index_build: name "
        "another --out to keep an earlier engine.json whole)",
    )
    parser.add_argument("--out", default="benchmarks/results/engine.json")
    args = parser.parse_args()

    import ray

    from unimo_kit.engine import EngineOptions

    work = Path(tempfile.mkdtemp(prefix="bench_engine_"))
    texts = captions(args.data, max(args.captions, args.texts))
    load = os.getloadavg()[0]
    began = time.perf_counter()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    startup = time.perf_counter() - began
    ray_options = EngineOptions("ray", workers=2, progress=False)

    def machine() -> str:
        return (
            f"{os.cpu_count()} CPU cores, load average {load:.1f} at the start and "
            f"{os.getloadavg()[0]:.1f} at the end (the benchmark's own processes count; "
            "more than the core count means other jobs shared the machine)"
        )

    result: dict = {"ray_startup_s": round(startup, 1)}
    try:
        rewrite = bench_rewrite(work, texts[: args.captions], args.unit_records, ray_options)
        result["rewrite"] = {
            "input": f"first {args.captions} captions of factual_train.csv, one record each",
            "unit_records": args.unit_records,
            **arm_summary(args.captions, *rewrite, startup, "rewrite"),
        }
        write_result(args.out, {"machine": machine(), **result})
        if args.skip_index:
            return
        index = bench_index(work, texts[: args.texts], args.block_size, ray_options)
        result["index_build"] = {
            "input": f"first {args.texts} captions of factual_train.csv as texts, {ENCODER}, "
            "--type flat",
            "block_size": args.block_size,
            "local_2_workers": "two --shard i/2 processes + index merge",
            **arm_summary(args.texts, *index, startup, "index_build"),
        }
    finally:
        ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)  # ~35 MB of outputs at 20,000 records
    write_result(args.out, {"machine": machine(), **result})


def write_result(path: str, result: dict) -> None:
    print(json.dumps(result, indent=2))
    Path(path).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
