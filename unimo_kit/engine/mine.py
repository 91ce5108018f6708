"""``unimo index mine`` on the engine: the pairs still to mine, cut into units of whole search
chunks, mined by an actor pool whose every actor opens the indexes (and loads the encoders)
once; the units' records joined in input order onto the output.

A unit is ``unit_chunks`` consecutive chunks of ``chunk_size`` pairs of the same stream the
local stage mines (the shard's pairs not yet in the output), so every search batch holds the
same pairs as locally and the output is byte-identical to :func:`~unimo_kit.index.mine.mine`.

Work folder ``OUT.engine/`` (deleted at the end): ``engine.json`` (the run's manifest and the
output's size when the units were cut: a rerun with the same command reuses the units, any
other state of the output cuts them again), ``in-NNNNN.pkl`` (a unit's pairs, written by the
driver), ``part-NNNNN.json`` (its counts) and ``part-NNNNN.jsonl`` (its records, written
last and atomically: it marks the unit done). The join writes the old output followed by the
parts to ``OUT.tmp`` and moves it onto ``OUT``, so a killed driver leaves either the old
output and its finished units, or the whole new output.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from unimo_kit.engine.core import (
    EngineOptions,
    Unit,
    as_options,
    claim_work,
    map_units,
    remove_tree,
    session,
)
from unimo_kit.engine.index import torch_threads

UNIT_CHUNKS = 4  # search chunks (``MineConfig.chunk_size`` pairs each) per unit


def run_mine(
    pairs_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    text_index: str | os.PathLike | None = None,
    image_index: str | os.PathLike | None = None,
    negative_index: str | os.PathLike | None = None,
    config: Any = None,
    shard: Any = None,
    resume: bool = True,
    progress: bool = True,
    strict: bool = False,
    scenes: str | os.PathLike | None = None,
    engine: str | EngineOptions = "local",
    unit_chunks: int = UNIT_CHUNKS,
) -> dict[str, Any]:
    """Mining with ``engine="local"`` (exactly
    :func:`~unimo_kit.index.mine.mine_with_captions`) or ``engine="ray"``.

    Args:
        pairs_path, out_path, text_index, image_index, negative_index, config, shard, resume,
            progress, strict, scenes: as :func:`~unimo_kit.index.mine.mine_with_captions`
            (the automatic caption index is built on the same engine). With ``strict`` on
            Ray a malformed pair stops the run before any unit is mined.
        engine: ``"local"``, ``"ray"`` or :class:`EngineOptions`.
        unit_chunks: search chunks per Ray unit (the unit of retry and resume).

    Returns:
        :func:`~unimo_kit.index.mine.mine`'s counts (on Ray ``written`` and the means count
        the units run by this call and by an earlier, killed one).

    Raises:
        MineSettingsError: ``resume`` and the output was made with other settings or pairs.
        ValueError: nothing to mine; an automatic caption index with ``shard``.
        EngineError: a unit kept failing (named in the message).
    """
    from unimo_kit.index.mine import MineConfig, mine_with_captions, prepare_run
    from unimo_kit.utils import Shard

    options = as_options(engine)
    config = config or MineConfig()
    shard = shard or Shard()
    common = {
        "text_index": text_index,
        "image_index": image_index,
        "negative_index": negative_index,
        "config": config,
        "shard": shard,
        "scenes": scenes,
    }
    if options.engine == "local":
        return mine_with_captions(
            pairs_path, out_path, resume=resume, progress=progress, strict=strict, **common
        )
    if unit_chunks < 1:
        raise ValueError(f"unit_chunks must be >= 1, got {unit_chunks}")
    options = replace(options, progress=options.progress and progress)
    with session(options):  # one Ray for the caption index build and the mining
        run = prepare_run(
            pairs_path, out_path, resume=resume, progress=progress, engine=options, **common
        )
        return _mine_on_ray(pairs_path, Path(out_path), run, options, resume, strict, unit_chunks)


def _mine_on_ray(
    pairs_path: str | os.PathLike,
    out: Path,
    run: dict[str, Any],
    options: EngineOptions,
    resume: bool,
    strict: bool,
    unit_chunks: int,
) -> dict[str, Any]:
    """Cut the pending pairs into units, mine them on Ray, join them onto ``out``."""
    from unimo_kit.index.mine import (
        MineTally,
        chunks,
        count_pairs,
        record_run,
        shard_pairs,
        start_run,
    )
    from unimo_kit.utils import ErrorReport, ResumableJsonlWriter

    manifest = start_run(pairs_path, out, run, resume=resume)
    # absolute paths: a worker of a cluster does not run in this process's folder
    pairs_path, out = os.path.abspath(pairs_path), Path(os.path.abspath(out))
    run = {
        **run,
        **{
            key: os.path.abspath(run[key]) if run[key] else None
            for key in ("text_index", "image_index", "negative_index", "scenes")
        },
        "out_path": str(out),
    }
    work = Path(f"{out}.engine")
    if not resume:
        remove_tree(work)
    with ResumableJsonlWriter(out, id_key="id", resume=resume) as writer:  # cuts a torn tail
        done = writer.done
    if not resume:  # the output is empty now
        record_run(out, manifest, resume=False)
    size = run["config"].chunk_size * unit_chunks
    _discard_stale(work, out.stat().st_size)
    # the manifest was checked against the output's by start_run; the units were cut from
    # the pairs the output lacked at its current size
    settings = {"manifest": manifest.to_json(), "output_bytes": out.stat().st_size}
    size = claim_work(work, settings, {"unit_pairs": size})["unit_pairs"]

    tally, report = MineTally(), ErrorReport(strict=strict)
    total = count_pairs(pairs_path)

    def todo() -> Iterator[Any]:  # the stream the local stage mines
        for pair in shard_pairs(pairs_path, run["shard"], total, strict=strict, report=report):
            tally.pairs += 1
            if pair.id in done:
                tally.skipped_done += 1
            else:
                yield pair

    units = []
    for k, group in enumerate(chunks(todo(), size)):
        part = work / f"part-{k:05d}.jsonl"
        pairs_file = work / f"in-{k:05d}.pkl"
        if not part.is_file():
            _write_pickle(pairs_file, group)
        name = f"mine unit {k} (pairs {group[0].id!r} to {group[-1].id!r} of {pairs_path})"
        units.append(Unit(k, (str(pairs_file), str(part)), part, len(group), name))
    threads = torch_threads()
    map_units(_mine_unit, units, options, setup=lambda: _setup(run, threads), gpu=True, desc="mine")
    for unit in units:
        counts = json.loads(unit.done.with_suffix(".json").read_text())
        tally.written += counts["written"]
        tally.texts += counts["texts"]
        tally.images += counts["images"]
        tally.negatives += counts["negatives"]
        tally.failed_images += counts["failed_images"]
    _join(out, [unit.done for unit in units])
    remove_tree(work)
    if report.count:
        print(report.summary(), file=sys.stderr)
    return tally.counts(report.count)


def _discard_stale(work: Path, output_bytes: int) -> None:
    """Delete ``work`` when its units were cut against another state of the output (the
    output was joined, cut or resumed since: the pairs it lacks are others) or the folder
    cannot be read; its settings are then :func:`~unimo_kit.engine.core.claim_work`'s."""
    path = work / "engine.json"
    if not path.is_file():
        return
    try:
        cut_at = json.loads(path.read_text())["settings"]["output_bytes"]
    except (OSError, ValueError, KeyError, TypeError):
        cut_at = None
    if cut_at != output_bytes:
        print(f"{work}: units of another output state; cutting them again", file=sys.stderr)
        remove_tree(work)


