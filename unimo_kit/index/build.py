"""Streaming, resumable index builds; training a shared quantizer; merging shard indexes.

A build reads its input in blocks of ``block_size`` records, embeds each block and writes it
to ``blocks/NNNNN.npy`` (+ ``NNNNN.jsonl``, the block's records) atomically, so a killed build
resumes at the first unfinished block and the result equals an uninterrupted build. When every
block is there, the faiss index is trained on a seeded sample of the blocks (memory-mapped),
filled block by block, its search parameters tuned, and ``index.faiss``, ``records.jsonl``
and finally ``meta.json`` written (its presence marks a finished index). What made the folder
is its resume manifest, ``FOLDER/manifest.json`` (:mod:`unimo_kit.utils.manifest`, the one
record every stage keeps): a rerun resumes or reuses it only under the same settings and input
bytes, and is refused otherwise in the same one line as every other stage.

Sharding (``shard=Shard(i, n)``) embeds the i-th contiguous slice of the input into its own
folder. Shards of an exact (``flat``) index merge directly. IVF shards can only be merged
when they share one trained quantizer: train it once with :func:`train_quantizer` (it embeds
a seeded sample of the whole input), then build every shard with ``trained=`` that folder;
:func:`merge_indexes` checks that the quantizers agree and joins the inverted lists. HNSW
graphs cannot be joined: merging HNSW shards re-adds their stored embeddings into a new graph.
"""

from __future__ import annotations

import dataclasses
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

from unimo_kit.data.records import caption_id
from unimo_kit.encoders.features import resolve_spec, store_folder
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
    EMBEDDINGS,
    FAILED,
    FORMAT_VERSION,
    INDEX_FILE,
    MANIFEST,
    META,
    RECORDS,
    TRAINED_FILE,
    IndexStoreError,
    block_paths,
    iter_embedding_blocks,
    read_json,
    read_meta,
    read_store_meta,
    versions,
    write_faiss,
    write_json,
    write_npy,
)
from unimo_kit.resources import import_faiss
from unimo_kit.utils import ErrorReport, atomic_write, iter_jsonl
from unimo_kit.utils.jsonl import dumps
from unimo_kit.utils.manifest import (
    Manifest,
    ManifestError,
    folder_fingerprint,
    input_fingerprint,
    mismatch,
    read_saved,
    write_manifest,
)
from unimo_kit.utils.manifest import input_changed as fingerprint_changed

INPUT_KINDS = ("texts", "images", "captions")
#: The :class:`BuildConfig` settings that shape the embedding blocks (with the input's bytes):
#: resuming an unfinished build needs them unchanged. The others only affect the final index
#: step (plan, training, tuning, what is kept) and a resumed build takes the new values. The
#: input's path is one of them: image paths in the input are relative to its folder.
BLOCK_FIELDS = ("input", "kind", "encoder", "block_size", "shard")
#: The ``stage`` of an index folder's resume manifest, and of a separate embedding store's.
BUILD_STAGE, EMBED_STAGE = "index build", "index embed"
#: The manifest's name of the features store a ``features:DIR`` encoder reads (an input).
STORE_INPUT = "features"


class InputChangedError(IndexStoreError):
    """A finished index whose input file changed (its bytes) since it was built.
    :func:`build` raises it instead of reporting "already built"; rebuild with
    ``overwrite=True`` (see also :func:`input_changed`)."""


@dataclass
class BuildConfig:
    """Everything that shapes a build (saved in the folder's ``manifest.json``).

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
    tune_recall: float | None = 0.95  # cheapest nprobe/efSearch reaching recall@10 (held out)
    keep_embeddings: bool = True  # keep blocks/ (needed for --verify, merging HNSW, re-ranking)
    embeddings: str | None = None  # embedding store folder to read / fill (None: OUT itself)
    tune_queries: str | None = None  # query texts to tune on (None: held-out rows of the input)
    max_build_seconds: float | None = 3_600.0  # auto: no HNSW whose graph builds longer (None: any)

    def __post_init__(self) -> None:
        # A features:DIR store is recorded by its absolute path (as the CLI records the
        # input), so that queries of the index load it from any working directory.
        self.encoder = resolve_spec(self.encoder)


def plan_for(config: BuildConfig, n: int, dim: int) -> Any:
    """The :func:`~unimo_kit.index.factory.plan_index` of a build of ``n`` vectors of ``dim``:
    its ``index_type``, ``max_memory`` and ``max_build_seconds``."""
    from unimo_kit.index.factory import plan_index

    return plan_index(
        n,
        dim,
        index_type=config.index_type,
        max_memory=config.max_memory,
        max_build_seconds=config.max_build_seconds,
    )


# --------------------------------------------------------------------------- resume manifest


def _setting_defaults() -> dict[str, Any]:
    """Each :class:`BuildConfig` field's default (``None`` for the required ones)."""
    return {
        f.name: None if f.default is dataclasses.MISSING else f.default
        for f in dataclasses.fields(BuildConfig)
    }


