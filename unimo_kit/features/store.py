"""The features store: visual tokens per image on disk, written in streaming chunks, read lazily.

Layout of a store folder (docs/formats.md, "Features store")::

    FEATURES/
      meta.json                               extractor, dim, tokens per image, dtype, ...
      manifest.json                           the resume manifest (unimo_kit.utils.manifest)
      chunks/s0of1-000000.safetensors         one chunk = a few hundred images, written atomically
      chunks/s0of1-000001.safetensors
      ...

A chunk is one safetensors file holding, for ``K`` images with ``N_k`` tokens each:

- ``feats`` ``(ΣN_k, F)`` float16 or float32, the tokens of all images one after another;
- ``boxes`` ``(ΣN_k, 5)`` float32, ``[x1, y1, x2, y2, area]`` normalised to ``[0, 1]``;
- ``class_probs`` ``(ΣN_k, C)`` float32, only when the extractor gives class probabilities;
- ``offsets`` ``(K + 1,)`` int64, image ``k`` owns rows ``offsets[k]:offsets[k+1]``;

and, in the safetensors header metadata, ``ids``: the JSON list of the ``K`` image ids. Chunks
are written to ``NAME.tmp``, synced and renamed (with the usual umask permissions), so a killed
run leaves only whole chunks; the next run with the same output skips the ids already stored
(resume). ``--shard i/n`` runs name their chunks ``s{i}of{n}-*``, so several shards can write
into one folder and their union is the full store. Reading opens each chunk's header once (ids,
and the shapes checked against ``meta.json``) and reads an image's rows on demand through
safetensors' memory-mapped slices.

Only numpy and safetensors are needed here (no torch).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Container, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from unimo_kit.utils import Shard, atomic_write
from unimo_kit.utils.manifest import (
    Manifest,
    ManifestMismatch,
    check_or_write,
    manifest_path,
    read_manifest,
    write_manifest,
)

FORMAT = "unimo-features"
VERSION = 1
CHUNK_PATTERN = re.compile(r"^s(\d+)of(\d+)-(\d{6})\.safetensors$")

#: meta.json keys that must agree between a run and the store it resumes or adds a shard to.
COMPATIBLE_KEYS = ("extractor", "dim", "dtype", "has_class_probs", "num_classes")
#: The stage named in the store's resume manifest (``FEATURES/manifest.json``).
MANIFEST_STAGE = "features"


@dataclass
class VisualFeatures:
    """The visual tokens of one image.

    ``feats`` ``(N, F)`` float32; ``boxes`` ``(N, 5)`` float32 ``[x1, y1, x2, y2, area]`` in
    ``[0, 1]``; ``class_probs`` ``(N, C)`` float32 or ``None``.
    """

    feats: np.ndarray
    boxes: np.ndarray
    class_probs: np.ndarray | None = None

    def as_dict(self) -> dict[str, np.ndarray | None]:
        return {"feats": self.feats, "boxes": self.boxes, "class_probs": self.class_probs}


class FeatureStore:
    """Read a features store by image id, lazily.

    Args:
        path: the store folder (holds ``meta.json`` and ``chunks/``).

    Example:
        >>> store = FeatureStore("runs/synth/features")  # doctest: +SKIP
        >>> item = store["syn-000012"]  # doctest: +SKIP
        >>> item["feats"].shape, item["boxes"].shape  # doctest: +SKIP
        ((49, 1280), (49, 5))
        >>> store.meta["extractor"], len(store)  # doctest: +SKIP
        ('effnet', 2000)
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        meta_path = self.path / "meta.json"
        if not meta_path.exists():
            raise FileNotFoundError(f"{self.path} is not a features store (no meta.json)")
        self.meta: dict[str, Any] = json.loads(meta_path.read_text(encoding="utf-8"))
        if self.meta.get("format") != FORMAT:
            raise ValueError(f"{meta_path}: format is {self.meta.get('format')!r}, not {FORMAT!r}")
        self._where: dict[str, tuple[int, int, int]] = {}  # id -> (chunk, row start, row stop)
        self._chunks: list[Path] = []
        self._handles: dict[int, Any] = {}
        for chunk in list_chunks(self.path):
            number = len(self._chunks)
            self._chunks.append(chunk)
            ids, offsets = _read_index(chunk, self.meta)
            for k, image_id in enumerate(ids):
                # A later chunk wins if an id was stored twice (e.g. two overlapping shards).
                self._where[image_id] = (number, int(offsets[k]), int(offsets[k + 1]))

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, image_id: object) -> bool:
        return image_id in self._where

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def ids(self) -> list[str]:
        """All stored image ids (chunk order)."""
        return list(self._where)

    @property
    def dim(self) -> int:
        """F, the feature size of a token."""
        return int(self.meta["dim"])

    def __getitem__(self, image_id: str) -> dict[str, np.ndarray | None]:
        """``{"feats": (N, F) float32, "boxes": (N, 5) float32, "class_probs": (N, C) | None}``."""
        return self.get(image_id).as_dict()

    def get(self, image_id: str) -> VisualFeatures:
        """The :class:`VisualFeatures` of ``image_id``; ``KeyError`` when not stored."""
        handle, start, stop = self._locate(image_id)
        feats = handle.get_slice("feats")[start:stop].astype(np.float32)
        boxes = handle.get_slice("boxes")[start:stop].astype(np.float32)
        probs = None
        if self.meta.get("has_class_probs"):
            probs = handle.get_slice("class_probs")[start:stop].astype(np.float32)
        return VisualFeatures(feats, boxes, probs)

    def feats(self, image_id: str) -> np.ndarray:
        """Only the ``(N, F)`` float32 tokens of ``image_id`` (no boxes or class
        probabilities read); ``KeyError`` when not stored."""
        handle, start, stop = self._locate(image_id)
        return handle.get_slice("feats")[start:stop].astype(np.float32)

    def _locate(self, image_id: str) -> tuple[Any, int, int]:
        """``(open chunk, first row, end row)`` of ``image_id``'s tokens; ``KeyError`` naming
        the store when not stored."""
        try:
            number, start, stop = self._where[image_id]
        except KeyError:
            raise KeyError(
                f"image id {image_id!r} is not in the features store {self.path}"
            ) from None
        return self._handle(number), start, stop

    def _handle(self, number: int) -> Any:
        # Opened on first use, per process (safe after a DataLoader fork: handles opened in
        # the parent are dropped by __getstate__).
        handle = self._handles.get(number)
        if handle is None:
            from safetensors import safe_open

            handle = safe_open(str(self._chunks[number]), framework="numpy")
            self._handles[number] = handle
        return handle

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_handles"] = {}
        return state


