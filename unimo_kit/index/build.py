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
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from unimo_kit.index.encoders import (
    DEFAULT_IMAGE_ENCODER,
    DEFAULT_TEXT_ENCODER,
    Encoder,
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
from unimo_kit.utils import ErrorReport, atomic_write, iter_jsonl
from unimo_kit.utils.jsonl import dumps

INPUT_KINDS = ("texts", "images", "captions")


@dataclass
class BuildConfig:
    """Everything that shapes a build (saved as ``build.json``; a resumed build must match)."""

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

    Args:
        config: what to build.
        out_dir: the index folder (``indexes/NAME``).
        overwrite: delete an existing folder built with other settings instead of refusing.
        progress: tqdm bars on stderr.
        encoder: an already loaded encoder whose ``spec`` equals ``config.encoder`` (tests).

    Returns:
        ``out_dir``.

    Raises:
        IndexStoreError: ``out_dir`` holds a build with other settings (and not ``overwrite``).
    """
    from unimo_kit.data.images import ImageLoader
    from unimo_kit.utils import parse_shard

    out = Path(out_dir)
    _prepare_folder(out, config, overwrite)
    if (out / META).is_file():
        print(f"{out}: already built; nothing to do", file=sys.stderr)
        return out
    (out / BLOCKS).mkdir(parents=True, exist_ok=True)
    write_json({"format_version": FORMAT_VERSION, **asdict(config)}, out / BUILD)

    trained_meta = _trained_meta(config)
    encoder = encoder or load_encoder(config.encoder)
    report = ErrorReport()
    shard = parse_shard(config.shard)
    rows: Iterator[dict] = iter_rows(config.input, config.kind, report)
    total = None
    if shard.count > 1:
        start, stop = shard.bounds(count_rows(config.input, config.kind))
        rows = _slice(rows, start, stop)
        total = stop - start
    loader = ImageLoader()
    bar = _bar(total, progress, f"embed {out.name}")
    for number, block in enumerate(_blocks_of(rows, config.block_size)):
        npy = out / BLOCKS / f"{number:05d}.npy"
        if not npy.is_file():
            vectors, kept, failed = _embed(encoder, block, config.kind, config.batch_size, loader)
            with atomic_write(npy.with_suffix(".jsonl")) as handle:
                for row in kept + failed:
                    handle.write(dumps(_portable(row, out)) + "\n")
            write_npy(np.ascontiguousarray(vectors, dtype=np.float32), npy)
        bar.update(len(block))
    bar.close()
    if report.count:
        print(report.summary(), file=sys.stderr)
    if config.kind == "images" and loader.stats.bad:
        print(loader.stats.summary(), file=sys.stderr)
    finalize(out, config, encoder_dim=encoder.dim, trained_meta=trained_meta, progress=progress)
    return out


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
) -> Path:
    """Train the IVF quantizer of a sharded build once, on a seeded sample of the whole input.

    Writes ``out_dir/trained.faiss`` and ``out_dir/meta.json`` (``"kind": "trained"``); pass
    ``out_dir`` as ``trained`` to every shard's :func:`build`.

    Args:
        config: as for the full build (``index_type`` ``ivf``/``ivfpq``/``auto``; ``shard``
            ignored: the plan is made for the whole input).
        out_dir: where the trained (empty) index goes.
        sample_size: vectors to train on (default: the plan's).
    """
    from unimo_kit.index.factory import create_index, plan_index, sample_rows, train_index

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    encoder = encoder or load_encoder(config.encoder)
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

    Returns:
        ``out_dir``, a normal index folder; its embeddings stay in the sources (``meta.json``
        lists them as ``embedding_sources``).
    """
    import faiss

    from unimo_kit.index.factory import IndexPlan, create_index, tune_search_params

    if not sources:
        raise IndexStoreError("nothing to merge")
    out = Path(out_dir)
    folders = [Path(s) for s in sources]
    metas = [read_meta(f) for f in folders]
    first = metas[0]
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
    if out.exists():
        if not overwrite:
            raise IndexStoreError(f"{out} exists; pass --overwrite or another name")
        shutil.rmtree(out)
    out.mkdir(parents=True)
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
    write_faiss(index, out / INDEX_FILE)
    count = 0
    with atomic_write(out / RECORDS) as handle:
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
    write_json(meta, out / META)
    return out


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


def _prepare_folder(out: Path, config: BuildConfig, overwrite: bool) -> None:
    build_file = out / BUILD
    if not out.exists():
        return
    if not build_file.is_file():
        if any(out.iterdir()):
            if not overwrite:
                raise IndexStoreError(f"{out} exists and is not an index build; pass --overwrite")
            shutil.rmtree(out)
        return
    saved = read_json(build_file)
    saved.pop("format_version", None)
    if saved == asdict(config):
        return
    if not overwrite:
        changed = sorted(
            k for k in set(saved) | set(asdict(config)) if saved.get(k) != asdict(config).get(k)
        )
        raise IndexStoreError(
            f"{out} holds a build with other settings ({', '.join(changed)} differ); "
            "pass --overwrite to replace it, or choose another --name"
        )
    shutil.rmtree(out)


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
