"""Trainer overhead: the trainer's step time against a bare forward + backward + AdamW step of the
same model on the same batch, in one run.

The bare loop holds one collated batch in memory and does only ``objective(batch)``, the sum of
the ``*_loss`` keys, ``backward``, ``optimizer.step``; the trainer adds data loading (lazy
JSONL, memory-mapped features, tokenisation, collation), gradient clipping, the schedule and
logging. Both use the model of ``--preset`` and its objectives on a generated world (random
49×1280 "grid" features, template captions), so the figure does not depend on other stages.

    python benchmarks/bench_trainer.py                    # synth-d-full objectives, 30 steps
    python benchmarks/bench_trainer.py --preset synth-a-cmcl --steps 50
    python benchmarks/bench_trainer.py --compare-to 9829adf  # + synth-small steps before/after
    python benchmarks/bench_trainer.py --compare-vocab --skip-overhead  # vocab full vs corpus

Writes benchmarks/results/trainer.json. Goal: overhead <= 10 %.

``--compare-to REV`` also times ``synth-small`` training steps (forward, backward, clipping,
AdamW; one thread) of the code at git revision REV against the current code, in the same run:
REV is checked out in a temporary git worktree (removed afterwards), and each side runs this
file with ``--step-times`` in fresh processes (``PYTHONPATH`` on its tree), rounds alternating
so that a change of machine load hits both. Both sides train on the same generated world and
the same batches from the same seed, so their losses step by step (the loss curve) are
compared too. Goal: the current code >= 3 times faster.

``--vocab-quality WORLD`` trains ``synth-small`` ``--quality-steps`` steps with each
vocabulary on a real synthetic world (a ``unimo demo`` folder's ``world/``: features, rewrites,
retrieved, test split and compositional set), same seed, and evaluates both with ``unimo eval
batch``: loss curves and scores side by side in ``vocab_quality``.

``--compare-vocab`` times ``synth-small`` steps of the working tree with ``vocab="full"``
(30,522 word pieces) against ``vocab="corpus"`` (the generated world's pieces, the special and
the single-character ones), the same way, into ``vocab_compare``. The two are different models
(the word head scores other columns), so their loss curves are stored side by side, not
required to agree.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
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


def step_times(world: Path, steps: int, warmup: int, threads: int, vocab: str = "full") -> dict:
    """``synth-small`` training steps on ``world`` with the ``unimo_kit`` on ``sys.path``
    (what ``--step-times`` prints): the losses of the first batch before any update, then per
    step its wall and process CPU seconds and total loss; batches cycle over the first four.
    ``vocab="corpus"``: the model cut to the world's word pieces, as the trainer does."""
    from unimo_kit.features import FeatureStore
    from unimo_kit.model import load_tokenizer
    from unimo_kit.train import TrainConfig
    from unimo_kit.train.data import UnimoTrainData
    from unimo_kit.train.trainer import build_optimizer

    torch.set_num_threads(threads)
    overrides = {"data_dir": str(world), "val_pairs": None, "threads": threads}
    if vocab != "full" or "vocab" in TrainConfig.__dataclass_fields__:  # older: no such field
        overrides["vocab"] = vocab
    config = load_config("synth-small", overrides).resolved()
    seed_everything(config.seed)
    dist = DistInfo(device="cpu")
    model = build_model(config, FeatureStore(config.features).meta)
    if vocab == "corpus":
        from unimo_kit.train.trainer import corpus_vocabulary

        tokenizer = corpus_vocabulary(config, model, world / "tokenizer")[0]
    else:
        tokenizer = load_tokenizer(model.config)
    objective = build_objective(config, model, dist)
    data = UnimoTrainData(config, tokenizer)
    sampler = data.make_sampler()
    batches = [data[sampler.next_spec()] for _ in range(4)]
    optimizer = build_optimizer(config, objective)
    params = [p for p in objective.parameters() if p.requires_grad]

    def step(batch: dict) -> float:
        out = objective(batch)
        loss = sum(v for k, v in out.items() if k.endswith("_loss"))
        loss.backward()
        for p in params:  # as the trainer: AdamW takes dense gradients
            if p.grad is not None and p.grad.is_sparse:
                p.grad = p.grad.to_dense()
        torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss)

    with torch.no_grad():
        first = {k: float(v) for k, v in objective(batches[0]).items() if k.endswith("_loss")}
    seed_everything(config.seed)
    wall, cpu, losses = [], [], []
    for i in range(warmup + steps):
        t0, c0 = time.perf_counter(), time.process_time()
        loss = step(batches[i % len(batches)])
        if i >= warmup:
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        losses.append(loss)
    import unimo_kit

    package = str(Path(unimo_kit.__file__).resolve().parent.parent)
    return {
        "first_batch_losses": first,
        "wall": wall,
        "cpu": cpu,
        "losses": losses,
        "tree": package,
        "vocab_size": model.config.vocab_size,
    }


