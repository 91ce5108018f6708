"""Result tables (JSON, CSV, markdown) and PNG plots (matplotlib, Agg backend) of batch runs.

- ``results.json``: ``{"title", "config_sha256", "rows": [...], "summary": [...]}``;
- ``results.csv``: one line per (checkpoint, task) with every scalar metric flattened
  (per-category compositional accuracy as ``acc/<category>``, per slice of the test set as
  ``accuracy@<subset>`` and ``acc/<category>@<subset>``), what it was made from (checkpoint,
  features store, extractor, images folder) and the hashes;
- ``results.md``: one table per task (rows = checkpoints; the columns are the task's
  registered metrics, :mod:`unimo_kit.eval.registry`), each row's notes under it (e.g. "most
  generated captions are empty"), and the mean ± std per group (per category and per subset;
  the per-category accuracies of each subset are in the JSON/CSV);
- ``plots/compositional-<task>.png`` (per-category accuracy bars, chance marked),
  ``plots/retrieval-<task>.png`` (R@K bars), ``plots/loss.png`` (loss curves from the runs'
  ``log.csv``). Bars show group means with ± std whiskers when a group has several seeds.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from unimo_kit.eval.registry import EvalTask, get_task
from unimo_kit.utils import atomic_write

ID_KEYS = ("label", "group", "seed", "name", "task")
HASH_KEYS = ("checkpoint_sha256", "config_sha256", "data_sha256", "features_sha256")
SOURCE_KEYS = ("checkpoint", "features", "extractor", "images")  # what a row was made from
NOT_METRICS = {
    "seed",
    "skipped_records",
    "num_images",
    "num_texts",
    "num_shared_captions",
    "num_examples",
    "num_beams",
    "empty_captions",
}


def _task(name: str) -> EvalTask | None:
    """The registry entry of a row's task (``None`` for a task not registered here)."""
    try:
        return get_task(name)
    except KeyError:
        return None


def _columns(task: EvalTask | None, available: Any, rows: Sequence[dict] | None = None) -> list:
    """A table's metric columns: the task's headline metrics present, then its extra ones
    (per row-table from ``rows``, per summary-table from the metric keys ``available``)."""
    if task is None:
        return []
    columns = [m for m in task.metrics if m in available]
    if rows is not None and task.extra_columns is not None:
        columns += task.extra_columns(rows)
    if rows is None and task.extra_summary_columns is not None:
        columns += task.extra_summary_columns(list(available))
    return columns


def scalar_metrics(row: dict[str, Any]) -> dict[str, float]:
    """The numeric metrics of a result row, flattened (``acc/<category>`` for compositional)."""
    out: dict[str, float] = {}
    for key, value in row.items():
        if key in NOT_METRICS or isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            out[key] = float(value)
    for name, cat in (row.get("categories") or {}).items():
        out[f"acc/{name}"] = float(cat["accuracy"])
    for subset, part in (row.get("subsets") or {}).items():
        out[f"accuracy@{subset}"] = float(part["accuracy"])
        for name, cat in part["categories"].items():
            out[f"acc/{name}@{subset}"] = float(cat["accuracy"])
    return out


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) >= 1 or value == 0 else f"{value:.4f}"
    return str(value)


