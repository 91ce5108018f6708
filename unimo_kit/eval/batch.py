"""Batch evaluation: many checkpoints x tasks from one JSON config, one reproducible table.

Config (JSON; relative paths are relative to the config file)::

    {
      "name": "ablation",                       # optional, shown in the tables
      "device": null, "batch_size": 64,         # optional, for every scorer
      "checkpoints": [
        {"label": "full-s0", "path": "runs/full-s0/final", "group": "full", "seed": 0},
        {"label": "full-s1", "path": "runs/full-s1/final", "group": "full", "seed": 1},
        {"label": "clip", "open_clip": "ViT-B-32:/models/clip.bin"},
        {"label": "no-neg-s0", "path": "runs/no-neg-s0/final", "group": "no-neg", "seed": 0,
         "features": "features/test", "extractor": "effnet", "run_dir": "runs/no-neg-s0"}
      ],
      "tasks": [
        {"task": "retrieval", "data": "synth/pairs.test.jsonl", "ks": [1, 5, 10]},
        {"task": "compositional", "data": "synth/compositional.test.jsonl"},
        {"task": "compositional", "name": "compositional-gen",
         "data": "synth/compositional.test.jsonl", "score": "generative"},
        {"task": "compositional", "name": "sugarcrepe", "data": "sugarcrepe/",
         "images": "coco/val2017"},
        {"task": "caption", "data": "synth/pairs.test.jsonl", "beams": 3, "max_images": 200},
        {"task": "vqa", "data": "easy-vqa", "epochs": 4, "cache_dir": ".cache/vqa"}
      ]
    }

Each checkpoint entry names one model: ``path`` (a unimo checkpoint), ``open_clip`` or
``st_clip``; ``group`` (default: the label) and ``seed`` group runs of the same arm, and the
summary gives mean ± std over a group's seeds. ``run_dir`` (default: the checkpoint's parent
when it holds ``log.csv``) is where the loss curve is read. A task is a registered
:class:`~unimo_kit.eval.registry.EvalTask` (its options, run function, metrics and plot); the
registry says which tasks need a unimo checkpoint or an objective. Caption and VQA tasks (VQA
fine-tunes an answer classifier from the checkpoint: easy-VQA, or ``data`` = the test JSONL
with ``train`` = the training JSONL) need a unimo checkpoint and are skipped for CLIP
scorers, as are compositional tasks with ``"score": "generative"``
(``log p(caption | image)`` of the checkpoint's seq2seq head), ``"score": "token"`` (token
alignment) or ``"score": "matching"`` (the image-text matching head); a checkpoint trained
without that objective skips them too.

Every row carries ``checkpoint_sha256`` (of the weights file), ``config_sha256`` (of the
canonical config JSON) and ``data_sha256`` (of the task's data files), so a table can be traced
to exactly what produced it; rows also record the checkpoint's ``features`` store (path and
``features_sha256``), its ``extractor`` and the task's ``images`` folder. Rows are appended to
``OUTDIR/rows.jsonl`` as they finish; a rerun with the same config resumes and recomputes
nothing already there (a row is reused when the checkpoint, the data, the task's options, the
features store's contents, the extractor and the images folder are unchanged).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unimo_kit.eval.errors import EvalError
from unimo_kit.eval.registry import EvalTask, Option, TaskRun, get_task, task_names
from unimo_kit.eval.scorers import run_trained_objective

#: the fields of a checkpoint entry and of the config itself (task options: the registry)
_FIELDS: dict[str, Option] = {
    "label": Option(lambda v: isinstance(v, str) and bool(v), "a non-empty string"),
    "seed": Option(
        lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool)),
        "an integer or null",
    ),
    "batch_size": Option.positive_int(),
    "device": Option.string(),
    **dict.fromkeys(
        ("path", "open_clip", "st_clip", "group", "features", "extractor", "run_dir"),
        Option.string(),
    ),
    **dict.fromkeys(("name", "images"), Option.string()),  # of a task
}


def _check_fields(raw: dict[str, Any], checks: dict[str, Option], where: str) -> None:
    """Raise a one-line :class:`EvalError` for the first key of ``checks`` in ``raw`` of a
    wrong type or value."""
    for key, option in checks.items():
        if key in raw and not option.check(raw[key]):
            raise EvalError(f"{where}: '{key}' must be {option.expected}, got {raw[key]!r}")


@dataclass
class CheckpointEntry:
    """One model to evaluate."""

    label: str  # unique row label
    path: str | None = None  # unimo checkpoint folder
    open_clip: str | None = None  # or an open_clip spec
    st_clip: str | None = None  # or a sentence-transformers CLIP name / folder
    group: str | None = None  # arm name for mean ± std over seeds (default: label)
    seed: int | None = None  # the training seed of this run
    features: str | None = None  # features store of the test images (unimo only)
    extractor: str | None = None  # on-the-fly extractor (default: the run's, else effnet)
    run_dir: str | None = None  # run folder holding log.csv (loss curves)


@dataclass
class TaskEntry:
    """One evaluation to run on every checkpoint."""

    task: str  # a registered task: retrieval, compositional, caption, vqa, ...
    data: str  # its test file (or SugarCrepe folder)
    name: str | None = None  # column name (default: the task, made unique)
    images: str | None = None  # SugarCrepe image folder / COCO images root
    options: dict[str, Any] = field(default_factory=dict)  # ks, beams, max_images, ...

    @property
    def spec(self) -> EvalTask:
        """Its registry entry (:func:`unimo_kit.eval.registry.get_task`)."""
        return get_task(self.task)


@dataclass
class BatchConfig:
    """A parsed batch config (see the module docstring)."""

    checkpoints: list[CheckpointEntry]
    tasks: list[TaskEntry]
    name: str = "eval"
    device: str | None = None
    batch_size: int = 64
    sha256: str = ""  # of the canonical config JSON
    source: str = "<memory>"  # the config file


def _resolve(path: str | None, base: Path) -> str | None:
    if path is None or os.path.isabs(path) or "://" in path:
        return path
    # open_clip specs look like MODEL:PATH; resolve only the path part
    return str((base / path).resolve())


def _resolve_spec(spec: str | None, base: Path) -> str | None:
    if not spec or ":" not in spec:
        return spec
    name, _, rest = spec.partition(":")
    candidate = base / rest
    return f"{name}:{candidate.resolve()}" if candidate.exists() else spec


def parse_config(config: dict[str, Any] | str | os.PathLike) -> BatchConfig:
    """Check and parse a batch config (a dict, or a JSON file path).

    The whole config is checked before anything runs: a task option its task does not take
    (its :class:`~unimo_kit.eval.registry.EvalTask` ``options``), an unknown checkpoint field
    and a value of the wrong type or range are errors.

    Raises:
        EvalError: one line naming the file, the entry (``tasks[i]`` / ``checkpoints[i]``) and
            the field at fault.
    """
    source = "<memory>"
    base = Path.cwd()
    if not isinstance(config, dict):
        source = str(config)
        base = Path(config).resolve().parent
        try:
            config = json.loads(Path(config).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise EvalError(f"batch config {source} does not exist") from None
        except json.JSONDecodeError as exc:
            raise EvalError(f"{source}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    if not isinstance(config, dict):
        raise EvalError(f"{source}: the config must be a JSON object")
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"))
    _check_fields(config, {k: _FIELDS[k] for k in ("batch_size", "device")}, source)
    raw_ckpts, raw_tasks = config.get("checkpoints"), config.get("tasks")
    if not isinstance(raw_ckpts, list) or not raw_ckpts:
        raise EvalError(f"{source}: 'checkpoints' must be a non-empty list")
    if not isinstance(raw_tasks, list) or not raw_tasks:
        raise EvalError(f"{source}: 'tasks' must be a non-empty list")
    known = set(CheckpointEntry.__dataclass_fields__)
    checkpoints = []
    for i, raw in enumerate(raw_ckpts):
        where = f"{source}: checkpoints[{i}]"
        if not isinstance(raw, dict):
            raise EvalError(f"{where}: expected an object")
        unknown = sorted(set(raw) - known)
        if unknown:
            raise EvalError(f"{where}: unknown field(s) {unknown}; known: {sorted(known)}")
        _check_fields(raw, {k: _FIELDS[k] for k in sorted(known)}, where)
        entry = CheckpointEntry(**raw) if "label" in raw else None
        if entry is None:
            raise EvalError(f"{where}: missing 'label'")
        if sum(bool(x) for x in (entry.path, entry.open_clip, entry.st_clip)) != 1:
            raise EvalError(f"{where}: give exactly one of 'path', 'open_clip', 'st_clip'")
        entry.path = _resolve(entry.path, base)
        entry.features = _resolve(entry.features, base)
        entry.run_dir = _resolve(entry.run_dir, base)
        entry.open_clip = _resolve_spec(entry.open_clip, base)
        entry.group = entry.group or entry.label
        checkpoints.append(entry)
    labels = [c.label for c in checkpoints]
    duplicates = sorted({x for x in labels if labels.count(x) > 1})
    if duplicates:
        raise EvalError(f"{source}: duplicate checkpoint labels {duplicates}")
    tasks = []
    names: set[str] = set()
    for i, raw in enumerate(raw_tasks):
        where = f"{source}: tasks[{i}]"
        known_tasks = task_names()
        if not isinstance(raw, dict) or raw.get("task") not in known_tasks:
            raise EvalError(f"{where}: 'task' must be one of {known_tasks}")
        if not isinstance(raw.get("data"), str):
            raise EvalError(f"{where}: 'data' (the test file) is required")
        spec = get_task(raw["task"])
        options = {k: v for k, v in raw.items() if k not in ("task", "data", "name", "images")}
        unknown = sorted(set(options) - set(spec.options))
        if unknown:
            raise EvalError(
                f"{where}: unknown option(s) {unknown} for a {raw['task']} task; "
                f"known: {['task', 'data', 'name', 'images', *spec.options]}"
            )
        _check_fields(raw, {"name": _FIELDS["name"], "images": _FIELDS["images"]}, where)
        _check_fields(raw, spec.options, where)
        for key, option in spec.options.items():
            if option.path and isinstance(options.get(key), str):
                options[key] = _resolve(options[key], base)
        if options.get("score") == "contrastive":
            del options["score"]  # the default: the same rows as leaving it out
        name = raw.get("name") or raw["task"]
        suffix = 2
        while name in names:
            name = f"{raw.get('name') or raw['task']}-{suffix}"
            suffix += 1
        names.add(name)
        tasks.append(
            TaskEntry(
                task=raw["task"],
                data=raw["data"] if raw["data"] in spec.named_data else _resolve(raw["data"], base),
                name=name,
                images=_resolve(raw.get("images"), base),
                options=options,
            )
        )
    return BatchConfig(
        checkpoints=checkpoints,
        tasks=tasks,
        name=str(config.get("name", "eval")),
        device=config.get("device"),
        batch_size=int(config.get("batch_size", 64)),
        sha256=hashlib.sha256(canonical.encode()).hexdigest(),
        source=source,
    )


# ------------------------------------------------------------------------- hashes


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file (streamed; cached by path, size and mtime), or of a folder's files
    (names and contents of the files directly inside, sorted)."""
    from unimo_kit.utils import file_sha256 as sha256_of_file

    path = Path(path)
    if path.is_dir():
        digest = hashlib.sha256()
        for child in sorted(p for p in path.iterdir() if p.is_file()):
            digest.update(child.name.encode() + b"\0" + sha256_of_file(child).encode())
        return digest.hexdigest()
    return sha256_of_file(path)


