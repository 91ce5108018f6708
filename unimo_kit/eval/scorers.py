"""Scorers: anything that embeds texts and images into one space for retrieval and compositional
evaluation.

A :class:`Scorer` has a ``name`` and two methods returning L2-normalised float32 numpy arrays;
the similarity of an image and a text is the dot product of their embeddings. Implementations:

- :class:`UnimoScorer`: a unimo checkpoint's CMCL embeddings (``encode_text`` / ``encode_image``);
  visual features from a features store, or extracted on the fly;
- :class:`OpenClipScorer`: an open_clip model (``MODEL:TAG`` or ``MODEL:/path/to/weights``);
- :class:`SentenceTransformerClipScorer`: a sentence-transformers CLIP model (``clip-ViT-B-32``
  or a local folder), which embeds PIL images and texts with one ``encode``.

Nothing heavy is imported until a scorer is built.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

logger = logging.getLogger(__name__)


@runtime_checkable
class Scorer(Protocol):
    """Embeds texts and images into one space (rows L2-normalised, float32)."""

    name: str

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """(len(texts), E) float32, rows of unit norm."""
        ...

    def encode_images(self, images: list[str]) -> np.ndarray:
        """(len(images), E) float32 for image file paths, rows of unit norm."""
        ...


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def _batches(n: int, size: int) -> Sequence[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def _run_configs(checkpoint: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """The JSON ``config.json`` files in the checkpoint folder and up to three folders above
    (the checkpoint's model config comes first, then the training run's), nearest first."""
    import json

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
    the extractor. ``None`` when it cannot be found."""
    import json

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
    as ``"seq2seq"`` or ``"token_alignment"``) on, from the run's ``config.json``; ``None``
    when no training config is found."""
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


def _image_key(image: Any) -> Any:
    """A hashable key of an image path or an in-memory (PIL) image."""
    return image if isinstance(image, (str, os.PathLike)) else id(image)


class UnimoScorer:
    """CMCL embeddings of a unimo checkpoint (and, for compositional tests, the generative
    score of its captioning head: :meth:`caption_log_likelihood`).

    Args:
        checkpoint: a checkpoint folder (``model.safetensors`` + ``config.json``) or its weights
            file; or an already loaded model (tests, notebooks).
        features: a :class:`unimo_kit.features.FeatureStore` (or its folder) holding the test
            images' visual tokens; an image is looked up by its path, then by its file stem
            (``images/syn-000012.png`` -> ``syn-000012``, the id the synthetic world and
            ``images.jsonl`` use). ``None``: features are extracted on the fly.
        extractor: for on-the-fly features: an extractor spec of
            :func:`unimo_kit.features.build_extractor` or a built extractor; ``None`` (default)
            takes the one recorded in the checkpoint's run (:func:`run_extractor`), else
            ``effnet``. It must be the one the checkpoint was trained with.
        device: torch device (default: cuda when visible, else cpu).
        batch_size: texts / images per forward pass.
        max_text_tokens: longer captions are truncated (word pieces, [CLS]/[SEP] included).
        name: the scorer's name in results (default ``unimo:CHECKPOINT``).
    """

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
        from unimo_kit.eval.errors import check_feature_dim, load_checkpoint_checked
        from unimo_kit.model import load_tokenizer
        from unimo_kit.resources import torch_device

        self.device = torch_device(device)
        if isinstance(checkpoint, (str, os.PathLike)):
            self.model = load_checkpoint_checked(checkpoint, device=self.device)
            self.name = name or f"unimo:{checkpoint}"
        else:
            self.model = checkpoint.to(self.device).eval()
            self.name = name or "unimo"
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
            from unimo_kit.eval.errors import check_feature_dim
            from unimo_kit.features import build_extractor

            spec = self._extractor
            self._extractor = build_extractor(spec, device=self.device)
            check_feature_dim(self.model, int(self._extractor.dim), f"extractor {spec!r}")
        return self._extractor

    def _text_tensors(self, texts: list[str]) -> tuple[Any, Any]:
        """``[CLS] text [SEP]`` ids and attention mask (B, T), padded to the longest and cut at
        ``max_text_tokens``, on the scorer's device."""
        enc = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.max_text_tokens,
            return_tensors="pt",
        )
        return enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device)

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Text [CLS] CMCL embeddings, batches sorted by length (order restored)."""
        import torch

        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.zeros((len(texts), self.model.config.output_dim), dtype=np.float32)
        with torch.inference_mode():
            for sl in _batches(len(texts), self.batch_size):
                idx = order[sl]
                z = self.model.encode_text(*self._text_tensors([texts[i] for i in idx]))  # (B, E)
                out[idx] = z.float().cpu().numpy()
        return _normalise(out)

    def _store_lookup(self, image: str) -> dict[str, np.ndarray]:
        for key in (image, Path(image).stem):
            try:
                return self.features[key]
            except KeyError:
                continue
        raise KeyError(f"image {image!r} (id {Path(image).stem!r}) is not in the features store")

    def visual_tokens(
        self, images: list[Any], cache: dict[Any, dict[str, np.ndarray]] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Padded feats (B, N, F), boxes (B, N, 5), mask (B, N) for ``images`` (paths, or PIL
        images, which are always extracted on the fly).

        Args:
            cache: for on-the-fly features: image key -> its tokens, read and filled here, so
                that a caller scoring an image in several batches extracts it once. Each
                distinct image of one call is extracted once in any case.
        """
        from PIL import Image

        if self.features is None or any(isinstance(im, Image.Image) for im in images):
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
        from unimo_kit.eval.visual import extract_images

        keys = [_image_key(im) for im in images]
        missing = {key: im for key, im in zip(keys, images, strict=True) if key not in cache}
        if missing:
            feats, boxes, mask = extract_images(
                self.extractor, list(missing.values()), batch_size=self.batch_size
            )
            for row, key in enumerate(missing):
                k = int(mask[row].sum())  # valid tokens come first
                cache[key] = {"feats": feats[row, :k], "boxes": boxes[row, :k]}
        return [cache[key] for key in keys]

    def _visual_tensors(
        self, images: list[Any], cache: dict[Any, dict[str, np.ndarray]] | None = None
    ) -> tuple[Any, Any, Any]:
        """:meth:`visual_tokens` as float32 / bool tensors on the scorer's device."""
        import torch

        feats, boxes, mask = self.visual_tokens(images, cache)
        feats = np.ascontiguousarray(feats, dtype=np.float32)
        return tuple(torch.from_numpy(x).to(self.device) for x in (feats, boxes, mask))

    def _pair_batches(
        self, images: list[Any], texts: list[str]
    ) -> Iterator[tuple[np.ndarray, tuple[Any, Any, Any]]]:
        """Batches of ``(images[i], texts[i])`` pairs for a joint pass: yields the indices of
        each batch and its visual tensors (:meth:`_visual_tensors`).

        Longer texts come first (less padding). With on-the-fly features an image's pairs are
        kept side by side, so that the image is extracted once for all of them.
        """
        if len(images) != len(texts):
            raise ValueError(f"{len(images)} images but {len(texts)} texts")
        order = np.argsort([-len(t) for t in texts], kind="stable")
        if self.features is None:
            first: dict[Any, int] = {}
            for i in order:
                first.setdefault(_image_key(images[i]), len(first))
            order = np.asarray(
                sorted(order, key=lambda i: first[_image_key(images[i])]), dtype=np.int64
            )
        cache: dict[Any, dict[str, np.ndarray]] = {}
        for sl in _batches(len(texts), self.batch_size):
            idx = order[sl]
            batch_images = [images[i] for i in idx]
            visual = self._visual_tensors(batch_images, cache)
            # an image's pairs are consecutive: only this batch's images can recur
            keep = {_image_key(im) for im in batch_images}
            cache = {key: v for key, v in cache.items() if key in keep}
            yield idx, visual

    def caption_log_likelihood(
        self, images: list[Any], texts: list[str], *, per_token: bool = False
    ) -> np.ndarray:
        """Generative score of each ``(images[i], texts[i])``: the seq2seq head's teacher-forced
        sum of log-probabilities of the text's word pieces and ``[SEP]`` given the image
        (UniLM's seq2seq mask, the captioning path). Meaningful only for checkpoints trained
        with the seq2seq objective.

        Args:
            per_token: divide each sum by its number of predicted tokens (word pieces + 1).

        Returns:
            (N,) float64 log-likelihoods (≤ 0).
        """
        import torch

        from unimo_kit.model.generation import score_sequences

        out = np.zeros(len(texts), dtype=np.float64)
        with torch.inference_mode():
            for idx, visual in self._pair_batches(images, texts):
                ids = self.tokenizer(
                    [texts[i] for i in idx],
                    add_special_tokens=False,
                    truncation=True,
                    max_length=self.max_text_tokens - 2,  # room for [CLS] and [SEP]
                )["input_ids"]
                scores = score_sequences(
                    self.model,
                    *visual,
                    [list(x) for x in ids],
                    [True] * len(idx),
                )  # (B,)
                out[idx] = scores.double().cpu().numpy()
                if per_token:
                    out[idx] /= np.array([len(x) + 1 for x in ids], dtype=np.float64)
        return out

    def token_alignment_scores(self, images: list[Any], texts: list[str]) -> np.ndarray:
        """Token-alignment score of each ``(images[i], texts[i])``: the mean over the text's
        words of their best cosine with a region of the image, as
        :func:`unimo_kit.model.token_alignment.token_similarity` computes it in training.
        Each distinct image and text is encoded once. Meaningful only for checkpoints
        trained with ``token_alignment``.

        Returns:
            (N,) float64 scores in [-1, 1] (0 for a text without words or an image without
            regions).
        """
        import torch

        if len(images) != len(texts):
            raise ValueError(f"{len(images)} images but {len(texts)} texts")
        distinct_images = list({_image_key(im): im for im in images}.values())
        distinct_texts = sorted(set(texts), key=len, reverse=True)
        regions: dict[Any, Any] = {}  # image key -> (n_regions, E) of its valid regions
        words: dict[str, Any] = {}  # text -> (n_words, E)
        with torch.inference_mode():
            for sl in _batches(len(distinct_images), self.batch_size):
                batch = distinct_images[sl]
                _, tokens, valid = self.model.encode_image_tokens(*self._visual_tensors(batch))
                for image, row, keep in zip(batch, tokens, valid, strict=True):
                    regions[_image_key(image)] = row[keep].float()
            for sl in _batches(len(distinct_texts), self.batch_size):
                batch = distinct_texts[sl]
                _, tokens, valid = self.model.encode_text_tokens(*self._text_tensors(batch))
                for text, row, keep in zip(batch, tokens, valid, strict=True):
                    words[text] = row[keep].float()
            out = np.zeros(len(texts), dtype=np.float64)
            for i, (image, text) in enumerate(zip(images, texts, strict=True)):
                w, r = words[text], regions[_image_key(image)]
                if len(w) and len(r):
                    out[i] = float((w @ r.T).amax(dim=1).mean())
        return out

    def matching_scores(self, images: list[Any], texts: list[str]) -> np.ndarray:
        """Image-text matching logit of each ``(images[i], texts[i])``: the checkpoint's
        matching head on one joint pass over the image's visual tokens and the text
        (:meth:`~unimo_kit.model.UnimoModel.match_logits`). Meaningful only for checkpoints
        trained with ``itm``.

        Returns:
            (N,) float64 logits (``sigmoid``: the probability of a match).

        Raises:
            EvalError: the checkpoint has no matching head.
        """
        import torch

        if self.model.matching_head is None:
            from unimo_kit.eval.errors import EvalError

            raise EvalError(f"{self.name} has no matching head: it was not trained with itm")
        out = np.zeros(len(texts), dtype=np.float64)
        with torch.inference_mode():
            for idx, visual in self._pair_batches(images, texts):
                ids, mask = self._text_tensors([texts[i] for i in idx])
                logits = self.model.match_logits(ids, mask, *visual)  # (B,)
                out[idx] = logits.double().cpu().numpy()
        return out

    def encode_images(self, images: list[Any]) -> np.ndarray:
        """Image [IMG] CMCL embeddings of image paths (or PIL images)."""
        import torch

        out = np.zeros((len(images), self.model.config.output_dim), dtype=np.float32)
        with torch.inference_mode():
            for sl in _batches(len(images), self.batch_size):
                z = self.model.encode_image(*self._visual_tensors(list(images[sl])))  # (B, E)
                out[sl] = z.float().cpu().numpy()
        return _normalise(out)


