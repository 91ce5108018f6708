"""The engine's command-line options, shared by the stages that run on it (``unimo rewrite``,
``unimo features``, ``unimo index build|mine``): ``--engine local|ray`` and ``--ray-address``
(``$RAY_ADDRESS``), and :func:`engine_from_cli`, the one place they become
:class:`~unimo_kit.engine.EngineOptions`.

>>> @click.command()
... @engine_options
... def stage(engine, ray_address): ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

ENGINE_HELP = (
    "local: this machine, exactly the stage without the engine; ray: ordered work units on "
    "Ray (retried, resumable after a kill), with output byte-identical to local."
)
RAY_ADDRESS_HELP = (
    "Ray cluster for --engine ray, e.g. ray://head:10001 or auto [env: RAY_ADDRESS; "
    "default: a local Ray started on this machine]."
)


def engine_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--engine`` and ``--ray-address`` (parameters ``engine``, ``ray_address``)."""
    command = click.option(
        "--ray-address", envvar="RAY_ADDRESS", default=None, help=RAY_ADDRESS_HELP
    )(command)
    return click.option(
        "--engine",
        type=click.Choice(("local", "ray")),
        default="local",
        show_default=True,
        help=ENGINE_HELP,
    )(command)


def engine_from_cli(
    engine: str,
    ray_address: str | None,
    *,
    workers: int | None = None,
    progress: bool = True,
) -> Any:
    """The :class:`~unimo_kit.engine.EngineOptions` of the parsed options.

    Args:
        engine: ``--engine``.
        ray_address: ``--ray-address`` (``$RAY_ADDRESS``); ignored with ``--engine local``.
        workers: on Ray, units in flight at once (``None``: one per CPU of the cluster, or
            per GPU for GPU stages); the local engine does not use it.
        progress: the driver's progress bar.

    Raises:
        click.UsageError: a bad value (e.g. ``workers < 1``), or ``ray`` without Ray
            installed.
    """
    from unimo_kit.engine import EngineOptions, ray_version

    if engine == "ray" and ray_version() is None:
        raise click.UsageError(
            "--engine ray needs Ray: pip install -c constraints.txt -e '.[ray]' (docs/install.md)"
        )
    try:
        return EngineOptions(
            engine,
            ray_address=ray_address if engine == "ray" else None,
            workers=workers if engine == "ray" else None,
            progress=progress,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc


def engine_errors() -> tuple[type[Exception], ...]:
    """The errors of an engine run that the CLI turns into a one-line message (a unit that
    kept failing, named: :class:`~unimo_kit.engine.EngineError`)."""
    from unimo_kit.engine import EngineError

    return (EngineError,)