def features_sha256(path: str | None) -> str | None:
    """sha256 of a features store: its ``meta.json`` and the names and contents of its complete
    chunks (what :class:`~unimo_kit.features.FeatureStore` reads); ``None`` without a store."""
    if not path or not (Path(path) / "meta.json").is_file():
        return None
    from unimo_kit.features.store import list_chunks

    digest = hashlib.sha256(file_sha256(Path(path) / "meta.json").encode())
    for chunk in list_chunks(path):
        digest.update(chunk.name.encode() + b"\0" + file_sha256(chunk).encode())
    return digest.hexdigest()


def checkpoint_sha256(entry: CheckpointEntry) -> str | None:
    """sha256 of the weights file of a unimo checkpoint / a local open_clip file."""
    if entry.path:
        from unimo_kit.eval.errors import checkpoint_files

        return file_sha256(checkpoint_files(entry.path)[0])
    local = entry.open_clip.partition(":")[2] if entry.open_clip else entry.st_clip
    if local and os.path.exists(local):
        return file_sha256(local)
    return None


# ------------------------------------------------------------------------- running


def _scorer(entry: CheckpointEntry, config: BatchConfig) -> Any:
    from unimo_kit.eval.scorers import build_scorer

    scorer = build_scorer(
        checkpoint=entry.path,
        open_clip=entry.open_clip,
        st_clip=entry.st_clip,
        features=entry.features,
        extractor=entry.extractor,
        device=config.device,
        batch_size=config.batch_size,
    )
    scorer.name = entry.label
    return scorer