def list_chunks(path: str | os.PathLike) -> list[Path]:
    """The complete chunk files of a store, sorted by shard then sequence number."""
    folder = Path(path) / "chunks"
    if not folder.is_dir():
        return []
    found = []
    for file in folder.iterdir():
        match = CHUNK_PATTERN.match(file.name)
        if match:
            found.append(((int(match[2]), int(match[1]), int(match[3])), file))
    return [file for _, file in sorted(found)]


def _read_index(chunk: Path, meta: dict[str, Any] | None = None) -> tuple[list[str], np.ndarray]:
    """The ids and row offsets of a chunk, read from its header (and the small ``offsets``).

    With ``meta`` (the store's ``meta.json``), the chunk's feature width and whether it holds
    class probabilities are checked against it, from the header only.

    Raises:
        ValueError: one line naming ``chunk``, when it is cut short or not a features chunk,
            or does not match ``meta``.
    """
    from safetensors import safe_open

    try:
        with safe_open(str(chunk), framework="numpy") as handle:
            try:
                ids = json.loads(handle.metadata()["ids"])
            except (KeyError, TypeError, json.JSONDecodeError):
                raise _broken_chunk(chunk, "no list of ids in its header") from None
            offsets = handle.get_tensor("offsets")
            if meta is not None:
                _check_chunk_shapes(chunk, handle, meta)
    except Exception as exc:  # safetensors' own errors (header too small, file cut short)
        if type(exc).__name__ not in ("SafetensorError", "HeaderTooLarge", "InvalidHeader"):
            raise
        raise _broken_chunk(chunk, str(exc)) from None
    if len(offsets) != len(ids) + 1:
        raise _broken_chunk(chunk, f"{len(ids)} ids but {len(offsets)} offsets")
    return ids, offsets


def _broken_chunk(chunk: Path, detail: str) -> ValueError:
    detail = " ".join(detail.split())
    return ValueError(
        f"{chunk}: not a complete features chunk ({detail}); delete it and rerun "
        "unimo features to recompute its images"
    )


def _check_chunk_shapes(chunk: Path, handle: Any, meta: dict[str, Any]) -> None:
    """Raise ``ValueError`` when ``chunk`` holds features of another kind than ``meta`` says
    (e.g. shard folders of two extractors copied together)."""
    width = handle.get_slice("feats").get_shape()[1]
    has_probs = "class_probs" in set(handle.keys())
    problem = None
    if width != meta["dim"]:
        problem = f"{width}-d features, but the store's meta.json says dim {meta['dim']}"
    elif has_probs != bool(meta.get("has_class_probs")):
        problem = (
            f"{'has' if has_probs else 'has no'} class_probs, but the store's meta.json says "
            f"has_class_probs {bool(meta.get('has_class_probs'))}"
        )
    elif has_probs and handle.get_slice("class_probs").get_shape()[1] != meta["num_classes"]:
        classes = handle.get_slice("class_probs").get_shape()[1]
        problem = (
            f"{classes} class probabilities, but the store's meta.json says "
            f"num_classes {meta['num_classes']}"
        )
    if problem:
        raise ValueError(
            f"{chunk}: {problem}; the chunk comes from another kind of features: move it out "
            "of the store (or re-extract into a fresh folder)"
        )


