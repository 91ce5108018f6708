"""``features:DIR``: image vectors read from a features store (``unimo features``), no CNN run.

The vector of an image is its stored grid tokens averaged over the tokens, the global average
pool that closes an image CNN. For the EfficientNet-Lite0 extractors (``effnet``,
``effnet-ms``) only the final stage's 1,280 columns are pooled, so the vector is what
``timm:tf_efficientnet_lite0`` computes on the same pixels; it differs from that encoder's
own vectors only by

- the preprocessing: the store's grid sees the whole image resized to 224×224 (so its cells
  tile the image), the timm encoder resizes to 256 and keeps the central 224×224 crop;
- the store's ``float16`` (when ``--dtype float16``, the default) rounding of each token.

For other extractors (``open_clip:...``, ``import:...``) every column of the mean token is
the vector. An image is looked up by its record's id when the caller passes it (``unimo
index build`` and ``unimo index mine`` do: ``unimo features`` stores images under their
records' ids), else by its path, else by its file name without the extension
(``images/syn-000012.png`` is ``syn-000012``); an image the store lacks fails like an
unreadable file, named by path and id. The store is opened once per encoder (again when its
files change on disk); rows are read on demand (memory-mapped). ``features:DIR`` specs are
recorded with ``DIR`` absolute (:func:`resolve_spec`), and an index build fingerprints the
store as one of its inputs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from unimo_kit.encoders.base import (
    IMAGE,
    EncodedImages,
    Encoder,
    EncoderError,
    EncoderInputError,
    is_pil_image,
    l2_normalize,
    progress,
)

#: extractors whose first 1,280 token columns are the final EfficientNet-Lite0 stage
EFFNET_EXTRACTORS = ("effnet", "effnet-ms", "effnet-random", "effnet-random-ms")
EFFNET_FINAL_DIM = 1280


#: The encoder-spec prefix of this encoder (``features:DIR``).
PREFIX = "features:"


def store_folder(spec: str) -> str | None:
    """The features store an encoder spec reads (``DIR`` of ``features:DIR``), else ``None``.

    Args:
        spec: any encoder spec.

    Returns:
        ``DIR`` as the spec writes it, or ``None`` for an encoder that reads no store.
    """
    return spec[len(PREFIX) :] if spec.startswith(PREFIX) else None


def resolve_spec(spec: str) -> str:
    """``spec`` with a ``features:DIR`` store folder made absolute (against the working
    directory), so that an index records a spec its later queries can load from anywhere;
    every other spec unchanged.

    Args:
        spec: any encoder spec.

    Returns:
        ``features:/ABSOLUTE/DIR``, or ``spec`` itself.
    """
    folder = store_folder(spec)
    return spec if folder is None else PREFIX + os.path.abspath(folder)


def pooled_columns(meta: dict[str, Any]) -> int:
    """How many leading token columns the pooled vector keeps (see the module docstring).

    Args:
        meta: the store's ``meta.json``.

    Returns:
        1,280 for the EfficientNet-Lite0 extractors, else the store's ``dim``.
    """
    if meta.get("extractor") in EFFNET_EXTRACTORS:
        return EFFNET_FINAL_DIM
    return int(meta["dim"])


class FeatureStoreEncoder(Encoder):
    """Image vectors pooled from a features store's tokens (spec ``features:DIR``).

    Args:
        rest: the store folder ``DIR`` (holds ``meta.json`` and ``chunks/``).
        device: ignored (nothing runs on a device); kept for the registry's signature.

    Raises:
        EncoderError: ``DIR`` is not a readable features store.
    """

    modalities = (IMAGE,)

    def __init__(self, rest: str, device: str | None = None):
        self.spec = f"features:{rest}"
        self._open(rest)

    def _open(self, folder: str | os.PathLike) -> None:
        """Open the store at ``folder``: :attr:`store`, :attr:`dim` and the listing of its
        files it was opened on."""
        from unimo_kit.features.store import FeatureStore

        try:
            store = FeatureStore(folder)
        except (OSError, ValueError) as exc:
            raise EncoderError(f"{self.spec}: {exc}") from exc
        dim = pooled_columns(store.meta)
        if dim > store.dim:
            raise EncoderError(
                f"{self.spec}: {store.meta.get('extractor')} tokens are "
                f"{store.dim}-d, fewer than the {dim} columns to pool"
            )
        self.store, self.dim, self._listing = store, dim, _listing(store.path)

    def refresh(self) -> None:
        """Open the store again when its files changed since it was opened (it was extracted
        again, or a resumed ``unimo features`` added chunks): the encoder is cached per spec
        (:func:`~unimo_kit.encoders.load_encoder`) and would serve the old vectors."""
        if _listing(self.store.path) != self._listing:
            self._open(self.store.path)

    def vector(self, image_id: str) -> np.ndarray:
        """The pooled, un-normalised vector ``(dim,)`` of a stored image.

        Raises:
            KeyError: ``image_id`` is not in the store (the message names both).
        """
        feats = self.store.feats(image_id)  # (N, F) float32
        return feats[:, : self.dim].mean(axis=0)  # (dim,)

    def encode_image_files(
        self,
        images: Sequence[Any],
        *,
        batch_size: int | None = None,
        show_progress_bar: bool = False,
        strict: bool = False,
        loader: Any = None,
        ids: Sequence[str] | None = None,
    ) -> EncodedImages:
        """Look images up in the store instead of decoding them (the base class's contract).

        An image fails (``ok`` False, reason in ``failures``) when its file is missing, as it
        would for a pixel encoder, or when the store holds no features of its id.

        Args:
            images: image paths (a PIL image has no id: refused).
            batch_size: unused (no forward pass); kept for the contract.
            show_progress_bar: a tqdm bar on stderr.
            strict: raise on the first failing image instead of skipping it.
            loader: an :class:`~unimo_kit.data.images.ImageLoader` whose ``stats`` count
                the images found as decoded, missing files as missing and images the store
                lacks as corrupt (unreadable), as a build's stderr summary prints them.
            ids: the records' ids (the keys ``unimo features`` stores them under), tried
                before the path and the file stem (:func:`~unimo_kit.features.store.stored_key`).

        Returns:
            :class:`EncodedImages` in input order (zero rows where not ok).

        Raises:
            EncoderInputError: a PIL image or non-path input; with ``strict``, the first
                image that fails (its position, path and id named).
        """
        self.refresh()
        n = len(images)
        vectors = np.zeros((n, self.dim), dtype=np.float32)
        ok = np.zeros(n, dtype=bool)
        failures: dict[int, str] = {}
        for i in progress(range(n), show_progress_bar, "features look-up"):
            why = self._fill(vectors, i, images[i], None if ids is None else ids[i])
            if why is None:
                ok[i] = True
            elif strict:
                raise EncoderInputError(i, f"{os.fspath(images[i])}: {why}")
            else:
                failures[i] = why
            _count(loader, images[i], why)
        vectors[ok] = l2_normalize(vectors[ok])
        return EncodedImages(vectors=vectors, ok=ok, failures=failures)

    def _fill(self, vectors: np.ndarray, row: int, image: Any, image_id: str | None) -> str | None:
        """Write the vector of ``image`` into ``vectors[row]``; ``None``, or why it failed."""
        if is_pil_image(image) or not isinstance(image, (str, os.PathLike)):
            raise EncoderInputError(
                row,
                f"{self.spec} looks images up by file name, so it takes paths, not a "
                f"{type(image).__name__}",
            )
        if not os.path.isfile(image):
            return "missing"
        from unimo_kit.features.store import stored_key

        key = stored_key(self.store, image, image_id)
        if key is None:
            named = image_id if image_id is not None else Path(image).stem
            return f"id {named!r} is not in the features store {self.store.path}"
        vectors[row] = self.vector(key)
        return None

    def _encode_image_batch(self, images: list[Any]) -> np.ndarray:
        raise EncoderError(f"{self.spec} reads stored features; it decodes no images")


def _listing(folder: Path) -> list[tuple[str, int, int, int]]:
    """``(name, inode, size, mtime_ns)`` of a store's ``meta.json`` and chunks: what tells a store
    changed on disk since it was opened."""
    files = [folder / "meta.json", *sorted((folder / "chunks").glob("*.safetensors"))]
    out = []
    for file in files:
        try:
            info = file.stat()
        except OSError:
            continue
        out.append((file.name, info.st_ino, info.st_size, info.st_mtime_ns))
    return out


def _count(loader: Any, image: Any, why: str | None) -> None:
    """Count one look-up in ``loader.stats`` (when given) as a pixel encoder's decode would:
    found as decoded, a missing file as missing, an id the store lacks as an unreadable
    file (``corrupt``, with ``path (why)``, which names the id and the store)."""
    if loader is None:
        return
    stats = loader.stats
    if why is None:
        stats.ok += 1
    elif why == "missing":
        stats.missing += 1
        if len(stats.missing_paths) < stats.max_examples:
            stats.missing_paths.append(os.fspath(image))
    else:
        stats.corrupt += 1
        if len(stats.corrupt_paths) < stats.max_examples:
            stats.corrupt_paths.append(f"{os.fspath(image)} ({why})")
