"""Generator throughput: samples/s of :class:`~unimo_kit.generators.HardNegativeDataset` with
precomputed rewrites and with on-the-fly rewrites, against a plain pairs-only dataset (read the
line, load and transform the image, tokenise the caption), with 0 and 2 DataLoader workers, in
one run on one synthetic world.

All three use the same transform (resize to 64 + tensor + normalise), the same open_clip
tokenizer and the same DataLoader (batch 32, the dataset's collate, persistent workers); each
is timed over ``--epochs`` passes after one warm-up pass (workers started, spaCy loaded).
On-the-fly rewriting parses each caption with spaCy, so it is timed on the first
``--fly-items`` items only.

    python benchmarks/bench_generator.py                  # 300 images, 2 timed passes
    python benchmarks/bench_generator.py --n-images 1000 --epochs 3

Writes benchmarks/results/generator.json. Goal: precomputed >= 0.9x the plain dataset.
"""

from __future__ import annotations

import argparse
import json
import os
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


def samples_per_second(dataset, collate, workers: int, epochs: int) -> float:
    loader = DataLoader(dataset, batch_size=32, shuffle=True, num_workers=workers,
                        collate_fn=collate, persistent_workers=workers > 0)  # fmt: skip
    for _ in loader:  # warm-up pass
        pass
    start, n = time.perf_counter(), 0
    for _ in range(epochs):
        for batch in loader:
            n += len(batch["images"])
    return n / (time.perf_counter() - start)


def unimo(*args: str) -> None:
    cmd = [sys.executable, "-m", "unimo_kit.cli.main", *args]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--fly-items", type=int, default=96)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--out", default="benchmarks/results/generator.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    with tempfile.TemporaryDirectory() as tmp:
        world = Path(tmp)
        unimo("data", "synth", "--out", str(world), "--n-images", str(args.n_images),
              "--image-size", "96", "--captions-per-image", "1", "--n-image-only", "0")  # fmt: skip
        pairs = world / "pairs.train.jsonl"
        t0 = time.perf_counter()
        unimo("rewrite", str(pairs), "-o", str(world / "rewrites.jsonl"), "--no-progress")
        rewrite_s = time.perf_counter() - t0
        common = dict(transform=TRANSFORM, tokenizer=tokenizer, num_negatives=4)
        plain = PlainPairs(pairs, tokenizer)
        pre = HardNegativeDataset(pairs, world / "rewrites.jsonl", **common)
        fly = HardNegativeDataset(pairs, None, on_the_fly=True, **common)
        fly_subset = Subset(fly, range(min(args.fly_items, len(fly))))
        rows = []
        for workers in args.workers:
            row = {"workers": workers}
            row["plain"] = samples_per_second(plain, plain.collate, workers, args.epochs)
            row["precomputed"] = samples_per_second(pre, pre.collate, workers, args.epochs)
            row["on_the_fly"] = samples_per_second(fly_subset, fly.collate, workers, 1)
            row["precomputed_vs_plain"] = row["precomputed"] / row["plain"]
            row["on_the_fly_vs_plain"] = row["on_the_fly"] / row["plain"]
            rows.append(row)
            print(
                f"workers={workers}: plain {row['plain']:.0f}/s, precomputed "
                f"{row['precomputed']:.0f}/s ({row['precomputed_vs_plain']:.2f}x), on the fly "
                f"{row['on_the_fly']:.1f}/s ({row['on_the_fly_vs_plain']:.3f}x)"
            )
    result = {
        "benchmark": "generator",
        "world": {"n_images": args.n_images, "train_pairs": len(plain), "image_size": 96},
        "settings": {
            "batch_size": 32,
            "num_negatives": 4,
            "timed_epochs": args.epochs,
            "on_the_fly_items": len(fly_subset),
            "torch_threads": 1,
            "tokenizer": "open_clip ViT-B-32",
            "cpus": os.cpu_count(),
        },
        "rewrite_stage_seconds": rewrite_s,
        "rows": rows,
        "goal": "precomputed >= 0.9x plain",
        "goal_met": all(r["precomputed_vs_plain"] >= 0.9 for r in rows),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