def _same(key: str, stored: Any, wanted: Any) -> bool:
    """Whether a :data:`COMPATIBLE_KEYS` value of a store matches this run's.

    ``import:PATH`` extractors are named by absolute path; a store written when the name kept
    the path as typed (relative) matches when that path, from here, is the same folder or file.
    """
    if stored == wanted:
        return True
    if key != "extractor" or not isinstance(stored, str) or not isinstance(wanted, str):
        return False
    prefix = "import:"
    if not (stored.startswith(prefix) and wanted.startswith(prefix)):
        return False
    return Path(stored[len(prefix) :]).resolve() == Path(wanted[len(prefix) :]).resolve()


def write_chunk(
    target: str | os.PathLike,
    items: list[tuple[str, VisualFeatures]],
    dtype: np.dtype | str,
    class_probs: bool,
) -> None:
    """Write ``items`` as one chunk file (the format above) atomically: serialised in
    memory, then ``.tmp``, fsync and rename, so it gets the umask's permissions
    (safetensors' ``save_file`` would make it 0600) and survives a power loss whole."""
    from safetensors.numpy import save

    ids = [image_id for image_id, _ in items]
    values = [item for _, item in items]
    counts = [len(item.feats) for item in values]
    tensors = {
        "feats": np.ascontiguousarray(np.concatenate([i.feats for i in values]), dtype),
        "boxes": np.ascontiguousarray(np.concatenate([i.boxes for i in values]), np.float32),
        "offsets": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
    }
    if class_probs:
        tensors["class_probs"] = np.concatenate([i.class_probs for i in values]).astype(np.float32)
    data = save(tensors, metadata={"ids": json.dumps(ids)})
    with atomic_write(target, "wb") as handle:
        handle.write(data)


def read_chunk(path: str | os.PathLike) -> list[tuple[str, VisualFeatures]]:
    """Every ``(image id, features)`` of one chunk file, in chunk order, with the arrays as
    stored (``feats`` in the chunk's dtype)."""
    from safetensors.numpy import load_file

    ids, _ = _read_index(Path(path))
    tensors = load_file(str(path))
    offsets = tensors["offsets"]
    probs = tensors.get("class_probs")
    return [
        (
            image_id,
            VisualFeatures(
                tensors["feats"][offsets[k] : offsets[k + 1]],
                tensors["boxes"][offsets[k] : offsets[k + 1]],
                None if probs is None else probs[offsets[k] : offsets[k + 1]],
            ),
        )
        for k, image_id in enumerate(ids)
    ]