def markdown_tables(
    rows: Sequence[dict[str, Any]], summary: Sequence[dict[str, Any]], title: str = ""
) -> str:
    """Markdown: per task one table (rows = checkpoints), then mean ± std per group."""
    lines = [f"# {title}" if title else "# Results", ""]
    for name in dict.fromkeys(r["name"] for r in rows):
        members = [r for r in rows if r["name"] == name]
        task = members[0]["task"]
        spec = _task(task)
        present = {k for r in members for k in r}
        metrics = _columns(spec, present, members)
        digits = spec.digits if spec is not None else 4
        lines += [f"## {name} ({task}: {members[0].get('data', '')})", ""]
        lines.append("| checkpoint | " + " | ".join(metrics) + " | sha256 |")
        lines.append("|---" * (len(metrics) + 2) + "|")
        for r in members:
            flat = scalar_metrics(r)
            short = (r.get("checkpoint_sha256") or "")[:12]
            cells = [_fmt(flat.get(m), digits) for m in metrics]
            lines.append(f"| {r['label']} | " + " | ".join(cells) + f" | {short} |")
        lines.append("")
        notes = [(r["label"], note) for r in members for note in r.get("notes") or []]
        if notes:
            lines += [f"- **{label}**: {note}" for label, note in notes] + [""]
    multi = [s for s in summary if s["runs"] > 1]
    if multi:
        lines += ["## Mean ± std over seeds", ""]
        for name in dict.fromkeys(s["name"] for s in multi):
            group_rows = [s for s in multi if s["name"] == name]
            spec = _task(group_rows[0]["task"])
            metrics = _columns(spec, group_rows[0]["metrics"])
            digits = spec.digits if spec is not None else 4
            lines += [f"### {name}", ""]
            lines.append("| group | runs | " + " | ".join(metrics) + " |")
            lines.append("|---" * (len(metrics) + 2) + "|")
            for s in group_rows:
                cells = []
                for m in metrics:
                    stat = s["metrics"].get(m)
                    cells.append(
                        "–"
                        if stat is None
                        else f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"
                    )
                lines.append(f"| {s['group']} | {s['runs']} | " + " | ".join(cells) + " |")
            lines.append("")
    return "\n".join(lines)


def csv_table(rows: Sequence[dict[str, Any]]) -> str:
    """CSV text: identity columns, every scalar metric (union over rows), what the row was made
    from (checkpoint, features store, extractor, images folder), hashes."""
    flat = [scalar_metrics(r) for r in rows]
    metric_keys = list(dict.fromkeys(k for f in flat for k in f))
    columns = [*ID_KEYS, *metric_keys, *SOURCE_KEYS, *HASH_KEYS]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, extrasaction="ignore")
    writer.writeheader()
    for row, metrics in zip(rows, flat, strict=True):
        writer.writerow(
            {**{k: row.get(k) for k in (*ID_KEYS, *SOURCE_KEYS, *HASH_KEYS)}, **metrics}
        )
    return buffer.getvalue()


