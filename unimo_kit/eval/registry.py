"""The eval task registry: each task declares its name, options, run function, metrics and
plot once; ``unimo eval batch`` (:mod:`unimo_kit.eval.batch`) and its tables
(:mod:`unimo_kit.eval.report`) read it.

A built-in task is a module of this package with a module-level ``TASK`` (an
:class:`EvalTask`), named in :data:`BUILTIN_TASKS`. A task from elsewhere is registered::

    from unimo_kit.eval.registry import EvalTask, Option, register_task

    def run_toy(run):                       # a TaskRun: scorer, checkpoint, task, device...
        return {"task": "toy", "score": float(run.scorer.encode_texts(["a"]).sum())}

    register_task(EvalTask(name="toy", run=run_toy, metrics=("score",),
                           options={"repeats": Option.positive_int()}))

after which ``{"task": "toy", "data": "...", "repeats": 3}`` is a batch task (see
``docs/extending.md``).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: the modules (of this package) whose ``TASK`` is registered at first use, in table order
BUILTIN_TASKS = ("retrieval", "compositional", "caption", "vqa")


@dataclass(frozen=True)
class Option:
    """One option a task takes in a batch config.

    Attributes:
        check: True when a value is acceptable.
        expected: what it must be, for the error message (``"a positive integer"``).
        path: a file or folder, resolved relative to the config file like ``data``.
    """

    check: Callable[[Any], bool]
    expected: str
    path: bool = False

    @staticmethod
    def positive_int(*, optional: bool = False) -> Option:
        """A positive integer (or null with ``optional``)."""
        if optional:
            return Option(lambda v: v is None or _positive_int(v), "a positive integer or null")
        return Option(_positive_int, "a positive integer")

    @staticmethod
    def positive_number() -> Option:
        """A positive int or float."""
        return Option(
            lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0,
            "a positive number",
        )

    @staticmethod
    def integer() -> Option:
        """Any integer."""
        return Option(lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer")

    @staticmethod
    def one_of(*choices: str) -> Option:
        """One of the given strings."""
        return Option(lambda v: isinstance(v, str) and v in choices, f"one of {list(choices)}")

    @staticmethod
    def string(*, path: bool = False) -> Option:
        """A non-empty string (a path resolved like ``data`` with ``path``) or null."""
        return Option(
            lambda v: v is None or (isinstance(v, str) and bool(v)),
            "a non-empty string or null",
            path=path,
        )

    @staticmethod
    def positive_int_list() -> Option:
        """A non-empty list of positive integers."""
        return Option(
            lambda v: isinstance(v, list) and bool(v) and all(_positive_int(k) for k in v),
            "a non-empty list of positive integers",
        )


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


@dataclass
class TaskRun:
    """What a task's run function gets for one (checkpoint, task) of a batch.

    Attributes:
        scorer: the checkpoint's scorer (an :class:`~unimo_kit.encoders.Encoder`), or ``None``
            for a task with ``uses_scorer=False``.
        checkpoint: the :class:`~unimo_kit.eval.batch.CheckpointEntry` (``path`` is the unimo
            checkpoint folder, ``features`` / ``extractor`` its visual tokens).
        task: the :class:`~unimo_kit.eval.batch.TaskEntry` (``data``, ``images``, ``options``).
        device: torch device of the batch (``None``: cuda when visible, else cpu).
        batch_size: items per forward pass of the batch.
        log: a callable for progress lines and warnings.
    """

    scorer: Any
    checkpoint: Any
    task: Any
    device: str | None = None
    batch_size: int = 64
    log: Callable[[str], None] = print

    @property
    def options(self) -> dict[str, Any]:
        """The task's options as given in the config."""
        return self.task.options


def _never(options: dict[str, Any]) -> bool:
    return False


def _no_objective(options: dict[str, Any]) -> str | None:
    return None