def run_task(scorer: Any, entry: CheckpointEntry, task: TaskEntry, config: BatchConfig) -> dict:
    """Run one task for one scorer (its registered ``run``); returns the task's results dict
    (without ``predictions``)."""
    run = TaskRun(
        scorer=scorer,
        checkpoint=entry,
        task=task,
        device=config.device,
        batch_size=config.batch_size,
    )
    result = dict(task.spec.run(run))
    result.pop("predictions", None)
    return {"task": task.task, **result}


def _options_hash(task: TaskEntry) -> str:
    """Short hash of a task's options (and of what else its rows depend on: ``protocol``)."""
    options = dict(task.options)
    if task.spec.protocol is not None:
        options["protocol"] = task.spec.protocol()
    return _short_hash(options)


def _data_sha256(task: TaskEntry) -> str:
    hasher = task.spec.data_sha256
    return hasher(task) if hasher is not None else file_sha256(task.data)


def skip_reason(entry: CheckpointEntry, task: TaskEntry) -> str | None:
    """Why ``task`` does not run on ``entry`` (a CLIP scorer for a task that needs a unimo
    checkpoint; a checkpoint trained without the objective the task scores), or ``None``."""
    spec = task.spec
    needs = spec.needs_objective(task.options)
    if (spec.needs_checkpoint(task.options) or needs) and not entry.path:
        return "it needs a unimo checkpoint"
    if needs and run_trained_objective(entry.path, needs) is False:
        return f"trained without {needs}"
    return None


