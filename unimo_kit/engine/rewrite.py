"""``unimo rewrite`` on the engine: the once-per-corpus vocabulary, then the rewriting, both
as ordered units; the stage's own code (``rewrite_file`` on a ``Shard``) does every unit.

Work folder ``OUT.engine/`` (deleted at the end): ``engine.json`` (the output's meta and the
unit count; a rerun with other options or input is refused), ``vocab-NNNNN.json`` (the counts
of one slice of the WHOLE input), ``graphs-NNNNN.pkl`` (the scene graphs that vocabulary unit
parsed, kept when its slice is also a rewrite unit's; see below), ``vocab.json`` (their sum,
what every unit rewrites with, equal to the vocabulary of a one-machine run) and
``part-NNNNN.jsonl`` (the lines of one slice). The parts joined in order are byte-identical to
``rewrite_file(input, OUT, config)``: shard outputs over one shared vocabulary concatenate to
the whole (docs/rewrite.md).

Each caption is parsed once, as in one process (where pass 1 keeps its graphs for pass 2):
the vocabulary unit of a slice writes its graphs (atomically, before its counts, which mark
the unit finished: a rerun after a kill keeps both or redoes the unit) and the rewrite unit
of the same records rewrites from them (``RewriteConfig.graphs_from``), then deletes the
file. Without ``--shard`` the two
kinds of unit cut the input alike; with it, the slices that do not coincide are parsed again
by their rewrite unit, as is every slice when ``--vocab`` gives the vocabulary.

On Ray both kinds of unit run on one actor pool for the whole stage (one Ray session): each
actor loads spaCy once, with its compute threads capped to the CPUs a unit reserves, and the
stage's own code keeps that parser between units; the vocabulary reaches the units as the
file ``vocab.json``, read once per unit (about 15 ms for 20,000 captions' vocabulary).
"""

from __future__ import annotations

import collections
import functools
import math
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from unimo_kit.engine.core import (
    EngineOptions,
    Unit,
    as_options,
    cap_threads,
    claim_work,
    map_units,
    remove_tree,
    session,
)

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
    from unimo_kit.rewrite.pipeline import RewriteConfig, output_manifest, rewrite_file
    from unimo_kit.utils import count_lines

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
    # (hashed once: the same manifest is the output's resume record at the end)
    manifest = output_manifest(input_path, config)
    settings = {**manifest.settings, "input_sha256": manifest.inputs["pairs"]["sha256"]}
    total = count_lines(input_path)
    start, stop = config.shard.bounds(total)
    # a rerun keeps the units of the first run (their files are named by number)
    layout = claim_work(
        work,
        settings,
        {
            "units": max(1, math.ceil((stop - start) / unit_records)),
            "vocab_units": max(1, math.ceil(total / unit_records)),
        },
    )
    with session(options):
        source = _Input(input_path, settings["input_sha256"], total)
        summary, parts, vocab_path = _run_units(source, output_path, config, work, layout, options)
    _join(parts, output_path, manifest)
    if vocab_path and config.output_format == "rewrites":
        from unimo_kit.rewrite.vocab import Vocabulary

        summary.vocab = Vocabulary.load(vocab_path)
    remove_tree(work)
    summary.print_dropped()
    return summary


@dataclass(frozen=True)
class _Input:
    """The stage's input, as the units need to know it."""

    path: str  # pairs.jsonl
    sha256: str  # its content's, recorded in every graph file
    total: int  # its records (non-blank lines)


