"""Rewrite of N real captions (FACTUAL train) with the local engine (1 process) and on a local
Ray with 2 workers: wall time, throughput ratio, Ray's start-up cost, and that both outputs are
byte-identical. Writes benchmarks/results/engine.json.

    python benchmarks/bench_engine.py --captions 20000
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "factual_train.csv"


def write_pairs(source: Path, path: Path, n: int) -> int:
    """One pairs.jsonl record per caption (the first ``n`` captions of the CSV)."""
    with open(source, newline="", encoding="utf-8") as handle, open(path, "w") as out:
        count = 0
        for row in csv.DictReader(handle):
            if count == n:
                break
            out.write(
                json.dumps({"id": f"f{count}", "image": "x.png", "captions": [row["caption"]]})
                + "\n"
            )
            count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--captions", type=int, default=20_000)
    parser.add_argument("--unit-records", type=int, default=1000)
    parser.add_argument("--out", default="benchmarks/results/engine.json")
    args = parser.parse_args()

    import ray

    from unimo_kit.engine import EngineOptions, run_rewrite

    work = Path(tempfile.mkdtemp(prefix="bench_engine_"))
    pairs = work / "pairs.jsonl"
    n = write_pairs(DATA, pairs, args.captions)
    load = os.getloadavg()[0]

    began = time.perf_counter()
    run_rewrite(pairs, work / "local.jsonl", engine="local", progress=False)
    local_s = time.perf_counter() - began

    began = time.perf_counter()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    startup_s = time.perf_counter() - began
    began = time.perf_counter()
    options = EngineOptions("ray", workers=2, progress=False)
    run_rewrite(pairs, work / "ray.jsonl", engine=options, unit_records=args.unit_records)
    ray_s = time.perf_counter() - began
    ray.shutdown()

    same = (work / "local.jsonl").read_bytes() == (work / "ray.jsonl").read_bytes()
    result = {
        "input": f"first {n} captions of factual_train.csv, one record each",
        "machine": f"{os.cpu_count()} CPU cores, shared with other jobs (load average "
        f"{load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end): wall times are inflated",
        "rewrite_local_1_process_s": round(local_s, 1),
        "rewrite_ray_2_workers_s": round(ray_s, 1),
        "ray_startup_s": round(startup_s, 1),
        "throughput_ratio_ray_over_local": round(local_s / ray_s, 2),
        "throughput_ratio_incl_startup": round(local_s / (ray_s + startup_s), 2),
        "captions_per_s": {"local": round(n / local_s, 1), "ray": round(n / ray_s, 1)},
        "unit_records": args.unit_records,
        "byte_identical": same,
    }
    print(json.dumps(result, indent=2))
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
