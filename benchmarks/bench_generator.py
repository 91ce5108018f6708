"""Generator throughput: samples/s of :class:`~unimo_kit.generators.HardNegativeDataset` with
precomputed rewrites and with on-the-fly rewrites, against a plain pairs-only dataset (read the
line, load and transform the image, tokenise the caption), with 0 and 2 DataLoader workers, in
one run on one synthetic world.

All use the same transform (resize to 64 + tensor + normalise), the same open_clip tokenizer
and the same DataLoader (batch 32, the dataset's collate, persistent workers). Each is warmed
up with one pass (workers started, spaCy loaded, the token cache filled), then the datasets are
timed pass by pass in turn, ``--rounds`` times (without workers batch by batch in turn), so
that other load on a shared machine falls on each alike; the best pass is reported, with the
median beside it. Precomputed rewrites are also
timed without the token cache (``token_cache=0``: every text tokenised on every draw), and
with no cache at all (``precomputed_cold``: also ``record_cache=0``, every line read and
prepared on every draw: what an epoch over data larger than the caches gets).
On-the-fly rewriting parses each caption with spaCy, so it is timed once, on the first
``--fly-items`` items only.

    python benchmarks/bench_generator.py                  # 300 images, 5 rounds
    python benchmarks/bench_generator.py --n-images 1000 --rounds 7

Writes benchmarks/results/generator.json. Goal: precomputed >= 0.9x the plain dataset.
For a before/after figure, run the code before a change first (``PYTHONPATH=<its worktree>
python benchmarks/bench_generator.py --out before.json``), then this one with
``--before before.json``: the earlier run's rows are kept beside this run's as ``before``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import open_clip
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision import transforms

from unimo_kit.data.records import PairRecord
from unimo_kit.generators import HardNegativeDataset
from unimo_kit.generators import dataset as generator_dataset
from unimo_kit.generators.tokenize import TOKEN_CACHE

TRANSFORM = transforms.Compose(
    [transforms.Resize(64), transforms.ToTensor(), transforms.Normalize([0.5] * 3, [0.5] * 3)]
)


class PlainPairs(Dataset):
    """The baseline: one caption per pair, image transformed, caption tokenised."""

    def __init__(self, pairs: Path, tokenizer):
        self.records = [
            PairRecord.from_dict(json.loads(line), base_dir=pairs.parent)
            for line in pairs.read_text(encoding="utf-8").splitlines()
        ]
        self.tokenizer = tokenizer

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict:
        record = self.records[i]
        with Image.open(record.image) as image:
            pixels = TRANSFORM(image.convert("RGB"))
        return {"image": pixels, "text": self.tokenizer([record.captions[0]])[0]}

    @staticmethod
    def collate(items: list[dict]) -> dict:
        return {
            "images": torch.stack([it["image"] for it in items]),
            "texts": torch.stack([it["text"] for it in items]),
        }


def no_caches() -> dict[str, int]:
    """Options that turn off every cache of the dataset (the code before the record cache,
    run for a before/after figure, has only the token cache)."""
    options = {"token_cache": 0}
    if "record_cache" in inspect.signature(HardNegativeDataset).parameters:
        options["record_cache"] = 0
    return options


def make_loader(dataset, collate, workers: int) -> DataLoader:
    return DataLoader(dataset, batch_size=32, shuffle=True, num_workers=workers,
                      collate_fn=collate, persistent_workers=workers > 0)  # fmt: skip


def one_pass(loader: DataLoader) -> float:
    """Samples/s of one pass over ``loader``."""
    start, n = time.perf_counter(), 0
    for batch in loader:
        n += len(batch["images"])
    return n / (time.perf_counter() - start)


def timed(loaders: dict[str, DataLoader], rounds: dict[str, int]) -> dict[str, dict]:
    """Each loader warmed up once (workers started, spaCy loaded, caches filled), then timed
    pass by pass in turn (plain, precomputed, ... again), so that load from other processes on
    a shared machine falls on every dataset alike; best and median pass per dataset. Without
    workers the passes of one round go in lockstep, batch by batch (:func:`lockstep`)."""
    for loader in loaders.values():
        one_pass(loader)
    passes: dict[str, list[float]] = {name: [] for name in loaders}
    for r in range(max(rounds.values())):
        todo = {name: loader for name, loader in loaders.items() if r < rounds[name]}
        if all(loader.num_workers == 0 for loader in todo.values()):
            for name, rate in lockstep(todo).items():
                passes[name].append(rate)
            continue
        for name, loader in todo.items():
            passes[name].append(one_pass(loader))
    return {
        name: {"best": max(p), "median": statistics.median(p), "passes": len(p)}
        for name, p in passes.items()
    }


def lockstep(loaders: dict[str, DataLoader]) -> dict[str, float]:
    """Samples/s of one pass of each loader (no workers), taking one batch of each in turn:
    a burst of load from elsewhere then slows every dataset alike, not the one timed then."""
    iterators = {name: iter(loader) for name, loader in loaders.items()}
    seconds = dict.fromkeys(loaders, 0.0)
    samples = dict.fromkeys(loaders, 0)
    while iterators:
        for name in list(iterators):
            start = time.perf_counter()
            batch = next(iterators[name], None)
            seconds[name] += time.perf_counter() - start
            if batch is None:
                del iterators[name]
            else:
                samples[name] += len(batch["images"])
    return {name: samples[name] / seconds[name] for name in loaders}


def unimo(*args: str) -> None:
    cmd = [sys.executable, "-m", "unimo_kit.cli.main", *args]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5, help="timed passes per dataset")
    parser.add_argument("--fly-items", type=int, default=96)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--out", default="benchmarks/results/generator.json")
    parser.add_argument("--before", help="result file of the code before a change, kept beside")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load = os.getloadavg()[0]
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    with tempfile.TemporaryDirectory() as tmp:
        world = Path(tmp)
        unimo("data", "synth", "-o", str(world), "--n-images", str(args.n_images),
              "--image-size", "96", "--captions-per-image", "1", "--n-image-only", "0")  # fmt: skip
        pairs = world / "pairs.train.jsonl"
        t0 = time.perf_counter()
        unimo("rewrite", str(pairs), "-o", str(world / "rewrites.jsonl"), "--no-progress")
        rewrite_s = time.perf_counter() - t0
        common = dict(transform=TRANSFORM, tokenizer=tokenizer, num_negatives=4)
        plain = PlainPairs(pairs, tokenizer)
        pre = HardNegativeDataset(pairs, world / "rewrites.jsonl", **common)
        uncached = HardNegativeDataset(pairs, world / "rewrites.jsonl", token_cache=0, **common)
        cold = HardNegativeDataset(pairs, world / "rewrites.jsonl", **no_caches(), **common)
        fly = HardNegativeDataset(pairs, None, on_the_fly=True, **common)
        fly_subset = Subset(fly, range(min(args.fly_items, len(fly))))
        rows = []
        for workers in args.workers:
            loaders = {
                "plain": make_loader(plain, plain.collate, workers),
                "precomputed": make_loader(pre, pre.collate, workers),
                "precomputed_no_token_cache": make_loader(uncached, pre.collate, workers),
                "precomputed_cold": make_loader(cold, pre.collate, workers),
                "on_the_fly": make_loader(fly_subset, fly.collate, workers),
            }
            rounds = {name: args.rounds for name in loaders}
            rounds["on_the_fly"] = 1
            found = timed(loaders, rounds)
            del loaders  # persistent workers end here
            row = {"workers": workers, **{name: found[name]["best"] for name in found}}
            row["median"] = {name: found[name]["median"] for name in found}
            for name in [name for name in found if name != "plain"]:
                row[f"{name}_vs_plain"] = row[name] / row["plain"]
                row["median"][f"{name}_vs_plain"] = row["median"][name] / row["median"]["plain"]
            rows.append(row)
            print(
                f"workers={workers}: plain {row['plain']:.0f}/s, precomputed "
                f"{row['precomputed']:.0f}/s ({row['precomputed_vs_plain']:.2f}x; median "
                f"{row['median']['precomputed_vs_plain']:.2f}x), without the token cache "
                f"{row['precomputed_no_token_cache_vs_plain']:.2f}x, without any cache "
                f"{row['precomputed_cold_vs_plain']:.2f}x, on the fly "
                f"{row['on_the_fly']:.1f}/s ({row['on_the_fly_vs_plain']:.3f}x)"
            )
    result = {
        "benchmark": "generator",
        "world": {"n_images": args.n_images, "train_pairs": len(plain), "image_size": 96},
        "settings": {
            "batch_size": 32,
            "num_negatives": 4,
            "timed_rounds": args.rounds,
            "on_the_fly_items": len(fly_subset),
            "on_the_fly_rounds": 1,
            "token_cache": TOKEN_CACHE,
            "record_cache": getattr(generator_dataset, "RECORD_CACHE", None),
            "torch_threads": 1,
            "tokenizer": "open_clip ViT-B-32",
            "cpus": os.cpu_count(),
            "load_average_at_start": round(load, 2),
            "load_average_at_end": round(os.getloadavg()[0], 2),
        },
        "figures": "samples/s of the best timed pass; 'median' the median pass",
        "rewrite_stage_seconds": rewrite_s,
        "rows": rows,
        "goal": "precomputed >= 0.9x plain",
        "goal_met": all(r["precomputed_vs_plain"] >= 0.9 for r in rows),
        "goal_met_by_medians": all(r["median"]["precomputed_vs_plain"] >= 0.9 for r in rows),
    }
    if args.before:
        earlier = json.loads(Path(args.before).read_text())
        result["before"] = {key: earlier[key] for key in ("settings", "rows") if key in earlier}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