def input_name(kind: str | None) -> str:
    """What a build's input is called in its manifest: ``texts``, ``images`` or ``pairs``."""
    return "pairs" if kind == "captions" else str(kind or "input")


def build_manifest(config: BuildConfig, *, store: bool = False) -> Manifest:
    """The resume manifest of a build of ``config`` (its input fingerprinted now).

    Args:
        config: the build.
        store: the manifest of a separate embedding store (stage ``index embed``, only
            :data:`BLOCK_FIELDS`) rather than of an index folder (stage ``index build``, every
            setting).

    Returns:
        The manifest: the settings, and the input's fingerprint (an edited input does not
        resume); a ``features:DIR`` encoder's store is an input too (:data:`STORE_INPUT`).
        The input's path stays a setting, as image paths in it are relative to it.

    Raises:
        EncoderError: a ``features:DIR`` encoder whose ``DIR`` is not a features store.
    """
    wanted = asdict(config)
    keys = BLOCK_FIELDS if store else list(wanted)
    inputs = {input_name(config.kind): input_fingerprint(config.input)}
    features = store_folder(config.encoder)
    if features is not None:
        inputs[STORE_INPUT] = features_fingerprint(features, config.encoder)
    stage = EMBED_STAGE if store else BUILD_STAGE
    return Manifest(stage, {key: wanted[key] for key in keys}, inputs)


def features_fingerprint(folder: str, spec: str) -> dict[str, Any]:
    """The fingerprint of the features store a ``features:DIR`` encoder reads
    (:func:`~unimo_kit.utils.manifest.folder_fingerprint`): a store extracted again (another
    extractor, other images) is a changed input, refused or rebuilt as an edited input file is.

    Raises:
        EncoderError: ``folder`` is not a features store (as loading the encoder says).
    """
    if not (Path(folder) / META).is_file():
        raise EncoderError(f"{spec}: {folder} is not a features store (no {META})")
    return folder_fingerprint(folder)


def read_build_manifest(folder: str | os.PathLike) -> tuple[Manifest | None, bool]:
    """The resume manifest of an index folder or embedding store.

    A folder of an older unimo_kit has ``build.json`` instead of ``manifest.json``; it is
    read in its place (until the next write replaces it). Settings the record lacks (options
    added since it was written) read as their defaults; a ``features:DIR`` encoder recorded
    as typed (relative) reads as resolved from here, as :class:`BuildConfig` resolves it.

    Args:
        folder: the index folder or store.

    Returns:
        ``(manifest, legacy)``: ``manifest`` is ``None`` when the folder has neither file, or
        the manifest of another stage (a features store, an export); ``legacy`` says it was
        read from ``build.json``.

    Raises:
        IndexStoreError: the record cannot be read (naming the file and ``--no-resume``).
    """
    folder = Path(folder)
    legacy = not (folder / MANIFEST).is_file() and (folder / BUILD).is_file()
    try:
        saved = read_saved(folder / MANIFEST, (folder / BUILD, _from_build_json))
    except ManifestError as exc:
        message = str(exc)
        if "--no-resume" not in message:
            message += "; pass --no-resume to start afresh"
        raise IndexStoreError(message) from None
    if saved is not None and saved.stage not in (BUILD_STAGE, EMBED_STAGE):
        return None, False
    if saved is not None:
        keys = BLOCK_FIELDS if saved.stage == EMBED_STAGE else _setting_defaults()
        defaults = {key: _setting_defaults()[key] for key in keys}
        saved.settings = {**defaults, **saved.settings}
        if isinstance(saved.settings.get("encoder"), str):  # an older features:DIR as typed
            saved.settings["encoder"] = resolve_spec(saved.settings["encoder"])
        _fill_store_input(saved)
    return saved, legacy


def _fill_store_input(saved: Manifest) -> None:
    """A record written before the features store was fingerprinted (a ``features:DIR``
    build without :data:`STORE_INPUT`) is taken to describe the store as it is now, the rule
    :func:`_legacy_fingerprint` applies to an input recorded without its sha256."""
    folder = store_folder(str(saved.settings.get("encoder") or ""))
    if folder is None or STORE_INPUT in saved.inputs or not (Path(folder) / META).is_file():
        return
    saved.inputs[STORE_INPUT] = folder_fingerprint(folder)


def write_build_manifest(
    folder: str | os.PathLike,
    config: BuildConfig,
    *,
    manifest: Manifest | None = None,
    store: bool = False,
) -> None:
    """Record what makes ``folder``: ``FOLDER/manifest.json``, atomically (the
    ``build.json`` of an older unimo_kit, read in its place until now, is removed).

    Args:
        folder: the index folder or store (it exists).
        config: the build.
        manifest: the record to write (default: :func:`build_manifest` of ``config``).
        store: a separate embedding store (stage ``index embed``).
    """
    _record(Path(folder), manifest or build_manifest(config, store=store))