def _run_side(tree: Path, world: Path, args: argparse.Namespace, vocab: str = "full") -> dict:
    """One fresh process timing the code of ``tree`` (this file, ``unimo_kit`` from ``tree``)."""
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": str(args.threads)}
    command = [sys.executable, str(Path(__file__).resolve()), "--step-times", str(world)]
    command += ["--steps", str(args.compare_steps), "--skip", str(args.skip)]
    command += ["--threads", str(args.threads), "--vocab", vocab]
    done = subprocess.run(command, env=env, cwd=tree, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"step timing in {tree} failed:\n{done.stderr[-3000:]}")
    side = json.loads(done.stdout.strip().splitlines()[-1])
    if Path(side.pop("tree")) != tree.resolve():  # e.g. an install shadowing PYTHONPATH
        raise RuntimeError(f"the step timing of {tree} imported unimo_kit from elsewhere")
    return side


def compare_to(rev: str, args: argparse.Namespace) -> dict:
    """``synth-small`` step time of revision ``rev`` against the working tree, one run."""
    repo = Path(__file__).resolve().parent.parent

    def git(*words: str) -> str:
        done = subprocess.run(["git", *words], cwd=repo, capture_output=True, text=True, check=True)
        return done.stdout.strip()

    commit = git("rev-parse", "--short", rev)
    head = git("rev-parse", "--short", "HEAD")
    dirty = bool(git("status", "--porcelain", "--", "unimo_kit/model", "unimo_kit/train"))
    args.after = head + (" + uncommitted model/train changes" if dirty else "")
    with tempfile.TemporaryDirectory() as tmp:
        world, before_tree = Path(tmp) / "world", Path(tmp) / "before"
        world.mkdir()
        make_world(world)
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(before_tree), commit],
            cwd=repo, check=True, capture_output=True,
        )  # fmt: skip
        try:
            sides: dict[str, list[dict]] = {"before": [], "after": []}
            for _ in range(args.rounds):  # alternate, so that load changes hit both sides
                sides["before"].append(_run_side(before_tree, world, args))
                sides["after"].append(_run_side(repo, world, args))
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(before_tree)], cwd=repo, check=False
            )
            shutil.rmtree(before_tree, ignore_errors=True)
    return _compare_result(commit, sides, args)


def compare_vocab(args: argparse.Namespace) -> dict:
    """``synth-small`` step time with the full vocabulary against ``vocab="corpus"``, the
    working tree's code on one generated world, rounds alternating in fresh processes."""
    repo = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as tmp:
        world = Path(tmp) / "world"
        world.mkdir()
        make_world(world)
        sides: dict[str, list[dict]] = {"before": [], "after": []}
        for _ in range(args.rounds):
            sides["before"].append(_run_side(repo, world, args, vocab="full"))
            sides["after"].append(_run_side(repo, world, args, vocab="corpus"))
    args.after = "vocab=corpus"
    result = _compare_result("HEAD", sides, args)
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    for key in ("before_revision", "after_revision"):
        result.pop(key)
    result["revision"] = head
    result["before"] = "vocab=full"
    result["after"] = "vocab=corpus"
    result["vocab_size"] = {
        "full": sides["before"][0]["vocab_size"],
        "corpus": sides["after"][0]["vocab_size"],
    }
    # different models (other word heads), so their losses differ: no agreement is expected,
    # the curves are stored to be read side by side
    result.pop("first_batch_loss_max_rel_diff")
    result.pop("loss_curve_max_rel_diff")
    return result


#: The log.csv columns the quality comparison keeps, per logged step.
QUALITY_LOSSES = (
    "loss",
    "cmcl_loss",
    "token_alignment_loss",
    "mlm_loss",
    "seq2seq_loss",
    "mrp_loss",
    "mlm_acc",
    "seq2seq_acc",
)