def _short_hash(value: Any) -> str:
    """First 12 hex digits of the sha256 of ``value`` as canonical JSON."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:12]


def find_run_dir(entry: CheckpointEntry) -> str | None:
    """The run folder with ``log.csv`` of a checkpoint: ``run_dir`` or a parent of ``path``."""
    if entry.run_dir:
        return entry.run_dir
    if not entry.path:
        return None
    here = Path(entry.path)
    for folder in (here, *list(here.parents)[:3]):
        if (folder / "log.csv").exists():
            return str(folder)
    return None


def run_batch(
    config: dict[str, Any] | str | os.PathLike,
    output_dir: str | os.PathLike | None = None,
    *,
    resume: bool = True,
    plots: bool = True,
    log: Any = None,
) -> list[dict[str, Any]]:
    """Evaluate every checkpoint on every task.

    Args:
        config: a config dict or JSON file (module docstring).
        output_dir: where ``rows.jsonl``, ``results.{json,csv,md}`` and ``plots/`` go; ``None``
            computes the rows only.
        resume: reuse rows already in ``output_dir/rows.jsonl`` (same label, task, checkpoint
            and data hashes, task options, features store, extractor and images folder).
        plots: write PNG plots (matplotlib, Agg backend).
        log: a callable for progress lines (default: print to stderr).

    Returns:
        One row per (checkpoint, task): ``label``, ``group``, ``seed``, ``task``, ``name``,
        the task's metrics, and the hashes.
    """
    from unimo_kit.utils import ResumableJsonlWriter

    say = log or (lambda msg: print(msg, file=sys.stderr))
    cfg = parse_config(config)
    writer = None
    done: dict[str, dict[str, Any]] = {}
    if output_dir is not None:
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        writer = ResumableJsonlWriter(out / "rows.jsonl", id_key="row_id", resume=resume)
        if resume and writer.done:
            with open(out / "rows.jsonl", encoding="utf-8") as handle:
                for line in handle:
                    row = json.loads(line)
                    done[row["row_id"]] = row
    rows: list[dict[str, Any]] = []
    data_hash = {t.name: _data_sha256(t) for t in cfg.tasks}
    # a row is reused only for the same checkpoint, data and task options (ks, score, beams...)
    options_hash = {t.name: _options_hash(t) for t in cfg.tasks}
    try:
        for entry in cfg.checkpoints:
            ckpt_hash = checkpoint_sha256(entry)
            # the visual tokens count too: another store or extractor gives other numbers
            visual = {
                "features": entry.features,
                "features_sha256": features_sha256(entry.features),
                "extractor": entry.extractor,
            }
            scorer = None
            for task in cfg.tasks:
                row_id = "|".join(
                    [
                        entry.label,
                        task.name,
                        str(ckpt_hash),
                        data_hash[task.name],
                        options_hash[task.name],
                        _short_hash([visual["features_sha256"], entry.extractor, task.images]),
                    ]
                )
                if row_id in done:
                    rows.append(done[row_id])
                    say(f"[{entry.label}] {task.name}: reused from rows.jsonl")
                    continue
                why = skip_reason(entry, task)
                if why:
                    say(f"[{entry.label}] {task.name}: skipped ({why})")
                    continue
                if scorer is None and task.spec.uses_scorer:
                    scorer = _scorer(entry, cfg)
                say(f"[{entry.label}] {task.name} on {task.data}")
                result = run_task(scorer if task.spec.uses_scorer else None, entry, task, cfg)
                for note in result.get("notes") or []:
                    say(f"[{entry.label}] {task.name}: {note}")
                row = {
                    "row_id": row_id,
                    "label": entry.label,
                    "group": entry.group,
                    "seed": entry.seed,
                    "name": task.name,
                    **result,
                    "checkpoint": entry.path or entry.open_clip or entry.st_clip,
                    **visual,
                    "images": task.images,
                    "run_dir": find_run_dir(entry),
                    "checkpoint_sha256": ckpt_hash,
                    "config_sha256": cfg.sha256,
                    "data_sha256": data_hash[task.name],
                }
                rows.append(row)
                if writer is not None:
                    writer.write(row)
    finally:
        if writer is not None:
            writer.close()
    if output_dir is not None:
        from unimo_kit.eval.report import write_report

        write_report(rows, output_dir, title=cfg.name, config_sha256=cfg.sha256, plots=plots)
    return rows


def group_summary(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean ± std (sample std, ddof=1; 0 for one run) of every scalar metric per (group, task).

    Returns:
        ``[{"group", "name", "task", "runs", "seeds", "metrics": {m: {"mean", "std"}}}]``.
    """
    import numpy as np

    from unimo_kit.eval.report import scalar_metrics

    buckets: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        buckets.setdefault((row["group"], row["name"]), []).append(row)
    out = []
    for (group, name), members in buckets.items():
        metrics: dict[str, dict[str, float]] = {}
        flat = [scalar_metrics(r) for r in members]
        for key in flat[0]:
            values = np.asarray([f[key] for f in flat if key in f], dtype=np.float64)
            std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            metrics[key] = {"mean": float(values.mean()), "std": std}
        out.append(
            {
                "group": group,
                "name": name,
                "task": members[0]["task"],
                "runs": len(members),
                "seeds": [r.get("seed") for r in members],
                "metrics": metrics,
            }
        )
    return out