def _run_units(
    source: _Input,
    output_path: str,
    config: Any,
    work: Path,
    layout: dict[str, int],
    options: EngineOptions,
) -> tuple[Any, list[Path], str | None]:
    """The vocabulary units (unless a vocabulary is given), then the rewrite units, on one
    actor pool. Returns the units' summary, their files in order and the vocabulary file."""
    from unimo_kit.rewrite.pipeline import RewriteSummary
    from unimo_kit.utils import Shard, count_lines

    input_path, total = source.path, source.total
    setup = functools.partial(_worker, config, options.num_cpus)
    summary = RewriteSummary(output=output_path)
    per_shard = layout["units"]
    index, count = config.shard.index, config.shard.count
    # slices (i*k + j) / (n*k) tile shard i/n exactly
    slices = [Shard(index * per_shard + j, count * per_shard) for j in range(per_shard)]
    vocab_path = config.vocab_path
    graphs: dict[tuple[int, int], Path] = {}  # a rewrite unit's records -> its graph file
    if config.output_format == "rewrites" and not vocab_path:
        keep = {shard.bounds(total) for shard in slices}
        merged, graphs = _vocabulary(
            source, layout["vocab_units"], config, work, keep, options, setup
        )
        vocab_path = str(merged)
        if config.save_vocab:
            shutil.copyfile(vocab_path, config.save_vocab)
    unit_config = replace(
        config,
        vocab_path=vocab_path,
        save_vocab=None,
        workers=1,
        progress=False,
        resume=True,
        graphs_from=None,  # each unit's own, when its vocabulary unit kept them
    )
    units = []
    for j, shard in enumerate(slices):
        lo, hi = shard.bounds(total)
        part = work / f"part-{j:05d}.jsonl"
        kept = str(graphs[lo, hi]) if (lo, hi) in graphs else None
        units.append(
            Unit(
                j,
                (input_path, str(part), replace(unit_config, shard=shard), kept),
                part,
                hi - lo,
                f"rewrite unit {j} (records {lo}-{hi - 1} of {input_path})",
            )
        )
    results = map_units(_rewrite_unit, units, options, setup=setup, desc="rewrite", pool=POOL)
    for unit, result in zip(units, results, strict=True):
        if result is None:
            summary.skipped_done += count_lines(unit.done)
            continue
        summary.written += result.written
        summary.skipped_done += result.skipped_done  # lines of a part resumed after a crash
        summary.caption_errors += result.caption_errors
        summary.record_errors += result.record_errors
        summary.dropped.update(result.dropped)
    return summary, [unit.done for unit in units], vocab_path


POOL = "rewrite"  # the actor pool both kinds of unit share within the stage's session


def _worker(config: Any, num_cpus: float) -> None:
    """An actor's setup: compute threads capped to the unit's CPUs (spaCy's matrix products
    would otherwise start a BLAS pool per core in every worker) and the stage's spaCy parser
    loaded (about 4 CPU s) into the stage's own worker state, where ``rewrite_file`` keeps it
    between units (its round-trip check re-parses the candidate rewrites with it)."""
    from unimo_kit.rewrite import pipeline

    cap_threads(num_cpus)
    pipeline._init_worker(replace(config, vocab_path=None), None)
    pipeline._STATE["parser"].nlp  # noqa: B018 (loads spaCy now, not in the first unit)


def _vocabulary(
    source: _Input,
    n: int,
    config: Any,
    work: Path,
    keep: set[tuple[int, int]],
    options: EngineOptions,
    setup: Any,
) -> tuple[Path, dict[tuple[int, int], Path]]:
    """The vocabulary of the whole input: one unit per slice ``Shard(j, n)``, the counts
    summed in order.

    A unit whose slice is in ``keep`` (the records of a rewrite unit) also keeps its graphs.
    Returns the summed vocabulary's file and, by records, the graph files (those already
    consumed by their rewrite unit included: a caller checks that the file exists)."""
    from unimo_kit.rewrite.vocab import Vocabulary
    from unimo_kit.utils import Shard

    merged = work / "vocab.json"
    units, graphs = [], {}
    for j in range(n):
        lo, hi = Shard(j, n).bounds(source.total)
        done = work / f"vocab-{j:05d}.json"
        kept = work / f"graphs-{j:05d}.pkl" if (lo, hi) in keep else None
        if kept is not None:
            graphs[lo, hi] = kept
        units.append(
            Unit(
                j,
                (source, str(done), config, (lo, hi), kept and str(kept)),
                done,
                hi - lo,
                f"vocabulary unit {j} (records {lo}-{hi - 1} of {source.path})",
            )
        )
    if merged.is_file():  # a rerun after the vocabulary was summed
        return merged, graphs
    map_units(_vocab_unit, units, options, setup=setup, desc="vocabulary", pool=POOL)
    vocab = Vocabulary(min_count=config.min_count)
    for unit in units:
        vocab.merge(Vocabulary.load(unit.done))
    vocab.save(merged)
    return merged, graphs