def _record(folder: Path, manifest: Manifest) -> None:
    """Write ``FOLDER/manifest.json``; drop an older release's ``build.json``, now read."""
    write_manifest(folder / MANIFEST, manifest)
    (folder / BUILD).unlink(missing_ok=True)


def _from_build_json(data: dict[str, Any]) -> Manifest:
    """A ``build.json`` of an older unimo_kit as a :class:`Manifest`: its settings (an index
    folder's hold ``index_type``, a store's only the block fields) and its input."""
    fields = _setting_defaults()
    settings = {key: value for key, value in data.items() if key in fields}
    stage = BUILD_STAGE if "index_type" in data else EMBED_STAGE
    return Manifest(stage, settings, {input_name(data.get("kind")): _legacy_fingerprint(data)})


def _legacy_fingerprint(data: dict[str, Any]) -> dict[str, Any]:
    """The input fingerprint a ``build.json`` holds. One written before the input's sha256
    was kept is taken to describe the input's current bytes when it recorded no size at all,
    or the size and modification time the file still has (what older builds trusted)."""
    path = data.get("input")
    fingerprint = {
        "path": os.path.abspath(path) if path else None,
        "size": data.get("input_size"),
        "mtime_ns": data.get("input_mtime_ns"),
        "sha256": data.get("input_sha256"),
    }
    if fingerprint["sha256"] is None and path and os.path.isfile(path):
        info = os.stat(path)
        same = (info.st_size, info.st_mtime_ns) == (fingerprint["size"], fingerprint["mtime_ns"])
        if fingerprint["size"] is None or same:
            fingerprint = input_fingerprint(path)
    return fingerprint


def stale_build(folder: str | os.PathLike, config: BuildConfig) -> str | None:
    """Why ``folder`` does not hold the build ``config`` describes, for a message (``None``:
    it does): what a cache of an index (``unimo index mine``'s caption index) asks before it
    reuses the folder. Every setting but ``batch_size`` and the input's bytes are compared.

    Args:
        folder: the index folder.
        config: the build wanted.

    Returns:
        ``None``, ``"PATH changed since it was built"``, ``"it was built with other
        settings (KEY: OLD -> NEW; ...)"`` or that the folder holds no (readable) build.
    """
    try:
        saved, _ = read_build_manifest(folder)
    except IndexStoreError:
        return "the folder holds no readable build"
    if saved is None:
        return "the folder holds no build"
    wanted = build_manifest(config)
    diff = wanted.differences(saved, [key for key in wanted.settings if key != "batch_size"])
    if not diff:
        return None
    if all(item.startswith("input ") for item in diff):
        return f"{config.input} changed since it was built"
    return f"it was built with other settings ({'; '.join(diff)})"


def _has_record(folder: Path) -> bool:
    """Whether ``folder`` holds a readable resume record of a build or an embedding store
    (``manifest.json``, or the ``build.json`` of an older unimo_kit)."""
    try:
        return read_build_manifest(folder)[0] is not None
    except IndexStoreError:
        return False


def _adopt_legacy(store: Path) -> bool:
    """Write the ``manifest.json`` of a store of an older unimo_kit from its ``build.json``
    (once, saying so on stderr); whether it was such a store."""
    saved, legacy = read_build_manifest(store)
    if legacy:
        _note_legacy(store)
        _record(store, saved)
    return legacy


def _note_legacy(folder: Path) -> None:
    print(
        f"{folder}: read the build.json of an older unimo_kit as its resume manifest; what "
        f"made the folder is kept in {MANIFEST} from now on",
        file=sys.stderr,
    )


def default_encoder(kind: str) -> str:
    return DEFAULT_IMAGE_ENCODER if kind == "images" else DEFAULT_TEXT_ENCODER


def modality_of(kind: str) -> str:
    return "image" if kind == "images" else "text"


# --------------------------------------------------------------------------- input rows


