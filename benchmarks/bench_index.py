"""Index benchmark: encoding throughput of the index path, and flat vs HNSW vs IVF vs auto.

1. Encoding (``bench_encode.py``): ``load_encoder("st:all-MiniLM-L6-v2").encode_text`` (what
   ``unimo index build`` runs) against raw ``SentenceTransformer.encode`` on the same texts,
   same batch size, interleaved runs, best of ``--repeats``. Goal: ratio >= 0.95.
2. ANN on ``--n`` random unit vectors of dimension 384 (generated in blocks, seeded; queries
   drawn separately). Uniformly random high-dimensional vectors have no structure for an ANN
   index to exploit, so this is the hardest case; ``--clustered`` adds a variant with the same
   n drawn around 1,000 centres (closer to real embeddings). For each index type: build time,
   resident memory added, and a sweep of its search parameter (queries/s, recall@10 against
   exact search); the smallest setting with recall@10 >= 0.95 is reported with its speed-up
   over exact search. Goal: recall@10 >= 0.95 at >= 10x the flat queries/s.
   HNSW builds slowly on few cores; ``--hnsw-n`` caps its corpus (its flat reference is then
   recomputed on the same subset).

Usage::

    python benchmarks/bench_index.py                 # the full run (1M vectors)
    python benchmarks/bench_index.py --n 100000      # quicker

Writes ``benchmarks/results/index.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "index.json"
DIM = 384
K = 10
GOAL_RECALL = 0.95
GOAL_SPEEDUP = 10.0


def rss_bytes() -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def unit(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def random_vectors(n: int, seed: int, block: int = 100_000) -> np.ndarray:
    """``(n, DIM)`` float32 unit vectors, generated block by block."""
    out = np.empty((n, DIM), dtype=np.float32)
    rng = np.random.default_rng(seed)
    for start in range(0, n, block):
        stop = min(n, start + block)
        out[start:stop] = unit(rng.standard_normal((stop - start, DIM), dtype=np.float32))
    return out


def clustered_vectors(n: int, seed: int, centres: np.ndarray, block: int = 100_000) -> np.ndarray:
    """Unit vectors drawn around ``centres`` (noise of the same overall scale as the centre)."""
    out = np.empty((n, DIM), dtype=np.float32)
    rng = np.random.default_rng(seed)
    for start in range(0, n, block):
        stop = min(n, start + block)
        which = rng.integers(0, len(centres), size=stop - start)
        noise = rng.standard_normal((stop - start, DIM), dtype=np.float32) * 0.06
        out[start:stop] = unit(centres[which] + noise)
    return out


# --------------------------------------------------------------------------- encoding


# --------------------------------------------------------------------------- ANN


def timed_search(index, xq: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    from unimo_kit.index.factory import search

    began = time.perf_counter()
    _, I = search(index, xq, k)
    return I, len(xq) / (time.perf_counter() - began)


def build(plan, xb: np.ndarray, seed: int = 1234):
    from unimo_kit.index.factory import create_index, sample_rows, train_index

    before = rss_bytes()
    began = time.perf_counter()
    index = create_index(plan, xb.shape[1], "ip")
    if plan.train_size:
        rows = sample_rows(len(xb), plan.train_size, seed)
        train_index(index, xb[rows], seed=seed)
    for start in range(0, len(xb), 100_000):
        index.add(xb[start : start + 100_000])
    return index, time.perf_counter() - began, rss_bytes() - before


def sweep(index, key: str, values: list[int], xq, I_gt, flat_qps: float, extra=None) -> list:
    from unimo_kit.index.factory import recall_at_k, set_search_params

    rows = []
    for value in values:
        params = {key: value, **(extra(value) if extra else {})}
        set_search_params(index, params)
        I, qps = timed_search(index, xq, K)
        recall = recall_at_k(I, I_gt, K)
        rows.append({"params": params, "recall@10": recall, "qps": qps, "speedup": qps / flat_qps})
        print(f"    {params}: recall@10 {recall:.4f}, {qps:,.0f} q/s ({qps / flat_qps:.1f}x flat)")
        if recall >= 0.995 or qps < flat_qps:
            break
    return rows


def at_goal(rows: list) -> dict | None:
    hits = [r for r in rows if r["recall@10"] >= GOAL_RECALL]
    return max(hits, key=lambda r: r["qps"]) if hits else None


def bench_ann(xb: np.ndarray, xq: np.ndarray, hnsw_n: int, label: str) -> dict:
    import faiss

    from unimo_kit.index.factory import (
        IndexPlan,
        plan_index,
        quantizer_ef_search,
        recall_at_k,
        set_search_params,
        tune_search_params,
    )

    n = len(xb)
    print(f"[{label}] n={n:,} d={DIM} queries={len(xq)} threads={faiss.omp_get_max_threads()}")
    out: dict = {"n": n, "queries": len(xq), "types": {}}

    flat, flat_build, flat_mem = build(IndexPlan("Flat"), xb)
    I_gt, flat_qps = timed_search(flat, xq, K)
    print(f"  flat: build {flat_build:.1f}s, {flat_qps:,.1f} q/s (exact reference)")
    out["types"]["flat"] = {
        "factory": "Flat",
        "build_s": flat_build,
        "memory_bytes": flat_mem,
        "qps": flat_qps,
        "recall@10": 1.0,
    }
    del flat

    built: dict[str, dict] = {}
    for name in ("ivf", "auto"):
        plan = plan_index(n, DIM, index_type=name)
        if plan.factory in built:
            out["types"][name] = {**built[plan.factory], "same_as": built[plan.factory]["type"]}
            print(f"  {name}: {plan.factory} (same as {built[plan.factory]['type']})")
            continue
        if plan.factory.startswith("HNSW") and n > hnsw_n:
            out["types"][name] = {"factory": plan.factory, "skipped": f"n > --hnsw-n {hnsw_n}"}
            continue
        index, build_s, mem = build(plan, xb)
        print(f"  {name}: {plan.factory}, build {build_s:.1f}s, +{mem / 2**20:,.0f} MiB")
        tuned = tune_search_params(
            index,
            lambda xb=xb: iter([xb[i : i + 200_000] for i in range(0, len(xb), 200_000)]),
            n,
            plan.search_params,
            target=GOAL_RECALL,
        )
        set_search_params(index, tuned["params"])
        I, qps = timed_search(index, xq, K)
        tuned_row = {"params": tuned["params"], "recall@10": recall_at_k(I, I_gt, K), "qps": qps}
        print(f"    tuned at build (target {GOAL_RECALL} on a database sample): {tuned_row}")
        if not plan.search_params:  # exact: nothing to sweep
            built[plan.factory] = out["types"][name] = {
                "type": name,
                "factory": plan.factory,
                "build_s": build_s,
                "memory_bytes": mem,
                "tuned": tuned_row,
            }
            del index
            continue
        key = "efSearch" if "efSearch" in plan.search_params else "nprobe"
        nlist = faiss.extract_index_ivf(index).nlist if key == "nprobe" else None
        values = [4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048]
        if nlist:
            values = [v for v in values if v <= nlist]

        def extra(v, nlist=nlist):
            return {"quantizer_efSearch": quantizer_ef_search(v)} if nlist and nlist >= 1024 else {}

        rows = sweep(index, key, values, xq, I_gt, flat_qps, extra if key == "nprobe" else None)
        record = {
            "type": name,
            "factory": plan.factory,
            "build_s": build_s,
            "memory_bytes": mem,
            "tuned": tuned_row,
            "sweep": rows,
            "at_goal": at_goal(rows),
        }
        built[plan.factory] = record
        out["types"][name] = record
        del index

    # HNSW on at most hnsw_n vectors (graph construction is slow on few cores).
    m = min(n, hnsw_n)
    sub = xb[:m]
    if m < n:
        sub_flat, _, _ = build(IndexPlan("Flat"), sub)
        I_sub, sub_flat_qps = timed_search(sub_flat, xq, K)
        del sub_flat
    else:
        I_sub, sub_flat_qps = I_gt, flat_qps
    plan = plan_index(m, DIM, index_type="hnsw")
    index, build_s, mem = build(plan, sub)
    print(f"  hnsw: {plan.factory} on {m:,}, build {build_s:.1f}s, flat there {sub_flat_qps:,.0f}")
    rows = sweep(index, "efSearch", [16, 32, 64, 128, 256, 512, 1024], xq, I_sub, sub_flat_qps)
    out["types"]["hnsw"] = {
        "factory": plan.factory,
        "n": m,
        "flat_qps_same_n": sub_flat_qps,
        "build_s": build_s,
        "memory_bytes": mem,
        "sweep": rows,
        "at_goal": at_goal(rows),
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="database vectors")
    parser.add_argument("--queries", type=int, default=500, help="query vectors")
    parser.add_argument("--hnsw-n", type=int, default=100_000, help="cap on HNSW's corpus")
    parser.add_argument("--clustered", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--n-texts", type=int, default=2000, help="texts for the encoding run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-encoding", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    import faiss

    began = time.perf_counter()
    results: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "faiss_threads": faiss.omp_get_max_threads(),
            "faiss": faiss.__version__,
            "python": platform.python_version(),
            "load_avg_at_start": os.getloadavg(),
        },
        "goals": {"encode_ratio": 0.95, "recall@10": GOAL_RECALL, "speedup_vs_flat": GOAL_SPEEDUP},
    }
    if not args.skip_encoding:
        from bench_encode import bench_encoding

        results["encoding"] = bench_encoding(args.n_texts, 64, args.repeats)
        enc = results["encoding"]
        print(
            f"encoding: index path {enc['index_texts_per_s']:,.0f} texts/s, raw "
            f"{enc['raw_texts_per_s']:,.0f} texts/s, ratio {enc['ratio']:.3f}"
        )
    xb = random_vectors(args.n, seed=1)
    xq = random_vectors(args.queries, seed=2)
    results["random"] = bench_ann(xb, xq, args.hnsw_n, "random")
    del xb
    if args.clustered:
        centres = random_vectors(1000, seed=3)
        xb = clustered_vectors(args.n, 4, centres)
        xq = clustered_vectors(args.queries, 5, centres)
        results["clustered"] = bench_ann(xb, xq, args.hnsw_n, "clustered")
        del xb
    results["seconds"] = time.perf_counter() - began
    results["machine"]["load_avg_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(tmp, args.out)
    print(f"wrote {args.out} ({results['seconds']:.0f}s)")


if __name__ == "__main__":
    main()
