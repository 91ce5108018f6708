"""Ablation of UNIMO's data on the synthetic world: four arms x three seeds, one command.

Arms (same steps, batch sizes, seeds; presets in ``unimo_kit/train/presets``):

    a  synth-a-cmcl       CMCL with in-batch negatives only (every arm: + token alignment)
    b  synth-b-negatives  a + rewritten hard negatives and neighbour captions (rank loss)
    c  synth-c-retrieval  b + retrieved positive texts and images
    d  synth-d-full       c + rewritten positives, MLM, seq2seq, masked region prediction

Pipeline (each step resumable; a finished step is skipped on rerun, a training only while
its resolved config is unchanged):

    data stages of ``unimo demo`` (synth, rewrite, index-texts, features, index-images, mine)
    -> 12 ``unimo train`` runs (``--jobs`` at a time, one torch thread each)
    -> one ``unimo eval batch`` over the 12 final checkpoints
    -> benchmarks/results/ablation.json and docs/RESULTS.md

Example::

    python benchmarks/ablation.py --out runs/ablation --n-images 1000 --steps 200 --jobs 2
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from unimo_kit.demo import DemoConfig, build_stages, train_fingerprint

REPO = Path(__file__).resolve().parents[1]
DATA_STAGES = ("synth", "rewrite", "index-texts", "features", "index-images", "mine")
ARMS = {  # group name -> (preset, description)
    "a-cmcl": ("synth-a-cmcl", "CMCL and token alignment (every arm), in-batch negatives only"),
    "b-negatives": (
        "synth-b-negatives",
        "a + rewritten hard negatives + length-matched neighbour captions, in the rank loss only",
    ),
    "c-retrieval": ("synth-c-retrieval", "b + retrieved positive texts and images"),
    "d-full": ("synth-d-full", "c + rewritten positives, MLM, seq2seq, MRP (full UNIMO)"),
}
# The headline metrics of the table (keys of `unimo eval batch`'s scalar metrics per task).
COMPOSITIONAL = [
    "swap-obj",
    "swap-att",
    "replace-obj",
    "replace-att",
    "replace-rel",
    "add-obj",
    "add-att",
]
# Compositional tasks scored otherwise than by the CMCL cosine: task name -> score. Generative:
# log p(caption | image), only arm d has the head; token: words matched to regions, only runs
# trained with token alignment. Checkpoints without the objective are skipped by the eval.
SCORED = {"compositional-generative": "generative", "compositional-token": "token"}
SUBSETS = ("held-out", "seen")  # slices of compositional.test.jsonl (its `subset` field)
RETRIEVAL = ["i2t_r1", "t2i_r1", "i2t_r5", "t2i_r5", "rsum"]
CAPTION = ["cider", "bleu4"]


def unimo(argv: list[str], niceness: int) -> list[str]:
    """The subprocess command line of ``unimo ARGV`` at the given niceness."""
    return ["nice", "-n", str(niceness), sys.executable, "-m", "unimo_kit.cli.main", *argv]


def run_marked(
    name: str,
    argv: list[str],
    marker: Path,
    niceness: int,
    log: Path | None = None,
    fingerprint: str | None = None,
    fresh_output: Path | None = None,
) -> dict[str, Any]:
    """Run ``unimo ARGV`` unless ``marker`` records the same argv (and ``fingerprint``, when
    given: e.g. the hash of the resolved training config, which changes when a preset does);
    record wall and CPU seconds. ``fresh_output`` (a run folder the command would resume in)
    is removed first when the marker records another fingerprint.

    Returns:
        ``{"name", "argv", "seconds", "cpu_seconds", "skipped"}`` (+ ``fingerprint``).
    """
    if marker.exists():
        try:
            done = json.loads(marker.read_text())
        except json.JSONDecodeError:
            done = {}
        if done.get("argv") == argv and done.get("fingerprint") == fingerprint:
            return {**done, "name": name, "skipped": True}
        if fresh_output is not None and done.get("fingerprint") != fingerprint:
            print(f"{name}: its config changed since it ran; {fresh_output} starts afresh")
            shutil.rmtree(fresh_output, ignore_errors=True)
            marker.unlink()
    print(f"[{time.strftime('%H:%M:%S')}] {name}: unimo {shlex.join(argv)}", flush=True)
    started = time.perf_counter()
    if log:
        log.parent.mkdir(parents=True, exist_ok=True)
    out = open(log, "a") if log else None  # noqa: SIM115 - closed below
    try:
        proc = subprocess.Popen(unimo(argv, niceness), stdout=out, stderr=out, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if out:
            out.close()
    if proc.returncode != 0:
        where = f" (log: {log})" if log else ""
        raise SystemExit(f"{name} failed with exit code {proc.returncode}{where}")
    record = {
        "name": name,
        "argv": argv,
        "seconds": round(time.perf_counter() - started, 1),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
    }
    if fingerprint is not None:
        record["fingerprint"] = fingerprint
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(record))
    print(
        f"[{time.strftime('%H:%M:%S')}] {name}: done in {record['seconds']:.0f} s "
        f"({record['cpu_seconds']:.0f} CPU s)",
        flush=True,
    )
    return {**record, "skipped": False}


def config_fingerprint(argv: list[str]) -> str:
    """The demo's :func:`train_fingerprint` of the config ``unimo train ARGV`` resolves
    (preset + ``--set``s): a finished run is reused only while its preset still means the
    same."""
    preset = argv[argv.index("--config") + 1]
    sets = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
    return train_fingerprint(preset, sets)


def train_argv(arm: str, seed: int, args: argparse.Namespace, world: Path, run: Path) -> list[str]:
    """``unimo train`` arguments of one (arm, seed)."""
    sets = [f"data_dir={world}", f"seed={seed}", "threads=1"]
    if args.steps:
        sets.append(f"steps={args.steps}")
    if args.neg_texts_per_pair and arm != "a-cmcl":
        sets.append(f"neg_texts_per_pair={args.neg_texts_per_pair}")
    sets += args.set or []
    argv = ["train", "--config", ARMS[arm][0], "-o", str(run)]
    for item in sets:
        argv += ["--set", item]
    return argv


def eval_config(runs: dict[tuple[str, int], Path], world: Path, args: argparse.Namespace) -> dict:
    """The ``unimo eval batch`` config over every final checkpoint (absolute paths)."""
    checkpoints = [
        {
            "label": f"{arm}-s{seed}",
            "path": str((run / "final").resolve()),
            "group": arm,
            "seed": seed,
            "features": str((world / "features").resolve()),
            "run_dir": str(run.resolve()),
        }
        for (arm, seed), run in runs.items()
    ]
    test = str((world / "pairs.test.jsonl").resolve())
    # METEOR (Java) is skipped: it costs about a minute per checkpoint and CIDEr is the figure.
    caption: dict[str, Any] = {
        "task": "caption",
        "data": test,
        "beams": args.beams,
        "meteor": "no",
    }
    if args.caption_images:
        caption["max_images"] = args.caption_images
    return {
        "name": "UNIMO ablation on the synthetic world (test split, held-out compositions)",
        "checkpoints": checkpoints,
        "tasks": [
            {"task": "retrieval", "data": test, "ks": [1, 5, 10]},
            {"task": "compositional", "data": str((world / "compositional.test.jsonl").resolve())},
            *(
                {
                    "task": "compositional",
                    "name": name,
                    "data": str((world / "compositional.test.jsonl").resolve()),
                    "score": score,
                }
                for name, score in SCORED.items()
            ),
            caption,
        ],
    }


def summarise(results: dict) -> dict[str, dict[str, dict[str, float]]]:
    """Per arm: the headline metrics' mean and std (from ``results.json``'s summary)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for entry in results["summary"]:
        metrics = entry["metrics"]
        group = entry["group"]
        if entry["name"] in SCORED:
            group = f"{group} ({SCORED[entry['name']]})"
        arm = out.setdefault(group, {})
        if entry["task"] == "compositional":
            for cat in COMPOSITIONAL:
                for key in (f"acc/{cat}", *(f"acc/{cat}@{s}" for s in SUBSETS)):
                    if key in metrics:
                        arm[key] = metrics[key]
            for key in ("accuracy", *(f"accuracy@{s}" for s in SUBSETS)):
                if key in metrics:
                    arm[key.replace("accuracy", "compositional")] = metrics[key]
        elif entry["task"] == "retrieval":
            arm.update({k: metrics[k] for k in RETRIEVAL if k in metrics})
        elif entry["task"] == "caption":
            arm.update({k: metrics[k] for k in CAPTION if k in metrics})
    return out