def iter_rows(path: str, kind: str, report: ErrorReport) -> Iterator[dict[str, Any]]:
    """Input records as index rows: ``{"id", "text"}``, ``{"id", "image"}`` (absolute path),
    or per caption ``{"id": "PAIR#i", "pair_id", "caption_index", "text", "image"}``.

    A malformed line (not UTF-8, not JSON, a lone surrogate, a missing field) and a line whose
    id was seen on an earlier line (``duplicate id``: the first is kept, as ``unimo rewrite``
    and ``unimo features`` do) go to ``report`` as ``FILE:LINE``; every other row flows.
    """
    from unimo_kit.data.records import ImageRecord, PairRecord, TextRecord
    from unimo_kit.utils import RecordError, iter_jsonl

    if kind not in INPUT_KINDS:
        raise ValueError(f"unknown input kind {kind!r}: expected one of {INPUT_KINDS}")
    cls = {"texts": TextRecord, "images": ImageRecord, "captions": PairRecord}[kind]
    base_dir = Path(path).parent
    first_lines: dict[str, int] = {}  # id -> the line it was first seen on
    for line, data in iter_jsonl(path, on_error=lambda error: report.add(error)):
        try:
            record = cls.from_dict(data, base_dir=base_dir, path=path, line=line)
        except RecordError as error:
            report.add(error)
            continue
        first = first_lines.setdefault(str(record.id), line)
        if first != line:
            report.add(
                RecordError(path, line, f"duplicate id {record.id!r} (first at line {first})")
            )
            continue
        if kind == "texts":
            yield {"id": record.id, "text": record.text}
        elif kind == "images":
            yield {"id": record.id, "image": os.path.abspath(record.image)}
        else:
            for i, caption in enumerate(record.captions):
                yield {
                    "id": caption_id(record.id, i),
                    "pair_id": record.id,
                    "caption_index": i,
                    "text": caption,
                    "image": os.path.abspath(record.image),
                }


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
        encoded = encoder.encode_image_files(
            [row["image"] for row in rows],
            batch_size=batch_size,
            loader=loader,
            ids=[row["id"] for row in rows],
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
    from unimo_kit.index.factory import parse_memory
    from unimo_kit.utils import parse_shard

    out = Path(out_dir)
    store = Path(config.embeddings) if config.embeddings else out
    separate = store.resolve() != out.resolve()
    wanted = build_manifest(config)
    state = folder_state(out, config, overwrite, wanted=wanted)
    if state == "finished":
        saved, legacy = read_build_manifest(out)
        recorded = None if legacy else read_saved(out / MANIFEST)
        # e.g. the same bytes at a new time, or a store not recorded before: record them
        if recorded is None or recorded.inputs != wanted.inputs:
            if legacy:
                _note_legacy(out)
            kept = Manifest(BUILD_STAGE, saved.settings, wanted.inputs)
            write_build_manifest(out, config, manifest=kept)
        print(f"{out}: already built; nothing to do", file=sys.stderr)
        return out
    trained_meta = load_trained_meta(config)
    encoder = checked_encoder(config, encoder)
    parse_memory(config.max_memory)
    shard = parse_shard(config.shard)
    total = count_rows(config.input, config.kind)  # the bars' total; the shard's slice
    start, stop = shard.bounds(total)
    if shard.count > 1 and start == stop:
        raise IndexStoreError(
            f"{out}: shard {shard} of {config.input} is empty: the input has {total} rows; "
            f"use at most {total} shards"
        )
    if trained_meta is None and stop > start:
        plan = plan_for(config, stop - start, encoder.dim)
        if plan.refine and not config.keep_embeddings and not separate:
            raise ValueError(
                f"{plan.factory} re-ranks from the stored embeddings: build it with "
                "--keep-embeddings, or from an embedding store (--embeddings)"
            )

    if state == "replace":
        shutil.rmtree(out)
    elif state == "reindex":  # the same embeddings: only the index is built again
        for name in (META, INDEX_FILE, RECORDS, FAILED):
            (out / name).unlink(missing_ok=True)
    elif state == "resume" and read_build_manifest(out)[1]:
        _note_legacy(out)
    out.mkdir(parents=True, exist_ok=True)
    if state in ("new", "replace"):
        write_build_manifest(out, config, manifest=wanted)
    if separate:
        embed(config, store, encoder=encoder, progress=progress, rows=(start, stop, total))
    else:
        _embed_into(out, config, encoder, progress, (start, stop, total))
    # Every block now matches the input as read in this run: record these settings (a
    # resume may have changed final-step ones) and that input.
    write_build_manifest(out, config, manifest=wanted)
    finalize(
        out,
        config,
        encoder_dim=encoder.dim,
        trained_meta=trained_meta,
        progress=progress,
        store=store,
        encoder=encoder,
    )
    return out


def embed(
    config: BuildConfig,
    store_dir: str | os.PathLike,
    *,
    encoder: Encoder | None = None,
    progress: bool = True,
    rows: tuple[int, int, int] | None = None,
) -> Path:
    """Embed ``config.input`` once into the embedding store ``store_dir`` (docs/formats.md),
    which any number of index builds then read (``BuildConfig(embeddings=store_dir)``).

    Only :data:`BLOCK_FIELDS` of ``config`` matter here. A complete store of the same input
    bytes, encoder, block size and shard is reused as it is; an unfinished one resumes; a
    store of another input, encoder, block size or shard, or whose input changed since, is
    embedded again from scratch (a message on stderr says why) — unless the folder is an
    index's own folder, which is refused rather than emptied.

    Args:
        config: what to embed.
        store_dir: the store folder.
        encoder: an already loaded encoder whose ``spec`` equals ``config.encoder``.
        progress: a bar with the total and an ETA on stderr.
        rows: ``(start, stop, total)`` when the caller has counted the input already.

    Returns:
        ``store_dir``.

    Raises:
        IndexStoreError: the folder holds something else, or an index of other embeddings.
    """
    from unimo_kit.utils import parse_shard

    store = Path(store_dir)
    wanted = build_manifest(config, store=True)
    why = stale_embeddings(store, config, wanted=wanted)
    if why == "complete":
        _adopt_legacy(store)
        return store
    if why is not None:
        if (store / META).is_file() or (
            store.exists() and any(store.iterdir()) and not _has_record(store)
        ):
            raise IndexStoreError(
                f"{store}: cannot be the embedding store of {config.input} ({why}) without "
                "emptying it; choose another --embeddings folder"
            )
        if store.exists():
            print(f"{store}: embedding again ({why})", file=sys.stderr)
            shutil.rmtree(store)
    encoder = checked_encoder(config, encoder)
    if rows is None:
        total = count_rows(config.input, config.kind)
        rows = (*parse_shard(config.shard).bounds(total), total)
    store.mkdir(parents=True, exist_ok=True)
    if not _adopt_legacy(store) and not (store / MANIFEST).is_file():
        write_manifest(store / MANIFEST, wanted)
    _embed_into(store, config, encoder, progress, rows)
    return store


def stale_embeddings(
    store: Path, config: BuildConfig, *, wanted: Manifest | None = None
) -> str | None:
    """Whether ``store`` holds ``config``'s embeddings.

    Args:
        store: an embedding store or an index folder.
        config: the build.
        wanted: :func:`build_manifest` of ``config`` when the caller has it (saves hashing
            the input again).

    Returns:
        ``"complete"`` when ``store`` holds every embedding of ``config``'s input, ``None``
        when it holds a resumable part of them (or nothing yet), else why it holds other ones
        (the :data:`BLOCK_FIELDS` or input bytes that differ).
    """
    if not store.exists() or (store.is_dir() and not any(store.iterdir())):
        return None
    try:
        saved, _ = read_build_manifest(store)
    except IndexStoreError:
        return f"it holds no readable {MANIFEST}"
    if saved is None:
        return f"it holds no {MANIFEST}"
    diff = (wanted or build_manifest(config, store=True)).differences(saved, BLOCK_FIELDS)
    if diff:
        return f"it was embedded with other settings or input ({'; '.join(diff)})"
    complete = read_store_meta(store) is not None or (
        (store / META).is_file() and bool(block_paths(store))
    )
    return "complete" if complete else None


def _embed_into(
    folder: Path,
    config: BuildConfig,
    encoder: Encoder,
    progress: bool,
    rows_range: tuple[int, int, int],
) -> None:
    """Embed the input's rows ``start:stop`` into ``folder/blocks`` (resuming finished
    blocks), then write ``folder/embeddings.json``."""
    from unimo_kit.data.images import ImageLoader

    start, stop, total = rows_range
    (folder / BLOCKS).mkdir(parents=True, exist_ok=True)
    report = ErrorReport()
    rows: Iterator[dict] = iter_rows(config.input, config.kind, report)
    if (start, stop) != (0, total):
        rows = _slice(rows, start, stop)
    loader = ImageLoader()
    bar = _bar(stop - start, progress, f"embed {folder.name}")
    failed = 0
    for number, block in enumerate(_blocks_of(rows, config.block_size)):
        npy = folder / BLOCKS / f"{number:05d}.npy"
        if npy.is_file():
            _check_block(npy.with_suffix(".jsonl"), block, config.input)
        else:
            vectors, kept, bad = _embed(encoder, block, config.kind, config.batch_size, loader)
            with atomic_write(npy.with_suffix(".jsonl")) as handle:
                for row in kept + bad:
                    handle.write(dumps(_portable(row, folder)) + "\n")
            write_npy(np.ascontiguousarray(vectors, dtype=np.float32), npy)
        bar.update(len(block))
    bar.close()
    if report.count:
        print(report.summary(), file=sys.stderr)
    if config.kind == "images" and loader.stats.bad:
        print(loader.stats.summary(), file=sys.stderr)
    paths = block_paths(folder)
    count = sum(int(np.load(p, mmap_mode="r").shape[0]) for p in paths)
    for p in paths:
        failed += sum(
            1 for _, row in iter_jsonl(p.with_suffix(".jsonl"), strict=True) if "failed" in row
        )
    saved, _ = read_build_manifest(folder)
    fingerprint = saved.inputs[input_name(config.kind)]
    write_json(
        {
            "format_version": FORMAT_VERSION,
            "kind": config.kind,
            "encoder": config.encoder,
            "dim": encoder.dim,
            "count": count,
            "failed": failed,
            "blocks": len(paths),
            "block_size": config.block_size,
            "shard": config.shard,
            "input": config.input,
            "input_sha256": fingerprint.get("sha256"),
            "skipped_lines": report.count,
        },
        folder / EMBEDDINGS,
    )


def input_changed(folder: str | os.PathLike) -> bool:
    """Whether the input file of the build in ``folder`` (or the features store a
    ``features:DIR`` encoder read) changed since the build read it, or is gone.

    Size and modification time are the fast path; when only the time differs (a copy, a
    ``touch``, a deterministic regeneration) the bytes decide, by sha256
    (:func:`unimo_kit.utils.manifest.input_changed` on the folder's manifest). ``False`` when
    that is unknown: no record (a merged index or a trained quantizer) or an unreadable one.
    A finished index whose input changed is stale; rebuild it with
    ``build(..., overwrite=True)``.
    """
    try:
        saved, _ = read_build_manifest(folder)
    except IndexStoreError:
        return False
    if saved is None:
        return False
    return any(fingerprint_changed(fp) for fp in saved.inputs.values() if fp.get("path"))


def finalize(
    out: Path,
    config: BuildConfig,
    *,
    encoder_dim: int,
    trained_meta: dict[str, Any] | None = None,
    progress: bool = True,
    store: Path | None = None,
    encoder: Encoder | None = None,
) -> None:
    """Train, fill, tune and write the index of a folder whose blocks (in ``store``, by
    default the folder itself) are all embedded.

    Tuning is measured on queries outside the index: ``config.tune_queries`` (encoded with
    ``encoder``), or else :data:`~unimo_kit.index.factory.HELD_OUT` seeded rows kept out of
    the index until it is tuned and added afterwards. The recall stored in ``meta.json`` is
    therefore what queries that are not in the corpus get.
    """
    from unimo_kit.index.factory import (
        BlockRows,
        IndexPlan,
        RecallProbe,
        _gather_rows,
        add_blocks,
        create_index,
        held_out_rows,
        sample_rows,
        set_search_params,
        train_index,
        tune_on_held_out,
        tune_search_params,
    )

    faiss = import_faiss()

    store = store or out
    separate = store.resolve() != out.resolve()
    paths = block_paths(store)
    sizes = [np.load(p, mmap_mode="r").shape[0] for p in paths]
    n = int(sum(sizes))
    if n == 0:
        raise IndexStoreError(f"{out}: no vectors to index (empty input, or every row failed)")
    began = time.perf_counter()

    def blocks() -> Iterator[np.ndarray]:
        for p in paths:
            yield np.load(p, mmap_mode="r")

    if trained_meta is not None:
        plan = IndexPlan.from_dict(trained_meta["plan"])
        index = faiss.read_index(str(Path(config.trained) / TRAINED_FILE))
    else:
        plan = plan_for(config, n, encoder_dim)
        index = create_index(plan, encoder_dim, config.metric)
        if plan.train_size:
            sample = _gather_rows(blocks(), sample_rows(n, plan.train_size, config.seed))
            train_index(index, sample, seed=config.seed)
    if index.d != encoder_dim:
        raise IndexStoreError(
            f"{out}: trained quantizer has dimension {index.d}, the encoder {encoder_dim}"
        )
    tune = config.tune_recall is not None and bool(plan.search_params)
    held = np.zeros(0, dtype=np.int64)
    if tune and not config.tune_queries:
        held = held_out_rows(n, config.seed)
    bar = _bar(n, progress, f"index {out.name}")
    add_blocks(index, blocks(), skip=held, progress=bar.update)
    bar.close()
    rerank = BlockRows(list(blocks())) if plan.refine else None
    tuned: dict[str, Any] = {"params": dict(plan.search_params), "recall": None, "qps": None}
    if tune and config.tune_queries:
        xq = _encode_tune_queries(config.tune_queries, encoder, config)
        tuned = tune_search_params(
            index,
            None,
            n,
            plan.search_params,
            target=config.tune_recall,
            metric=config.metric,
            probe=RecallProbe.held_out(xq, blocks, metric=config.metric),
            rerank=rerank,
            k_factor=max(1, plan.refine),
        )
        tuned["queries_from"] = config.tune_queries
    elif tune:
        tuned = tune_on_held_out(
            index,
            blocks,
            plan.search_params,
            held,
            target=config.tune_recall,
            metric=config.metric,
            rerank=rerank,
            k_factor=max(1, plan.refine),
        )
    set_search_params(index, tuned["params"])  # the held-out rows are back in the index
    write_faiss(index, out / INDEX_FILE)

    kept, failed = 0, 0
    with atomic_write(out / RECORDS) as records, atomic_write(out / FAILED) as failures:
        for p in paths:
            for _, row in iter_jsonl(p.with_suffix(".jsonl"), strict=True):
                row = _moved(row, store, out) if separate else row
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
        "refine": plan.refine,
        "search_params": tuned["params"],
        "tuning": {
            k: tuned.get(k) for k in ("recall", "k", "queries", "qps", "held_out", "queries_from")
        },
        "count": n,
        "failed": failed,
        "blocks": len(paths),
        "block_size": config.block_size,
        "input": config.input,
        "shard": config.shard,
        "trained": config.trained,
        "embeddings": _store_ref(store, out) if separate else None,
        "quantizer_hash": quantizer_hash(index),
        "build_seconds": round(time.perf_counter() - began, 3),
        "versions": versions(),
    }
    write_json(meta, out / META)
    if not config.keep_embeddings and not separate:
        (out / EMBEDDINGS).unlink(missing_ok=True)  # no longer a store
        for p in paths:
            p.unlink()


