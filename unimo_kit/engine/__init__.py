"""The execution engine of the data stages: ``engine="local"`` (in this process, exactly the
stage as it runs without the engine) or ``engine="ray"`` (ordered work units as Ray tasks or
actor pools, retried, resumable, joined in input order so the output is byte-identical).

>>> from unimo_kit.engine import EngineOptions, run_rewrite
>>> run_rewrite("pairs.jsonl", "rewrites.jsonl", engine=EngineOptions("ray"), per_type=2)

The stages keep their own per-record code; :mod:`unimo_kit.engine.rewrite`,
:mod:`unimo_kit.engine.index`, :mod:`unimo_kit.engine.mine` and
:mod:`unimo_kit.engine.features` cut their input into
units and join the results, and :func:`map_units` runs any such units (inside one
:func:`session` per stage: one Ray connection, actor pools kept between calls). Importing this
package loads neither Ray nor the stages; Ray (the ``ray`` extra) is imported only when
``engine="ray"`` runs.
"""

from __future__ import annotations

from unimo_kit.engine.core import (
    ENGINES,
    EngineError,
    EngineOptions,
    Unit,
    as_options,
    map_units,
    session,
)
from unimo_kit.utils.lazy import lazy_exports

_LAZY = {
    "run_rewrite": "unimo_kit.engine.rewrite",
    "run_index_build": "unimo_kit.engine.index",
    "run_features": "unimo_kit.engine.features",
    "run_mine": "unimo_kit.engine.mine",
}

__all__ = [
    "ENGINES",
    "EngineError",
    "EngineOptions",
    "Unit",
    "as_options",
    "map_units",
    "ray_version",
    "run_features",
    "run_index_build",
    "run_mine",
    "run_rewrite",
    "session",
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


def ray_version() -> str | None:
    """The installed Ray's version (``None`` without the ``ray`` extra), without importing
    Ray."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ray")
    except PackageNotFoundError:
        return None