@dataclass(frozen=True)
class EvalTask:
    """One kind of evaluation, as batch and report see it.

    Attributes:
        name: the ``"task"`` value of a config entry.
        run: ``run(TaskRun) -> dict``: the row's results (``"task"`` and the metrics; any
            ``"predictions"`` are dropped from the row).
        options: option name -> :class:`Option`, besides ``task``, ``data``, ``name`` and
            ``images``; any other key is refused before anything runs.
        metrics: the headline metrics, the columns of its results.md table (those present).
        digits: decimals in the tables.
        plot: ``plot(summary, rows, name, folder) -> path or None``: its PNG in ``plots/``.
        extra_columns: ``(rows of one task entry) -> metric keys`` appended to its table.
        extra_summary_columns: ``(metric keys of the summary) -> keys`` appended to the
            mean ± std table.
        needs_checkpoint: ``(options) -> bool``: skipped (not an error) for CLIP scorers.
        needs_objective: ``(options) -> objective or None``: skipped for a checkpoint whose
            run trained without it.
        uses_scorer: the batch builds the checkpoint's scorer for it (False: the task loads
            what it needs from ``TaskRun.checkpoint``).
        protocol: ``() -> value``: what its rows depend on besides options and data (e.g. the
            retrieval protocol); a change recomputes reused rows.
        data_sha256: ``(TaskEntry) -> str``: the hash of its data (default: the ``data``
            file or folder).
        named_data: ``data`` values that name a built-in set, not a file (kept as given).

    A row may carry ``"notes"`` (a list of str): batch prints them and results.md lists them
    under the task's table.
    """

    name: str
    run: Callable[[TaskRun], dict[str, Any]]
    options: dict[str, Option] = field(default_factory=dict)
    metrics: tuple[str, ...] = ()
    digits: int = 4
    plot: Callable[[Sequence[dict], Sequence[dict], str, Path], str | None] | None = None
    extra_columns: Callable[[Sequence[dict[str, Any]]], list[str]] | None = None
    extra_summary_columns: Callable[[Sequence[str]], list[str]] | None = None
    needs_checkpoint: Callable[[dict[str, Any]], bool] = _never
    needs_objective: Callable[[dict[str, Any]], str | None] = _no_objective
    uses_scorer: bool = True
    protocol: Callable[[], Any] | None = None
    data_sha256: Callable[[Any], str] | None = None
    named_data: tuple[str, ...] = ()


_TASKS: dict[str, EvalTask] = {}
_LOCK = threading.Lock()
_LOADED = False


def _load_builtins() -> None:
    global _LOADED
    with _LOCK:
        if _LOADED:
            return
        for module in BUILTIN_TASKS:
            task = importlib.import_module(f"unimo_kit.eval.{module}").TASK
            _TASKS.setdefault(task.name, task)
        _LOADED = True


def register_task(task: EvalTask, *, replace: bool = False) -> EvalTask:
    """Make ``task`` a batch task (``{"task": task.name, ...}`` in a config).

    Args:
        task: the declaration.
        replace: allow replacing a registered task of the same name.

    Returns:
        ``task``.

    Raises:
        ValueError: the name is taken (without ``replace``) or holds odd characters.
    """
    _load_builtins()
    if not task.name or not task.name.replace("-", "_").isidentifier():
        raise ValueError(f"invalid task name {task.name!r}")
    reserved = {"task", "data", "name", "images"} & set(task.options)
    if reserved:
        raise ValueError(f"task {task.name!r}: options {sorted(reserved)} are reserved")
    with _LOCK:
        if task.name in _TASKS and not replace:
            raise ValueError(f"an eval task named {task.name!r} is registered already")
        _TASKS[task.name] = task
    return task


def unregister_task(name: str) -> None:
    """Remove a registered task (tests, notebooks)."""
    _load_builtins()
    with _LOCK:
        _TASKS.pop(name, None)


def get_task(name: str) -> EvalTask:
    """The task registered as ``name``.

    Raises:
        KeyError: no such task.
    """
    _load_builtins()
    return _TASKS[name]


def task_names() -> list[str]:
    """The registered task names, built-ins first."""
    _load_builtins()
    return list(_TASKS)