def _store_ref(store: Path, out: Path) -> dict[str, Any]:
    """How an index names the embedding store it was built from: the folder (relative to
    the index) and the fingerprint it had (a store embedded again no longer matches)."""
    saved = read_store_meta(store) or {}
    return {
        "path": os.path.relpath(store.resolve(), out.resolve()),
        "input_sha256": saved.get("input_sha256"),
        "encoder": saved.get("encoder"),
        "count": saved.get("count"),
    }


def _moved(row: dict[str, Any], store: Path, out: Path) -> dict[str, Any]:
    """A store's row with its image path made relative to the index folder instead."""
    if row.get("image") and not os.path.isabs(row["image"]):
        absolute = os.path.normpath(os.path.join(store.resolve(), row["image"]))
        row = {**row, "image": os.path.relpath(absolute, out.resolve())}
    return row


def _encode_tune_queries(path: str, encoder: Encoder | None, config: BuildConfig) -> np.ndarray:
    """The texts of a ``--tune-queries`` file (JSONL ``{"text"}`` lines or plain lines, read
    as ``unimo index search --queries`` reads them), embedded with the build's encoder."""
    from unimo_kit.index.queries import read_queries

    queries, report = read_queries(path)
    texts = [q["text"] for q in queries if "text" in q]
    if report.count:
        print(report.summary(), file=sys.stderr)
    if not texts:
        raise ValueError(f"{path}: no text queries to tune on")
    encoder = encoder or load_encoder(config.encoder)
    return encoder.encode_text(texts, batch_size=config.batch_size)


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
    from unimo_kit.index.factory import create_index, sample_rows, train_index

    out = Path(out_dir)
    replace = False
    if out.exists() and any(out.iterdir()) and not _is_trained(out):
        if not overwrite:
            raise IndexStoreError(
                f"{out} exists and is not a trained quantizer; pass --overwrite to replace it, "
                "or choose another --name"
            )
        replace = True
    encoder = checked_encoder(config, encoder)
    n = count_rows(config.input, config.kind)
    plan = plan_for(config, n, encoder.dim)
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
    tune_recall: float | None = 0.95,
    overwrite: bool = False,
    seed: int = 1234,
) -> Path:
    """Join shard indexes into one whose rows are the sources' rows in the given order.

    Flat and IVF sources are joined with faiss ``merge_from`` (IVF: the inverted lists, which
    requires one trained quantizer, checked by hash); HNSW sources are re-added from their
    stored embeddings into a new graph. Encoder, dimension, metric and factory must agree.
    The result is written to ``OUT.tmp`` and moved onto ``out_dir`` only when complete, so a
    failed merge leaves an existing ``out_dir`` as it was.

    The search parameters are tuned as a build tunes them (when ``tune_recall`` is given
    and the sources keep their embeddings): :data:`~unimo_kit.index.factory.HELD_OUT` rows
    drawn with ``seed`` are kept out of the merged index (left out of the new HNSW graph, or
    removed from the joined IVF lists) until it is tuned on them, then added.

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
        _write_merged(folders, metas, out, tmp, tune_recall, seed)
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
    seed: int,
) -> None:
    """Write the merged index of ``folders`` into ``into``, paths relative to ``out`` (the
    folder ``into`` becomes); tuned on ``seed``'s held-out rows when ``tune_recall``."""
    from unimo_kit.index.factory import (
        BlockRows,
        IndexPlan,
        add_blocks,
        create_index,
        held_out_rows,
        tune_on_held_out,
    )

    faiss = import_faiss()

    first = metas[0]
    hnsw = first["factory"].startswith("HNSW")
    n = sum(int(m["count"]) for m in metas)
    params = dict(first["plan"]["search_params"])
    tune = tune_recall is not None and bool(params) and all(block_paths(f) for f in folders)
    # Tuned as a build is: on seeded rows kept out of the index until it is tuned.
    held = held_out_rows(n, seed) if tune else np.zeros(0, dtype=np.int64)

    def blocks() -> Iterator[np.ndarray]:
        for folder, meta in zip(folders, metas, strict=True):
            yield from iter_embedding_blocks(folder, meta)

    if hnsw:
        index = create_index(IndexPlan.from_dict(first["plan"]), first["dim"], first["metric"])
        add_blocks(index, blocks(), skip=held)
    else:
        index = faiss.read_index(str(folders[0] / INDEX_FILE))
        ivf = faiss.try_extract_index_ivf(index)
        for folder in folders[1:]:
            # IVF lists store row ids: shift the next shard's by the rows before it. Flat
            # indexes number rows by position and take no shift.
            shift = index.ntotal if ivf is not None else 0
            index.merge_from(faiss.read_index(str(folder / INDEX_FILE)), shift)
        if len(held):  # only IVF plans have parameters to tune; flat ones have none
            ivf.remove_ids(held)
    if int(index.ntotal) + len(held) != n:
        raise IndexStoreError(f"the sources' indexes hold {index.ntotal} rows, their meta {n}")
    sources_rel = [os.path.relpath(f.resolve(), out.resolve()) for f in folders]
    tuned: dict[str, Any] = {"params": params, "recall": None, "k": None, "queries": None}
    if tune:
        refine = int(first.get("refine") or 0)
        tuned = tune_on_held_out(
            index,
            blocks,
            params,
            held,
            target=tune_recall,
            metric=first["metric"],
            rerank=BlockRows(list(blocks())) if refine else None,
            k_factor=max(1, refine),
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
        "tuning": {
            k: tuned.get(k) for k in ("recall", "k", "queries", "qps", "held_out", "queries_from")
        },
        "shard": None,
        "embeddings": None,
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
    faiss = import_faiss()

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


def folder_state(
    out: Path, config: BuildConfig, overwrite: bool, *, wanted: Manifest | None = None
) -> str:
    """What :func:`build` does with ``out`` (deleting and writing nothing yet).

    The folder's resume manifest (:func:`read_build_manifest`) is compared with this build's:
    a finished build on every setting but ``batch_size``, an unfinished one on
    :data:`BLOCK_FIELDS`; the input's bytes in both cases.

    Args:
        out: the index folder.
        config: the build asked for.
        overwrite: the caller asked to replace what the folder holds.
        wanted: :func:`build_manifest` of ``config`` when the caller has it.

    Returns:
        ``"new"`` (absent or empty), ``"reindex"`` (``overwrite`` of a folder whose own
        embeddings are complete and current by its ``manifest.json``: only the index is
        rebuilt), ``"replace"``
        (``overwrite``, or an unfinished build with no finished block), ``"resume"`` (an
        unfinished build with the same :data:`BLOCK_FIELDS`) or ``"finished"`` (a finished
        build with the same settings).

    Raises:
        InputChangedError: a finished build whose input's bytes changed since.
        IndexStoreError: the folder holds something else, or a build with other settings
            (the manifest's one-line refusal, naming each difference and ``--no-resume``).
    """
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return "new"
    wanted = wanted or build_manifest(config)
    if overwrite:
        own = not config.embeddings or Path(config.embeddings).resolve() == out.resolve()
        recorded = own and not read_build_manifest(out)[1]  # build.json may predate sha256
        if recorded and stale_embeddings(out, config, wanted=wanted) == "complete":
            return "reindex"  # other index settings over the same embeddings: keep them
        return "replace"
    saved, _ = read_build_manifest(out)
    if saved is None:
        raise IndexStoreError(f"{out} exists and is not an index build; pass --no-resume")
    finished = (out / META).is_file()
    # batch_size changes no result; a finished build is reused whatever it is
    keys = [k for k in wanted.settings if k != "batch_size"] if finished else BLOCK_FIELDS
    diff = wanted.differences(saved, keys)
    if not diff:
        return "finished" if finished else "resume"
    if not finished and not block_paths(out):
        return "replace"  # a start that failed before embedding anything
    only_input = all(item.startswith("input ") for item in diff)
    error = InputChangedError if finished and only_input else IndexStoreError
    raise error(str(mismatch(out, diff)))


def checked_encoder(config: BuildConfig, encoder: Encoder | None) -> Encoder:
    """The build's encoder (loaded unless given), refused unless it embeds the input's
    modality.

    Raises:
        EncoderError: it cannot be loaded (one line saying why) or embeds another modality.
    """
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
            "--no-resume to rebuild from scratch"
        )


def _is_trained(folder: Path) -> bool:
    """Whether ``folder`` holds a trained quantizer (``meta.json`` of kind ``trained``)."""
    try:
        return read_json(folder / META).get("kind") == "trained"
    except (OSError, ValueError, AttributeError):
        return False


def load_trained_meta(config: BuildConfig) -> dict[str, Any] | None:
    """The ``meta.json`` of ``config.trained`` (``None`` without one), checked against the
    build: a trained quantizer of the same encoder and metric.

    Raises:
        IndexStoreError: the folder is not a trained quantizer, or one of another encoder or
            metric.
    """
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
