"""More training runs on one demo's world, and the results file over them (issue #22).

``unimo demo -o DEMO`` renders a world, runs the data stages, trains and evaluates once.
``arm`` trains and evaluates again on that same world (its ``world/`` linked, no data stage
rerun) with another training seed, preset or ``--set``: exactly the train and eval commands
that ``unimo demo`` builds (:func:`unimo_kit.demo.build_stages`), timed the same way (wall
seconds, process-tree CPU seconds, load average). ``report`` gathers the demo and its arms
into one JSON: per run the seven compositional categories (token score, with their binomial
p-values), retrieval R@1, CIDEr, and the stage times.

Example (the corpus vocabulary on the demo's world, seeds 1-2 and the in-batch arm)::

    nice unimo demo -o runs/demo-corpus --set vocab=corpus
    nice python benchmarks/bench_demo_seeds.py arm --demo runs/demo-corpus \\
        --out runs/demo-corpus.seed1 --seed 1 --set vocab=corpus
    nice python benchmarks/bench_demo_seeds.py arm --demo runs/demo-corpus \\
        --out runs/demo-corpus.in-batch --preset synth-a-cmcl --steps 2000 --set vocab=corpus
    python benchmarks/bench_demo_seeds.py report --demo runs/demo-corpus \\
        --arm runs/demo-corpus.seed1 --arm runs/demo-corpus.in-batch \\
        -o benchmarks/results/demo_corpus.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shlex
import sys
from pathlib import Path
from typing import Any

CATEGORIES = (
    "swap-att",
    "swap-obj",
    "replace-rel",
    "replace-att",
    "replace-obj",
    "add-att",
    "add-obj",
)
TIMING_FILE = "timing.json"  # an arm's stage records (the demo keeps its own in .stages/)


def arm_config(args: argparse.Namespace) -> Any:
    """The :class:`~unimo_kit.demo.DemoConfig` of an arm: its folder, seed, preset, sets."""
    from unimo_kit.demo import DemoConfig

    return DemoConfig(
        out=args.out,
        seed=args.seed,
        train_preset=args.preset,
        train_steps=args.steps,
        extra_train_args=list(args.set or []),
    )


def link_world(demo: Path, out: Path) -> None:
    """``OUT/world`` -> ``DEMO/world`` (a relative link), so the arm reads the demo's data."""
    world = demo / "world"
    if not (world / "world.json").exists():
        raise SystemExit(f"{world}: no world.json; run `unimo demo -o {demo}` first")
    out.mkdir(parents=True, exist_ok=True)
    link = out / "world"
    target = os.path.relpath(world.resolve(), out.resolve())
    if link.is_symlink() and os.readlink(link) == target:
        return
    if link.exists() or link.is_symlink():
        raise SystemExit(f"{link} exists and is not a link to {world}; pass another --out")
    link.symlink_to(target, target_is_directory=True)


def run_arm(args: argparse.Namespace) -> None:
    """Train and evaluate one arm on the demo's world; a stage recorded as finished with the
    same command line is skipped (``OUT/timing.json``)."""
    from unimo_kit.demo import build_stages, eval_config, output_spelled_short, run_stage

    config = arm_config(args)
    link_world(args.demo, args.out)
    (args.out / "eval.json").write_text(json.dumps(eval_config(config), indent=2) + "\n")
    stages = [stage for stage in build_stages(config) if stage.name in ("train", "eval")]
    timing_path = args.out / TIMING_FILE
    records = json.loads(timing_path.read_text()) if timing_path.exists() else {}
    (args.out / "commands.sh").write_text(
        "\n".join(["#!/usr/bin/env bash", "set -e"] + [_line(s.argv) for s in stages]) + "\n"
    )
    for stage in stages:
        done = records.get(stage.name, {}).get("argv")
        if done and output_spelled_short(done) == output_spelled_short(stage.argv):
            print(f"{stage.name}: done already, skipped", flush=True)
            continue
        print(f"{stage.name}: {_line(stage.argv)}", flush=True)
        records[stage.name] = {"argv": stage.argv, **run_stage(sys.executable, stage.argv)}
        timing_path.write_text(json.dumps(records, indent=2) + "\n")
        print(f"{stage.name}: {records[stage.name]['cpu_seconds']:.0f} s CPU", flush=True)


def _line(argv: list[str]) -> str:
    return "unimo " + shlex.join(argv)


def run_metrics(results: dict[str, Any]) -> dict[str, Any]:
    """The headline figures of one run's ``results/results.json``: per compositional category
    (token and pooled score) the accuracy in percent and its one-sided binomial p-value,
    retrieval R@1 both ways, CIDEr."""
    out: dict[str, Any] = {}
    for row in results["rows"]:
        if row["task"] == "compositional":
            score = row.get("score") or "cosine"
            out[score] = {
                name: {
                    "accuracy": round(100 * cat["accuracy"], 1),
                    "p_above_chance": cat["p_above_chance"],
                    "count": cat["count"],
                }
                for name, cat in row["categories"].items()
            }
        elif row["task"] == "retrieval":
            out["i2t_r1"] = round(row["i2t_r1"], 1)
            out["t2i_r1"] = round(row["t2i_r1"], 1)
        elif row["task"] == "caption":
            out["cider"] = round(row["cider"], 3)
    return out


