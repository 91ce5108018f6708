"""Ordered work units mapped over a per-unit function, in this process or on Ray.

A stage hands :func:`map_units` its input cut into :class:`Unit` s (each names the file that
marks it finished) and a function that does one unit and writes that file atomically. Units
whose file exists are skipped, so a killed driver rerun with the same arguments resumes; the
stage joins the unit files in input order afterwards, so the output does not depend on which
worker ran which unit. The stage's own per-record code runs unchanged inside the function.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENGINES = ("local", "ray")


class EngineError(RuntimeError):
    """A unit failed on every attempt (its name and the last error are in the message), or a
    unit returned without writing the file that marks it finished."""


@dataclass(frozen=True)
class Unit:
    """One ordered piece of a stage's input."""

    index: int  # position in the output order
    payload: Any  # what the unit function gets (picklable)
    done: Path  # the file whose presence marks the unit finished
    size: int = 1  # records, for the progress bar
    name: str = ""  # how errors name it, e.g. "rows 0-1999 of pairs.jsonl"

    def label(self) -> str:
        return self.name or f"unit {self.index}"


@dataclass(frozen=True)
class EngineOptions:
    """Where and how units run (the CLI builds one from ``--engine`` / ``--ray-address``)."""

    engine: str = "local"  # "local": one after another in this process; "ray": Ray tasks/actors
    ray_address: str | None = None  # Ray cluster; None: $RAY_ADDRESS, else a local Ray started here
    workers: int | None = None  # units in flight at once (None: the cluster's GPUs or CPUs)
    num_cpus: float = 0.5  # CPUs Ray reserves per unit; fractional so that 2-core nodes never
    # starve (ray-project/ray#44687); ``workers`` bounds how many run at once
    gpus: str = "auto"  # "auto": num_gpus=1 per GPU unit/actor when the cluster has GPUs; "no"
    max_retries: int = 3  # Ray retries of a unit (crashed worker or exception) before failing
    local_cpus: int | None = None  # CPUs of the local Ray started here (None: all of them)
    progress: bool = True  # a bar with the total and an ETA on stderr

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.max_retries < 0 or self.num_cpus <= 0:
            raise ValueError("max_retries must be >= 0 and num_cpus > 0")
        if self.gpus not in ("auto", "no"):
            raise ValueError(f"gpus must be 'auto' or 'no', got {self.gpus!r}")


def as_options(engine: str | EngineOptions | None) -> EngineOptions:
    """``"local"`` / ``"ray"`` / ``None`` (local) / an :class:`EngineOptions` as options."""
    if isinstance(engine, EngineOptions):
        return engine
    return EngineOptions(engine=engine or "local")


@contextlib.contextmanager
def session(options: EngineOptions) -> Iterator[None]:
    """One engine session for a whole stage: every :func:`map_units` inside it reuses it.

    On Ray this connects once (a local Ray started here is shut down when the block ends:
    starting one costs seconds, and a stage maps units several times) and keeps the actor
    pools that :func:`map_units` calls name with ``pool=`` alive until the end, so a
    worker's state (a parser, a model) is built once per stage. Sessions nest: an inner one
    joins the outer. Locally it does nothing.

    Args:
        options: the stage's engine options.

    Example:
        >>> with session(options):
        ...     map_units(count, slices, options, setup=load_parser, pool="parser")
        ...     map_units(rewrite, slices, options, setup=load_parser, pool="parser")
    """
    if options.engine != "ray":
        yield
        return
    from unimo_kit.engine.ray_backend import ray_session

    with ray_session(options):
        yield


