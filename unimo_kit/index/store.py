"""An index on disk: one folder holding the faiss index, one record per row, the embeddings
and ``meta.json`` (format: ``indexes/README.md``). :class:`IndexStore` opens and checks it and
answers queries::

    store = IndexStore.open("indexes/coco-texts")
    hits = store.search_texts(["a red circle left of a square"], k=5)
    hits[0][0]   # {"id": "txt-000042", "score": 0.83, "text": "...", "rank": 0}

A folder that is incomplete or inconsistent (missing files, a row count that differs between
the faiss index and the records, another dimension than the encoder's) raises
:class:`IndexStoreError` with what is wrong, before any query runs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from unimo_kit.resources import import_faiss
from unimo_kit.utils import atomic_write, iter_jsonl

FORMAT_VERSION = 1
META = "meta.json"
INDEX_FILE = "index.faiss"
TRAINED_FILE = "trained.faiss"
RECORDS = "records.jsonl"
FAILED = "failed.jsonl"
BLOCKS = "blocks"
#: A build's resume manifest (:mod:`unimo_kit.utils.manifest`), in an index folder and in an
#: embedding store.
MANIFEST = "manifest.json"
#: Deprecated: where an older unimo_kit kept a build's settings (read once when
#: ``manifest.json`` is missing, then replaced by it; no longer written).
BUILD = "build.json"
#: The description of a complete embedding store (docs/formats.md), written when every block
#: is embedded; read with :func:`read_store_meta`.
EMBEDDINGS = "embeddings.json"


class IndexStoreError(RuntimeError):
    """A missing, incomplete, corrupt or mismatched index folder, or a refused query."""


def write_faiss(index: Any, path: str | os.PathLike) -> None:
    """``faiss.write_index`` through ``PATH.tmp`` + ``os.replace`` (atomic)."""
    faiss = import_faiss()

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    faiss.write_index(index, str(tmp))
    os.replace(tmp, path)


def write_npy(array: np.ndarray, path: str | os.PathLike) -> None:
    """``np.save`` through ``PATH.tmp`` + ``os.replace`` (atomic)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        np.save(handle, array)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def write_json(data: dict[str, Any], path: str | os.PathLike) -> None:
    """Pretty JSON, atomically."""
    with atomic_write(path) as handle:
        json.dump(data, handle, indent=2, ensure_ascii=False)
        handle.write("\n")


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def versions() -> dict[str, str | None]:
    """Versions of the libraries that shape an index (written to meta.json)."""
    import importlib.metadata

    from unimo_kit import __version__

    out: dict[str, str | None] = {"unimo_kit": __version__}
    for name in ("faiss-cpu", "faiss-gpu", "sentence-transformers", "timm", "open-clip-torch"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def read_store_meta(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The ``embeddings.json`` of a complete embedding store (docs/formats.md), or ``None``
    when the folder holds no complete store (gone, unfinished, or unreadable).

    Args:
        folder: the store (or an index folder that keeps its own blocks).

    Returns:
        ``{"format_version", "kind", "encoder", "dim", "count", "failed", "blocks",
        "block_size", "shard", "input", "input_sha256", "skipped_lines"}``.

    Raises:
        IndexStoreError: the store was written by a newer unimo_kit.
    """
    path = Path(folder) / EMBEDDINGS
    try:
        meta = read_json(path)
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict):
        return None
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise IndexStoreError(
            f"{path}: format version {meta['format_version']} is newer than this unimo_kit "
            f"reads ({FORMAT_VERSION}); upgrade unimo_kit"
        )
    return meta


def block_paths(folder: Path) -> list[Path]:
    """The finished embedding blocks of a build folder, in order."""
    return sorted((folder / BLOCKS).glob("[0-9]*.npy"))


class IndexStore:
    """A built index folder, opened and checked.

    Attributes:
        path: the folder.
        meta: its ``meta.json``.
        index: the faiss index (search parameters from meta applied).
        records: one dict per row (``id`` plus ``text`` and/or ``image``, image paths
            resolved against the folder).
    """

    def __init__(self, path: Path, meta: dict[str, Any], index: Any, records: list[dict]):
        self.path = path
        self.meta = meta
        self.index = index
        self.records = records
        self._encoder: Any = None
        self._rows: Any = None

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, path: str | os.PathLike, *, mmap: bool = False) -> IndexStore:
        """Open and check an index folder.

        Args:
            path: the folder (``indexes/NAME``).
            mmap: memory-map the faiss index instead of reading it (large IVF indexes).

        Raises:
            IndexStoreError: missing or incomplete folder, corrupt files, count or dimension
                mismatch.
        """
        faiss = import_faiss()

        path = Path(path)
        meta = read_meta(path)
        index_file = path / INDEX_FILE
        if not index_file.is_file():
            raise IndexStoreError(f"{path}: {INDEX_FILE} is missing; rebuild the index")
        try:
            flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
            index = faiss.read_index(str(index_file), flags)
        except RuntimeError as exc:
            raise IndexStoreError(f"{index_file}: not a readable faiss index ({exc})") from exc
        records = load_records(path / RECORDS, path)
        check_consistent(path, meta, index.ntotal, index.d, len(records))
        from unimo_kit.index.factory import set_search_params

        set_search_params(index, meta.get("search_params") or {})
        return cls(path, meta, index, records)

    # ------------------------------------------------------------------ properties
    @property
    def encoder_spec(self) -> str:
        return self.meta["encoder"]

    @property
    def modality(self) -> str:
        return self.meta["modality"]

    @property
    def dim(self) -> int:
        return int(self.meta["dim"])

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def encoder(self, device: str | None = None) -> Any:
        """The index's own encoder (loaded on first use)."""
        if self._encoder is None:
            from unimo_kit.index.encoders import load_encoder

            self._encoder = load_encoder(self.encoder_spec, device=device)
        return self._encoder

    def check_query_encoder(self, spec: str | None) -> None:
        """Refuse a query encoder other than the index's (``None`` means the index's); a
        ``features:DIR`` spec names its store by the folder, however ``DIR`` is written."""
        from unimo_kit.encoders.features import resolve_spec

        if spec and resolve_spec(spec) != resolve_spec(self.encoder_spec):
            raise IndexStoreError(
                f"{self.path}: built with encoder {self.encoder_spec!r}; queries encoded with "
                f"{spec!r} live in another vector space. Query with the index's encoder "
                f"(omit --encoder) or rebuild the index with {spec!r}."
            )

    # ------------------------------------------------------------------ searching
    def search(
        self, xq: np.ndarray, k: int, params: dict[str, int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(D, I)`` for query vectors ``(nq, d)`` (checked against the index dimension).
        An index built with re-ranking (``meta["refine"]``, IVF-PQ) re-ranks ``refine``·k
        candidates by exact distance to the stored embeddings, memory-mapped from disk."""
        from unimo_kit.index.factory import search

        xq = np.asarray(xq, dtype=np.float32)
        if xq.ndim == 1:
            xq = xq[None]
        if xq.shape[1] != self.index.d:
            raise IndexStoreError(
                f"{self.path}: queries have dimension {xq.shape[1]}, the index {self.index.d}"
            )
        refine = int(self.meta.get("refine") or 0)
        return search(
            self.index,
            xq,
            min(k, max(len(self), 1)),
            params,
            rerank=self.stored_rows() if refine else None,
            k_factor=refine or 1,
            metric=self.meta["metric"],
        )

    def stored_rows(self) -> Any:
        """The stored embeddings as a :class:`~unimo_kit.index.factory.BlockRows` (opened
        once, memory-mapped: rows are read from disk as re-ranking asks for them)."""
        if getattr(self, "_rows", None) is None:
            from unimo_kit.index.factory import BlockRows

            self._rows = BlockRows(self.embedding_blocks())
            if len(self._rows) != len(self):
                raise IndexStoreError(
                    f"{self.path}: {len(self._rows)} stored embeddings for {len(self)} rows; "
                    "rebuild the index"
                )
        return self._rows

    def results(self, D: np.ndarray, I: np.ndarray) -> list[list[dict[str, Any]]]:
        """Per query, ``[{"id", "score", "rank", "text"/"image"...}]`` (missing hits dropped)."""
        out = []
        for scores, rows in zip(D, I, strict=True):
            hits = []
            for rank, (score, row) in enumerate(zip(scores, rows, strict=True)):
                if row < 0:
                    continue
                hits.append({**self.records[row], "score": float(score), "rank": rank})
            out.append(hits)
        return out

    def search_texts(
        self, texts: str | Sequence[str], k: int = 10, *, batch_size: int = 64
    ) -> list[list[dict[str, Any]]]:
        """Encode ``texts`` with the index's encoder and search; one hit list per text."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        encoder = self.encoder()
        if "text" not in encoder.modalities:
            raise IndexStoreError(
                f"{self.path}: encoder {self.encoder_spec!r} embeds {encoder.modalities}, "
                "so this index takes no text queries"
            )
        xq = encoder.encode_text(texts, batch_size=batch_size)
        return self.results(*self.search(xq, k))

    def search_images(
        self, images: Sequence[Any], k: int = 10, *, batch_size: int = 32
    ) -> list[list[dict[str, Any]] | None]:
        """Encode images (paths or PIL) and search; ``None`` for an image that failed to load."""
        encoder = self.encoder()
        if "image" not in encoder.modalities:
            raise IndexStoreError(
                f"{self.path}: encoder {self.encoder_spec!r} embeds {encoder.modalities}, "
                "so this index takes no image queries"
            )
        encoded = encoder.encode_image_files(list(images), batch_size=batch_size)
        hits = self.results(*self.search(encoded.vectors, k))
        return [h if ok else None for h, ok in zip(hits, encoded.ok, strict=True)]

    # ------------------------------------------------------------------ embeddings
    def embedding_blocks(self) -> Iterator[np.ndarray]:
        """The stored embeddings, block by block in row order (memory-mapped)."""
        yield from iter_embedding_blocks(self.path, self.meta)

    def verify(
        self,
        k: int = 10,
        n_queries: int = 256,
        seed: int = 0,
        queries: np.ndarray | None = None,
    ) -> dict[str, Any]:
        """Recall@k of the index, with its search parameters, against exact search over the
        stored embeddings.

        Args:
            k: the k of recall@k.
            n_queries, seed: without ``queries``, this many stored vectors drawn as queries
                (own row left out). They are in the index, which overstates a graph index's
                recall; the result says ``"held_out": false``.
            queries: ``(m, d)`` query vectors that are not in the index (e.g. encoded from a
                query file): the honest measure, ``"held_out": true``.

        Returns:
            ``{"recall", "k", "queries", "qps", "held_out", "params"}``.
        """
        from unimo_kit.index.factory import RecallProbe

        if queries is not None:
            probe = RecallProbe.held_out(
                queries, self.embedding_blocks, k=min(k, len(self)), metric=self.meta["metric"]
            )
        else:
            probe = RecallProbe.draw(
                self.embedding_blocks,
                len(self),
                k=k,
                metric=self.meta["metric"],
                n_queries=n_queries,
                seed=seed,
            )
        refine = int(self.meta.get("refine") or 0)
        measured = probe.measure(
            self.index,
            rerank=self.stored_rows() if refine else None,
            k_factor=refine or 1,
            metric=self.meta["metric"],
        )
        return {"params": dict(self.meta.get("search_params") or {}), **measured}


def read_meta(path: Path) -> dict[str, Any]:
    """``meta.json`` of a finished index folder, with a clear error when it is not one."""
    if not path.is_dir():
        raise IndexStoreError(f"{path}: no such index folder")
    meta_file = path / META
    if not meta_file.is_file():
        if (path / MANIFEST).is_file() or (path / BUILD).is_file():
            raise IndexStoreError(
                f"{path}: the build did not finish (no {META}); run the same "
                "`unimo index build` command again to resume it"
            )
        raise IndexStoreError(f"{path}: not an index folder ({META} is missing)")
    try:
        meta = read_json(meta_file)
    except (OSError, json.JSONDecodeError) as exc:
        raise IndexStoreError(f"{meta_file}: unreadable ({exc})") from exc
    for key in ("encoder", "dim", "metric", "count", "factory", "modality"):
        if key not in meta:
            raise IndexStoreError(f"{meta_file}: field {key!r} is missing")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise IndexStoreError(
            f"{meta_file}: format version {meta['format_version']} is newer than this "
            f"unimo_kit reads ({FORMAT_VERSION}); upgrade unimo_kit"
        )
    return meta


def check_consistent(path: Path, meta: dict[str, Any], ntotal: int, d: int, nrecords: int) -> None:
    """Raise :class:`IndexStoreError` unless index rows, records and meta agree."""
    if d != int(meta["dim"]):
        raise IndexStoreError(
            f"{path}: the faiss index has dimension {d} but meta.json says {meta['dim']} "
            f"(encoder {meta['encoder']!r})"
        )
    if ntotal != nrecords or ntotal != int(meta["count"]):
        raise IndexStoreError(
            f"{path}: row counts disagree: faiss index {ntotal}, {RECORDS} {nrecords}, "
            f"meta.json {meta['count']}; the folder is corrupt, rebuild it"
        )


def load_records(path: Path, folder: Path) -> list[dict[str, Any]]:
    """Rows of ``records.jsonl``; image paths resolved against ``folder``."""
    if not path.is_file():
        raise IndexStoreError(f"{folder}: {RECORDS} is missing; rebuild the index")
    records = []
    for line, record in iter_jsonl(path, strict=True):
        if "id" not in record:
            raise IndexStoreError(f"{path}:{line}: record without an id")
        image = record.get("image")
        if image and not os.path.isabs(image) and "://" not in image:
            record["image"] = os.path.normpath(os.path.join(folder, image))
        records.append(record)
    return records


def iter_embedding_blocks(path: Path, meta: dict[str, Any]) -> Iterator[np.ndarray]:
    """Embedding blocks of an index folder in row order (memory-mapped): its own
    ``blocks/``, the embedding store it was built from (``meta["embeddings"]``, refused when
    that store was embedded again since), or those of the folders it was merged from."""
    sources = meta.get("embedding_sources")
    if sources:
        for source in sources:
            folder = (path / source).resolve()
            yield from iter_embedding_blocks(folder, read_meta(folder))
        return
    folder = path
    ref = meta.get("embeddings")
    if ref:
        folder = (path / ref["path"]).resolve()
        saved = read_store_meta(folder) or {}
        fingerprint = ("input_sha256", "encoder", "count")
        if any(saved.get(key) != ref.get(key) for key in fingerprint):
            raise IndexStoreError(
                f"{path}: its embedding store {folder} is gone or was embedded again (another "
                "input or encoder) since this index was built; rebuild the index"
            )
    paths = block_paths(folder)
    if not paths:
        raise IndexStoreError(f"{folder}: no stored embeddings (built with --no-keep-embeddings?)")
    for block in paths:
        yield np.load(block, mmap_mode="r")
