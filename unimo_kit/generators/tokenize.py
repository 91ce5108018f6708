"""One text-to-ids interface over the tokenizers other trainers use.

:func:`as_tokenizer` wraps an open_clip tokenizer (``open_clip.get_tokenizer(name)``: called on a
list of texts it returns a ``(N, context_length)`` LongTensor padded with 0), a Hugging Face
tokenizer (anything with ``pad_token_id`` and the ``__call__`` of ``PreTrainedTokenizerBase``) or
any callable from a list of texts to a tensor, a list of id lists, or a dict with ``input_ids``.
The wrapped tokenizer returns ``(ids (N, L) long, attention_mask (N, L) bool)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

TokenizerLike = Callable[..., Any]


class TextTokenizer:
    """A caller's tokenizer as ``texts -> (ids (N, L), mask (N, L))``.

    Args:
        tokenizer: an open_clip tokenizer, a Hugging Face tokenizer, or a callable (above).
        max_length: cut longer texts (Hugging Face tokenizers: ``truncation=True``; other
            outputs are cut after tokenising). ``None``: the tokenizer's own length.
        pad_id: the padding id of plain callables that return unpadded id lists (open_clip
            and Hugging Face tokenizers say their own).

    Picklable when ``tokenizer`` is (every open_clip and Hugging Face tokenizer is), so it can
    run inside DataLoader workers.
    """

    def __init__(self, tokenizer: TokenizerLike, max_length: int | None = None, pad_id: int = 0):
        if not callable(tokenizer):
            raise TypeError(f"tokenizer must be callable, got {type(tokenizer).__name__}")
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.is_hf = hasattr(tokenizer, "pad_token_id") and hasattr(tokenizer, "batch_decode")
        hf_pad = getattr(tokenizer, "pad_token_id", None) if self.is_hf else None
        self.pad_id = int(hf_pad) if hf_pad is not None else pad_id

    def __call__(self, texts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """Tokenise ``texts``.

        Returns:
            ``ids`` (N, L) long and ``mask`` (N, L) bool (True = a real token). ``N = 0`` gives
            ``(0, 0)`` tensors.
        """
        texts = list(texts)
        if not texts:
            return torch.zeros((0, 0), dtype=torch.long), torch.zeros((0, 0), dtype=torch.bool)
        if self.is_hf:
            kwargs: dict[str, Any] = {"padding": True, "return_tensors": "pt"}
            if self.max_length is not None:
                kwargs.update(truncation=True, max_length=self.max_length)
            enc = self.tokenizer(texts, **kwargs)
            return enc["input_ids"].long(), enc["attention_mask"].bool()
        out = self.tokenizer(texts)
        mask = None
        if isinstance(out, dict) or hasattr(out, "keys"):
            mask = out.get("attention_mask")
            out = out["input_ids"]
        if torch.is_tensor(out):
            ids = out.long()  # (N, L)
            if ids.ndim != 2 or ids.shape[0] != len(texts):
                raise ValueError(
                    f"tokenizer returned shape {tuple(ids.shape)} for {len(texts)} texts; "
                    "expected (N, L)"
                )
            # open_clip pads with 0 after the end-of-text token; 0 never starts a text
            mask = torch.as_tensor(mask).bool() if mask is not None else ids != self.pad_id
        else:
            rows = [list(map(int, row)) for row in out]
            if len(rows) != len(texts):
                raise ValueError(f"tokenizer returned {len(rows)} rows for {len(texts)} texts")
            width = max(1, max(len(r) for r in rows))
            ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)  # (N, L)
            mask = torch.zeros((len(rows), width), dtype=torch.bool)  # (N, L)
            for i, row in enumerate(rows):
                ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
                mask[i, : len(row)] = True
        if self.max_length is not None and ids.shape[1] > self.max_length:
            ids, mask = ids[:, : self.max_length], mask[:, : self.max_length]
        return ids, mask


def as_tokenizer(tokenizer: TokenizerLike | TextTokenizer, **kwargs: Any) -> TextTokenizer:
    """``tokenizer`` as a :class:`TextTokenizer` (returned as it is when it already is one)."""
    return tokenizer if isinstance(tokenizer, TextTokenizer) else TextTokenizer(tokenizer, **kwargs)