def map_units(
    fn: Callable[..., Any],
    units: Sequence[Unit],
    options: EngineOptions,
    *,
    setup: Callable[[], Any] | None = None,
    gpu: bool = False,
    desc: str = "units",
    pool: str | None = None,
) -> list[Any]:
    """Run ``fn`` on every unfinished unit and return the results in unit order.

    Args:
        fn: ``fn(payload)``, or ``fn(state, payload)`` with ``setup``; it must write
            ``unit.done`` (atomically) before returning.
        units: the work, in output order.
        options: engine and placement.
        setup: built once per worker (a model, a parser): on Ray each worker is an actor
            holding ``setup()``; locally it is called once.
        gpu: the units want a GPU (``num_gpus=1`` per actor when the cluster has GPUs).
        desc: the progress bar's label.
        pool: with ``setup`` inside a :func:`session` on Ray, the name of an actor pool that
            outlives this call: a later call naming the same pool (with the same ``setup``)
            reuses its actors and their state. ``None``: the actors end with the call.

    Returns:
        One result per unit; ``None`` for the units found finished.

    Raises:
        EngineError: on Ray, a unit failed ``max_retries + 1`` times (named, with its last
            error), or a unit did not write its file. Locally the unit's own exception
            propagates, with a note naming the unit.
    """
    results: list[Any] = [None] * len(units)
    todo = [unit for unit in units if not unit.done.exists()]
    bar = _bar(
        options,
        sum(u.size for u in units),
        sum(u.size for u in units) - sum(u.size for u in todo),
        desc,
    )
    try:
        if options.engine == "local":
            state = setup() if setup is not None and todo else None
            for unit in todo:
                try:
                    result = fn(state, unit.payload) if setup is not None else fn(unit.payload)
                except Exception as exc:
                    exc.add_note(f"in {unit.label()}")
                    raise
                results[unit.index] = check_done(unit, result)
                bar.update(unit.size)
        elif todo:
            from unimo_kit.engine.ray_backend import run_on_ray

            ran = run_on_ray(fn, todo, options, setup=setup, gpu=gpu, pool=pool)
            for unit, result in ran:
                results[unit.index] = result
                bar.update(unit.size)
    finally:
        bar.close()
    return results


def check_done(unit: Unit, result: Any) -> Any:
    """``result``, once ``unit.done`` exists (else :class:`EngineError`)."""
    if not unit.done.exists():
        raise EngineError(f"{unit.label()} finished without writing {unit.done}")
    return result


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _bar(options: EngineOptions, total: int, initial: int, desc: str) -> Any:
    if not options.progress:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="rec", file=sys.stderr)


def claim_work(
    work: Path, settings: dict[str, Any], layout: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Create a stage's work folder for ``settings``, or keep the one a killed run left.

    The one rule of every stage on the engine: the folder's ``engine.json`` records the
    settings its units were made with (options and input fingerprint). A rerun with equal
    settings keeps the finished units and the first run's ``layout`` (how the input was
    cut: the unit files are named by it); a rerun with other settings is refused, as the
    local stages refuse to resume an output made with other options.

    Args:
        work: the work folder (created with its parents).
        settings: what the units depend on (JSON values).
        layout: how the input is cut this time, used when the folder is new.

    Returns:
        The layout in force: the first run's where the folder existed, else ``layout``.

    Raises:
        ValueError: the folder holds units of other settings (the differing keys named;
            rerun with the same ones, or with ``--no-resume`` to start afresh).
    """
    from unimo_kit.utils import atomic_write

    path = work / "engine.json"
    settings = json.loads(json.dumps(settings))  # as it reads back (tuples are lists)
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except ValueError as exc:
            raise ValueError(f"{path}:1: not JSON ({exc}); rerun with --no-resume") from exc
        kept = old.get("settings") if isinstance(old, dict) else None
        kept = kept if isinstance(kept, dict) else {}
        diff = sorted(k for k in settings.keys() | kept.keys() if kept.get(k) != settings.get(k))
        if diff:
            raise ValueError(
                f"{work} holds units made with other options or input ({', '.join(diff)} "
                "differ); rerun with the same ones, or with --no-resume to start afresh"
            )
        return old.get("layout") or {}
    work.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as handle:
        handle.write(json.dumps({"settings": settings, "layout": layout or {}}, indent=2) + "\n")
    return layout or {}


def cap_threads(num_cpus: float) -> int:
    """Limit this process's compute threads (BLAS/OpenMP pools, torch intra-op) to the CPUs
    a unit reserves, at least one: workers that each start a pool per core oversubscribe the
    node. Returns the cap."""
    threads = max(1, int(num_cpus))
    for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[key] = str(threads)  # pools started later
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        pass
    else:
        threadpool_limits(limits=threads)  # pools already loaded
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    return threads


def remove_tree(path: str | os.PathLike) -> None:
    """Delete a folder if it is there."""
    import shutil

    if os.path.isdir(path):
        shutil.rmtree(path)