def vocab_quality(world: Path, args: argparse.Namespace) -> dict:
    """``synth-small`` trained ``--quality-steps`` steps with each vocabulary and each of
    ``--quality-seeds`` on a synthetic world made by ``unimo data synth`` + the data stages
    (features, rewrites, retrieved: a ``unimo demo`` folder's ``world/``), one thread count,
    then evaluated on its test split with ``unimo eval batch`` (retrieval, compositional with
    the pooled and the token score, captioning): loss curves and scores side by side."""
    out: dict = {
        "world": world.name,
        "steps": args.quality_steps,
        "threads": args.threads,
        "seeds": args.quality_seeds,
        "runs": {},
    }
    if (world / "world.json").is_file():  # the generator's parameters: how to make it again
        out["world_params"] = json.loads((world / "world.json").read_text()).get("params")
    for seed in args.quality_seeds:
        for vocab, run in _quality_runs(world, seed, args).items():
            out["runs"][f"{vocab}/seed{seed}"] = run
    return out


def _quality_runs(world: Path, seed: int, args: argparse.Namespace) -> dict[str, dict]:
    """One seed of :func:`vocab_quality`: both vocabularies trained, then evaluated."""
    import csv

    from unimo_kit.eval.batch import run_batch

    runs: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        checkpoints = []
        for vocab in ("full", "corpus"):
            config = load_config(
                "synth-small",
                {
                    "data_dir": str(world),
                    "steps": args.quality_steps,
                    "threads": args.threads,
                    "vocab": vocab,
                    "seed": seed,
                    "progress": False,
                    "eval_every": 0,
                    "save_every": args.quality_steps,
                },
            )
            run_dir = Path(tmp) / vocab
            c0, t0 = time.process_time(), time.perf_counter()
            result = train(config, run_dir, resume=False)
            with open(run_dir / "log.csv", newline="") as handle:
                rows = list(csv.DictReader(handle))
            runs[vocab] = {
                "vocab_size": json.loads((result.final / "config.json").read_text())["vocab_size"],
                "train_cpu_seconds": time.process_time() - c0,
                "train_wall_seconds": time.perf_counter() - t0,
                "step_seconds_median": statistics.median(float(r["step_seconds"]) for r in rows),
                "curve_steps": [int(r["step"]) for r in rows],
                "curves": {k: [float(r[k]) for r in rows] for k in QUALITY_LOSSES if k in rows[0]},
                "quick_val": result.eval,
            }
            checkpoints.append(
                {
                    "label": vocab,
                    "path": str(result.final),
                    "features": str(world / "features"),
                    "run_dir": str(run_dir),
                }
            )
        tasks = [
            {"task": "retrieval", "data": str(world / "pairs.test.jsonl"), "ks": [1, 5, 10]},
            {"task": "compositional", "data": str(world / "compositional.test.jsonl")},
            {
                "task": "compositional",
                "name": "compositional-token",
                "score": "token",
                "data": str(world / "compositional.test.jsonl"),
            },
            {"task": "caption", "data": str(world / "pairs.test.jsonl"), "beams": 1},
        ]
        rows = run_batch({"name": "vocab", "checkpoints": checkpoints, "tasks": tasks}, plots=False)
    for row in rows:
        kept = {k: v for k, v in row.items() if isinstance(v, int | float) and k != "seed"}
        for category, figures in row.get("categories", {}).items():  # compositional
            kept[f"{category}_accuracy"] = figures["accuracy"]
        runs[row["label"]].setdefault("eval", {})[row["name"]] = kept
    return runs


