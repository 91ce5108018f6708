"""``unimo:CHECKPOINT``: a unimo_kit checkpoint's CMCL embeddings ([CLS] of the text alone,
[IMG] of the image alone; one space for both).

Visual tokens come from a features store (an image looked up by its path, then by its file
stem) or are extracted on the fly with the extractor the checkpoint was trained with (read from
its run: :func:`run_extractor`). The UNIMO-specific scores (caption likelihood, token alignment,
matching) live in :class:`unimo_kit.eval.scorers.UnimoScorer`, a subclass.

A checkpoint is loaded through :func:`load_checkpoint_checked`, which turns a missing,
mismatched or corrupt checkpoint into one :class:`~unimo_kit.encoders.base.EvalError` naming
the file (``unimo_kit.eval.errors`` re-exports both).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from unimo_kit.encoders.base import (
    IMAGE,
    TEXT,
    Encoder,
    EvalError,
    is_pil_image,
    l2_normalize,
    progress,
)

logger = logging.getLogger(__name__)

WEIGHTS = "model.safetensors"  # a checkpoint folder's weights file
CONFIG = "config.json"  # ... and its model config, beside it


def checkpoint_files(path: str | os.PathLike) -> tuple[Path, Path]:
    """The ``(weights, config)`` files of a checkpoint folder or weights file.

    Raises:
        EvalError: the path does not exist or is not a unimo checkpoint.
    """
    path = Path(path)
    if not path.exists():
        raise EvalError(f"checkpoint {path} does not exist")
    folder = path.parent if path.is_file() else path
    weights = path if path.is_file() else folder / WEIGHTS
    config = folder / CONFIG
    if path.is_dir() and not weights.exists():
        nested = sorted(folder.glob(f"*/{WEIGHTS}"))
        hint = f"; did you mean {nested[-1].parent}?" if nested else ""
        raise EvalError(f"checkpoint {folder}: no {WEIGHTS} in it{hint}")
    if weights.suffix != ".safetensors":
        raise EvalError(f"checkpoint {weights}: expected a {WEIGHTS} file (safetensors)")
    if not config.exists():
        raise EvalError(f"checkpoint {folder}: {WEIGHTS} without its {CONFIG}")
    return weights, config


def load_checkpoint_checked(path: str | os.PathLike, device: str | None = None) -> Any:
    """:func:`unimo_kit.model.load_checkpoint` with clear errors.

    Raises:
        EvalError: missing files, an unreadable config, weights that do not match the config
            (a "mismatched checkpoint"), or a corrupt weights file.
    """
    from unimo_kit.model import load_checkpoint

    weights, config = checkpoint_files(path)
    try:
        json.loads(config.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise EvalError(f"checkpoint config {config} is not valid JSON ({exc})") from None
    try:
        return load_checkpoint(weights, device=device or "cpu")
    except RuntimeError as exc:  # load_state_dict size / key mismatch
        first = str(exc).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:3])
        raise EvalError(
            f"checkpoint {weights} does not match its {config.name} ({detail[:300]})"
        ) from None
    except (ValueError, TypeError) as exc:  # unknown config fields, bad values
        raise EvalError(f"checkpoint {config}: {exc}") from None
    except Exception as exc:  # safetensors header errors and alike
        if type(exc).__name__ in ("SafetensorError", "HeaderTooLarge", "InvalidHeader"):
            raise EvalError(
                f"checkpoint {weights} is not a readable safetensors file ({exc})"
            ) from None
        raise


def check_feature_dim(model: Any, dim: int, source: str) -> None:
    """Raise :class:`EvalError` when visual features of size ``dim`` cannot feed ``model``."""
    expected = model.config.visual_feat_dim
    if dim != expected:
        raise EvalError(
            f"{source} gives {dim}-d visual features but the checkpoint expects "
            f"visual_feat_dim={expected}; use the features/extractor it was trained with"
        )


def _run_configs(checkpoint: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """The JSON ``config.json`` files in the checkpoint folder and up to three folders above
    (the checkpoint's model config comes first, then the training run's), nearest first."""
    here = Path(checkpoint)
    for folder in (here, *list(here.parents)[:3]):
        try:
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(config, dict):
            yield config


def run_extractor(checkpoint: str | os.PathLike) -> str | None:
    """The extractor a checkpoint was trained with, read from its run: the training
    ``config.json`` above the checkpoint names the features store, whose ``meta.json`` names
    the extractor.

    Returns:
        The extractor spec, or ``None`` when it cannot be found.
    """
    for config in _run_configs(checkpoint):
        features = config.get("features")
        if not isinstance(features, str) or not features:
            continue
        try:
            meta = json.loads((Path(features) / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict) and isinstance(meta.get("extractor"), str):
            return meta["extractor"]
    return None


def run_trained_objective(checkpoint: str | os.PathLike, objective: str) -> bool | None:
    """Whether the checkpoint's training run had ``objective`` (a training-config flag such
    as ``"seq2seq"`` or ``"token_alignment"``) on, from the run's ``config.json``.

    Returns:
        True / False, or ``None`` when no training config is found.
    """
    for config in _run_configs(checkpoint):
        if "steps" in config:  # a TrainConfig, not a model config
            return bool(config.get(objective, False))
    return None


def _warn_other_extractor(checkpoint: str | os.PathLike, features: Any) -> None:
    """Warn (one line; not refused) when the checkpoint's run trained on another extractor's
    features than ``features`` holds: the dimensions agree, but the scores mean little."""
    trained = run_extractor(checkpoint)
    store = features.meta.get("extractor")
    if trained is not None and store is not None and trained != store:
        logger.warning(
            "%s was trained on %s features, but %s holds %s features; its scores may mean "
            "little (extract the test images with --extractor %s)",
            checkpoint,
            trained,
            features.path,
            store,
            trained,
        )


def extract_images(
    extractor: Any, images: Sequence[Any], batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run an image extractor over image files or PIL images.

    Args:
        extractor: a :class:`unimo_kit.features.extractors.ImageExtractor`.
        images: image files (opened one batch at a time) or PIL images.
        batch_size: images per forward pass.

    Returns:
        feats (B, N, F) float32, boxes (B, N, 5) float32, mask (B, N) bool — padded to the
        longest when the extractor gives a varying number of tokens.
    """
    import torch
    from PIL import Image

    items = []
    for start in range(0, len(images), batch_size):
        pixels = []
        for item in images[start : start + batch_size]:
            if isinstance(item, Image.Image):
                pixels.append(extractor.preprocess(item))  # (3, S, S)
                continue
            with Image.open(item) as image:
                pixels.append(extractor.preprocess(image))  # (3, S, S)
        items.extend(extractor(torch.stack(pixels)))
    n = max((len(it.feats) for it in items), default=0)
    dim = items[0].feats.shape[1] if items else int(extractor.dim)
    feats = np.zeros((len(items), n, dim), dtype=np.float32)
    boxes = np.zeros((len(items), n, 5), dtype=np.float32)
    mask = np.zeros((len(items), n), dtype=bool)
    for i, it in enumerate(items):
        k = len(it.feats)
        feats[i, :k], boxes[i, :k], mask[i, :k] = it.feats, it.boxes, True
    return feats, boxes, mask


