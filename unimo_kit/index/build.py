"""Streaming, resumable index builds; training a shared quantizer; merging shard indexes.

A build reads its input in blocks of ``block_size`` records, embeds each block and writes it
to ``blocks/NNNNN.npy`` (+ ``NNNNN.jsonl``, the block's records) atomically, so a killed build
resumes at the first unfinished block and the result equals an uninterrupted build. When every
block is there, the faiss index is trained on a seeded sample of the blocks (memory-mapped),
filled block by block, its search parameters tuned, and ``index.faiss``, ``records.jsonl``
and finally ``meta.json`` written (its presence marks a finished index).

Sharding (``shard=Shard(i, n)``) embeds the i-th contiguous slice of the input into its own
folder. Shards of an exact (``flat``) index merge directly. IVF shards can only be merged
when they share one trained quantizer: train it once with :func:`train_quantizer` (it embeds
a seeded sample of the whole input), then build every shard with ``trained=`` that folder;
:func:`merge_indexes` checks that the quantizers agree and joins the inverted lists. HNSW
graphs cannot be joined: merging HNSW shards re-adds their stored embeddings into a new graph.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from unimo_kit.index.encoders import (
    DEFAULT_IMAGE_ENCODER,
    DEFAULT_TEXT_ENCODER,
    Encoder,
    EncoderError,
    load_encoder,
)
from unimo_kit.index.store import (
    BLOCKS,
    BUILD,
    FAILED,
    FORMAT_VERSION,
    INDEX_FILE,
    META,
    RECORDS,
    TRAINED_FILE,
    IndexStoreError,
    block_paths,
    iter_embedding_blocks,
    read_json,
    read_meta,
    versions,
    write_faiss,
    write_json,
    write_npy,
)
from unimo_kit.utils import ErrorReport, atomic_write, file_sha256, iter_jsonl
from unimo_kit.utils.jsonl import dumps

INPUT_KINDS = ("texts", "images", "captions")
#: The :class:`BuildConfig` fields that shape the embedding blocks: resuming an unfinished
#: build needs them unchanged. The others only affect the final index step (plan, training,
#: tuning, what is kept) and a resumed build takes the new values.
BLOCK_FIELDS = ("input", "kind", "encoder", "block_size", "shard")
#: ``build.json`` fields that describe the input file as last read (see :func:`input_changed`).
INPUT_STAT = ("input_size", "input_mtime_ns", "input_sha256")


class InputChangedError(IndexStoreError):
    """A finished index whose input file changed (its bytes) since it was built.
    :func:`build` raises it instead of reporting "already built"; rebuild with
    ``overwrite=True`` (see also :func:`input_changed`)."""


@dataclass
class BuildConfig:
    """Everything that shapes a build (saved as ``build.json``).

    A finished build is reused only with equal settings (``batch_size`` aside); an unfinished
    one resumes when its :data:`BLOCK_FIELDS` are equal."""

    input: str  # texts.jsonl, images.jsonl, or pairs.jsonl (kind "captions")
    kind: str  # "texts" | "images" | "captions" (one row per caption of a pairs file)
    encoder: str  # encoder spec, e.g. "st:all-MiniLM-L6-v2"
    index_type: str = "auto"  # flat | hnsw | ivf | ivfpq | auto
    max_memory: str | None = None  # budget for auto / ivfpq, e.g. "4G"
    block_size: int = 65_536  # records per embedding block (unit of resume)
    batch_size: int = 64  # records per encoder forward pass
    shard: str = "0/1"  # "i/n": this build covers the i-th contiguous slice of the input
    trained: str | None = None  # folder of a trained quantizer to reuse (sharded IVF builds)
    metric: str = "ip"  # inner product on L2-normalised vectors
    seed: int = 1234  # training sample and k-means seed
    tune_recall: float | None = 0.9  # cheapest nprobe/efSearch with recall@10 on a sample
    keep_embeddings: bool = True  # keep blocks/ (needed for --verify, merging HNSW, rebuilds)


def default_encoder(kind: str) -> str:
    return DEFAULT_IMAGE_ENCODER if kind == "images" else DEFAULT_TEXT_ENCODER


def modality_of(kind: str) -> str:
    return "image" if kind == "images" else "text"


# --------------------------------------------------------------------------- input rows


def iter_rows(path: str, kind: str, report: ErrorReport) -> Iterator[dict[str, Any]]:
    """Input records as index rows: ``{"id", "text"}``, ``{"id", "image"}`` (absolute path),
    or per caption ``{"id": "PAIR#i", "pair_id", "caption_index", "text", "image"}``."""
    from unimo_kit.data.readers import read_images, read_pairs, read_texts

    if kind == "texts":
        for record in read_texts(path, on_error=report):
            yield {"id": record.id, "text": record.text}
    elif kind == "images":
        for record in read_images(path, on_error=report):
            yield {"id": record.id, "image": os.path.abspath(record.image)}
    elif kind == "captions":
        for pair in read_pairs(path, on_error=report):
            for i, caption in enumerate(pair.captions):
                yield {
                    "id": f"{pair.id}#{i}",
                    "pair_id": pair.id,
                    "caption_index": i,
                    "text": caption,
                    "image": os.path.abspath(pair.image),
                }
    else:
        raise ValueError(f"unknown input kind {kind!r}: expected one of {INPUT_KINDS}")


def count_rows(path: str, kind: str) -> int:
    """How many rows :func:`iter_rows` yields (a quiet pass; sharding needs the total)."""
    quiet = ErrorReport(stream=open(os.devnull, "w"))  # noqa: SIM115
    try:
        return sum(1 for _ in iter_rows(path, kind, quiet))
    finally:
        quiet.stream.close()


def _blocks_of(rows: Iterator[dict], size: int) -> Iterator[list[dict]]:
    block: list[dict] = []
    for row in rows:
        block.append(row)
        if len(block) == size:
            yield block
            block = []
    if block:
        yield block


def _embed(encoder: Encoder, rows: list[dict], kind: str, batch_size: int, loader: Any):
    """``(vectors (m, d), kept rows, failed rows)`` for one block."""
    if kind == "images":
        encoded = encoder.encode_images(
            [row["image"] for row in rows], batch_size=batch_size, loader=loader
        )
        kept = [row for row, ok in zip(rows, encoded.ok, strict=True) if ok]
        failed = [{**rows[i], "failed": why} for i, why in sorted(encoded.failures.items())]
        return encoded.vectors[encoded.ok], kept, failed
    vectors = encoder.encode_text([row["text"] for row in rows], batch_size=batch_size)
    return vectors, rows, []


# --------------------------------------------------------------------------- build


def build(
    config: BuildConfig,
    out_dir: str | os.PathLike,
    *,
    overwrite: bool = False,
    progress: bool = True,
    encoder: Encoder | None = None,
) -> Path:
    """Build (or resume building) the index folder ``out_dir``.

    Everything that can be checked before embedding (the trained quantizer, loading the
    encoder and its modality, the shard slice, an ``ivfpq`` plan) is checked before the
    folder is touched. A resumed build re-reads each finished block's rows and refuses when
    they are not the rows stored with the block (the input changed).

    Args:
        config: what to build.
        out_dir: the index folder (``indexes/NAME``).
        overwrite: delete whatever ``out_dir`` holds and build afresh (also when the settings
            are the same: the way to rebuild after the input changed).
        progress: tqdm bars on stderr.
        encoder: an already loaded encoder whose ``spec`` equals ``config.encoder`` (tests).

    Returns:
        ``out_dir``.

    Raises:
        InputChangedError: ``out_dir`` holds this finished build, but its input file changed
            since (and not ``overwrite``).
        IndexStoreError: ``out_dir`` holds something else, a build with other settings or
            blocks of other rows (and not ``overwrite``); an empty shard; a bad quantizer.
        EncoderError: the encoder cannot be loaded or does not embed the input's modality.
        ValueError: a bad shard or ``max_memory``; ``ivfpq`` on too few rows.
    """
    from unimo_kit.data.images import ImageLoader
    from unimo_kit.index.factory import parse_memory, plan_index
    from unimo_kit.utils import parse_shard

    out = Path(out_dir)
    state = _folder_state(out, config, overwrite)
    if state == "finished":
        if input_changed(out):
            raise InputChangedError(
                f"{out}: {config.input} changed since this index was built from it; pass "
                "--overwrite to rebuild it"
            )
        _refresh_input_stat(out)  # the same bytes under a new modification time
        print(f"{out}: already built; nothing to do", file=sys.stderr)
        return out
    trained_meta = _trained_meta(config)
    encoder = _checked_encoder(config, encoder)
    parse_memory(config.max_memory)
    shard = parse_shard(config.shard)
    total = None
    if shard.count > 1 or (config.index_type == "ivfpq" and trained_meta is None):
        total = count_rows(config.input, config.kind)
    start, stop = shard.bounds(total) if total is not None else (0, None)
    if shard.count > 1 and start == stop:
        raise IndexStoreError(
            f"{out}: shard {shard} of {config.input} is empty: the input has {total} rows; "
            f"use at most {total} shards"
        )
    if config.index_type == "ivfpq" and trained_meta is None:
        plan_index(stop - start, encoder.dim, index_type="ivfpq", max_memory=config.max_memory)

    if state == "replace":
        shutil.rmtree(out)
    (out / BLOCKS).mkdir(parents=True, exist_ok=True)
    settings = {"format_version": FORMAT_VERSION, **asdict(config)}
    stat = input_stat(config.input)
    if state in ("new", "replace"):
        write_json({**settings, **stat}, out / BUILD)
    report = ErrorReport()
    rows: Iterator[dict] = iter_rows(config.input, config.kind, report)
    if shard.count > 1:
        rows = _slice(rows, start, stop)
    loader = ImageLoader()
    bar = _bar(None if stop is None else stop - start, progress, f"embed {out.name}")
    for number, block in enumerate(_blocks_of(rows, config.block_size)):
        npy = out / BLOCKS / f"{number:05d}.npy"
        if npy.is_file():
            _check_block(npy.with_suffix(".jsonl"), block, config.input)
        else:
            vectors, kept, failed = _embed(encoder, block, config.kind, config.batch_size, loader)
            with atomic_write(npy.with_suffix(".jsonl")) as handle:
                for row in kept + failed:
                    handle.write(dumps(_portable(row, out)) + "\n")
            write_npy(np.ascontiguousarray(vectors, dtype=np.float32), npy)
        bar.update(len(block))
    bar.close()
    # Every block now matches the input as read in this run: record these settings (a
    # resume may have changed final-step ones) and that input.
    write_json({**settings, **stat}, out / BUILD)
    if report.count:
        print(report.summary(), file=sys.stderr)
    if config.kind == "images" and loader.stats.bad:
        print(loader.stats.summary(), file=sys.stderr)
    finalize(out, config, encoder_dim=encoder.dim, trained_meta=trained_meta, progress=progress)
    return out


def input_stat(path: str | os.PathLike) -> dict[str, Any]:
    """``{"input_size", "input_mtime_ns", "input_sha256"}`` of an input file (stored in
    ``build.json``)."""
    info = os.stat(path)
    return {
        "input_size": info.st_size,
        "input_mtime_ns": info.st_mtime_ns,
        "input_sha256": file_sha256(path),
    }


def input_changed(folder: str | os.PathLike) -> bool:
    """Whether the input file of the build in ``folder`` changed since the build read it, or
    is gone.

    Size and modification time are the fast path; when only the time differs (a copy, a
    ``touch``, a deterministic regeneration) the bytes decide, by sha256. ``False`` when that
    is unknown: no ``build.json`` (a merged index or a trained quantizer) or one written
    before these fields were stored. A finished index whose input changed is stale; rebuild
    it with ``build(..., overwrite=True)``.
    """
    try:
        saved = read_json(Path(folder) / BUILD)
    except (OSError, ValueError):
        return False
    if not all(key in saved for key in INPUT_STAT[:2]) or "input" not in saved:
        return False
    try:
        info = os.stat(saved["input"])
    except OSError:
        return True
    if info.st_size != saved["input_size"]:
        return True
    if info.st_mtime_ns == saved["input_mtime_ns"]:
        return False
    digest = saved.get("input_sha256")  # absent: a build.json without it; the time decides
    return digest is None or file_sha256(saved["input"]) != digest


def _refresh_input_stat(folder: Path) -> None:
    """Store the input's current modification time in ``build.json`` once its bytes were found
    unchanged, so later runs take the fast path again."""
    saved = read_json(folder / BUILD)
    if "input_mtime_ns" in saved and os.stat(saved["input"]).st_mtime_ns != saved["input_mtime_ns"]:
        write_json({**saved, **input_stat(saved["input"])}, folder / BUILD)


def finalize(
    out: Path,
    config: BuildConfig,
    *,
    encoder_dim: int,
    trained_meta: dict[str, Any] | None = None,
    progress: bool = True,
) -> None:
    """Train, fill, tune and write the index of a folder whose blocks are all embedded."""
    import faiss

    from unimo_kit.index.factory import (
        IndexPlan,
        _gather_rows,
        create_index,
        plan_index,
        sample_rows,
        set_search_params,
        train_index,
        tune_search_params,
    )

    paths = block_paths(out)
    sizes = [np.load(p, mmap_mode="r").shape[0] for p in paths]
    n = int(sum(sizes))
    if n == 0:
        raise IndexStoreError(f"{out}: no vectors to index (empty input, or every row failed)")
    began = time.perf_counter()

    def blocks() -> Iterator[np.ndarray]:
        for p in paths:
            yield np.load(p, mmap_mode="r")

    if trained_meta is not None:
        plan = IndexPlan(**trained_meta["plan"])
        index = faiss.read_index(str(Path(config.trained) / TRAINED_FILE))
    else:
        plan = plan_index(
            n, encoder_dim, index_type=config.index_type, max_memory=config.max_memory
        )
        index = create_index(plan, encoder_dim, config.metric)
        if plan.train_size:
            sample = _gather_rows(blocks(), sample_rows(n, plan.train_size, config.seed))
            train_index(index, sample, seed=config.seed)
    if index.d != encoder_dim:
        raise IndexStoreError(
            f"{out}: trained quantizer has dimension {index.d}, the encoder {encoder_dim}"
        )
    bar = _bar(n, progress, f"index {out.name}")
    for block in blocks():
        index.add(np.ascontiguousarray(block, dtype=np.float32))
        bar.update(len(block))
    bar.close()
    tuned = {"params": dict(plan.search_params), "recall": None, "qps": None}
    if config.tune_recall is not None:
        tuned = tune_search_params(
            index, blocks, n, plan.search_params, target=config.tune_recall, metric=config.metric
        )
    set_search_params(index, tuned["params"])
    write_faiss(index, out / INDEX_FILE)

    kept, failed = 0, 0
    with atomic_write(out / RECORDS) as records, atomic_write(out / FAILED) as failures:
        for p in paths:
            for _, row in iter_jsonl(p.with_suffix(".jsonl"), strict=True):
                if "failed" in row:
                    failures.write(dumps(row) + "\n")
                    failed += 1
                else:
                    records.write(dumps(row) + "\n")
                    kept += 1
    if kept != n:
        raise IndexStoreError(f"{out}: blocks hold {n} vectors but {kept} records; rebuild")
    meta = {
        "format_version": FORMAT_VERSION,
        "kind": config.kind,
        "modality": modality_of(config.kind),
        "encoder": config.encoder,
        "dim": encoder_dim,
        "metric": config.metric,
        "normalized": True,
        "factory": plan.factory,
        "plan": plan.to_dict(),
        "search_params": tuned["params"],
        "tuning": {k: tuned.get(k) for k in ("recall", "k", "queries", "qps")},
        "count": n,
        "failed": failed,
        "blocks": len(paths),
        "block_size": config.block_size,
        "input": config.input,
        "shard": config.shard,
        "trained": config.trained,
        "quantizer_hash": quantizer_hash(index),
        "build_seconds": round(time.perf_counter() - began, 3),
        "versions": versions(),
    }
    write_json(meta, out / META)
    if not config.keep_embeddings:
        for p in paths:
            p.unlink()


# --------------------------------------------------------------------------- train / merge


def train_quantizer(
    config: BuildConfig,
    out_dir: str | os.PathLike,
    *,
    sample_size: int | None = None,
    progress: bool = True,
    encoder: Encoder | None = None,
    overwrite: bool = False,
) -> Path:
    """Train the IVF quantizer of a sharded build once, on a seeded sample of the whole input.

    Writes ``out_dir/trained.faiss`` and ``out_dir/meta.json`` (``"kind": "trained"``); pass
    ``out_dir`` as ``trained`` to every shard's :func:`build`.

    Args:
        config: as for the full build (``index_type`` ``ivf``/``ivfpq``/``auto``; ``shard``
            ignored: the plan is made for the whole input).
        out_dir: where the trained (empty) index goes; an existing trained quantizer there
            is replaced.
        sample_size: vectors to train on (default: the plan's).
        overwrite: replace ``out_dir`` even when it holds something else (an index).

    Raises:
        IndexStoreError: ``out_dir`` exists, is not empty and holds no trained quantizer
            (and not ``overwrite``); the plan needs no training.
    """
    from unimo_kit.index.factory import create_index, plan_index, sample_rows, train_index

    out = Path(out_dir)
    replace = False
    if out.exists() and any(out.iterdir()) and not _is_trained(out):
        if not overwrite:
            raise IndexStoreError(
                f"{out} exists and is not a trained quantizer; pass --overwrite to replace it, "
                "or choose another --name"
            )
        replace = True
    encoder = _checked_encoder(config, encoder)
    n = count_rows(config.input, config.kind)
    plan = plan_index(n, encoder.dim, index_type=config.index_type, max_memory=config.max_memory)
    if not plan.train_size:
        raise IndexStoreError(
            f"index type {config.index_type!r} for {n} vectors is {plan.factory!r}, which needs "
            "no training: build the shards directly and merge them"
        )
    rows = set(sample_rows(n, sample_size or plan.train_size, config.seed).tolist())
    chosen = (
        row
        for i, row in enumerate(iter_rows(config.input, config.kind, ErrorReport()))
        if i in rows
    )
    vectors = []
    bar = _bar(len(rows), progress, "embed training sample")
    for block in _blocks_of(chosen, config.block_size):
        embedded, _, _ = _embed(encoder, block, config.kind, config.batch_size, None)
        vectors.append(embedded)
        bar.update(len(block))
    bar.close()
    index = create_index(plan, encoder.dim, config.metric)
    train_index(index, np.concatenate(vectors), seed=config.seed)
    if replace:
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    write_faiss(index, out / TRAINED_FILE)
    write_json(
        {
            "format_version": FORMAT_VERSION,
            "kind": "trained",
            "modality": modality_of(config.kind),
            "encoder": config.encoder,
            "dim": encoder.dim,
            "metric": config.metric,
            "factory": plan.factory,
            "plan": plan.to_dict(),
            "count": 0,
            "planned_count": n,
            "trained_on": sum(len(v) for v in vectors),
            "quantizer_hash": quantizer_hash(index),
            "versions": versions(),
        },
        out / META,
    )
    return out


def merge_indexes(
    sources: list[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    tune_recall: float | None = 0.9,
    overwrite: bool = False,
) -> Path:
    """Join shard indexes into one whose rows are the sources' rows in the given order.

    Flat and IVF sources are joined with faiss ``merge_from`` (IVF: the inverted lists, which
    requires one trained quantizer, checked by hash); HNSW sources are re-added from their
    stored embeddings into a new graph. Encoder, dimension, metric and factory must agree.
    The result is written to ``OUT.tmp`` and moved onto ``out_dir`` only when complete, so a
    failed merge leaves an existing ``out_dir`` as it was.

    Returns:
        ``out_dir``, a normal index folder; its embeddings stay in the sources (``meta.json``
        lists them as ``embedding_sources``).

    Raises:
        IndexStoreError: ``out_dir`` is (or holds) a source, or exists and not ``overwrite``;
            a source is listed twice, indexes the same rows as another, or does not fit the
            others. Sources of different inputs, or shards that are not ``0/n`` ... ``n-1/n``
            in order, are merged with a warning on stderr.
    """
    if not sources:
        raise IndexStoreError("nothing to merge")
    out = Path(out_dir)
    folders = [Path(s) for s in sources]
    tmp, old = out.with_name(out.name + ".tmp"), out.with_name(out.name + ".old")
    seen: dict[Path, Path] = {}
    for folder in folders:
        source = folder.resolve()
        for target in (out, tmp, old):
            if source == target.resolve() or target.resolve() in source.parents:
                raise IndexStoreError(
                    f"cannot merge into {out}: {target} is or holds the source {folder}; "
                    "choose another --name"
                )
        if source in seen:
            raise IndexStoreError(f"{folder} is listed twice; merge each shard once")
        seen[source] = folder
    if out.exists() and not overwrite:
        raise IndexStoreError(f"{out} exists; pass --overwrite or another name")
    metas = [read_meta(f) for f in folders]
    _check_mergeable(folders, metas)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        _write_merged(folders, metas, out, tmp, tune_recall)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():  # replaced only now that the merge succeeded
        if old.exists():
            shutil.rmtree(old)
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old)
    else:
        os.replace(tmp, out)
    return out


def _check_mergeable(folders: list[Path], metas: list[dict[str, Any]]) -> None:
    """Refuse sources that cannot be joined or would repeat rows; warn about sources that
    do not make up one input's shards in order."""
    from unimo_kit.utils import parse_shard

    first = metas[0]
    for folder, meta in zip(folders, metas, strict=True):
        if meta.get("kind") == "trained":
            raise IndexStoreError(f"cannot merge {folder}: it is a trained quantizer, not an index")
    for folder, meta in zip(folders[1:], metas[1:], strict=True):
        for key in ("encoder", "dim", "metric", "factory", "kind"):
            if meta[key] != first[key]:
                raise IndexStoreError(
                    f"cannot merge {folders[0]} and {folder}: {key} differs "
                    f"({first[key]!r} vs {meta[key]!r})"
                )
        if "IVF" in first["factory"] and meta["quantizer_hash"] != first["quantizer_hash"]:
            raise IndexStoreError(
                f"cannot merge {folders[0]} and {folder}: their IVF quantizers differ; train one "
                "with `unimo index train` and build every shard with --trained"
            )
    covers: dict[tuple[str, str], Path] = {}
    for folder, meta in zip(folders, metas, strict=True):
        if meta.get("input") and meta.get("shard"):
            key = (meta["input"], meta["shard"])
            if key in covers:
                raise IndexStoreError(
                    f"cannot merge {covers[key]} and {folder}: both index shard {key[1]} of "
                    f"{key[0]}, so every row would be there twice"
                )
            covers[key] = folder
    inputs = list(dict.fromkeys(str(m.get("input")) for m in metas))
    if len(inputs) > 1:
        print(
            f"warning: the sources index different inputs ({', '.join(inputs)}); the merged "
            "meta.json names only the first",
            file=sys.stderr,
        )
    elif all(m.get("shard") for m in metas):
        shards = [parse_shard(m["shard"]) for m in metas]
        n = shards[0].count
        if [(s.index, s.count) for s in shards] != [(i, n) for i in range(n)]:
            print(
                f"warning: the sources are shards {', '.join(str(s) for s in shards)} of "
                f"{inputs[0]}; the merge equals a single build only for shards 0/n to "
                "n-1/n, each once, in order",
                file=sys.stderr,
            )


def _write_merged(
    folders: list[Path],
    metas: list[dict[str, Any]],
    out: Path,
    into: Path,
    tune_recall: float | None,
) -> None:
    """Write the merged index of ``folders`` into ``into``, paths relative to ``out`` (the
    folder ``into`` becomes)."""
    import faiss

    from unimo_kit.index.factory import IndexPlan, create_index, tune_search_params

    first = metas[0]
    hnsw = first["factory"].startswith("HNSW")
    if hnsw:
        index = create_index(IndexPlan(**first["plan"]), first["dim"], first["metric"])
        for folder, meta in zip(folders, metas, strict=True):
            for block in iter_embedding_blocks(folder, meta):
                index.add(np.ascontiguousarray(block, dtype=np.float32))
    else:
        index = faiss.read_index(str(folders[0] / INDEX_FILE))
        ivf = faiss.try_extract_index_ivf(index) is not None
        for folder in folders[1:]:
            # IVF lists store row ids: shift the next shard's by the rows before it. Flat
            # indexes number rows by position and take no shift.
            index.merge_from(faiss.read_index(str(folder / INDEX_FILE)), index.ntotal if ivf else 0)
    n = int(index.ntotal)
    sources_rel = [os.path.relpath(f.resolve(), out.resolve()) for f in folders]

    def blocks() -> Iterator[np.ndarray]:
        for folder, meta in zip(folders, metas, strict=True):
            yield from iter_embedding_blocks(folder, meta)

    params = dict(first["plan"]["search_params"])
    tuned = {"params": params, "recall": None, "k": None, "queries": None, "qps": None}
    if tune_recall is not None and all(block_paths(f) for f in folders):
        tuned = tune_search_params(
            index, blocks, n, params, target=tune_recall, metric=first["metric"]
        )
    write_faiss(index, into / INDEX_FILE)
    count = 0
    with atomic_write(into / RECORDS) as handle:
        for folder in folders:
            for _, row in iter_jsonl(folder / RECORDS, strict=True):
                if row.get("image") and not os.path.isabs(row["image"]):
                    absolute = os.path.normpath(os.path.join(folder, row["image"]))
                    row["image"] = os.path.relpath(absolute, out)
                handle.write(dumps(row) + "\n")
                count += 1
    if count != n:
        raise IndexStoreError(f"merged index has {n} rows but the sources {count} records")
    meta = {
        **first,
        "count": n,
        "failed": sum(int(m.get("failed", 0)) for m in metas),
        "search_params": tuned["params"],
        "tuning": {k: tuned.get(k) for k in ("recall", "k", "queries", "qps")},
        "shard": None,
        "merged_from": sources_rel,
        "embedding_sources": [
            s for s, m in zip(sources_rel, metas, strict=True) if not m.get("embedding_sources")
        ]
        or None,
        "quantizer_hash": quantizer_hash(index),
        "versions": versions(),
    }
    if any(m.get("embedding_sources") for m in metas):
        meta["embedding_sources"] = None  # nested merges: not tracked
    write_json(meta, into / META)


# --------------------------------------------------------------------------- helpers


def quantizer_hash(index: Any) -> str | None:
    """A short hash of an IVF index's coarse centroids (and PQ codebooks), or ``None``."""
    import faiss

    ivf = faiss.try_extract_index_ivf(index)
    if ivf is None:
        return None
    digest = hashlib.blake2b(digest_size=12)
    quantizer = faiss.downcast_index(ivf.quantizer)
    centroids = quantizer.reconstruct_n(0, quantizer.ntotal)  # (nlist, d)
    digest.update(np.ascontiguousarray(centroids).tobytes())
    pq = getattr(faiss.downcast_index(ivf), "pq", None)
    if pq is not None:
        digest.update(faiss.vector_to_array(pq.centroids).tobytes())
    return digest.hexdigest()


def _folder_state(out: Path, config: BuildConfig, overwrite: bool) -> str:
    """What :func:`build` does with ``out`` (deleting nothing yet): ``"new"`` (absent or
    empty), ``"replace"`` (``overwrite``, or an unfinished build with no finished block),
    ``"resume"`` (an unfinished build with the same :data:`BLOCK_FIELDS`) or ``"finished"``
    (a finished build with the same settings). Raises :class:`IndexStoreError` otherwise."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return "new"
    if overwrite:
        return "replace"
    build_file = out / BUILD
    if not build_file.is_file():
        raise IndexStoreError(f"{out} exists and is not an index build; pass --overwrite")
    try:
        saved = read_json(build_file)
    except (OSError, ValueError) as exc:
        raise IndexStoreError(f"{build_file}: unreadable ({exc}); pass --overwrite") from exc
    wanted = asdict(config)
    finished = (out / META).is_file()
    # batch_size changes no result; a finished build is reused whatever it is
    fields = [k for k in wanted if k != "batch_size"] if finished else BLOCK_FIELDS
    changed = sorted(k for k in fields if saved.get(k) != wanted[k])
    if not changed:
        return "finished" if finished else "resume"
    if not finished and not block_paths(out):
        return "replace"  # a start that failed before embedding anything
    raise IndexStoreError(
        f"{out} holds a build with other settings ({', '.join(changed)} differ); "
        "pass --overwrite to replace it, or choose another --name"
    )


def _checked_encoder(config: BuildConfig, encoder: Encoder | None) -> Encoder:
    """The build's encoder (loaded unless given), refused unless it embeds the input's
    modality. A failure to load it becomes one :class:`EncoderError` line."""
    if encoder is None:
        try:
            encoder = load_encoder(config.encoder)
        except EncoderError:
            raise
        except Exception as exc:  # loaders raise OSError, RuntimeError, ImportError, ...
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            reason = lines[0] if lines else type(exc).__name__
            raise EncoderError(f"cannot load encoder {config.encoder!r}: {reason}") from exc
    modality = modality_of(config.kind)
    if modality not in encoder.modalities:
        raise EncoderError(
            f"encoder {config.encoder!r} embeds {' and '.join(encoder.modalities)}, not "
            f"{modality} (the {config.kind} input)"
        )
    return encoder


def _check_block(records: Path, block: list[dict[str, Any]], input_path: str) -> None:
    """Refuse to resume when a finished block was embedded from other rows (ids, texts and
    image paths) than the input gives now at its place."""

    def rows(items: Any) -> Counter:
        return Counter((row.get("id"), row.get("text"), row.get("image")) for row in items)

    stored = [row for _, row in iter_jsonl(records, strict=True)] if records.is_file() else []
    if rows(stored) != rows(_portable(row, records.parent.parent) for row in block):
        raise IndexStoreError(
            f"{records.parent.parent}: block {records.stem} holds other rows than {input_path} "
            "gives now at its place (the input changed since the build began); pass "
            "--overwrite to rebuild from scratch"
        )


def _is_trained(folder: Path) -> bool:
    """Whether ``folder`` holds a trained quantizer (``meta.json`` of kind ``trained``)."""
    try:
        return read_json(folder / META).get("kind") == "trained"
    except (OSError, ValueError, AttributeError):
        return False


def _trained_meta(config: BuildConfig) -> dict[str, Any] | None:
    if not config.trained:
        return None
    folder = Path(config.trained)
    meta = read_meta(folder) if (folder / META).is_file() else None
    if meta is None or meta.get("kind") != "trained" or not (folder / TRAINED_FILE).is_file():
        raise IndexStoreError(f"{folder}: not a trained quantizer (run `unimo index train`)")
    if meta["encoder"] != config.encoder or meta["metric"] != config.metric:
        raise IndexStoreError(
            f"{folder}: trained for encoder {meta['encoder']!r} / metric {meta['metric']!r}, "
            f"but this build uses {config.encoder!r} / {config.metric!r}"
        )
    return meta


def _slice(rows: Iterator[dict], start: int, stop: int) -> Iterator[dict]:
    for i, row in enumerate(rows):
        if i >= stop:
            return
        if i >= start:
            yield row


def _portable(row: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Image paths relative to the index folder (so the folder can move with its data)."""
    if row.get("image"):
        row = {**row, "image": os.path.relpath(row["image"], folder.resolve())}
    return row


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _bar(total: int | None, enabled: bool, desc: str) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="row", file=sys.stderr, leave=False)
