"""Command-line options that every stage spells the same way: ``-o/--output`` (the one file or
folder a command writes), ``--resume/--no-resume`` (the one flag pair that keeps or restarts an
output), ``--strict``, ``--no-progress``, ``--workers``, ``--seed``, ``--shard``,
``--device`` and ``--set KEY=VALUE``. A stage's old spelling of ``--output`` or
``--no-resume`` is kept hidden for a release and warns. A command names what the option
means for it in ``help``; the flag, its type and its default are written here once, as a
:class:`SharedOption`.

>>> @click.command()
... @output_option("rewrites.jsonl to write.", required=True)
... @resume_option("Keep the finished lines of OUTPUT.", deprecated="--restart")
... @strict_option()
... @no_progress_option
... def stage(output, resume, restart, strict, no_progress):
...     resume = resume_from(resume, restart, "--restart")
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
from click.core import ParameterSource

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


class SharedOption(click.Option):
    """An option made by a decorator of this module. The walk over every ``unimo`` command in
    ``tests/utils/test_cli_options.py`` tells it from the same flag spelled by hand."""


def deprecation_warning(spelling: str, new: str, where: str = "") -> None:
    """Say on stderr, once, that ``spelling`` is an old name of ``new``.

    Args:
        spelling: the old flag as given (``"--restart"``, ``"--out"``).
        new: what to type instead (``"--no-resume"``, ``"-o/--output"``).
        where: the command, when the old flag lives on elsewhere (``" for build"``).
    """
    click.echo(f"warning: {spelling} is deprecated{where}; use {new}", err=True)


def output_option(
    help: str,
    *,
    folder: bool = False,
    required: bool = False,
    default: str | None = None,
    deprecated: str | None = None,
) -> Decorator:
    """Add ``-o/--output PATH`` (parameter ``output``, a ``str``): the file or folder the
    command writes. Every command spells its output so; other files it may also write keep
    names of their own (``--save-vocab``).

    Args:
        help: what is written there.
        folder: the output is a folder (refused when it is a file); else a file (refused
            when it is a folder).
        required: the command has no output without it.
        default: the path without the option (shown in ``--help``).
        deprecated: the command's older spelling (``"--out"``), kept as a hidden option
            that stands for ``--output``, with a warning on stderr; given together with
            ``--output``, the command refuses both.

    Returns:
        The decorator.
    """
    path = click.Path(file_okay=not folder, dir_okay=folder)
    # no default unless there is one: click 8.5 takes an explicit None as a given value
    defaults = {} if default is None else {"default": default, "show_default": True}
    alias_key = f"{__name__}.output:{deprecated}"

    def remember_alias(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
        # eager, so that it runs before --output: the old spelling's value becomes the
        # default --output reads (a required --output is then given)
        if value is None:
            return
        deprecation_warning(str(deprecated), "-o/--output")
        ctx.meta[alias_key] = True
        ctx.default_map = {**(ctx.default_map or {}), "output": value}

    def refuse_both(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
        given = ctx.get_parameter_source("output") is ParameterSource.COMMANDLINE
        if given and ctx.meta.get(alias_key):
            raise click.BadOptionUsage(
                "output", f"{deprecated} is the old spelling of --output: give one of them", ctx
            )
        return value

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        command = click.option(
            "-o",
            "--output",
            cls=SharedOption,
            type=path,
            required=required,
            **defaults,
            metavar="DIR" if folder else "FILE",
            callback=refuse_both if deprecated else None,
            help=help,
        )(command)
        if deprecated:
            command = click.option(
                deprecated,
                f"deprecated_{deprecated.lstrip('-').replace('-', '_')}",
                cls=SharedOption,
                hidden=True,
                is_eager=True,
                expose_value=False,
                callback=remember_alias,
                help="Deprecated: -o/--output.",
            )(command)
        return command

    return decorate


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
                deprecated,
                cls=SharedOption,
                is_flag=True,
                hidden=True,
                help="Deprecated: --no-resume.",
            )(command)
        return click.option(
            "--resume/--no-resume", cls=SharedOption, default=True, show_default=True, help=help
        )(command)

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
        deprecation_warning(spelling, "--no-resume", where)
        return False
    return resume


def strict_option(what: str = "record") -> Decorator:
    """Add ``--strict`` (parameter ``strict``): stop at the first bad ``what`` instead of
    reporting it as ``FILE:LINE`` and going on."""
    return click.option(
        "--strict", cls=SharedOption, is_flag=True, help=f"Stop at the first bad {what}."
    )


def no_progress_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--no-progress`` (parameter ``no_progress``): no progress bars on stderr."""
    return click.option("--no-progress", cls=SharedOption, is_flag=True, help="No progress bars.")(
        command
    )


def workers_option(help: str) -> Decorator:
    """Add ``--workers N`` (parameter ``workers``; ``None`` unless given, ``N >= 1``).

    Args:
        help: what a worker is in this stage, locally and on ``--engine ray``, and the default.
    """
    return click.option(
        "--workers", cls=SharedOption, type=click.IntRange(min=1), default=None, help=help
    )


def seed_option(help: str, *, default: int = 0) -> Decorator:
    """Add ``--seed N`` (parameter ``seed``, an int, default shown).

    Args:
        help: what the seed draws in this stage.
        default: the seed without the option.

    Returns:
        The decorator.
    """
    return click.option(
        "--seed", cls=SharedOption, type=int, default=default, show_default=True, help=help
    )


def shard_option(help: str) -> Decorator:
    """Add ``--shard I/N`` (parameter ``shard``, the text or ``None``), for
    :func:`unimo_kit.utils.parse_shard`.

    Args:
        help: which slice a shard covers in this stage (and what to do with the parts).

    Returns:
        The decorator.
    """
    return click.option("--shard", cls=SharedOption, default=None, metavar="I/N", help=help)


def device_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--device`` (parameter ``device``; ``None``: cuda when visible, else cpu, as
    :func:`unimo_kit.resources.torch_device` picks)."""
    return click.option(
        "--device",
        cls=SharedOption,
        default=None,
        help="torch device (default: cuda when visible, else cpu).",
    )(command)


def _key_value_items(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> list[str]:
    """Each ``--set`` item as given, refused unless it is ``KEY=VALUE`` with a key."""
    for value in values:
        key, sep, _ = value.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {value!r}", ctx, param)
    return list(values)


def set_option(help: str) -> Decorator:
    """Add ``--set KEY=VALUE`` (parameter ``overrides``: the items in order, repeatable; one
    without ``=`` or with an empty key is refused). The command parses each value
    (:func:`unimo_kit.train.config.parse_override`: JSON when it parses).

    Args:
        help: which config the items override, with an example.

    Returns:
        The decorator.
    """
    return click.option(
        "--set",
        "overrides",
        cls=SharedOption,
        multiple=True,
        metavar="KEY=VALUE",
        callback=_key_value_items,
        help=help,
    )
