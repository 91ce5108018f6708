"""``open_clip:MODEL:TAG_OR_PATH``: the text and image towers of an open_clip model."""

from __future__ import annotations

from typing import Any

import numpy as np

from unimo_kit.encoders.base import IMAGE, TEXT, Encoder


class OpenClipEncoder(Encoder):
    """An open_clip model's two towers in one space, so a text query can search an image index
    built with the same spec and vice versa.

    Args:
        spec: ``"MODEL"``, ``"MODEL:TAG"``, ``"MODEL:/path/to/weights"``,
            ``"CONFIG.json[:WEIGHTS]"`` or an open_clip model folder (see
            :func:`unimo_kit.resources.open_clip_model`); offline, only local weights work.
        device: torch device (default: cuda when visible).
        batch_size: texts / images per forward pass when a call does not say.

    Use :meth:`from_model` to wrap a model built elsewhere (e.g. random weights in tests).
    """

    modalities = (TEXT, IMAGE)

    def __init__(self, spec: str, device: str | None = None, *, batch_size: int = 32):
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
        batch_size: int = 32,
    ) -> OpenClipEncoder:
        """Wrap an open_clip ``(model, preprocess, tokenizer)`` triple.

        Args:
            model, preprocess, tokenizer: what ``open_clip.create_model_and_transforms`` and
                ``open_clip.get_tokenizer`` give.
            name: its spec and the label of its results.
            batch_size: texts / images per forward pass when a call does not say.
        """
        self = cls.__new__(cls)
        self.device = str(next(model.parameters()).device)
        self._setup(model.eval(), preprocess, tokenizer, name, batch_size)
        return self

    def _setup(self, model: Any, preprocess: Any, tokenizer: Any, spec: str, batch: int) -> None:
        import torch

        self.model, self.preprocess, self.tokenizer = model, preprocess, tokenizer
        self.spec, self.batch_size = spec, batch
        with torch.inference_mode():
            probe = self.model.encode_text(self.tokenizer(["a"]).to(self.device))  # (1, dim)
        self.dim = int(probe.shape[-1])

    def _encode_text_batch(self, texts: list[str]) -> np.ndarray:
        tokens = self.tokenizer(texts).to(self.device)  # (B, context_length)
        return self.model.encode_text(tokens).float().cpu().numpy()  # (B, dim)

    def _encode_image_batch(self, images: list[Any]) -> np.ndarray:
        import torch

        pixels = torch.stack([self.preprocess(image) for image in images]).to(self.device)
        return self.model.encode_image(pixels).float().cpu().numpy()  # (B, dim)