def per_run(results: dict) -> list[dict[str, Any]]:
    """One flat row per checkpoint: label, group, seed and the headline metrics (compositional
    scores other than the cosine prefixed with the score, e.g. ``generative:``)."""
    from unimo_kit.eval.report import scalar_metrics

    rows: dict[str, dict[str, Any]] = {}
    for row in results["rows"]:
        flat = rows.setdefault(
            row["label"], {"label": row["label"], "group": row["group"], "seed": row.get("seed")}
        )
        metrics = scalar_metrics(row)
        if row["task"] == "compositional":
            prefix = f"{SCORED[row['name']]}:" if row["name"] in SCORED else ""
            for key, value in metrics.items():
                if key.startswith("acc/"):
                    flat[prefix + key] = value
                elif key.startswith("accuracy"):
                    flat[prefix + key.replace("accuracy", "compositional", 1)] = value
        elif row["task"] == "retrieval":
            flat.update({k: metrics[k] for k in RETRIEVAL if k in metrics})
        elif row["task"] == "caption":
            flat.update({k: metrics[k] for k in CAPTION if k in metrics})
    return list(rows.values())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=Path("runs/ablation"), help="world, runs, results go here"
    )
    parser.add_argument("--n-images", type=int, default=1000, help="captioned images of the world")
    parser.add_argument("--steps", type=int, default=None, help="training steps (preset: 400)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds")
    parser.add_argument("--jobs", type=int, default=2, help="trainings run at a time")
    parser.add_argument("--nice", type=int, default=5, help="niceness of every subprocess")
    parser.add_argument(
        "--neg-texts-per-pair",
        type=int,
        default=None,
        help="hard negatives per pair, arms b-d (use a fresh --out)",
    )
    parser.add_argument("--set", action="append", help="more KEY=VALUE for every training")
    parser.add_argument("--beams", type=int, default=1, help="beam size of the captioning eval")
    parser.add_argument("--caption-images", type=int, default=100, help="images captioned")
    parser.add_argument(
        "--arms", default=",".join(ARMS), help="comma-separated arms to train (default: all four)"
    )
    parser.add_argument("--no-eval", action="store_true", help="stop after the trainings")
    parser.add_argument("--only-data", action="store_true", help="stop after the data stages")
    parser.add_argument(
        "--results", type=Path, default=REPO / "benchmarks/results/ablation.json", help="JSON out"
    )
    parser.add_argument(
        "--doc", type=Path, default=REPO / "docs/RESULTS.md", help="Markdown report out"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    started = time.perf_counter()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    world = out / "world"
    seeds = [int(s) for s in args.seeds.split(",")]
    commands: list[str] = []

    # 1. data stages, exactly as `unimo demo` runs them
    stages = [s for s in build_stages(DemoConfig(out=out, n_images=args.n_images, seed=0))]
    timings = {}
    for stage in stages:
        if stage.name not in DATA_STAGES:
            continue
        commands.append("unimo " + shlex.join(stage.argv))
        timings[stage.name] = run_marked(
            stage.name, stage.argv, out / ".stages" / f"{stage.name}.json", args.nice
        )

    if args.only_data:
        print(json.dumps(timings, indent=2))
        return

    # 2. trainings; longest arm first so the pool stays balanced
    runs = {(arm, seed): out / "runs" / f"{arm}-s{seed}" for arm in ARMS for seed in seeds}
    chosen = args.arms.split(",")
    order = sorted(
        (k for k in runs if k[0] in chosen), key=lambda k: (-list(ARMS).index(k[0]), k[1])
    )
    lock = threading.Lock()
    train_records: dict[str, dict[str, Any]] = {}

    def train_one(key: tuple[str, int]) -> None:
        arm, seed = key
        run = runs[key]
        run.mkdir(parents=True, exist_ok=True)
        argv_ = train_argv(arm, seed, args, world, run)
        record = run_marked(
            f"train {arm} seed {seed}",
            argv_,
            out / ".stages" / f"train-{arm}-s{seed}.json",
            args.nice,
            log=run / "train.log",
            fingerprint=config_fingerprint(argv_),
            fresh_output=run,
        )
        with lock:
            train_records[f"{arm}-s{seed}"] = record

    for key in order:
        commands.append("unimo " + shlex.join(train_argv(*key, args, world, runs[key])))
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for future in [pool.submit(train_one, key) for key in order]:
            future.result()

    if args.no_eval:
        return

    # 3. one batch evaluation over the 12 checkpoints
    config_path = out / "eval.json"
    config_text = json.dumps(eval_config(runs, world, args), indent=2) + "\n"
    if not config_path.exists() or config_path.read_text() != config_text:
        config_path.write_text(config_text)
        (out / ".stages" / "eval.json").unlink(missing_ok=True)  # rows.jsonl keeps what holds
    eval_argv = ["eval", "batch", str(config_path), "-o", str(out / "results")]
    commands.append("unimo " + shlex.join(eval_argv))
    eval_record = run_marked(
        "eval", eval_argv, out / ".stages" / "eval.json", args.nice, log=out / "eval.log"
    )
    results = json.loads((out / "results" / "results.json").read_text())

    # 4. results file and docs
    world_info = json.loads((world / "world.json").read_text())
    preset = json.loads((REPO / "unimo_kit/train/presets/synth-a-cmcl.json").read_text())
    report = {
        "config": {
            "n_images": args.n_images,
            "steps": args.steps or preset["steps"],
            "seeds": seeds,
            "jobs": args.jobs,
            "batch_pairs": preset["batch_pairs"],
            "neg_texts_per_pair": args.neg_texts_per_pair,
            "extra_sets": args.set or [],
            "caption": {"beams": args.beams, "max_images": args.caption_images},
            "arms": {k: {"preset": v[0], "what": v[1]} for k, v in ARMS.items()},
            "world": {
                k: world_info.get(k) for k in ("seed", "counts", "held_out") if k in world_info
            },
        },
        "summary": summarise(results),
        "runs": per_run(results),
        "timings": {
            "data_stages": timings,
            "train": train_records,
            "eval": eval_record,
            "wall_seconds_this_invocation": round(time.perf_counter() - started, 1),
        },
        "commands": [
            "python benchmarks/ablation.py " + shlex.join(sys.argv[1:] if argv is None else argv),
            *commands,
        ],
        "load_average": os.getloadavg(),
        "cpus": os.cpu_count(),
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(report, indent=2) + "\n")
    args.doc.write_text(results_doc(report, args.doc))
    print(table(report["summary"]))
    print(f"wrote {args.results} and {args.doc}")


def fmt(entry: dict[str, float] | None, scale: float = 1.0, digits: int = 1) -> str:
    """``mean ± std`` of one metric (``–`` when missing)."""
    if not entry:
        return "–"
    return f"{entry['mean'] * scale:.{digits}f} ± {entry['std'] * scale:.{digits}f}"


def table(summary: dict[str, dict[str, dict[str, float]]], subset: str | None = None) -> str:
    """Markdown table: per arm the compositional accuracy per category (%) on ``subset`` of the
    test items (``None``: all), R@1, CIDEr."""
    cols = [f"acc/{c}" + (f"@{subset}" if subset else "") for c in COMPOSITIONAL]
    head = ["arm", *COMPOSITIONAL, "i2t R@1", "t2i R@1", "CIDEr"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    scored = [f"{a} ({score})" for score in SCORED.values() for a in ARMS]
    arms = [*ARMS, *(a for a in scored if a in summary)]
    for arm in arms:
        m = summary.get(arm, {})
        cells = [arm, *(fmt(m.get(c), 100) for c in cols)]
        cells += [fmt(m.get("i2t_r1")), fmt(m.get("t2i_r1")), fmt(m.get("cider"), 1, 3)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


NOTES_START, NOTES_END = "<!-- notes -->", "<!-- /notes -->"
GOAL_POINTS = 20.0  # NegCLIP's +21 on VG-Relation: the full arm over in-batch-only, in points
GOAL_CATEGORIES = ["swap-obj", "swap-att", "replace-obj", "replace-att", "replace-rel"]


def reading(summary: dict[str, dict[str, dict[str, float]]], subset: str | None) -> list[str]:
    """Computed lines: full (d) and negatives (b) minus in-batch-only (a), against the goal,
    on ``subset`` of the compositional items (``None``: all); token-scored rows against a's
    token-scored row."""
    lines: list[str] = []
    suffix = f"@{subset}" if subset else ""
    arms = ("b-negatives", "d-full", "b-negatives (token)", "d-full (token)")
    for arm in (*arms, "d-full (generative)"):
        # a token-scored arm against a scored the same way; generative against a's cosine
        base = "a-cmcl (token)" if arm.endswith("(token)") else "a-cmcl"
        a, other = summary.get(base, {}), summary.get(arm, {})
        if not a or not other:
            continue
        gains = []
        for cat in GOAL_CATEGORIES:
            key = f"acc/{cat}{suffix}"
            if key in a and key in other:
                gains.append((cat, 100 * (other[key]["mean"] - a[key]["mean"])))
        if not gains:
            continue
        met = [c for c, g in gains if g >= GOAL_POINTS]
        text = ", ".join(f"{c} {g:+.1f}" for c, g in gains)
        lines.append(
            f"- **{arm} − {base}** (points of accuracy, mean over seeds): {text}; "
            f"goal ≥ +{GOAL_POINTS:.0f} met on {len(met)}/{len(gains)} categories"
            + (f" ({', '.join(met)})" if met else "")
            + f"; shortfall of the best category: "
            f"{max(0.0, GOAL_POINTS - max(g for _, g in gains)):.1f} points."
        )
        r1 = [
            f"{k} {other[k]['mean'] - a[k]['mean']:+.1f}"
            for k in ("i2t_r1", "t2i_r1")
            if k in a and k in other
        ]
        if r1:
            lines.append(f"  R@1 change: {', '.join(r1)} (points).")
    return lines


def results_doc(report: dict[str, Any], path: Path) -> str:
    """docs/RESULTS.md: setup, command, table, computed reading; hand-written notes are kept."""
    notes = f"{NOTES_START}\n(no notes yet)\n{NOTES_END}"
    if path.exists():
        old = path.read_text()
        if NOTES_START in old and NOTES_END in old:
            start = old.index(NOTES_START)
            notes = old[start : old.index(NOTES_END) + len(NOTES_END)]
    cfg = report["config"]
    world = cfg.get("world", {})
    held_out = ", ".join(
        " ".join(h) if isinstance(h, list) else str(h) for h in world.get("held_out") or []
    )
    timings = report["timings"]
    train_cpu = sum(r.get("cpu_seconds") or 0 for r in timings["train"].values())
    train_wall = max((r.get("seconds") or 0 for r in timings["train"].values()), default=0)
    data_wall = sum(r.get("seconds") or 0 for r in timings.get("data_stages", {}).values())
    eval_wall = (timings.get("eval") or {}).get("seconds") or 0
    summary = report["summary"]
    have = [s for s in SUBSETS if any(f"compositional@{s}" in m for m in summary.values())]
    headline = "held-out" if "held-out" in have else None
    captions = {
        "held-out": "Items that name a **held-out** colour–shape composition (never seen in"
        " training): the test of the goal.",
        "seen": "Items that name only compositions seen in training (new images).",
    }
    tables: list[str] = []
    for subset in [*have, None]:
        title = captions.get(subset, "All test items.")
        tables += [title, "", table(summary, subset), ""]
    lines = [
        "# Results: the UNIMO ablation on the synthetic world",
        "",
        "Generated by `benchmarks/ablation.py` (figures: `benchmarks/results/ablation.json`);",
        "the notes section is written by hand and kept when the script rewrites this file.",
        "",
        "## Command",
        "",
        "```bash",
        report["commands"][0],
        "```",
        "",
        "It runs the data stages of `unimo demo` once, then the 12 trainings, then one",
        "`unimo eval batch`; every command it ran is listed in `ablation.json` under `commands`.",
        "",
        "## Setup",
        "",
        f"- World: `unimo data synth --n-images {cfg['n_images']} --seed 0`"
        + (
            f" (held-out colour-shape compositions: {held_out})"
            if isinstance(world.get("held_out"), list)
            else ""
        )
        + "; rewrites with `--scenes` (typed negatives and TF-IDF neighbour captions verified"
        " false on the gold scene), `unimo index mine --scenes` positives and neighbour-caption"
        " negatives (verified the same way), `effnet-ms` grid features (EfficientNet-Lite0's"
        " last stage + two earlier stages).",
        f"- Same budget for every arm: {cfg['steps']} steps, {cfg['batch_pairs']} pairs per batch,"
        f" seeds {', '.join(map(str, cfg['seeds']))}, model 2 layers × 128 (presets"
        " `synth-*`: 4 hard negatives per pair in arms b–d, sentence-level ones within one"
        " word of the caption's length, all acting through the rank loss at weight 1 and not"
        " as columns of the batch softmax), one torch thread per run"
        + (
            f", `neg_texts_per_pair={cfg['neg_texts_per_pair']}` in arms b–d"
            if cfg.get("neg_texts_per_pair")
            else ""
        )
        + ".",
        *(f"- **{k}** (`{v['preset']}`): {v['what']}" for k, v in cfg["arms"].items()),
        "- Test: compositional accuracy per category on `compositional.test.jsonl` (test images,"
        " each with at least one held-out composition; one negative per item, chance 50 %),"
        " split by the items' `subset` (held-out: the item names a held-out composition);"
        " R@1 both ways on the test split"
        f" (images vs their captions); caption CIDEr (beam {cfg['caption']['beams']},"
        f" {cfg['caption']['max_images']} test images).",
        f"- Cost on the shared 2-core machine: data stages {data_wall / 60:.0f} min wall;"
        f" trainings {train_cpu / 60:.0f} CPU min in all, the longest run"
        f" {train_wall / 60:.0f} min wall; evaluation {eval_wall / 60:.1f} min wall (as recorded"
        " when each step ran; a rerun skips finished steps).",
        "",
        "## Mean ± std over seeds (accuracy in %, R@1 in %)",
        "",
        *tables,
        "## Reading (computed)",
        "",
        f"Goal: the full arm beats in-batch-only by ≥ {GOAL_POINTS:.0f} points on the swap and"
        " replace categories without losing R@1 (NegCLIP: +21 on VG-Relation)"
        + ("; measured on the items that name a held-out composition." if headline else "."),
        "",
        *reading(report["summary"], headline),
        "",
        *(["On all test items:", "", *reading(report["summary"], None), ""] if headline else []),
        "## Notes",
        "",
        notes,
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