def _compare_result(commit: str, sides: dict[str, list[dict]], args: argparse.Namespace) -> dict:
    """The figures of :func:`compare_to`: medians, ratios and the loss agreement."""

    def pooled(side: str, key: str) -> list[float]:
        return [t for run in sides[side] for t in run[key]]

    before, after = sides["before"][0], sides["after"][0]
    first = {
        k: {"before": v, "after": after["first_batch_losses"].get(k)}
        for k, v in before["first_batch_losses"].items()
    }
    curve = [abs(a - b) / abs(b) for a, b in zip(after["losses"], before["losses"], strict=True)]
    result = {
        "preset": "synth-small",
        "before_revision": commit,
        "after_revision": args.after,
        "threads": args.threads,
        "rounds": args.rounds,
        "steps_timed_per_round": args.compare_steps,
        "warmup_steps": args.skip,
    }
    for key in ("wall", "cpu"):
        b, a = statistics.median(pooled("before", key)), statistics.median(pooled("after", key))
        result[f"before_step_{key}_seconds_median"] = b
        result[f"after_step_{key}_seconds_median"] = a
        result[f"speedup_{key}"] = b / a
        result[f"round_step_{key}_seconds_medians"] = {
            side: [statistics.median(run[key]) for run in runs] for side, runs in sides.items()
        }
    result["goal_speedup"] = 3.0
    result["first_batch_losses"] = first
    result["first_batch_loss_max_rel_diff"] = max(
        abs(v["after"] - v["before"]) / abs(v["before"]) for v in first.values()
    )
    result["loss_curve_steps"] = len(curve)
    result["loss_curve_max_rel_diff"] = max(curve)
    result["loss_curve_before"] = before["losses"]
    result["loss_curve_after"] = after["losses"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="synth-d-full")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--skip", type=int, default=5, help="warm-up steps left out")
    parser.add_argument("--batch-pairs", type=int, default=32)
    parser.add_argument("--workers", type=int, default=0, help="trainer DataLoader workers")
    parser.add_argument("--out", default="benchmarks/results/trainer.json")
    parser.add_argument("--compare-to", metavar="REV", help="also time synth-small steps of REV")
    parser.add_argument("--compare-steps", type=int, default=12, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3, help="before/after process pairs")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads of every run")
    parser.add_argument(
        "--skip-overhead",
        action="store_true",
        help="keep the overhead figures of --out as they are; only run the comparison",
    )
    parser.add_argument(
        "--compare-vocab",
        action="store_true",
        help="also time synth-small steps with vocab=full against vocab=corpus",
    )
    parser.add_argument(
        "--vocab-quality",
        metavar="WORLD",
        help="also train synth-small with each vocabulary on WORLD (a demo's world/) and "
        "evaluate both on its test split",
    )
    parser.add_argument("--quality-steps", type=int, default=300, help="steps of each run")
    parser.add_argument("--quality-seeds", type=int, nargs="+", default=[0], help="seeds")
    parser.add_argument("--step-times", metavar="WORLD", help=argparse.SUPPRESS)  # one side
    parser.add_argument("--vocab", default="full", help=argparse.SUPPRESS)  # of --step-times
    args = parser.parse_args()
    if args.step_times:
        times = step_times(Path(args.step_times), args.steps, args.skip, args.threads, args.vocab)
        print(json.dumps(times))
        return
    if args.skip_overhead:
        if not (args.compare_to or args.compare_vocab or args.vocab_quality):
            parser.error("--skip-overhead needs --compare-to, --compare-vocab or --vocab-quality")
        result = json.loads(Path(args.out).read_text())
        _comparisons(result, args)
        _write(result, args.out)
        return

    torch.set_num_threads(args.threads)  # the bare steps and the trainer alike
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
                "threads": args.threads,
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
    _comparisons(result, args)
    _write(result, args.out)


#: The keys of ``trainer.json`` that hold a comparison (printed in short).
COMPARISONS = ("step_time_compare", "vocab_compare", "vocab_quality")


def _comparisons(result: dict, args: argparse.Namespace) -> None:
    """Run the comparisons asked for into ``result`` (others it holds are kept)."""
    if args.compare_to:
        result["step_time_compare"] = compare_to(args.compare_to, args)
        result["step_time_compare"]["load_average_after"] = os.getloadavg()[0]
    if args.compare_vocab:
        result["vocab_compare"] = compare_vocab(args)
        result["vocab_compare"]["load_average_after"] = os.getloadavg()[0]
    if args.vocab_quality:
        result["vocab_quality"] = vocab_quality(Path(args.vocab_quality).resolve(), args)
        result["vocab_quality"]["load_average_after"] = os.getloadavg()[0]


def _write(result: dict, out: str) -> None:
    for key, value in result.items():
        if key not in COMPARISONS:
            print(f"{key}: {value}")
    for name in COMPARISONS:
        for key, value in result.get(name, {}).items():
            if key == "runs":
                for vocab, run in value.items():
                    print(f"{name}.{vocab}: eval {run.get('eval')}")
            elif not key.startswith("loss_curve_") or key.endswith("diff"):
                print(f"{name}.{key}: {value}")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