# ------------------------------------------------------------------------- plots


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _grouped_bars(
    path: Path,
    categories: list[str],
    series: list[tuple[str, list[float], list[float]]],
    ylabel: str,
    title: str,
    chance: list[float] | None = None,
) -> None:
    import numpy as np

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(categories) * max(1, len(series)) / 2), 4))
    width = 0.8 / max(1, len(series))
    x = np.arange(len(categories))
    for i, (label, means, stds) in enumerate(series):
        yerr = stds if any(v > 0 for v in stds) else None  # no whiskers for single runs
        offset = (i - (len(series) - 1) / 2) * width
        ax.bar(x + offset, means, width, yerr=yerr, capsize=3, label=label)
    if chance is not None:
        for xi, c in zip(x, chance, strict=True):
            ax.hlines(c, xi - 0.45, xi + 0.45, colors="black", linestyles="dashed", linewidth=1)
    ax.set_xticks(x, categories, rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_compositional(summary: Sequence[dict[str, Any]], name: str, path: Path) -> None:
    """Per-category accuracy bars, one series per group (mean ± std), chance dashed."""
    groups = [s for s in summary if s["name"] == name]
    cats = sorted(
        {m[4:] for s in groups for m in s["metrics"] if m.startswith("acc/") and "@" not in m}
    )
    series = [
        (
            s["group"],
            [s["metrics"].get(f"acc/{c}", {"mean": 0})["mean"] for c in cats]
            + [s["metrics"]["accuracy"]["mean"]],
            [s["metrics"].get(f"acc/{c}", {"std": 0})["std"] for c in cats]
            + [s["metrics"]["accuracy"]["std"]],
        )
        for s in groups
    ]
    chance = groups[0]["metrics"].get("chance", {"mean": 0.0})["mean"] if groups else 0.0
    _grouped_bars(
        path,
        [*cats, "overall"],
        series,
        "accuracy",
        f"compositional: {name} (dashed: chance)",
        chance=[chance] * (len(cats) + 1),
    )


def plot_retrieval(
    summary: Sequence[dict[str, Any]], name: str, path: Path, chance: dict[str, float] | None = None
) -> None:
    """R@K bars for both directions, one series per group (mean ± std), chance dashed."""
    groups = [s for s in summary if s["name"] == name]
    keys = [
        k
        for k in groups[0]["metrics"]
        if k[:4] in ("i2t_", "t2i_") and "_r" in k and k.split("_r")[-1].isdigit()
    ]
    series = [
        (
            s["group"],
            [s["metrics"][k]["mean"] for k in keys],
            [s["metrics"][k]["std"] for k in keys],
        )
        for s in groups
    ]
    marks = [chance.get(k, 0.0) for k in keys] if chance else None
    title = f"retrieval: {name}" + (" (dashed: chance)" if chance else "")
    _grouped_bars(path, keys, series, "recall (%)", title, chance=marks)


def read_loss_log(path: str | os.PathLike) -> dict[str, list[tuple[float, float]]]:
    """``{column: [(step, value), ...]}`` for the ``*loss*`` columns of a trainer ``log.csv``."""
    curves: dict[str, list[tuple[float, float]]] = {}
    with open(path, encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            try:
                step = float(row["step"])
            except (KeyError, TypeError, ValueError):
                continue
            for key, value in row.items():
                if key and "loss" in key and value not in (None, ""):
                    try:
                        curves.setdefault(key, []).append((step, float(value)))
                    except ValueError:
                        continue
    return curves


def plot_losses(runs: dict[str, str], path: Path) -> bool:
    """Loss curves (one panel per loss column, one line per run folder; checkpoints of the same
    run share its line). False when no log found."""
    by_dir: dict[str, list[str]] = {}
    for label, run_dir in runs.items():
        by_dir.setdefault(str(Path(run_dir).resolve()), []).append(label)
    logs = {}
    for run_dir, labels in by_dir.items():
        label = Path(run_dir).name if len(labels) > 1 else labels[0]
        log = Path(run_dir) / "log.csv"
        if log.exists():
            curves = read_loss_log(log)
            if curves:
                logs[label] = curves
    if not logs:
        return False
    plt = _pyplot()
    columns = sorted({c for curves in logs.values() for c in curves})
    fig, axes = plt.subplots(1, len(columns), figsize=(4 * len(columns), 3.2), squeeze=False)
    for ax, column in zip(axes[0], columns, strict=True):
        for label, curves in logs.items():
            if column in curves:
                steps, values = zip(*curves[column], strict=True)
                ax.plot(steps, values, label=label, linewidth=1)
        ax.set_title(column)
        ax.set_xlabel("step")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def write_report(
    rows: Sequence[dict[str, Any]],
    output_dir: str | os.PathLike,
    *,
    title: str = "",
    config_sha256: str = "",
    plots: bool = True,
) -> dict[str, Any]:
    """Write results.json, results.csv, results.md and the plots into ``output_dir``.

    Returns:
        ``{"json", "csv", "md", "plots": [...]}`` paths written.
    """
    from unimo_kit.eval.batch import group_summary

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = group_summary(rows)
    written: dict[str, Any] = {"plots": []}
    doc = {"title": title, "config_sha256": config_sha256, "rows": list(rows), "summary": summary}
    with atomic_write(out / "results.json") as handle:
        handle.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    with atomic_write(out / "results.csv") as handle:
        handle.write(csv_table(rows))
    with atomic_write(out / "results.md") as handle:
        handle.write(markdown_tables(rows, summary, title) + "\n")
    written.update(
        json=str(out / "results.json"), csv=str(out / "results.csv"), md=str(out / "results.md")
    )
    if plots and rows:
        folder = out / "plots"
        folder.mkdir(exist_ok=True)
        for name in dict.fromkeys(r["name"] for r in rows):
            spec = _task(next(r["task"] for r in rows if r["name"] == name))
            if spec is not None and spec.plot is not None:
                path = spec.plot(summary, rows, name, folder)
                if path:
                    written["plots"].append(str(path))
        runs = {r["label"]: r["run_dir"] for r in rows if r.get("run_dir")}
        if plot_losses(runs, folder / "loss.png"):
            written["plots"].append(str(folder / "loss.png"))
    return written