class OpenClipScorer:
    """An open_clip model as a scorer.

    Args:
        spec: ``"MODEL"``, ``"MODEL:TAG"`` or ``"MODEL:/path/to/weights"`` (see
            :func:`unimo_kit.resources.open_clip_model`); offline, only local weights work.
        device: torch device.
        batch_size: images / texts per forward pass.

    Use :meth:`from_model` to wrap a model built elsewhere (e.g. random weights in tests).
    """

    def __init__(self, spec: str, *, device: str | None = None, batch_size: int = 64):
        from unimo_kit.resources import open_clip_model, torch_device

        self.device = torch_device(device)
        model, preprocess, tokenizer = open_clip_model(spec, device=self.device)
        self._setup(model, preprocess, tokenizer, f"open_clip:{spec}", batch_size)

    @classmethod
    def from_model(
        cls,
        model: Any,
        preprocess: Any,
        tokenizer: Any,
        *,
        name: str = "open_clip",
        batch_size: int = 64,
    ) -> OpenClipScorer:
        """Wrap an open_clip ``(model, preprocess, tokenizer)`` triple."""
        self = cls.__new__(cls)
        self.device = str(next(model.parameters()).device)
        self._setup(model.eval(), preprocess, tokenizer, name, batch_size)
        return self

    def _setup(self, model: Any, preprocess: Any, tokenizer: Any, name: str, batch: int) -> None:
        self.model, self.preprocess, self.tokenizer = model, preprocess, tokenizer
        self.name, self.batch_size = name, batch

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        parts = []
        with torch.inference_mode():
            for sl in _batches(len(texts), self.batch_size):
                tokens = self.tokenizer(list(texts[sl])).to(self.device)  # (B, 77)
                parts.append(self.model.encode_text(tokens).float().cpu().numpy())  # (B, E)
        return _normalise(np.concatenate(parts) if parts else np.zeros((0, 1), np.float32))

    def encode_images(self, images: list[str]) -> np.ndarray:
        import torch
        from PIL import Image

        parts = []
        with torch.inference_mode():
            for sl in _batches(len(images), self.batch_size):
                pixels = []
                for path in images[sl]:
                    with Image.open(path) as image:
                        pixels.append(self.preprocess(image.convert("RGB")))
                x = torch.stack(pixels).to(self.device)  # (B, 3, H, W)
                parts.append(self.model.encode_image(x).float().cpu().numpy())  # (B, E)
        return _normalise(np.concatenate(parts) if parts else np.zeros((0, 1), np.float32))


