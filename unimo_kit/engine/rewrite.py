"""``unimo rewrite`` on the engine: the once-per-corpus vocabulary, then the rewriting, both
as ordered units; the stage's own code (``rewrite_file`` on a ``Shard``) does every unit.

Work folder ``OUT.engine/`` (deleted at the end): ``engine.json`` (the output's meta and the
unit count; a rerun with other options or input is refused), ``vocab-NNNNN.json`` (the counts
of one slice of the WHOLE input), ``vocab.json`` (their sum, what every unit rewrites with,
equal to the vocabulary of a one-machine run) and ``part-NNNNN.jsonl`` (the lines of one
slice). The parts joined in order are byte-identical to ``rewrite_file(input, OUT, config)``:
shard outputs over one shared vocabulary concatenate to the whole (docs/rewrite.md).
"""

from __future__ import annotations

import json
import math
import os
import pickle
import shutil
import struct
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from unimo_kit.engine.core import EngineOptions, Unit, as_options, map_units, remove_tree

UNIT_RECORDS = 2000  # input records per unit: small enough to spread, big enough to amortise


def run_rewrite(
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    config: Any = None,
    *,
    engine: str | EngineOptions = "local",
    unit_records: int = UNIT_RECORDS,
    **overrides: Any,
) -> Any:
    """The rewrite stage with ``engine="local"`` (exactly
    :func:`~unimo_kit.rewrite.pipeline.rewrite_file`) or ``engine="ray"``.

    Args:
        input_path: ``pairs.jsonl``.
        output_path: ``rewrites.jsonl``.
        config: a :class:`~unimo_kit.rewrite.pipeline.RewriteConfig`; ``overrides`` replace
            fields. ``config.shard`` limits the run to that slice, as locally; ``workers`` is
            the local process count and is ignored on Ray (see :class:`EngineOptions`).
        engine: ``"local"``, ``"ray"`` or :class:`EngineOptions`.
        unit_records: input records per Ray unit (the unit of retry and resume).

    Returns:
        A :class:`~unimo_kit.rewrite.pipeline.RewriteSummary` (``written`` counts the lines of
        the units run by this call, ``skipped_done`` those of units finished before).

    Raises:
        ValueError: ``OUT.engine/`` holds units of other options or input (rerun with the same
            ones, or ``resume=False``).
        EngineError: a unit kept failing (named in the message).
    """
    from unimo_kit.rewrite.pipeline import RewriteConfig, RewriteSummary, output_meta, rewrite_file
    from unimo_kit.utils import Shard, count_lines, file_sha256

    config = replace(config or RewriteConfig(), **overrides)
    options = as_options(engine)
    input_path, output_path = os.fspath(input_path), os.fspath(output_path)
    if options.engine == "local":
        return rewrite_file(input_path, output_path, config)
    if unit_records < 1:
        raise ValueError(f"unit_records must be >= 1, got {unit_records}")
    work = Path(output_path + ".engine")
    if not config.resume:
        remove_tree(work)
    elif os.path.exists(output_path) and os.path.getsize(output_path) and not work.is_dir():
        # An output this engine did not start (or finished): the stage resumes it itself.
        print(f"{output_path}: exists; resuming it with the local engine", file=sys.stderr)
        return rewrite_file(input_path, output_path, config)
    # what the units depend on: the options that shape the output and the input's bytes
    meta = {**output_meta(input_path, config), "input_sha256": file_sha256(input_path)}
    total = count_lines(input_path)
    start, stop = config.shard.bounds(total)
    per_shard = max(1, math.ceil((stop - start) / unit_records))
    # a rerun keeps the units of the first run (their files are named by number)
    settings = _claim(
        work, {"meta": meta, "units": per_shard, "vocab_units": _count(total, unit_records)}
    )
    per_shard = settings["units"]

    summary = RewriteSummary(output=output_path)
    vocab_path = config.vocab_path
    if config.output_format == "rewrites" and not vocab_path:
        vocab_path = str(
            _vocabulary(
                input_path,
                config,
                work,
                total,
                settings["vocab_units"],
                options,
                _unit_bounds(config.shard, per_shard, total),
            )
        )
        if config.save_vocab:
            shutil.copyfile(vocab_path, config.save_vocab)
    unit_config = replace(
        config, vocab_path=vocab_path, save_vocab=None, workers=1, progress=False, resume=True
    )
    index, count = config.shard.index, config.shard.count
    units = []
    for j in range(per_shard):  # slices (i*k + j) / (n*k) tile shard i/n exactly
        shard = Shard(index * per_shard + j, count * per_shard)
        lo, hi = shard.bounds(total)
        part = work / f"part-{j:05d}.jsonl"
        units.append(
            Unit(
                j,
                (
                    input_path,
                    str(part),
                    replace(unit_config, shard=shard),
                    str(graphs_file(work, lo, hi)),
                ),
                part,
                hi - lo,
                f"rewrite unit {j} (records {lo}-{hi - 1} of {input_path})",
            )
        )
    for unit, result in zip(
        units, map_units(_rewrite_unit, units, options, desc="rewrite"), strict=True
    ):
        if result is None:
            summary.skipped_done += _count_lines(unit.done)
            continue
        summary.written += result.written
        summary.skipped_done += result.skipped_done  # lines of a part resumed after a crash
        summary.caption_errors += result.caption_errors
        summary.record_errors += result.record_errors
        summary.dropped.update(result.dropped)
    _join([u.done for u in units], output_path, input_path, config)
    if vocab_path and config.output_format == "rewrites":
        from unimo_kit.rewrite.vocab import Vocabulary

        summary.vocab = Vocabulary.load(vocab_path)
    remove_tree(work)
    if summary.dropped:
        print(
            f"round-trip check dropped {sum(summary.dropped.values())} candidate rewrites "
            f"(spares replaced what they could):\n{summary.dropped_table()}",
            file=sys.stderr,
        )
    return summary


