"""The Ray side of :func:`unimo_kit.engine.map_units`: connect (or start a local Ray), run the
units as tasks or as an actor pool with retries, yield them as they finish, stop with a named
error when one keeps failing. Imported only when ``engine="ray"``."""

from __future__ import annotations

import collections
import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from unimo_kit.engine.core import EngineError, EngineOptions, Unit, check_done

#: Driver environment passed on to the workers (offline models, the resource cache).
FORWARDED_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM", "UNIMO_CACHE")


def connect(options: EngineOptions) -> bool:
    """Attach to Ray: a session already open in this process, ``options.ray_address`` or
    ``$RAY_ADDRESS``, else a new local Ray. Returns whether this call started the session
    (and so should shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    env = {key: os.environ[key] for key in FORWARDED_ENV if key in os.environ}
    common = {"include_dashboard": False, "runtime_env": {"env_vars": env} if env else None}
    address = options.ray_address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, **common)
    else:
        ray.init(address="local", num_cpus=options.local_cpus or os.cpu_count(), **common)
    return True


@dataclass
class _Session:
    """The Ray session a stage runs in, and the actor pools kept for it."""

    started: bool  # this process started Ray for the session (and shuts it down)
    pools: dict[tuple[str, int], list[Any]] = field(default_factory=dict)  # (name, gpus)

    def actors(self, key: tuple[str, int], n: int, make: Callable[[], Any]) -> list[Any]:
        """``n`` actors of pool ``key``: those made before, topped up with ``make()``."""
        pool = self.pools.setdefault(key, [])
        pool.extend(make() for _ in range(n - len(pool)))
        return pool[:n]

    def close(self) -> None:
        import ray

        for pool in self.pools.values():
            for actor in pool:
                ray.kill(actor)
        self.pools.clear()


_ACTIVE: list[_Session] = []  # the open session (at most one per driver process)


@contextlib.contextmanager
def ray_session(options: EngineOptions) -> Iterator[_Session]:
    """Connect once for a block of work (see :func:`unimo_kit.engine.session`); a session
    already open is joined, not nested."""
    if _ACTIVE:
        yield _ACTIVE[0]
        return
    import ray

    current = _Session(started=connect(options))
    _ACTIVE.append(current)
    try:
        yield current
    finally:
        _ACTIVE.clear()
        current.close()
        if current.started:
            ray.shutdown()


def _call(fn: Callable[[Any], Any], payload: Any) -> Any:
    return fn(payload)


def run_on_ray(
    fn: Callable[..., Any],
    units: Sequence[Unit],
    options: EngineOptions,
    *,
    setup: Callable[[], Any] | None = None,
    gpu: bool = False,
    pool: str | None = None,
) -> Iterator[tuple[Unit, Any]]:
    """Yield ``(unit, result)`` as units finish (any order), at most ``workers`` in flight.

    Without ``setup`` each unit is a Ray task (``max_retries``, exceptions retried too); with
    it, ``workers`` actors each hold ``setup()`` once (``max_restarts`` / ``max_task_retries``)
    and take the next unit when idle; actors of a named ``pool`` stay in the session for the
    next call that names it. A unit that still fails raises :class:`EngineError` naming it;
    the other units are cancelled.
    """
    with ray_session(options) as current:
        yield from _run(fn, units, options, current, setup=setup, gpu=gpu, pool=pool)


def _run(
    fn: Callable[..., Any],
    units: Sequence[Unit],
    options: EngineOptions,
    current: _Session,
    *,
    setup: Callable[[], Any] | None,
    gpu: bool,
    pool: str | None,
) -> Iterator[tuple[Unit, Any]]:
    import ray

    actors: list[Any] = []  # this call's own (unpooled) actors
    try:
        resources = ray.cluster_resources()
        num_gpus = 1 if gpu and options.gpus == "auto" and resources.get("GPU", 0) >= 1 else 0
        workers = options.workers or max(
            1, int(resources.get("GPU", 0)) if num_gpus else int(resources.get("CPU", 1))
        )
        retries = options.max_retries
        fn_ref = ray.put(fn)
        idle: collections.deque[Any] = collections.deque()
        if setup is None:
            task = ray.remote(
                num_cpus=options.num_cpus,
                num_gpus=num_gpus,
                max_retries=retries,
                retry_exceptions=True,
            )(_call)
        else:
            holder = ray.remote(
                num_cpus=options.num_cpus,
                num_gpus=num_gpus,
                max_restarts=retries,
                max_task_retries=retries,
            )(_holder_class())
            n = min(workers, len(units))
            if pool is None:
                actors = [holder.remote(setup) for _ in range(n)]
                idle.extend(actors)
            else:
                idle.extend(current.actors((pool, num_gpus), n, lambda: holder.remote(setup)))
        pending = collections.deque(units)
        running: dict[Any, tuple[Unit, Any]] = {}
        while pending or running:
            while pending and len(running) < workers and (setup is None or idle):
                unit = pending.popleft()
                if setup is None:
                    running[task.remote(fn_ref, unit.payload)] = (unit, None)
                else:
                    actor = idle.popleft()
                    running[actor.run.remote(fn_ref, unit.payload)] = (unit, actor)
            (ref,), _ = ray.wait(list(running), num_returns=1)
            unit, actor = running.pop(ref)
            try:
                result = ray.get(ref)
            except Exception as exc:
                for other, (_, holder_of) in running.items():
                    ray.cancel(other, force=holder_of is None)  # Ray force-kills only tasks
                raise EngineError(
                    f"{unit.label()} failed after {retries + 1} attempt(s); last error: "
                    f"{_reason(exc)}"
                ) from exc
            if actor is not None:
                idle.append(actor)
            yield unit, check_done(unit, result)
    finally:
        for actor in actors:
            ray.kill(actor)


def _holder_class() -> type:
    import ray

    class UnitWorker:
        """An actor holding the state ``setup()`` builds (a model loaded once per worker)."""

        def __init__(self, setup: Callable[[], Any]):
            self.state = setup()

        @ray.method(retry_exceptions=True)
        def run(self, fn: Callable[[Any, Any], Any], payload: Any) -> Any:
            return fn(self.state, payload)

    return UnitWorker


def _reason(exc: BaseException) -> str:
    """The first line of the underlying error (a task's exception, or why a worker died)."""
    cause = getattr(exc, "cause", None)
    error = cause if isinstance(cause, BaseException) else exc
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0] if lines else ''}"