class SentenceTransformerClipScorer:
    """A sentence-transformers CLIP model (one ``encode`` for PIL images and texts).

    Args:
        name: a model name (``clip-ViT-B-32``, needs the hub) or a local folder; or a loaded
            ``SentenceTransformer``.
        device: torch device.
        batch_size: passed to ``encode``.
    """

    def __init__(self, name: str | Any, *, device: str | None = None, batch_size: int = 64):
        if isinstance(name, str):
            from unimo_kit.resources import sentence_transformer

            self.model = sentence_transformer(name, device=device)
            self.name = f"sentence-transformers:{name}"
        else:
            self.model = name
            self.name = "sentence-transformers"
        self.batch_size = batch_size

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        z = self.model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True)
        return _normalise(z)

    def encode_images(self, images: list[str]) -> np.ndarray:
        from PIL import Image

        parts = []
        for sl in _batches(len(images), self.batch_size):
            pil = []
            for path in images[sl]:
                with Image.open(path) as image:
                    pil.append(image.convert("RGB"))
            parts.append(self.model.encode(pil, batch_size=self.batch_size, convert_to_numpy=True))
        return _normalise(np.concatenate(parts))


def build_scorer(
    *,
    checkpoint: str | None = None,
    open_clip: str | None = None,
    st_clip: str | None = None,
    features: str | None = None,
    extractor: str | None = None,
    device: str | None = None,
    batch_size: int = 64,
) -> Scorer:
    """The scorer named by exactly one of ``checkpoint``, ``open_clip`` or ``st_clip``.

    Args:
        checkpoint: a unimo checkpoint folder (:class:`UnimoScorer`).
        open_clip: an open_clip spec ``MODEL[:TAG_OR_PATH]`` (:class:`OpenClipScorer`).
        st_clip: a sentence-transformers CLIP name or folder
            (:class:`SentenceTransformerClipScorer`).
        features, extractor: visual features of the unimo scorer.
        device, batch_size: passed on.

    Raises:
        EvalError: none or several scorers named.
    """
    from unimo_kit.eval.errors import EvalError

    given = [x for x in (checkpoint, open_clip, st_clip) if x]
    if len(given) != 1:
        raise EvalError("name exactly one model: a checkpoint, an open_clip spec or an ST CLIP")
    if checkpoint:
        return UnimoScorer(
            checkpoint, features, extractor=extractor, device=device, batch_size=batch_size
        )
    if open_clip:
        return OpenClipScorer(open_clip, device=device, batch_size=batch_size)
    return SentenceTransformerClipScorer(st_clip, device=device, batch_size=batch_size)
