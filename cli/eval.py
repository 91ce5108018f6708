"""``unimo eval``: parser, retrieval, compositional, captioning, VQA and batch evaluation.

The task subcommands are read from the eval task registry: a built-in task ``NAME`` (one of
:data:`unimo_kit.eval.registry.BUILTIN_TASKS`) whose CLI module ``cli/eval_NAME.py`` exists is
``unimo eval NAME``, the click command ``NAME`` of that module. A new task with a CLI is then
its module, its registry line and its CLI file, with no edit here. ``parse`` (a parser, not a
checkpoint) and ``batch`` (every task) are not tasks and are named below.

The table is built when the group lists or resolves a subcommand, not when this module is
imported, so ``unimo --help`` does not load the registry; ``unimo eval --help`` loads it
(``unimo_kit.eval``: numpy, no model library) and imports no task module.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterable

import click

from unimo_kit.cli.lazy import LazyGroup

#: the subcommands that are not eval tasks: name -> "module:attribute" under unimo_kit.cli
OTHER_SUBCOMMANDS = {"parse": "eval_parse:parse", "batch": "eval_batch:batch"}


def task_subcommands(tasks: Iterable[str]) -> dict[str, str]:
    """The CLI of each task that has one, found without importing it.

    Args:
        tasks: task names (``"retrieval"``, ``"my-task"``).

    Returns:
        ``{name: "eval_IDENT:IDENT"}`` (``IDENT``: the name with ``-`` as ``_``) for each task
        whose module ``unimo_kit.cli.eval_IDENT`` exists, in the order of ``tasks``.
    """
    found = {}
    for name in tasks:
        ident = name.replace("-", "_")
        if importlib.util.find_spec(f"{__package__}.eval_{ident}") is not None:
            found[name] = f"eval_{ident}:{ident}"
    return found


def eval_subcommands() -> dict[str, str]:
    """``unimo eval``'s subcommands: ``parse``, the built-in tasks with a CLI, ``batch``.

    Returns:
        name -> ``"module:attribute"`` under ``unimo_kit.cli``.
    """
    registry = importlib.import_module("unimo_kit.eval.registry")
    tasks = task_subcommands(registry.BUILTIN_TASKS)
    return {"parse": OTHER_SUBCOMMANDS["parse"], **tasks, "batch": OTHER_SUBCOMMANDS["batch"]}


class EvalGroup(LazyGroup):
    """A :class:`LazyGroup` whose subcommand table is :func:`eval_subcommands`, read each time
    the group lists or resolves a subcommand (a few file-system lookups)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        self.lazy_subcommands = eval_subcommands()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        self.lazy_subcommands = eval_subcommands()
        return super().get_command(ctx, name)


@click.group("eval", cls=EvalGroup)
def eval_group() -> None:
    """Evaluate parsers, checkpoints and baselines; write results.json, tables and plots."""