def _write_pickle(path: Path, value: Any) -> None:
    from unimo_kit.utils import atomic_write

    with atomic_write(path, "wb") as handle:
        pickle.dump(value, handle, protocol=pickle.HIGHEST_PROTOCOL)


def _setup(run: dict[str, Any], threads: int) -> Any:
    """One actor's :class:`~unimo_kit.index.mine.Miner`: the indexes opened once, the query
    encoders run with the driver's torch thread count (as in :mod:`unimo_kit.engine.index`)."""
    import torch

    from unimo_kit.index.mine import make_miner

    torch.set_num_threads(threads)
    return make_miner({k: v for k, v in run.items() if k != "out_path"}, run["out_path"])


def _mine_unit(miner: Any, payload: tuple[str, str]) -> dict[str, int]:
    """Mine one unit's pairs chunk by chunk (as the local stage batches them), write its
    counts, then its records to ``PART`` atomically."""
    from unimo_kit.index.mine import MineTally, chunks
    from unimo_kit.utils import atomic_write
    from unimo_kit.utils.jsonl import dumps

    pairs_file, part = payload
    with open(pairs_file, "rb") as handle:
        pairs = pickle.load(handle)
    failed_before = miner.failed_images
    tally = MineTally()
    lines = []
    for chunk in chunks(pairs, miner.config.chunk_size):
        records = miner.mine(chunk)
        tally.add(records)
        lines.extend(dumps(record) + "\n" for record in records)
    counts = {
        "written": tally.written,
        "texts": tally.texts,
        "images": tally.images,
        "negatives": tally.negatives,
        "failed_images": miner.failed_images - failed_before,
    }
    with atomic_write(Path(part).with_suffix(".json")) as handle:
        handle.write(json.dumps(counts) + "\n")
    with atomic_write(part) as handle:
        handle.write("".join(lines))
    Path(pairs_file).unlink(missing_ok=True)
    return counts


def _join(out: Path, parts: list[Path]) -> None:
    """``out`` followed by ``parts`` in order, written to ``OUT.tmp`` and moved onto ``out``."""
    from unimo_kit.utils import atomic_write

    if not parts:
        return
    with atomic_write(out, "wb") as joined:
        for path in [out, *parts]:
            if path.is_file():
                with open(path, "rb") as handle:
                    shutil.copyfileobj(handle, joined)
