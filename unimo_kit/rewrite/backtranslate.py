"""Back-translation paraphrases, UNIMO's sentence-level positives (§2.2): translate a caption to
a pivot language and back.

:class:`BackTranslator` takes two LOCAL model folders, each holding a Hugging Face seq2seq model
and its tokenizer (``save_pretrained`` layout): MarianMT ``opus-mt-en-de`` / ``opus-mt-de-en``
in the paper's setting, or any ``AutoModelForSeq2SeqLM`` pair. Nothing is downloaded. Decoding
is greedy by default (deterministic); models load on first use, so the object is cheap to make
and to pickle into DataLoader workers or multiprocessing pools.

>>> bt = BackTranslator("models/opus-mt-en-de", "models/opus-mt-de-en")  # doctest: +SKIP
>>> bt(["a man riding a horse on a beach"])
['a man rides a horse on the beach']
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any


class BackTranslator:
    """Paraphrase by translating forth and back with two local seq2seq models.

    Args:
        forward_dir: folder of the source → pivot model and tokenizer.
        backward_dir: folder of the pivot → source model and tokenizer.
        device: torch device (default: CUDA when visible, else CPU).
        batch_size: sentences per generation batch (sorted by length, order restored).
        max_length: maximum generated tokens per sentence.
        num_beams: beam width (1 = greedy).
    """

    def __init__(
        self,
        forward_dir: str | os.PathLike,
        backward_dir: str | os.PathLike,
        *,
        device: str | None = None,
        batch_size: int = 32,
        max_length: int = 64,
        num_beams: int = 1,
    ):
        for folder in (forward_dir, backward_dir):
            if not os.path.isdir(folder):
                raise FileNotFoundError(f"back-translation model folder not found: {folder}")
        self.forward_dir = os.fspath(forward_dir)
        self.backward_dir = os.fspath(backward_dir)
        self.device = device
        self.batch_size = batch_size
        self.max_length = max_length
        self.num_beams = num_beams
        self._models: dict[str, tuple[Any, Any]] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_models"] = {}
        return state

    def _load(self, folder: str) -> tuple[Any, Any]:
        if folder not in self._models:
            from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

            from unimo_kit.resources import torch_device

            self.device = self.device or torch_device()
            tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            model = AutoModelForSeq2SeqLM.from_pretrained(folder, local_files_only=True)
            self._models[folder] = (tokenizer, model.to(self.device).eval())
        return self._models[folder]

    def translate(self, texts: Sequence[str], folder: str) -> list[str]:
        """Translate ``texts`` with the model in ``folder`` (order kept)."""
        import torch

        tokenizer, model = self._load(folder)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out: list[str] = [""] * len(texts)
        for begin in range(0, len(order), self.batch_size):
            batch = [texts[i] for i in order[begin : begin + self.batch_size]]
            encoded = tokenizer(
                batch, return_tensors="pt", padding=True, truncation=True, max_length=256
            ).to(self.device)
            encoded.pop("token_type_ids", None)
            with torch.no_grad():
                generated = model.generate(
                    **encoded,
                    max_new_tokens=self.max_length,
                    num_beams=self.num_beams,
                    do_sample=False,
                )  # (b, L)
            decoded = tokenizer.batch_decode(generated, skip_special_tokens=True)
            for i, text in zip(order[begin : begin + self.batch_size], decoded, strict=True):
                out[i] = " ".join(text.split())
        return out

    def __call__(self, texts: Sequence[str]) -> list[str]:
        """Back-translations of ``texts`` (one per text, order kept; may equal the input)."""
        if not texts:
            return []
        return self.translate(self.translate(list(texts), self.forward_dir), self.backward_dir)

    def __repr__(self) -> str:
        return f"BackTranslator({self.forward_dir!r}, {self.backward_dir!r})"