def _stage_times(records: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per stage: wall and CPU seconds, load average; ``finished`` false for a stage that was
    started and stopped (its times are then absent)."""
    return {
        name: {
            "finished": bool(record.get("finished", "seconds" in record)),
            "wall_seconds": round(record["seconds"], 1) if "seconds" in record else None,
            "cpu_seconds": round(record["cpu_seconds"], 1) if "cpu_seconds" in record else None,
            "load_average": record.get("load_average"),
        }
        for name, record in records.items()
    }


def demo_records(demo: Path) -> dict[str, dict[str, Any]]:
    """The demo's stage markers in the order they ran."""
    from unimo_kit.demo import read_stage_record

    markers = sorted((demo / ".stages").glob("*.json"), key=os.path.getmtime)
    return {marker.stem: read_stage_record(marker) or {} for marker in markers}


def train_progress(run: Path) -> dict[str, Any]:
    """The run's seed, steps, vocabulary and what it trains (``run/config.json``), and the last
    step its ``log.csv`` reached; ``{}`` before training wrote its config."""
    config_path = run / "run" / "config.json"
    if not config_path.exists():
        return {}
    config = json.loads(config_path.read_text())
    keys = ("seed", "steps", "vocab", "threads", "rewrite_negatives", "negative_types", "mlm")
    out = {key: config.get(key) for key in keys}
    log = run / "run" / "log.csv"
    if log.exists():
        rows = list(csv.DictReader(log.open()))
        steps = [int(float(row["step"])) for row in rows if row.get("step")]
        out["last_logged_step"] = max(steps, default=None)
    return out


def describe(folder: Path, records: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One run's entry: its name, training settings, metrics (``{}`` until its evaluation
    finished) and stage times."""
    results_path = folder / "results" / "results.json"
    train_argv = records.get("train", {}).get("argv", [])
    preset = train_argv[train_argv.index("--config") + 1] if "--config" in train_argv else None
    sets = [train_argv[i + 1] for i, word in enumerate(train_argv) if word == "--set"]
    return {
        "name": folder.name,
        "preset": preset,
        "sets": [item for item in sets if not item.startswith("data_dir=")],
        "train": train_progress(folder),
        "metrics": run_metrics(json.loads(results_path.read_text()))
        if results_path.exists()
        else {},
        "stages": _stage_times(records),
    }


def report(args: argparse.Namespace) -> None:
    """Write the results JSON over the demo and its arms, and print a per-run table."""
    world = json.loads((args.demo / "world" / "world.json").read_text())
    runs = [describe(args.demo, demo_records(args.demo))]
    for arm in args.arm or []:
        timing = arm / TIMING_FILE
        runs.append(describe(arm, json.loads(timing.read_text()) if timing.exists() else {}))
    data_stages = [name for name in runs[0]["stages"] if name not in ("train", "eval")]
    payload = {
        "benchmark": "bench_demo_seeds",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "world": {"params": world.get("params"), "counts": world.get("counts")},
        "data_stages": {
            "wall_seconds": round(
                sum(runs[0]["stages"][n]["wall_seconds"] or 0.0 for n in data_stages)
            ),
            "cpu_seconds": round(
                sum(runs[0]["stages"][n]["cpu_seconds"] or 0.0 for n in data_stages)
            ),
        },
        "runs": runs,
        "notes": args.note or [],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(payload, indent=2) + "\n")
    print_table(runs)


def print_table(runs: list[dict[str, Any]]) -> None:
    """Token-score accuracy per category, R@1, CIDEr and train CPU seconds per run."""
    print("| run | " + " | ".join(CATEGORIES) + " | i2t R@1 | t2i R@1 | CIDEr | train CPU s |")
    for run in runs:
        token = run["metrics"].get("token", {})
        cells = [f"{token[c]['accuracy']:.1f}" if c in token else "–" for c in CATEGORIES]
        m = run["metrics"]
        cpu = run["stages"].get("train", {}).get("cpu_seconds")
        print(
            f"| {run['name']} | " + " | ".join(cells) + f" | {m.get('i2t_r1')} | "
            f"{m.get('t2i_r1')} | {m.get('cider')} | {cpu} |"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    arm = sub.add_parser("arm", help="train + evaluate once more on a demo's world")
    arm.add_argument("--demo", type=Path, required=True, help="a finished `unimo demo` folder")
    arm.add_argument("--out", type=Path, required=True, help="this arm's folder")
    arm.add_argument("--seed", type=int, default=0, help="training seed")
    arm.add_argument("--preset", default="synth-small", help="training preset")
    arm.add_argument("--steps", type=int, default=None, help="override the preset's steps")
    arm.add_argument("--set", action="append", help="more KEY=VALUE for unimo train")
    rep = sub.add_parser("report", help="the results JSON over the demo and its arms")
    rep.add_argument("--demo", type=Path, required=True)
    rep.add_argument("--arm", type=Path, action="append", help="an arm's folder (repeatable)")
    rep.add_argument("--note", action="append", help="a line for the results' notes")
    rep.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args(argv)
    run_arm(args) if args.command == "arm" else report(args)


if __name__ == "__main__":
    main()