def image_key(image: Any) -> Any:
    """A hashable key of an image path or an in-memory (PIL) image."""
    return image if isinstance(image, (str, os.PathLike)) else id(image)


class UnimoEncoder(Encoder):
    """CMCL embeddings of a unimo checkpoint behind the encode contract.

    Args:
        checkpoint: a checkpoint folder (``model.safetensors`` + ``config.json``) or its weights
            file; or an already loaded model (tests, notebooks).
        features: a :class:`unimo_kit.features.FeatureStore` (or its folder) holding the
            images' visual tokens; an image is looked up by its path, then by its file stem
            (``images/syn-000012.png`` -> ``syn-000012``, the id the synthetic world and
            ``images.jsonl`` use). ``None``: features are extracted on the fly.
        extractor: for on-the-fly features: an extractor spec of
            :func:`unimo_kit.features.build_extractor` or a built extractor; ``None`` (default)
            takes the one recorded in the checkpoint's run (:func:`run_extractor`), else
            ``effnet``. It must be the one the checkpoint was trained with.
        device: torch device (default: cuda when visible, else cpu).
        batch_size: texts / images per forward pass when a call does not say.
        max_text_tokens: longer captions are truncated (word pieces, [CLS]/[SEP] included).
        name: the label of its results (default ``unimo:CHECKPOINT``).
    """

    modalities = (TEXT, IMAGE)

    def __init__(
        self,
        checkpoint: str | os.PathLike | Any,
        features: Any = None,
        *,
        extractor: str | Any = None,
        device: str | None = None,
        batch_size: int = 64,
        max_text_tokens: int = 64,
        name: str | None = None,
    ):
        from unimo_kit.model import load_tokenizer
        from unimo_kit.resources import torch_device

        self.device = torch_device(device)
        if isinstance(checkpoint, (str, os.PathLike)):
            self.model = load_checkpoint_checked(checkpoint, device=self.device)
            self.spec = f"unimo:{checkpoint}"
        else:
            self.model = checkpoint.to(self.device).eval()
            self.spec = "unimo"
        self.name = name or self.spec
        self.dim = int(self.model.config.output_dim)
        self.tokenizer = load_tokenizer(self.model.config)
        self.batch_size = batch_size
        self.max_text_tokens = min(max_text_tokens, self.model.config.max_position_embeddings)
        if isinstance(features, (str, os.PathLike)):
            from unimo_kit.features import FeatureStore

            features = FeatureStore(features)
        if features is not None:
            check_feature_dim(self.model, int(features.dim), f"features store {features.path}")
            if isinstance(checkpoint, (str, os.PathLike)):
                _warn_other_extractor(checkpoint, features)
        self.features = features
        if extractor is None and isinstance(checkpoint, (str, os.PathLike)):
            extractor = run_extractor(checkpoint)
        self._extractor = extractor or "effnet"
        self._checkpoint_path = checkpoint if isinstance(checkpoint, (str, os.PathLike)) else None

    def trained_with(self, objective: str) -> bool | None:
        """Whether the checkpoint's run trained ``objective`` (``"seq2seq"``,
        ``"token_alignment"``, ...; :func:`run_trained_objective`); ``None`` when unknown
        (no training config found, or a model object)."""
        if self._checkpoint_path is None:
            return None
        return run_trained_objective(self._checkpoint_path, objective)

    @property
    def extractor(self) -> Any:
        """The on-the-fly extractor, built on first use."""
        if isinstance(self._extractor, str):
            from unimo_kit.features import build_extractor

            spec = self._extractor
            self._extractor = build_extractor(spec, device=self.device)
            check_feature_dim(self.model, int(self._extractor.dim), f"extractor {spec!r}")
        return self._extractor

    # ------------------------------------------------------------------ texts
    def text_tensors(self, texts: list[str]) -> tuple[Any, Any]:
        """``[CLS] text [SEP]`` ids and attention mask (B, T), padded to the longest and cut at
        ``max_text_tokens``, on the encoder's device."""
        enc = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.max_text_tokens,
            return_tensors="pt",
        )
        return enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device)

    def _encode_text_batch(self, texts: list[str]) -> np.ndarray:
        z = self.model.encode_text(*self.text_tensors(texts))  # (B, E)
        return z.float().cpu().numpy()

    # ------------------------------------------------------------------ images
    def encode_images(
        self, images: Any, *, batch_size: int | None = None, show_progress_bar: bool = False
    ) -> np.ndarray:
        """Image [IMG] CMCL embeddings of paths (looked up in the features store when there is
        one) or PIL images (always extracted); see :meth:`Encoder.encode_images`."""
        single = isinstance(images, (str, os.PathLike)) or is_pil_image(images)
        items = [images] if single else list(images)
        self._require(IMAGE)
        size = batch_size or self.batch_size
        out = np.zeros((len(items), self.dim), dtype=np.float32)
        import torch

        with torch.inference_mode():
            for start in progress(range(0, len(items), size), show_progress_bar, "encode"):
                sl = slice(start, start + size)
                z = self.model.encode_image(*self.visual_tensors(items[sl]))  # (B, E)
                out[sl] = z.float().cpu().numpy()
        out = l2_normalize(out)
        return out[0] if single else out

    def _encode_image_batch(self, images: list[Any]) -> np.ndarray:
        z = self.model.encode_image(*self.visual_tensors(images))  # (B, E), decoded images
        return z.float().cpu().numpy()

    def _store_lookup(self, image: str) -> dict[str, np.ndarray]:
        from unimo_kit.features.store import stored_key

        key = stored_key(self.features, image)
        if key is None:
            raise KeyError(
                f"image {image!r} (id {Path(image).stem!r}) is not in the features store"
            )
        return self.features[key]

    def visual_tokens(
        self, images: list[Any], cache: dict[Any, dict[str, np.ndarray]] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Padded visual tokens of ``images`` (paths, or PIL images, which are always
        extracted on the fly).

        Args:
            images: the images of one batch.
            cache: for on-the-fly features: image key -> its tokens, read and filled here, so
                that a caller scoring an image in several batches extracts it once. Each
                distinct image of one call is extracted once in any case.

        Returns:
            feats (B, N, F), boxes (B, N, 5), mask (B, N).
        """
        if self.features is None or any(is_pil_image(im) for im in images):
            items = self._extract(images, {} if cache is None else cache)
        else:
            items = [self._store_lookup(im) for im in images]
        n = max(len(it["feats"]) for it in items)
        dim = items[0]["feats"].shape[1]
        feats = np.zeros((len(items), n, dim), dtype=np.float32)
        boxes = np.zeros((len(items), n, 5), dtype=np.float32)
        mask = np.zeros((len(items), n), dtype=bool)
        for i, it in enumerate(items):
            k = len(it["feats"])
            feats[i, :k] = it["feats"]
            boxes[i, :k] = it["boxes"]
            mask[i, :k] = True
        return feats, boxes, mask

    def _extract(
        self, images: list[Any], cache: dict[Any, dict[str, np.ndarray]]
    ) -> list[dict[str, np.ndarray]]:
        """Tokens of each image, extracting those not in ``cache`` (once each) into it."""
        keys = [image_key(im) for im in images]
        missing = {key: im for key, im in zip(keys, images, strict=True) if key not in cache}
        if missing:
            feats, boxes, mask = extract_images(
                self.extractor, list(missing.values()), batch_size=self.batch_size
            )
            for row, key in enumerate(missing):
                k = int(mask[row].sum())  # valid tokens come first
                cache[key] = {"feats": feats[row, :k], "boxes": boxes[row, :k]}
        return [cache[key] for key in keys]

    def visual_tensors(
        self, images: list[Any], cache: dict[Any, dict[str, np.ndarray]] | None = None
    ) -> tuple[Any, Any, Any]:
        """:meth:`visual_tokens` as float32 / bool tensors on the encoder's device."""
        import torch

        feats, boxes, mask = self.visual_tokens(images, cache)
        feats = np.ascontiguousarray(feats, dtype=np.float32)
        return tuple(torch.from_numpy(x).to(self.device) for x in (feats, boxes, mask))
