"""Scorers: encoders of texts and images into one space for retrieval and compositional
evaluation, and the scores only a UNIMO checkpoint gives.

A scorer is an :class:`unimo_kit.encoders.Encoder` (``name``, ``encode_texts``,
``encode_images``: float32, rows L2-normalised; the similarity of an image and a text is the dot
product of their embeddings). Eval adds only what is UNIMO-specific:

- :class:`UnimoScorer`: a unimo checkpoint's CMCL embeddings
  (:class:`~unimo_kit.encoders.UnimoEncoder`) plus the caption log-likelihood of its seq2seq
  head, its token-alignment score and its image-text matching logit;
- :class:`OpenClipScorer` is :class:`~unimo_kit.encoders.OpenClipEncoder` (``MODEL:TAG`` or
  ``MODEL:/path/to/weights``);
- :class:`SentenceTransformerClipScorer`: a sentence-transformers CLIP model (``clip-ViT-B-32``
  or a local folder), which embeds PIL images and texts with one ``encode``.

Nothing heavy is imported until a scorer is built.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from unimo_kit.encoders.base import IMAGE, TEXT
from unimo_kit.encoders.clip import OpenClipEncoder
from unimo_kit.encoders.st import SentenceTransformerEncoder
from unimo_kit.encoders.unimo import (
    UnimoEncoder,
    image_key,
    run_extractor,
    run_trained_objective,
)

__all__ = [
    "OpenClipScorer",
    "Scorer",
    "SentenceTransformerClipScorer",
    "UnimoScorer",
    "build_scorer",
    "run_extractor",
    "run_trained_objective",
]


@runtime_checkable
class Scorer(Protocol):
    """What retrieval and compositional evaluation need: a ``name`` and the encode contract
    (:class:`unimo_kit.encoders.Encoder` has it)."""

    name: str

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """(len(texts), E) float32, rows of unit norm."""
        ...

    def encode_images(self, images: list[str]) -> np.ndarray:
        """(len(images), E) float32 for image file paths, rows of unit norm."""
        ...


def _batches(n: int, size: int) -> Sequence[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


class UnimoScorer(UnimoEncoder):
    """CMCL embeddings of a unimo checkpoint (:class:`~unimo_kit.encoders.UnimoEncoder`, same
    arguments) and the scores of its other heads, for compositional tests:
    :meth:`caption_log_likelihood`, :meth:`token_alignment_scores`, :meth:`matching_scores`.
    """

    def _pair_batches(
        self, images: list[Any], texts: list[str]
    ) -> Iterator[tuple[np.ndarray, tuple[Any, Any, Any]]]:
        """Batches of ``(images[i], texts[i])`` pairs for a joint pass: yields the indices of
        each batch and its visual tensors (:meth:`visual_tensors`).

        Longer texts come first (less padding). With on-the-fly features an image's pairs are
        kept side by side, so that the image is extracted once for all of them.
        """
        if len(images) != len(texts):
            raise ValueError(f"{len(images)} images but {len(texts)} texts")
        order = np.argsort([-len(t) for t in texts], kind="stable")
        if self.features is None:
            first: dict[Any, int] = {}
            for i in order:
                first.setdefault(image_key(images[i]), len(first))
            order = np.asarray(
                sorted(order, key=lambda i: first[image_key(images[i])]), dtype=np.int64
            )
        cache: dict[Any, dict[str, np.ndarray]] = {}
        for sl in _batches(len(texts), self.batch_size):
            idx = order[sl]
            batch_images = [images[i] for i in idx]
            visual = self.visual_tensors(batch_images, cache)
            # an image's pairs are consecutive: only this batch's images can recur
            keep = {image_key(im) for im in batch_images}
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
        distinct_images = list({image_key(im): im for im in images}.values())
        distinct_texts = sorted(set(texts), key=len, reverse=True)
        regions: dict[Any, Any] = {}  # image key -> (n_regions, E) of its valid regions
        words: dict[str, Any] = {}  # text -> (n_words, E)
        with torch.inference_mode():
            for sl in _batches(len(distinct_images), self.batch_size):
                batch = distinct_images[sl]
                _, tokens, valid = self.model.encode_image_tokens(*self.visual_tensors(batch))
                for image, row, keep in zip(batch, tokens, valid, strict=True):
                    regions[image_key(image)] = row[keep].float()
            for sl in _batches(len(distinct_texts), self.batch_size):
                batch = distinct_texts[sl]
                _, tokens, valid = self.model.encode_text_tokens(*self.text_tensors(batch))
                for text, row, keep in zip(batch, tokens, valid, strict=True):
                    words[text] = row[keep].float()
            out = np.zeros(len(texts), dtype=np.float64)
            for i, (image, text) in enumerate(zip(images, texts, strict=True)):
                w, r = words[text], regions[image_key(image)]
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
                ids, mask = self.text_tensors([texts[i] for i in idx])
                logits = self.model.match_logits(ids, mask, *visual)  # (B,)
                out[idx] = logits.double().cpu().numpy()
        return out


#: an open_clip model as a scorer: the encoder itself (``name`` = ``open_clip:SPEC``)
OpenClipScorer = OpenClipEncoder


class SentenceTransformerClipScorer(SentenceTransformerEncoder):
    """A sentence-transformers CLIP model (one ``encode`` for PIL images and texts).

    Args:
        name: a model name (``clip-ViT-B-32``, needs the hub) or a local folder; or a loaded
            ``SentenceTransformer``.
        device: torch device.
        batch_size: passed to ``encode``.
    """

    def __init__(self, name: str | Any, *, device: str | None = None, batch_size: int = 64):
        loaded = not isinstance(name, str)
        super().__init__(
            "model" if loaded else name,
            device=device,
            model=name if loaded else None,
            modalities=(TEXT, IMAGE),
            batch_size=batch_size,
        )
        self.name = "sentence-transformers" if loaded else f"sentence-transformers:{name}"


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