def _count(total: int, unit_records: int) -> int:
    return max(1, math.ceil(total / unit_records))


def _claim(work: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """Create ``work`` for these settings, or check that it holds units of the same ones;
    returns the settings in force (those of the first run)."""
    path = work / "engine.json"
    if path.is_file():
        old = json.loads(path.read_text())
        diff = sorted(
            key
            for key, value in settings["meta"].items()
            if key != "input" and old.get("meta", {}).get(key) != value
        )
        if diff:
            raise ValueError(
                f"{work} holds units made with other options or input ({', '.join(diff)} "
                "differ); rerun with the same ones, or with --no-resume to start afresh"
            )
        return old
    from unimo_kit.utils import atomic_write

    work.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as handle:
        handle.write(json.dumps(settings, indent=2) + "\n")
    return settings


def _unit_bounds(shard: Any, per_shard: int, total: int) -> set[tuple[int, int]]:
    """The records ``(lo, hi)`` of every rewrite unit of ``shard``."""
    from unimo_kit.utils import Shard

    return {
        Shard(shard.index * per_shard + j, shard.count * per_shard).bounds(total)
        for j in range(per_shard)
    }


def _vocabulary(
    input_path: str,
    config: Any,
    work: Path,
    total: int,
    n: int,
    options: EngineOptions,
    rewrite_units: set[tuple[int, int]],
) -> Path:
    """The vocabulary of the whole input: one unit per slice, the counts summed in order.
    A slice that is also a rewrite unit's (``rewrite_units``; all of them without
    ``--shard``) keeps its graphs for that unit, so no caption is parsed twice."""
    from unimo_kit.rewrite.vocab import Vocabulary
    from unimo_kit.utils import Shard

    merged = work / "vocab.json"
    if merged.is_file():
        return merged
    units = []
    for j in range(n):
        lo, hi = Shard(j, n).bounds(total)
        done = work / f"vocab-{j:05d}.json"
        keep = str(graphs_file(work, lo, hi)) if (lo, hi) in rewrite_units else ""
        units.append(
            Unit(
                j,
                (input_path, str(done), config, j, n, keep),
                done,
                hi - lo,
                f"vocabulary unit {j} (records {lo}-{hi - 1} of {input_path})",
            )
        )
    map_units(_vocab_unit, units, options, desc="vocabulary")
    vocab = Vocabulary(min_count=config.min_count)
    for unit in units:
        vocab.merge(Vocabulary.load(unit.done))
    vocab.save(merged)
    return merged


def graphs_file(work: Path, lo: int, hi: int) -> Path:
    """Where a vocabulary unit keeps the graphs of records ``lo``-``hi - 1`` for the rewrite
    unit of the same records."""
    return work / f"graphs-{lo:09d}-{hi:09d}.pkl"


def _vocab_unit(payload: tuple[str, str, Any, int, int, str]) -> None:
    """Count the vocabulary of slice ``j`` of ``n`` with the stage's own record reader,
    caption check and chunk parser (as pass 1 of ``rewrite_file`` does) into ``out``, and
    keep the graphs (pickled as pass 1 keeps them) in ``graphs`` (``""``: none) for the
    rewrite unit of the same records."""
    from unimo_kit.rewrite import pipeline
    from unimo_kit.rewrite.vocab import Vocabulary
    from unimo_kit.utils import ErrorReport, Shard, atomic_write, count_lines

    input_path, out, config, j, n, graphs = payload
    start, stop = Shard(j, n).bounds(count_lines(input_path))
    quiet = ErrorReport(strict=config.strict, max_logged=0)  # the rewrite units report
    pipeline._init_worker(config, None)
    vocab = Vocabulary(min_count=config.min_count)
    blobs: list[bytes] = []

    def count(batch: list[str]) -> None:
        part, kept = pipeline._vocab_chunk((batch, 0, len(batch) if graphs else 0))
        vocab.merge(part)
        if kept is not None:
            blobs.append(kept)

    batch: list[str] = []
    records = pipeline._records(input_path, quiet, start=start, stop=stop)
    for _, _, _, captions in records:
        batch += [
            c for c in captions if pipeline.caption_problem(c, config.max_caption_chars) is None
        ]
        if len(batch) >= config.chunk_size:
            count(batch)
            batch = []
    if batch:
        count(batch)
    if graphs:
        with atomic_write(graphs, "wb") as handle:  # before ``out``, which marks it done
            for blob in blobs:
                handle.write(struct.pack("<Q", len(blob)))
                handle.write(blob)
    vocab.save(out)


def _read_graphs(path: str) -> Iterator[Any]:
    """The graphs a vocabulary unit kept, in caption order."""
    with open(path, "rb") as handle:
        while header := handle.read(8):
            (size,) = struct.unpack("<Q", header)
            yield from pickle.loads(handle.read(size))


def _rewrite_unit(payload: tuple[str, str, Any, str]) -> Any:
    """``rewrite_file`` on one slice into ``PART.partial`` (resumed after a crash), moved onto
    ``PART`` when complete; with the graphs a vocabulary unit kept of the same records, they
    are rewritten without a second parse. Returns its summary without the vocabulary."""
    from unimo_kit.rewrite.pipeline import rewrite_file

    input_path, part, config, graphs = payload
    partial = Path(part + ".partial")
    if os.path.isfile(graphs):
        summary = _rewrite_parsed(input_path, str(partial), config, graphs)
    else:
        summary = rewrite_file(input_path, partial, config)
    os.replace(partial, part)
    if os.path.isfile(graphs):
        os.remove(graphs)
    for sidecar in partial.parent.glob(partial.name + ".*"):  # the stage's resume record
        sidecar.unlink()
    summary.vocab = None
    return summary


def _rewrite_parsed(input_path: str, output_path: str, config: Any, graphs: str) -> Any:
    """What ``rewrite_file`` does with a given vocabulary (the resume manifest, the TF-IDF
    texts of the whole input when asked, then its second pass), with pass 2 fed the graphs
    of ``graphs`` as ``rewrite_file`` feeds its own pass 1's."""
    from unimo_kit.rewrite import pipeline
    from unimo_kit.rewrite.vocab import Vocabulary
    from unimo_kit.utils import ErrorReport, count_lines

    pipeline._check_or_write_manifest(
        output_path, pipeline.output_manifest(input_path, config), config.resume
    )
    report = ErrorReport(strict=config.strict)
    bounds = config.shard.bounds(count_lines(input_path))
    vocab = Vocabulary.load(config.vocab_path)
    texts: list[str] = []
    groups: list[str] = []
    if config.sentence_negatives > 0:  # texts only: nothing is parsed without a store
        pipeline._first_pass(input_path, config, None, texts, groups, None, bounds)
    rows = pipeline._tfidf_setup(config, texts, groups)
    summary = pipeline.RewriteSummary(output=output_path, vocab=vocab)
    pipeline._rewrite_pass(
        input_path, output_path, config, vocab, rows, texts, groups, _read_graphs(graphs),
        bounds, summary, report,
    )  # fmt: skip
    summary.record_errors = report.count - summary.caption_errors
    return summary


def _count_lines(path: Path) -> int:
    with open(path, "rb") as handle:
        return sum(1 for _ in handle)


def _join(parts: list[Path], output_path: str, input_path: str, config: Any) -> None:
    """Write the resume record a one-machine run writes (so a later local run resumes or
    checks the output the same way), then the parts concatenated in order onto
    ``output_path`` (atomically)."""
    from unimo_kit.rewrite import pipeline
    from unimo_kit.utils import atomic_write

    if hasattr(pipeline, "output_manifest"):  # the resume manifest (unimo_kit.utils.manifest)
        from unimo_kit.utils.manifest import manifest_path, write_manifest

        write_manifest(manifest_path(output_path), pipeline.output_manifest(input_path, config))
    else:  # OUT.meta.json of the stage before the manifest
        with atomic_write(pipeline.meta_path(output_path)) as handle:
            handle.write(json.dumps(pipeline.output_meta(input_path, config), indent=2) + "\n")
    with atomic_write(output_path, "wb") as out:
        for part in parts:
            with open(part, "rb") as handle:
                shutil.copyfileobj(handle, out)
