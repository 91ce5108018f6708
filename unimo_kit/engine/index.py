"""``unimo index build`` on the engine: each embedding block of the build (``block_size``
rows, the build's own unit of resume) is one unit, embedded by an actor that holds the encoder
once; then the stage's own :func:`~unimo_kit.index.build.build` finds every block in place and
trains, fills, tunes and writes the index exactly as a one-machine build does.

A unit embeds its rows with the public :func:`~unimo_kit.index.build.embed` into a folder
beside the index (``.NAME.unit-NNNNN``, same depth, so image paths stay relative the same way),
then moves the block into ``NAME/blocks/NNNNN.{jsonl,npy}`` (the ``.npy`` last: it marks the
block done, as in a local build). The index folder must be on a filesystem every worker sees.
"""

from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from unimo_kit.engine.core import EngineOptions, Unit, as_options, map_units, remove_tree


def run_index_build(
    config: Any,
    out_dir: str | os.PathLike,
    *,
    overwrite: bool = False,
    progress: bool = True,
    engine: str | EngineOptions = "local",
) -> Path:
    """The index build with ``engine="local"`` (exactly :func:`~unimo_kit.index.build.build`)
    or ``engine="ray"`` (blocks embedded by an actor pool, then the same final step).

    Args:
        config: a :class:`~unimo_kit.index.build.BuildConfig` (``shard`` and ``block_size``
            as locally; choose ``block_size`` so there are several blocks per worker).
        out_dir: the index folder.
        overwrite: as :func:`~unimo_kit.index.build.build` (on Ray the blocks are embedded
            again unless the folder's own embeddings are complete and current).
        progress: bars on stderr.
        engine: ``"local"``, ``"ray"`` or :class:`EngineOptions`.

    Returns:
        ``out_dir``.

    Raises:
        What :func:`~unimo_kit.index.build.build` raises, before any unit runs where it can be
        checked first; :class:`~unimo_kit.engine.EngineError` when a block keeps failing.
    """
    import importlib

    stage = importlib.import_module("unimo_kit.index.build")  # the package exports build()
    from unimo_kit.index.factory import parse_memory
    from unimo_kit.index.store import BLOCKS, IndexStoreError
    from unimo_kit.utils import parse_shard

    options = as_options(engine)
    if options.engine == "local":
        return stage.build(config, out_dir, overwrite=overwrite, progress=progress)
    options = replace(options, progress=options.progress and progress)
    out = Path(out_dir)
    if config.embeddings:  # a separate store: embedding it is the local stage's business
        raise ValueError("engine='ray' builds the index folder's own blocks; drop embeddings=")
    state = stage.folder_state(out, config, overwrite)
    if state in ("finished", "reindex"):  # nothing to embed
        return stage.build(config, out, overwrite=overwrite, progress=progress)
    stage.load_trained_meta(config)  # the checks build() makes before touching the folder
    parse_memory(config.max_memory)
    encoder = stage.checked_encoder(config, None)
    total = stage.count_rows(config.input, config.kind)
    start, stop = parse_shard(config.shard).bounds(total)
    if parse_shard(config.shard).count > 1 and start == stop:
        raise IndexStoreError(f"{out}: shard {config.shard} of {config.input} is empty")
    if state == "replace":
        remove_tree(out)
    if stage.read_build_manifest(out)[0] is None:  # the one resume record, as build() writes
        out.mkdir(parents=True, exist_ok=True)
        stage.write_build_manifest(out, config)
    (out / BLOCKS).mkdir(parents=True, exist_ok=True)

    size = config.block_size
    units = []
    for k in range(math.ceil((stop - start) / size)):
        lo, hi = start + k * size, min(stop, start + (k + 1) * size)
        done = out / BLOCKS / f"{k:05d}.npy"
        units.append(
            Unit(
                k,
                (config, str(out), k, (lo, hi, total)),
                done,
                hi - lo,
                f"index block {k} (rows {lo}-{hi - 1} of {config.input})",
            )
        )
    spec, threads = config.encoder, torch_threads()
    map_units(
        _embed_block, units, options, setup=lambda: _load(spec, threads), gpu=True, desc="embed"
    )
    for leftover in out.parent.glob(f".{out.name}.unit-*"):
        remove_tree(leftover)
    return stage.build(config, out, progress=progress, encoder=encoder)


def torch_threads() -> int:
    """This process's torch intra-op thread count (what a local run encodes with)."""
    import torch

    return torch.get_num_threads()


def _load(spec: str, threads: int) -> Any:
    """An actor's encoder, encoding with the driver's thread count (Ray starts workers with
    ``OMP_NUM_THREADS=1``; on the CPU the thread count changes the last bits of a vector, so
    the blocks would differ from a local build's)."""
    import torch

    from unimo_kit.index.encoders import load_encoder

    torch.set_num_threads(threads)
    return load_encoder(spec)


def _embed_block(encoder: Any, payload: tuple[Any, str, int, tuple[int, int, int]]) -> None:
    """Embed rows ``lo:hi`` with the stage's :func:`embed` and move the block into place."""
    from unimo_kit.index.build import embed
    from unimo_kit.index.store import BLOCKS

    config, out_dir, k, rows = payload
    out = Path(out_dir)
    scratch = out.parent / f".{out.name}.unit-{k:05d}"
    target = out / BLOCKS / f"{k:05d}"
    if target.with_suffix(".npy").is_file():  # moved by an attempt that died afterwards
        remove_tree(scratch)
        return
    embed(replace(config, shard="0/1"), scratch, encoder=encoder, progress=False, rows=rows)
    block = scratch / BLOCKS / "00000"
    os.replace(block.with_suffix(".jsonl"), target.with_suffix(".jsonl"))
    os.replace(block.with_suffix(".npy"), target.with_suffix(".npy"))
    remove_tree(scratch)
