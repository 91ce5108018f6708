"""Retrieval metrics speed: chunked ranks (unimo_kit.eval.retrieval) on 5k images x 25k captions
vs a dense reference (full similarity matrix + argsort of every row), same data, same run.

Prints the timings and their ratio, checks the ranks agree, writes
benchmarks/results/eval_retrieval.json.

    python benchmarks/bench_eval_retrieval.py [--images 5000] [--per-image 5] [--dim 256]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from unimo_kit.eval.retrieval import retrieval_metrics, retrieval_ranks


def dense_reference(image_emb, text_emb, t2i):
    """Ranks from a full argsort (no ties in random float data, so no tie rule is needed)."""
    scores = image_emb @ text_emb.T  # (N_i, N_t)
    order = np.argsort(-scores, axis=1)  # (N_i, N_t)
    i2t = np.empty(len(image_emb), dtype=np.int64)
    for i in range(len(image_emb)):
        right = np.nonzero(t2i[order[i]] == i)[0]
        i2t[i] = right.min() + 1
    order_t = np.argsort(-scores.T, axis=1)  # (N_t, N_i)
    t2i_ranks = np.argmax(order_t == t2i[:, None], axis=1) + 1
    return i2t, t2i_ranks


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--per-image", type=int, default=5)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--chunk", type=int, default=1024)
    parser.add_argument("--noise", type=float, default=6.0, help="caption noise (harder: larger)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    images = rng.normal(size=(args.images, args.dim)).astype(np.float32)
    t2i = np.repeat(np.arange(args.images), args.per_image)
    texts = images[t2i] + args.noise * rng.normal(size=(len(t2i), args.dim)).astype(np.float32)
    images /= np.linalg.norm(images, axis=1, keepdims=True)
    texts /= np.linalg.norm(texts, axis=1, keepdims=True)

    t0, c0 = time.perf_counter(), time.process_time()
    metrics = retrieval_metrics(images, texts, t2i, chunk=args.chunk)
    chunked_s, chunked_cpu = time.perf_counter() - t0, time.process_time() - c0
    got = retrieval_ranks(images, texts, t2i, chunk=args.chunk)
    t0, c0 = time.perf_counter(), time.process_time()
    want = dense_reference(images, texts, t2i)
    dense_s, dense_cpu = time.perf_counter() - t0, time.process_time() - c0
    agree = bool(np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1]))
    result = {
        "images": args.images,
        "captions": len(t2i),
        "dim": args.dim,
        "chunk": args.chunk,
        "chunked_seconds": round(chunked_s, 3),
        "dense_argsort_seconds": round(dense_s, 3),
        "speedup_vs_dense": round(dense_s / chunked_s, 2),
        "chunked_cpu_seconds": round(chunked_cpu, 3),
        "dense_cpu_seconds": round(dense_cpu, 3),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "cpu_count": os.cpu_count(),
        "ranks_agree": agree,
        "rsum": round(metrics["rsum"], 3),
        "i2t_r1": round(metrics["i2t_r1"], 3),
        "t2i_r1": round(metrics["t2i_r1"], 3),
    }
    print(json.dumps(result, indent=2))
    out = Path(__file__).parent / "results" / "eval_retrieval.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
