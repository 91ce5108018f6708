"""Encoding throughput of the index path against raw ``SentenceTransformer.encode``.

The index path (``load_encoder("st:all-MiniLM-L6-v2").encode_text``, what ``unimo index
build`` runs) and the raw model encode the same texts with the same batch size; runs are
interleaved (alternating which goes first) and the best of ``--repeats`` is kept, so load
from other processes hits both alike. Goal: ratio (index / raw throughput) >= 0.95.

Usage::

    python benchmarks/bench_encode.py [--n-texts 2000] [--repeats 5]

Writes ``benchmarks/results/encode.json`` (``bench_index.py`` runs the same measurement).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "encode.json"
VOCABULARY = (
    "a the red green blue yellow black pink purple brown small large circle square triangle "
    "star heart oval diamond rectangle left right of above below next to and there is which"
)


def bench_encoding(n_texts: int, batch_size: int, repeats: int) -> dict:
    """Best-of-``repeats`` texts/s of both paths on ``n_texts`` synthetic captions."""
    from unimo_kit.index.encoders import load_encoder
    from unimo_kit.resources import sentence_transformer

    rng = np.random.default_rng(0)
    words = VOCABULARY.split()
    texts = [" ".join(rng.choice(words, size=rng.integers(4, 24))) for _ in range(n_texts)]
    raw = sentence_transformer("all-MiniLM-L6-v2", device="cpu")
    encoder = load_encoder("st:all-MiniLM-L6-v2", device="cpu")
    raw.encode(texts[:64], batch_size=batch_size)  # warm-up
    encoder.encode_text(texts[:64], batch_size=batch_size)

    def time_raw() -> tuple[float, np.ndarray]:
        began = time.perf_counter()
        out = raw.encode(texts, batch_size=batch_size, normalize_embeddings=True)
        return time.perf_counter() - began, out

    def time_index() -> tuple[float, np.ndarray]:
        began = time.perf_counter()
        out = encoder.encode_text(texts, batch_size=batch_size)
        return time.perf_counter() - began, out

    raw_times, index_times = [], []
    for repeat in range(repeats):
        order = (time_raw, time_index) if repeat % 2 == 0 else (time_index, time_raw)
        for fn in order:
            seconds, out = fn()
            (raw_times if fn is time_raw else index_times).append(seconds)
            if fn is time_raw:
                a = out
            else:
                b = out
    return {
        "texts": n_texts,
        "batch_size": batch_size,
        "repeats": repeats,
        "raw_texts_per_s": n_texts / min(raw_times),
        "index_texts_per_s": n_texts / min(index_times),
        "ratio": min(raw_times) / min(index_times),
        "goal_ratio": 0.95,
        "raw_seconds": raw_times,
        "index_seconds": index_times,
        "max_abs_diff": float(np.abs(np.asarray(a) - b).max()),
        "load_avg": os.getloadavg(),
        "torch_threads": __import__("torch").get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-texts", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    result = bench_encoding(args.n_texts, args.batch_size, args.repeats)
    print(
        f"index path {result['index_texts_per_s']:,.0f} texts/s, raw "
        f"{result['raw_texts_per_s']:,.0f} texts/s, ratio {result['ratio']:.3f} "
        f"(goal >= 0.95), max |diff| {result['max_abs_diff']:.2e}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
