"""``REPORT.md`` of a demo run: what ran, the figures, the plots, and examples of what each data
stage made (rewrites, mined positives and negatives)."""

from __future__ import annotations

import json
import os
from itertools import islice
from pathlib import Path
from typing import Any

from unimo_kit.demo import read_stage_record
from unimo_kit.utils import atomic_write, iter_jsonl


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _first_records(path: Path, n: int) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [record for _, record in islice(iter_jsonl(path), n)]


def _stage_table(out: Path) -> list[str]:
    """Wall and CPU seconds per stage, in the order they started, with the load average it
    started and ended at (a marker of an earlier demo has no CPU time: shown as a dash); then
    how long the stages took from the first start to the last end, which is less than the sum
    when stages ran side by side (``--jobs 2``)."""
    lines = ["| stage | wall s | CPU s | load avg |", "|---|---:|---:|---|"]
    records = []
    for marker in (out / ".stages").glob("*.json"):
        record = read_stage_record(marker) or {}
        records.append((record.get("started_at", os.path.getmtime(marker)), marker.stem, record))
    wall = cpu = 0.0
    for _, name, record in sorted(records):
        seconds = record.get("seconds", 0.0)
        wall += seconds
        cpu_text = load_text = "–"
        if "cpu_seconds" in record:
            cpu += record["cpu_seconds"]
            cpu_text = f"{record['cpu_seconds']:.0f}"
        if load := record.get("load_average"):
            load_text = " → ".join(f"{value:.1f}" for value in load)
        lines.append(f"| {name} | {seconds:.0f} | {cpu_text} | {load_text} |")
    lines.append(f"| **total** | **{wall:.0f}** | **{cpu:.0f}** | |")
    spans = [(r["started_at"], r["finished_at"]) for _, _, r in records if "finished_at" in r]
    if spans and len(spans) == len(records):
        span = max(end for _, end in spans) - min(start for start, _ in spans)
        lines += [
            "",
            f"From the first stage's start to the last one's end: {span:.0f} s wall (less "
            "than the total when stages ran side by side; more when the demo was stopped and "
            "resumed).",
        ]
    return lines


def _world_section(world: Path) -> list[str]:
    info = _read_json(world / "world.json") or {}
    counts = info.get("counts", {})
    if not counts:
        return []
    held_out = ", ".join(" ".join(pair) for pair in info.get("held_out", []))
    lines = ["## The synthetic world", ""]
    for key in ("images", "captions", "compositional"):
        if isinstance(counts.get(key), dict):
            lines.append(f"- {key}: " + ", ".join(f"{k} {v}" for k, v in counts[key].items()))
    lines += [
        f"- {key.replace('_', ' ')}: {value}"
        for key, value in counts.items()
        if isinstance(value, int | float)
    ]
    if held_out:
        lines.append(
            f"- colour–shape compositions held out of training (val/test only): {held_out}"
        )
    return [*lines, ""]


def _rewrite_examples(world: Path, n: int = 3) -> list[str]:
    records = [r for r in _first_records(world / "rewrites.jsonl", 50) if r.get("negatives")][:n]
    if not records:
        return []
    lines = ["## Examples: rewritten positives and typed hard negatives", ""]
    for record in records:
        lines.append(f"**{record['caption']}**  ")
        lines.append(f"scene graph: `{record.get('scene_graph', '')}`")
        lines.append("")
        for positive in record.get("positives", [])[:3]:
            lines.append(f"- positive ({positive['type']}): {positive['text']}")
        for negative in record.get("negatives", []):
            lines.append(f"- negative ({negative['type']}): {negative['text']}")
        for negative in record.get("sentence_negatives", [])[:2]:
            lines.append(
                f"- sentence negative (TF-IDF {negative['score']:.2f}): {negative['text']}"
            )
        lines.append("")
    return lines


def _mining_examples(world: Path, n: int = 3) -> list[str]:
    retrieved = _first_records(world / "retrieved.jsonl", n)
    if not retrieved:
        return []
    captions = {
        r["id"]: r.get("captions", []) for r in _first_records(world / "pairs.train.jsonl", 10_000)
    }
    lines = ["## Examples: mined positives and neighbour-caption negatives", ""]
    for record in retrieved:
        first = (captions.get(record["id"]) or ["?"])[0]
        lines.append(f"**{record['id']}** — “{first}”")
        lines.append("")
        for text in record.get("texts", [])[:3]:
            lines.append(f"- related text ({text['score']:.2f}): {text['text']}")
        for image in record.get("images", [])[:3]:
            lines.append(f"- related image ({image['score']:.2f}): `{image['id']}`")
        for negative in record.get("negatives", [])[:2]:
            lines.append(f"- negative ({negative['score']:.2f}): {negative['text']}")
        lines.append("")
    return lines


def _above_chance(results: Path, alpha: float = 0.05) -> list[str]:
    """One line per compositional row of ``results.json``: the categories whose accuracy is
    above chance by a one-sided binomial test at ``alpha``, and those that are not."""
    data = _read_json(results)
    lines = []
    for row in (data or {}).get("rows", []):
        categories = row.get("categories") if row.get("task") == "compositional" else None
        if not categories:
            continue
        above = [c for c, v in categories.items() if v.get("p_above_chance", 1.0) < alpha]
        below = [
            f"{c} ({100 * v['accuracy']:.1f} %, p = {v.get('p_above_chance', 1.0):.2f})"
            for c, v in categories.items()
            if c not in above
        ]
        verdict = f"above chance on {len(above)} of {len(categories)} categories"
        lines.append(
            f"- {row['label']}, {row['name']} ({row.get('score', 'contrastive')} score): "
            + verdict
            + (f"; not on {', '.join(below)}" if below else "")
        )
    if lines:
        lines = [f"Above chance (one-sided binomial test, p < {alpha}):", "", *lines, ""]
    return lines


def write_report(out: str | os.PathLike) -> Path:
    """Write ``out/REPORT.md`` from what the demo stages left in ``out``; returns its path."""
    out = Path(out)
    world = out / "world"
    results = out / "results"
    lines = [
        "# unimo_kit demo report",
        "",
        "The whole UNIMO pipeline on the embedded synthetic world, run by `make demo`. Every "
        "command is in [commands.sh](commands.sh); rerunning skips finished stages.",
        "",
        "## Stages",
        "",
        *_stage_table(out),
        "",
        *_world_section(world),
    ]
    table = results / "results.md"
    if table.exists():
        lines += ["## Results (test split: every image shows a held-out colour–shape pair)", ""]
        lines += [
            "Chance: 50% per compositional category (one negative per item); retrieval "
            "R@1 = 100 / number of test images.",
            "",
        ]
        body = table.read_text().strip().splitlines()
        if body and body[0].startswith("# "):  # the batch table's own title
            body = body[1:]
        lines += [("#" + line if line.startswith("## ") else line) for line in body]
        lines.append("")
        lines += _above_chance(results / "results.json")
    plots = sorted((results / "plots").glob("*.png")) if (results / "plots").exists() else []
    if plots:
        lines += ["## Plots", ""]
        lines += [f"![{p.stem}]({p.relative_to(out).as_posix()})" for p in plots]
        lines.append("")
    lines += _rewrite_examples(world)
    lines += _mining_examples(world)
    report = out / "REPORT.md"
    with atomic_write(report) as handle:
        handle.write("\n".join(lines).rstrip() + "\n")
    return report