def _vocab_unit(_: None, payload: tuple[_Input, str, Any, tuple[int, int], str | None]) -> None:
    """Count the vocabulary of records ``start:stop`` with the stage's own record reader,
    caption check and chunk parser (as pass 1 of ``rewrite_file`` does) into ``out``; with
    ``graphs``, first keep the parsed graphs there for the rewrite unit of the same records
    (pickled as pass 1 keeps them: :func:`~unimo_kit.rewrite.pipeline.write_graph_file`)."""
    from unimo_kit.rewrite import pipeline
    from unimo_kit.rewrite.vocab import Vocabulary
    from unimo_kit.utils import ErrorReport

    source, out, config, (start, stop), graphs = payload
    quiet = ErrorReport(strict=config.strict, max_logged=0)  # the rewrite units report
    pipeline._init_worker(config, None)
    vocab = Vocabulary(min_count=config.min_count)

    def parsed() -> Iterator[bytes]:  # count each chunk; yield its graphs, pickled, to keep
        for batch in _caption_batches(source.path, config, quiet, start, stop):
            counts, kept = pipeline._vocab_chunk((batch, 0, len(batch) if graphs else 0))
            vocab.merge(counts)
            if kept is not None:
                yield kept

    if graphs:
        pipeline.write_graph_file(graphs, source.sha256, (start, stop), parsed())
    else:
        collections.deque(parsed(), maxlen=0)
    vocab.save(out)


def _caption_batches(
    input_path: str, config: Any, report: Any, start: int, stop: int
) -> Iterator[list[str]]:
    """The valid captions of records ``start:stop`` in batches of at least ``chunk_size``
    (whole records; the last batch may be smaller), as pass 1 batches them."""
    from unimo_kit.rewrite import pipeline

    batch: list[str] = []
    for _, _, _, captions in pipeline._records(input_path, report, start=start, stop=stop):
        batch += [
            c for c in captions if pipeline.caption_problem(c, config.max_caption_chars) is None
        ]
        if len(batch) >= config.chunk_size:
            yield batch
            batch = []
    if batch:
        yield batch


def _rewrite_unit(_: None, payload: tuple[str, str, Any, str | None]) -> Any:
    """``rewrite_file`` on one slice into ``PART.partial`` (resumed after a crash), moved onto
    ``PART`` when complete; from the graphs its vocabulary unit kept, when that file is
    there (then deleted), else parsing. Returns its summary without the vocabulary."""
    from unimo_kit.rewrite.pipeline import rewrite_file

    input_path, part, config, graphs = payload
    if graphs and os.path.isfile(graphs):
        config = replace(config, graphs_from=graphs)
    partial = Path(part + ".partial")
    summary = rewrite_file(input_path, partial, config)
    os.replace(partial, part)
    for sidecar in partial.parent.glob(partial.name + ".*"):  # the stage's resume record
        sidecar.unlink()
    if config.graphs_from:  # consumed (a file left by a kill here goes with the work folder)
        os.remove(graphs)
    summary.vocab = None
    return summary


def _join(parts: list[Path], output_path: str, manifest: Any) -> None:
    """Write the resume record a one-machine run writes (so a later local run resumes or
    checks the output the same way), then the parts concatenated in order onto
    ``output_path`` (atomically)."""
    from unimo_kit.utils import atomic_write
    from unimo_kit.utils.manifest import manifest_path, write_manifest

    write_manifest(manifest_path(output_path), manifest)
    with atomic_write(output_path, "wb") as out:
        for part in parts:
            with open(part, "rb") as handle:
                shutil.copyfileobj(handle, out)
