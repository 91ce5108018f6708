"""Trainer overhead: the trainer's step time against a bare forward + backward + AdamW step of the
same model on the same batch, in one run.

The bare loop holds one collated batch in memory and does only ``objective(batch)``, the sum of
the ``*_loss`` keys, ``backward``, ``optimizer.step``; the trainer adds data loading (lazy
JSONL, memory-mapped features, tokenisation, collation), gradient clipping, the schedule and
logging. Both use the model of ``--preset`` and its objectives on a generated world (random
49×1280 "grid" features, template captions), so the figure does not depend on other stages.

    python benchmarks/bench_trainer.py                    # synth-d-full objectives, 30 steps
    python benchmarks/bench_trainer.py --preset synth-a-cmcl --steps 50

Writes benchmarks/results/trainer.json. Goal: overhead <= 10 %.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import torch

from unimo_kit.features import FeatureStoreWriter
from unimo_kit.features.extractors import grid_boxes
from unimo_kit.train import load_config, train
from unimo_kit.train.distributed import DistInfo
from unimo_kit.train.trainer import build_model, build_objective, param_groups
from unimo_kit.utils import seed_everything

COLOURS = ["red", "blue", "green", "yellow", "purple", "black"]
SHAPES = ["circle", "square", "star", "heart", "triangle", "hexagon"]
RELATIONS = ["left of", "right of", "above", "below"]


def make_world(root: Path, n_pairs: int = 400, n_extra: int = 200, seed: int = 0) -> None:
    """pairs/texts/images JSONL, rewrites, retrieved and a features store of random grids."""
    rng = np.random.default_rng(seed)
    boxes = grid_boxes(7, 7)
    pairs, rewrites, retrieved, texts, images = [], [], [], [], []

    def caption() -> str:
        a, b = rng.choice(COLOURS, 2), rng.choice(SHAPES, 2)
        return f"a {a[0]} {b[0]} {rng.choice(RELATIONS)} a {a[1]} {b[1]}"

    with FeatureStoreWriter(root / "features", {"extractor": "random", "dim": 1280}) as writer:
        for i in range(n_pairs):
            pid = f"p{i:05d}"
            writer.add(pid, rng.normal(size=(49, 1280)).astype(np.float32), boxes)
            captions = [caption() for _ in range(5)]
            pairs.append({"id": pid, "image": f"{pid}.png", "captions": captions, "split": "train"})
            for ci, text in enumerate(captions):
                rewrites.append({
                    "id": f"{pid}#{ci}", "pair_id": pid, "caption_index": ci, "caption": text,
                    "scene_graph": "",
                    "positives": [{"type": "there-is", "text": "there is " + text}],
                    "negatives": [{"type": "replace-att", "text": caption(), "edits": []}
                                  for _ in range(3)],
                    "sentence_negatives": [{"text": caption(), "pair_id": "x", "score": 0.5}],
                })  # fmt: skip
            retrieved.append({
                "id": pid, "texts": [{"id": "t", "text": caption(), "score": 1.0}],
                "images": [{"id": f"i{i % n_extra:05d}", "image": "x.png", "score": 1.0}],
                "negatives": [],
            })  # fmt: skip
        for j in range(n_extra):
            iid = f"i{j:05d}"
            writer.add(iid, rng.normal(size=(49, 1280)).astype(np.float32), boxes)
            images.append({"id": iid, "image": f"{iid}.png"})
            texts.append({"id": f"t{j:05d}", "text": caption()})
    for name, records in [("pairs.train.jsonl", pairs), ("rewrites.jsonl", rewrites),
                          ("retrieved.jsonl", retrieved), ("texts.jsonl", texts),
                          ("images.jsonl", images)]:  # fmt: skip
        with open(root / name, "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(r) + "\n" for r in records)


def bare_steps(config, steps: int) -> list[float]:
    """Forward + backward + AdamW on one fixed batch; seconds per step."""
    from unimo_kit.features import FeatureStore
    from unimo_kit.model import load_tokenizer
    from unimo_kit.train.data import UnimoTrainData

    seed_everything(config.seed)
    dist = DistInfo(device=config.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = build_model(config, FeatureStore(config.features).meta).to(dist.device)
    objective = build_objective(config, model, dist).to(dist.device)
    data = UnimoTrainData(config, load_tokenizer(model.config))
    batch = {k: v.to(dist.device) for k, v in data[data.make_sampler().next_spec()].items()}
    optimizer = torch.optim.AdamW(param_groups(objective, config.weight_decay), lr=config.lr)
    use_bf16 = dist.device.startswith("cuda")
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        with torch.autocast(dist.device.split(":")[0], dtype=torch.bfloat16, enabled=use_bf16):
            out = objective(batch)
            loss = sum(v for k, v in out.items() if k.endswith("_loss"))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if use_bf16:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return times


def trainer_steps(config, run_dir: Path) -> list[float]:
    """Seconds per step as the trainer logs them (data loading included)."""
    import csv

    train(config, run_dir, resume=False)
    with open(run_dir / "log.csv", newline="") as handle:
        return [float(row["step_seconds"]) for row in csv.DictReader(handle)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="synth-d-full")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--skip", type=int, default=5, help="warm-up steps left out")
    parser.add_argument("--batch-pairs", type=int, default=32)
    parser.add_argument("--workers", type=int, default=0, help="trainer DataLoader workers")
    parser.add_argument("--out", default="benchmarks/results/trainer.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_world(root)
        config = load_config(
            args.preset,
            {
                "data_dir": str(root),
                "val_pairs": None,
                "steps": args.steps,
                "warmup_steps": 1,
                "log_every": 1,
                "save_every": 10**9,
                "eval_every": 0,
                "batch_pairs": args.batch_pairs,
                "num_workers": args.workers,
                "progress": False,
            },
        ).resolved()
        # Bare steps before and after the trainer, so a change in machine load between the two
        # measurements shows up on both sides.
        half = args.steps // 2 + args.skip
        bare = bare_steps(config, half)[args.skip :]
        trainer = trainer_steps(config, root / "run")[args.skip :]
        bare += bare_steps(config, half)[args.skip :]
    bare_s, trainer_s = statistics.median(bare), statistics.median(trainer)
    result = {
        "preset": args.preset,
        "device": config.device or ("cuda" if torch.cuda.is_available() else "cpu"),
        "threads": torch.get_num_threads(),
        "batch": {
            "pairs": config.batch_pairs,
            "texts": config.batch_texts,
            "images": config.batch_images,
        },
        "steps_timed": len(trainer),
        "bare_step_seconds_median": bare_s,
        "trainer_step_seconds_median": trainer_s,
        "bare_step_seconds_mean": statistics.mean(bare),
        "trainer_step_seconds_mean": statistics.mean(trainer),
        "overhead_ratio": trainer_s / bare_s,
        "overhead_percent": 100 * (trainer_s / bare_s - 1),
        "goal_percent": 10,
        "num_workers": args.workers,
        "load_average": os.getloadavg()[0],
    }
    for key, value in result.items():
        print(f"{key}: {value}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
