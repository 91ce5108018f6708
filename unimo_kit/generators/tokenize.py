"""One text-to-ids interface over the tokenizers other trainers use.

:func:`as_tokenizer` wraps an open_clip tokenizer (``open_clip.get_tokenizer(name)``: called on a
list of texts it returns a ``(N, context_length)`` LongTensor padded with 0), a Hugging Face
tokenizer (anything with ``pad_token_id`` and the ``__call__`` of ``PreTrainedTokenizerBase``) or
any callable from a list of texts to a tensor, a list of id lists, or a dict with ``input_ids``.
The wrapped tokenizer returns ``(ids (N, L) long, attention_mask (N, L) bool)``.

With ``cache_size`` it keeps the ids of the texts it has seen (per process, the first
``cache_size`` distinct texts), so that the same negatives drawn again in a later epoch are not
tokenised again; the output is the same as without the cache.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

TokenizerLike = Callable[..., Any]
#: Default cache of the generators: distinct texts whose ids a worker keeps (about 25 MB with
#: CLIP's context of 77).
TOKEN_CACHE = 50_000


class TextTokenizer:
    """A caller's tokenizer as ``texts -> (ids (N, L), mask (N, L))``.

    Args:
        tokenizer: an open_clip tokenizer, a Hugging Face tokenizer, or a callable (above).
        max_length: cut longer texts (Hugging Face tokenizers: ``truncation=True``; other
            outputs are cut after tokenising). ``None``: the tokenizer's own length.
        pad_id: the padding id of plain callables that return unpadded id lists (open_clip
            and Hugging Face tokenizers say their own).
        cache_size: keep the ids of up to this many distinct texts (per process; the first
            ones seen, none evicted) and answer them from memory: same output, tokenised
            once. 0: no cache. Left-padding Hugging Face tokenizers are never cached.

    Picklable when ``tokenizer`` is (every open_clip and Hugging Face tokenizer is), so it can
    run inside DataLoader workers.
    """

    def __init__(
        self,
        tokenizer: TokenizerLike,
        max_length: int | None = None,
        pad_id: int = 0,
        cache_size: int = 0,
    ):
        if not callable(tokenizer):
            raise TypeError(f"tokenizer must be callable, got {type(tokenizer).__name__}")
        if cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {cache_size}")
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.is_hf = hasattr(tokenizer, "pad_token_id") and hasattr(tokenizer, "batch_decode")
        hf_pad = getattr(tokenizer, "pad_token_id", None) if self.is_hf else None
        self.pad_id = int(hf_pad) if hf_pad is not None else pad_id
        left = self.is_hf and getattr(tokenizer, "padding_side", "right") == "left"
        self.cache_size = 0 if left else int(cache_size)
        # text -> (ids (n,), mask (n,)): the row cut after its last real token, or whole when
        # the tokenizer pads to one width (then a call is one stack)
        self._cache: dict[str, tuple[Tensor, Tensor]] = {}
        # The narrowest output: open_clip pads to its context_length (cut to max_length); a
        # tokenizer that pads a call beyond its longest text shows its width that way; the
        # others pad to the longest text (0).
        context = getattr(tokenizer, "context_length", None)
        fixed = isinstance(context, int) and not self.is_hf
        self._width = min(context, max_length or context) if fixed else 0
        self._to_longest = True  # the last call was padded to its longest text

    def __call__(self, texts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """Tokenise ``texts``.

        Returns:
            ``ids`` (N, L) long and ``mask`` (N, L) bool (True = a real token). ``N = 0`` gives
            ``(0, 0)`` tensors.
        """
        texts = list(texts)
        if not self.cache_size or not texts:
            return self._encode(texts)
        cache = self._cache
        try:  # every text seen before (the usual case once the cache is warm)
            rows = [cache[t] for t in texts]
        except KeyError:
            rows = self._rows_tokenising_missing(texts)
            if rows is None:  # padded otherwise than with pad_id: this call as it is
                return self._encode(texts)
        widths = {r[0].shape[0] for r in rows}
        width = max(self._width, max(widths))
        if widths == {width}:  # whole rows (open_clip): one stack
            return torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows])
        ids = torch.full((len(texts), width), self.pad_id, dtype=torch.long)  # (N, L)
        mask = torch.zeros((len(texts), width), dtype=torch.bool)  # (N, L)
        for i, (row_ids, row_mask) in enumerate(rows):
            ids[i, : row_ids.shape[0]], mask[i, : row_mask.shape[0]] = row_ids, row_mask
        return ids, mask

    def _rows_tokenising_missing(self, texts: list[str]) -> list[tuple[Tensor, Tensor]] | None:
        """The cached rows of ``texts``, the texts not in the cache tokenised (and kept while
        it has room); ``None`` when a row cannot be kept (:meth:`_rows`)."""
        cache, found = self._cache, {}
        missing = list(dict.fromkeys(t for t in texts if t not in cache))
        for text, row in zip(missing, self._rows(*self._encode(missing)), strict=True):
            if row is None:
                return None
            found[text] = row
            if len(cache) < self.cache_size:
                cache[text] = row
        return [cache[t] if t in cache else found[t] for t in texts]

    def _rows(self, ids: Tensor, mask: Tensor) -> list[tuple[Tensor, Tensor] | None]:
        """The rows of a tokenised call as the cache keeps them (``None`` for a row whose
        padding is not ``pad_id``, or that has no real token: padding it again could change
        it). Learns the tokenizer's width when it pads beyond the longest text."""
        ends = []
        for row_mask in mask:  # (L,)
            real = row_mask.nonzero()
            ends.append(int(real[-1]) + 1 if len(real) else 0)
        if ids.shape[1] > max(ends, default=0):  # padded to a width of its own
            self._width = max(self._width, ids.shape[1])
        elif not self._to_longest and ids.shape[1] != self._width:
            return [None] * len(ids)  # a tensor as wide as its longest text: which padding?
        keep = ids.shape[1] if ids.shape[1] == self._width else None  # whole rows
        rows: list[tuple[Tensor, Tensor] | None] = []
        for row_ids, row_mask, n in zip(ids, mask, ends, strict=True):  # (L,), (L,)
            if not n or not bool((row_ids[n:] == self.pad_id).all()):
                rows.append(None)
                continue
            cut = keep if keep is not None else n
            rows.append((row_ids[:cut].clone(), row_mask[:cut].clone()))
        return rows

    def _encode(self, texts: list[str]) -> tuple[Tensor, Tensor]:
        """``texts`` through the wrapped tokenizer (no cache)."""
        if not texts:
            return torch.zeros((0, 0), dtype=torch.long), torch.zeros((0, 0), dtype=torch.bool)
        if self.is_hf:
            kwargs: dict[str, Any] = {"padding": True, "return_tensors": "pt"}
            if self.max_length is not None:
                kwargs.update(truncation=True, max_length=self.max_length)
            enc = self.tokenizer(texts, **kwargs)
            self._to_longest = True  # padding=True
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
            self._to_longest = False  # its own padding: to one width, or to the longest
        else:
            rows = [list(map(int, row)) for row in out]
            if len(rows) != len(texts):
                raise ValueError(f"tokenizer returned {len(rows)} rows for {len(texts)} texts")
            width = max(1, max(len(r) for r in rows))
            self._to_longest = True  # padded here
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
