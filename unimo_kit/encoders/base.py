"""The encode contract every encoder follows (sentence-transformers' ``encode``).

- a ``str`` (a path or a PIL image for images) in gives ``(d,)``; a list, or any other iterable
  (tuple, numpy array, generator), gives ``(n, d)``;
- texts go in batches sorted by length, longest first, and the input order is restored;
- no gradients; ``float32`` numpy out, rows L2-normalised (inner product = cosine);
- a text that no tokenizer can take (a lone surrogate such as ``"\\ud800"``, a non-``str``) is
  refused before any batch runs with one :class:`EncoderInputError` naming its position, so a
  stage can report ``FILE:LINE`` instead of a tokenizer traceback.

Subclasses implement :meth:`Encoder._encode_text_batch` and/or
:meth:`Encoder._encode_image_batch` (one batch, any scale: this class normalises), or override
:meth:`Encoder._encode_texts` when their model batches on its own.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

TEXT = "text"
IMAGE = "image"


class EncoderError(ValueError):
    """A bad encoder spec, or an input of a modality the encoder does not have."""


class EvalError(ValueError):
    """A bad evaluation input; the message names the file and what is wrong.

    Raised for a missing or mismatched checkpoint and for visual features of the wrong size
    (here, by :class:`~unimo_kit.encoders.unimo.UnimoEncoder`), and for an empty test set or a
    bad config (by :mod:`unimo_kit.eval`). Defined in this layer so that the encoders need
    nothing from ``unimo_kit.eval``; :mod:`unimo_kit.eval.errors` re-exports this class (the
    same object, so ``except EvalError`` catches it from either import).
    """


class EncoderInputError(EncoderError):
    """One input an encoder cannot take; ``index`` is its position in the call's inputs.

    Attributes:
        index: 0-based position of the bad input (a stage maps it to ``FILE:LINE``).
        reason: what is wrong with it, without the position.
    """

    def __init__(self, index: int, reason: str):
        self.index = index
        self.reason = reason
        super().__init__(f"input {index}: {reason}")


@dataclass
class EncodedImages:
    """Result of :meth:`Encoder.encode_image_files`.

    ``vectors[i]`` belongs to ``images[i]``; rows of images that failed to load are zero and
    ``ok[i]`` is False, with the reason in ``failures``.
    """

    vectors: np.ndarray  # (n, d) float32, L2-normalised rows; zero rows where not ok
    ok: np.ndarray  # (n,) bool
    failures: dict[int, str] = field(default_factory=dict)  # input position -> reason


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), as float32."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)  # (n, 1)
    return x / np.maximum(norms, 1e-12)


def check_texts(texts: Sequence[Any]) -> list[str]:
    """``texts`` as a list of ``str`` that every tokenizer can encode.

    Raises:
        EncoderInputError: the first text that is not a ``str`` or holds a character with no
            UTF-8 form (a lone surrogate: valid in JSON as ``"\\ud800"``, fatal to tokenizers).
    """
    out = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise EncoderInputError(i, f"expected a str, got {type(text).__name__} {text!r:.80}")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            bad = text[exc.start]
            raise EncoderInputError(
                i,
                f"text holds {bad!r} (U+{ord(bad):04X}) at character {exc.start}, which has "
                "no UTF-8 form (a lone surrogate); no tokenizer can encode it",
            ) from None
        out.append(text)
    return out


def is_pil_image(item: Any) -> bool:
    """Whether ``item`` is a PIL image (PIL imported only when it is loaded already)."""
    import sys

    image = sys.modules.get("PIL.Image")
    return image is not None and isinstance(item, image.Image)


class Encoder:
    """Base class of every encoder: batching, ordering, no-grad and normalisation.

    Attributes:
        spec: the string that names this encoder (stored in index metadata).
        dim: output dimension.
        modalities: the inputs it can embed, a subset of ``("text", "image")``.
        batch_size: inputs per forward pass when a call does not say.
        name: the label of its results (default: ``spec``).
    """

    spec: str = ""
    dim: int = 0
    modalities: tuple[str, ...] = ()
    batch_size: int = 32
    _name: str | None = None

    @property
    def name(self) -> str:
        """The label of this encoder's results (``spec`` unless set)."""
        return self._name or self.spec

    @name.setter
    def name(self, value: str) -> None:
        self._name = value

    # ------------------------------------------------------------------ public API
    def encode(
        self,
        inputs: str | os.PathLike | Iterable[Any],
        *,
        modality: str | None = None,
        batch_size: int | None = None,
        show_progress_bar: bool = False,
    ) -> np.ndarray:
        """Embed texts, or images with ``modality="image"`` (sentence-transformers' ``encode``).

        Args:
            inputs: one input (a ``str``, a path, or a PIL image with ``modality="image"``),
                or any iterable of them (list, tuple, numpy array, generator...).
            modality: ``"text"`` or ``"image"``; default: the encoder's first modality.
            batch_size: inputs per forward pass (default: :attr:`batch_size`).
            show_progress_bar: a tqdm bar on stderr.

        Returns:
            ``(d,)`` for a single input, else ``(n, d)``; float32, L2-normalised.

        Raises:
            EncoderError: wrong modality for this encoder.
            EncoderInputError: a text no tokenizer can take (its position named).
            unimo_kit.data.images.ImageError: an image could not be loaded (use
                :meth:`encode_image_files` to skip bad images instead).
        """
        modality = modality or self.modalities[0]
        if modality == TEXT:
            return self.encode_texts(
                inputs, batch_size=batch_size, show_progress_bar=show_progress_bar
            )
        if modality == IMAGE:
            return self.encode_images(
                inputs, batch_size=batch_size, show_progress_bar=show_progress_bar
            )
        raise EncoderError(f"unknown modality {modality!r}: expected 'text' or 'image'")

    def encode_texts(
        self,
        texts: str | Iterable[str],
        *,
        batch_size: int | None = None,
        show_progress_bar: bool = False,
    ) -> np.ndarray:
        """Embed one text or many.

        Args:
            texts: a ``str``, or an iterable of them.
            batch_size: texts per forward pass (default: :attr:`batch_size`).
            show_progress_bar: a tqdm bar on stderr.

        Returns:
            ``(d,)`` for a ``str``, else ``(n, d)`` in input order; float32, L2-normalised.

        Raises:
            EncoderError: the encoder embeds no text.
            EncoderInputError: a text that is not a ``str`` or cannot be encoded (named by
                its position), before any batch runs.
        """
        single = isinstance(texts, str)
        self._require(TEXT)
        items = check_texts([texts] if single else list(texts))
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        with _no_grad():
            out = self._encode_texts(items, batch_size or self.batch_size, show_progress_bar)
        out = l2_normalize(out)
        return out[0] if single else out

    def encode_text(
        self,
        texts: Sequence[str],
        *,
        batch_size: int | None = None,
        show_progress_bar: bool = False,
    ) -> np.ndarray:
        """Alias of :meth:`encode_texts` (the index stage's original name)."""
        return self.encode_texts(texts, batch_size=batch_size, show_progress_bar=show_progress_bar)

    def encode_images(
        self,
        images: Any,
        *,
        batch_size: int | None = None,
        show_progress_bar: bool = False,
    ) -> np.ndarray:
        """Embed one image or many (paths or PIL images); a bad image is an error.

        Args:
            images: a path or a PIL image, or an iterable of them.
            batch_size: images per forward pass (default: :attr:`batch_size`).
            show_progress_bar: a tqdm bar on stderr.

        Returns:
            ``(d,)`` for one image, else ``(n, d)`` in input order; float32, L2-normalised.

        Raises:
            EncoderError: the encoder embeds no images.
            unimo_kit.data.images.ImageError: an image is missing or corrupt.
        """
        single = isinstance(images, (str, os.PathLike)) or is_pil_image(images)
        items = [images] if single else list(images)
        encoded = self.encode_image_files(
            items, batch_size=batch_size, show_progress_bar=show_progress_bar, strict=True
        )
        return encoded.vectors[0] if single else encoded.vectors

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
        """Embed images given as paths or PIL images; bad files are skipped and reported.

        Args:
            images: paths (decoded with ``loader``) or PIL images.
            batch_size: images per forward pass (default: :attr:`batch_size`).
            show_progress_bar: a tqdm bar on stderr.
            strict: raise on the first missing or corrupt image instead of skipping it.
            loader: an :class:`~unimo_kit.data.images.ImageLoader` whose ``stats`` count the
                failures (default: a fresh one).
            ids: the ids of the records the images belong to, for encoders that look images
                up by id (``features:DIR``); encoders that decode pixels ignore them.

        Returns:
            :class:`EncodedImages` (vectors in input order; zero rows where loading failed).
        """
        from unimo_kit.data.images import ImageLoader

        self._require(IMAGE)
        size = batch_size or self.batch_size
        loader = loader or ImageLoader(strict=strict)
        n = len(images)
        vectors = np.zeros((n, self.dim), dtype=np.float32)
        ok = np.zeros(n, dtype=bool)
        failures: dict[int, str] = {}
        pool = _thread_pool()
        with _no_grad():
            for start in progress(range(0, n, size), show_progress_bar, "encode images"):
                chunk = list(range(start, min(start + size, n)))
                loaded = list(pool.map(lambda i: _load_image(images[i], loader), chunk))
                good = []
                for i, (image, why) in zip(chunk, loaded, strict=True):
                    if why is None:
                        good.append((i, image))
                    else:
                        failures[i] = why
                if not good:
                    continue
                rows = [i for i, _ in good]
                vectors[rows] = self._encode_image_batch([image for _, image in good])
                ok[rows] = True
        vectors[ok] = l2_normalize(vectors[ok])
        return EncodedImages(vectors=vectors, ok=ok, failures=failures)

    # ------------------------------------------------------------------ subclass hooks
    def _encode_texts(self, texts: list[str], batch_size: int, show_progress: bool) -> np.ndarray:
        """``(n, d)`` for checked, non-empty ``texts``: length-sorted batches of
        :meth:`_encode_text_batch`, order restored. Override when the model batches itself."""
        order = np.argsort([-len(t) for t in texts], kind="stable")  # longest first
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in progress(range(0, len(texts), batch_size), show_progress, "encode"):
            rows = order[start : start + batch_size]
            out[rows] = self._encode_text_batch([texts[i] for i in rows])
        return out

    def _encode_text_batch(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def _encode_image_batch(self, images: list[Any]) -> np.ndarray:
        raise NotImplementedError

    def _require(self, modality: str) -> None:
        if modality not in self.modalities:
            raise EncoderError(
                f"encoder {self.spec!r} embeds {' and '.join(self.modalities)}, not {modality}"
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(spec={self.spec!r}, dim={self.dim})"


# --------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def _no_grad() -> Iterator[None]:
    """``torch.inference_mode`` when torch is loaded already (a numpy-only encoder needs none)."""
    import sys

    torch = sys.modules.get("torch")
    with torch.inference_mode() if torch is not None else contextlib.nullcontext():
        yield


def _load_image(item: Any, loader: Any) -> tuple[Any, str | None]:
    """``(PIL image, None)`` or ``(None, reason)``."""
    if not isinstance(item, (str, os.PathLike)):
        return item.convert("RGB"), None
    before = loader.stats.bad
    image = loader.load(item)
    if image is not None:
        return image, None
    stats = loader.stats
    missing = not os.path.isfile(item)
    return None, "missing" if missing else "corrupt" if stats.bad > before else "unreadable"


@functools.lru_cache(maxsize=1)
def _thread_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2)))


def progress(iterable: Any, enabled: bool, desc: str) -> Any:
    """``iterable``, behind a tqdm bar on stderr when ``enabled``."""
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, unit="batch", leave=False)
