"""``st:NAME_OR_PATH``: a sentence-transformers model (text; images too for its CLIP models)."""

from __future__ import annotations

from typing import Any

import numpy as np

from unimo_kit.encoders.base import IMAGE, TEXT, Encoder


def _is_clip(model: Any) -> bool:
    """Whether a SentenceTransformer embeds images (its first module is a CLIP model)."""
    try:
        first = model[0]
    except (TypeError, IndexError, KeyError, AttributeError):
        return False
    return "clip" in type(first).__name__.lower()


class SentenceTransformerEncoder(Encoder):
    """A sentence-transformers model; its own ``encode`` does the length-sorted batching, so
    this runs at the speed of ``SentenceTransformer.encode``. A CLIP model (``clip-ViT-B-32``)
    embeds PIL images with the same ``encode``, in the same space as its texts.

    Args:
        name: model name or folder (``all-MiniLM-L6-v2`` resolves to the packaged copy).
        device: torch device (default: cuda when visible).
        model: an already built ``SentenceTransformer`` (tests, or a model held elsewhere).
        modalities: what it embeds (default: text, and images for a CLIP model).
        batch_size: inputs per ``encode`` call when a call does not say.
    """

    def __init__(
        self,
        name: str,
        device: str | None = None,
        model: Any = None,
        *,
        modalities: tuple[str, ...] | None = None,
        batch_size: int = 32,
    ):
        from unimo_kit.resources import sentence_transformer

        self.model = model if model is not None else sentence_transformer(name, device=device)
        if hasattr(self.model, "eval"):
            self.model.eval()
        self.spec = f"st:{name}"
        self.batch_size = batch_size
        self.modalities = modalities or ((TEXT, IMAGE) if _is_clip(self.model) else (TEXT,))
        get_dim = getattr(self.model, "get_embedding_dimension", None) or getattr(
            self.model, "get_sentence_embedding_dimension", None
        )
        dim = get_dim() if get_dim else None
        if not dim:  # CLIP models may not say: one probe text
            dim = len(self.model.encode(["a"], convert_to_numpy=True)[0])
        self.dim = int(dim)

    def _encode_texts(self, texts: list[str], batch_size: int, show_progress: bool) -> np.ndarray:
        out = self.model.encode(
            texts,
            batch_size=batch_size,
            show_progress_bar=show_progress,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.ascontiguousarray(out, dtype=np.float32)

    def _encode_image_batch(self, images: list[Any]) -> np.ndarray:
        out = self.model.encode(images, batch_size=len(images), convert_to_numpy=True)
        return np.asarray(out, dtype=np.float32)
