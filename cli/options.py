"""Command-line options that every stage spells the same way: ``--resume/--no-resume`` (the one
flag pair that keeps or restarts an output, with a stage's old spelling kept hidden for a
release), ``--strict``, ``--no-progress``, ``--workers``, ``--seed``, ``--shard`` and
``--device``. A command names what the option means for it in ``help``; the flag, its type
and its default are written here once.

>>> @click.command()
... @resume_option("Keep the finished lines of OUT.", deprecated="--restart")
... @strict_option()
... @no_progress_option
... def stage(resume, restart, strict, no_progress):
...     resume = resume_from(resume, restart, "--restart")
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def resume_option(help: str, *, deprecated: str | None = None) -> Decorator:
    """Add ``--resume/--no-resume`` (parameter ``resume``, default ``True``).

    Args:
        help: what resuming keeps in this stage's output, and what ``--no-resume`` does.
        deprecated: an older spelling of ``--no-resume`` (e.g. ``"--restart"``), added as a
            hidden flag whose parameter the command passes to :func:`resume_from`.

    Returns:
        The decorator.
    """

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        if deprecated:
            command = click.option(
                deprecated, is_flag=True, hidden=True, help="Deprecated: --no-resume."
            )(command)
        return click.option("--resume/--no-resume", default=True, show_default=True, help=help)(
            command
        )

    return decorate


def resume_from(resume: bool, deprecated: bool, spelling: str, where: str = "") -> bool:
    """``resume`` as the command should use it: ``False`` when the old spelling was given
    (with a deprecation warning on stderr).

    Args:
        resume: ``--resume/--no-resume``.
        deprecated: the hidden old flag of :func:`resume_option` was given.
        spelling: that flag, as the warning names it (``"--restart"``).
        where: the command, when the old flag lives on elsewhere (``" for build"``).

    Returns:
        Whether the command resumes.
    """
    if deprecated:
        click.echo(f"warning: {spelling} is deprecated{where}; use --no-resume", err=True)
        return False
    return resume


def strict_option(what: str = "record") -> Decorator:
    """Add ``--strict`` (parameter ``strict``): stop at the first bad ``what`` instead of
    reporting it as ``FILE:LINE`` and going on."""
    return click.option("--strict", is_flag=True, help=f"Stop at the first bad {what}.")


def no_progress_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--no-progress`` (parameter ``no_progress``): no progress bars on stderr."""
    return click.option("--no-progress", is_flag=True, help="No progress bars.")(command)


def workers_option(help: str) -> Decorator:
    """Add ``--workers N`` (parameter ``workers``; ``None`` unless given, ``N >= 1``).

    Args:
        help: what a worker is in this stage, locally and on ``--engine ray``, and the default.
    """
    return click.option("--workers", type=click.IntRange(min=1), default=None, help=help)


def seed_option(help: str, *, default: int = 0) -> Decorator:
    """Add ``--seed N`` (parameter ``seed``, an int, default shown).

    Args:
        help: what the seed draws in this stage.
        default: the seed without the option.

    Returns:
        The decorator.
    """
    return click.option("--seed", type=int, default=default, show_default=True, help=help)


def shard_option(help: str) -> Decorator:
    """Add ``--shard I/N`` (parameter ``shard``, the text or ``None``), for
    :func:`unimo_kit.utils.parse_shard`.

    Args:
        help: which slice a shard covers in this stage (and what to do with the parts).

    Returns:
        The decorator.
    """
    return click.option("--shard", default=None, metavar="I/N", help=help)


def device_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--device`` (parameter ``device``; ``None``: cuda when visible, else cpu, as
    :func:`unimo_kit.resources.torch_device` picks)."""
    return click.option(
        "--device", default=None, help="torch device (default: cuda when visible, else cpu)."
    )(command)