class FeatureStoreWriter:
    """Append images to a store in chunks; resumable and shardable.

    Args:
        path: the store folder (created if needed).
        meta: what the extractor is: at least ``extractor`` (str) and ``dim`` (int); also
            ``tokens`` (tokens per image, or ``None`` when it varies) and ``num_classes``.
            Written to ``meta.json``; an existing store must agree on :data:`COMPATIBLE_KEYS`.
        shard: which ``--shard i/n`` this writer is (names its chunks).
        chunk_size: images per chunk file.
        dtype: ``"float16"`` (default, half the disk) or ``"float32"`` for ``feats``.
        resume: keep the chunks already there and skip their ids (default); ``False`` removes
            this shard's chunks first.

    Use :attr:`done` to skip finished images, :meth:`add` per image, :meth:`close` at the end
    (or a ``with`` block). Only whole chunks reach the disk, so at most ``chunk_size`` images
    are recomputed after a kill.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        meta: dict[str, Any],
        *,
        shard: Shard | None = None,
        chunk_size: int = 256,
        dtype: str = "float16",
        resume: bool = True,
    ):
        if dtype not in ("float16", "float32"):
            raise ValueError(f"dtype must be float16 or float32, got {dtype!r}")
        self.path = Path(path)
        self.shard = shard or Shard()
        self.chunk_size = chunk_size
        self.dtype = np.dtype(dtype)
        self.meta = {
            "format": FORMAT,
            "version": VERSION,
            "tokens": None,
            "num_classes": 0,
            **meta,
            "dtype": dtype,
            "has_class_probs": bool(meta.get("num_classes")),
        }
        (self.path / "chunks").mkdir(parents=True, exist_ok=True)
        self._check_or_write_meta()
        prefix = f"s{self.shard.index}of{self.shard.count}-"
        mine = [c for c in list_chunks(self.path) if c.name.startswith(prefix)]
        if not resume:
            for chunk in mine:
                chunk.unlink()
            mine = []
        self.done: set[str] = set()
        for chunk in list_chunks(self.path):  # every shard's ids count as done
            self.done.update(_read_index(chunk)[0])
        self._next = 1 + max((int(CHUNK_PATTERN.match(c.name)[3]) for c in mine), default=-1)
        self._prefix = prefix
        self._pending: list[tuple[str, VisualFeatures]] = []
        self.written = 0

    def _check_or_write_meta(self) -> None:
        """Refuse a store of another kind (:data:`COMPATIBLE_KEYS`), whether or not this run
        resumes: shards share the folder, so ``--no-resume`` is no way out. The record is the
        store's resume manifest (``FEATURES/manifest.json``, :mod:`unimo_kit.utils.manifest`);
        a store made before it has only ``meta.json``, which is read once into one (and
        stays: it describes the store to readers)."""
        path = manifest_path(self.path, folder=True)
        meta_path = self.path / "meta.json"
        wanted = Manifest(MANIFEST_STAGE, dict(self.meta))
        if not path.is_file() and meta_path.is_file():
            old = json.loads(meta_path.read_text(encoding="utf-8"))
            write_manifest(path, Manifest(MANIFEST_STAGE, old))
        saved = read_manifest(path)
        if saved is not None:  # an import: folder named otherwise (relative, as typed)
            name = saved.settings.get("extractor")
            if _same("extractor", name, self.meta.get("extractor")):
                wanted.settings["extractor"] = name
        try:
            check_or_write(
                path,
                wanted,
                resume=True,
                has_output=path.is_file(),
                output=self.path,
                keys=COMPATIBLE_KEYS,
            )
        except ManifestMismatch:
            diff = wanted.differences(saved, COMPATIBLE_KEYS)
            raise ValueError(
                f"{self.path} holds features of another kind ({'; '.join(diff)}); use another "
                f"output folder, or remove {self.path} to start it afresh"
            ) from None
        if not meta_path.is_file():
            with atomic_write(meta_path) as handle:
                handle.write(json.dumps(self.meta, indent=2) + "\n")

    def add(
        self,
        image_id: str,
        feats: np.ndarray,
        boxes: np.ndarray,
        class_probs: np.ndarray | None = None,
    ) -> None:
        """Queue one image's tokens: ``feats`` ``(N, F)``, ``boxes`` ``(N, 5)``, optional
        ``class_probs`` ``(N, C)``; a chunk is written every ``chunk_size`` images."""
        feats = np.asarray(feats)
        boxes = np.asarray(boxes, dtype=np.float32)
        if feats.ndim != 2 or feats.shape[1] != self.meta["dim"]:
            raise ValueError(
                f"{image_id}: feats must be (N, {self.meta['dim']}), got {feats.shape}"
            )
        if boxes.shape != (feats.shape[0], 5):
            raise ValueError(f"{image_id}: boxes must be ({feats.shape[0]}, 5), got {boxes.shape}")
        if self.meta["has_class_probs"]:
            if class_probs is None or np.shape(class_probs) != (
                feats.shape[0],
                self.meta["num_classes"],
            ):
                raise ValueError(
                    f"{image_id}: class_probs must be "
                    f"({feats.shape[0]}, {self.meta['num_classes']})"
                )
            class_probs = np.asarray(class_probs, dtype=np.float32)
        self._pending.append((image_id, VisualFeatures(feats, boxes, class_probs)))
        self.done.add(image_id)
        if len(self._pending) >= self.chunk_size:
            self.flush()

    def flush(self) -> None:
        """Write the queued images as one chunk (atomic: ``.tmp``, fsync, then rename)."""
        if not self._pending:
            return
        target = self.path / "chunks" / f"{self._prefix}{self._next:06d}.safetensors"
        write_chunk(target, self._pending, self.dtype, self.meta["has_class_probs"])
        self._next += 1
        self.written += len(self._pending)
        self._pending = []

    def close(self) -> None:
        self.flush()

    def __enter__(self) -> FeatureStoreWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        # On an exception the queued (unwritten) images are dropped: they are redone on resume.
        if exc_type is None:
            self.close()


def stored_key(
    store: Container[str], image: str | os.PathLike, image_id: str | None = None
) -> str | None:
    """The key a features store holds an image under, or ``None``: the record's id when given
    and stored (``unimo features`` keys by record id), else the path as written, else the file
    name without its extension (``images/syn-000012.png`` -> ``syn-000012``).

    Args:
        store: a :class:`FeatureStore` or any mapping of ids to features.
        image: the image path.
        image_id: the id of the record the image belongs to, when known.
    """
    for key in (image_id, os.fspath(image), Path(image).stem):
        if key is not None and key in store:
            return key
    return None
