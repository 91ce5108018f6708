"""A post-LayerNorm BERT Transformer encoder in plain PyTorch, with arbitrary attention masks
(for UniLM seq2seq) through :func:`torch.nn.functional.scaled_dot_product_attention`, and an
optional key/value cache for incremental decoding."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unimo_kit.model.config import UnimoConfig

KVCache = list[tuple[Tensor, Tensor]]  # per layer: keys, values, each (B, H, L, Dh)


class SelfAttention(nn.Module):
    """Multi-head self-attention with a fused q/k/v projection."""

    def __init__(self, config: UnimoConfig):
        super().__init__()
        d = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_dim = d // self.num_heads
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.dropout_p = config.attention_probs_dropout_prob

    def forward(
        self, x: Tensor, mask: Tensor | None, past: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Args: x (B, Lq, D); mask broadcastable to (B, H, Lq, Lk), bool (True = attend) or
        float (added to the attention logits, ``-inf`` = do not attend);
        past: cached (keys, values) of earlier positions, each (B, H, Lp, Dh).
        Returns: (B, Lq, D) and the (keys, values) of all Lk = Lp + Lq positions."""
        b, length, d = x.shape
        qkv = self.qkv(x).view(b, length, 3, self.num_heads, self.head_dim)  # (B, Lq, 3, H, Dh)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, Lq, Dh)
        if past is not None:
            k = torch.cat([past[0], k], dim=2)  # (B, H, Lk, Dh)
            v = torch.cat([past[1], v], dim=2)  # (B, H, Lk, Dh)
        dropout_p = self.dropout_p if self.training else 0.0
        if mask is not None and mask.is_floating_point() and mask.dtype != q.dtype:
            mask = mask.to(q.dtype)  # SDPA wants an additive mask in the queries' dtype
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
        y = y.transpose(1, 2).reshape(b, length, d)  # (B, Lq, D)
        return self.out(y), (k, v)


class TransformerLayer(nn.Module):
    """BERT block: ``x = LN(x + Attn(x)); x = LN(x + FFN(x))``."""

    def __init__(self, config: UnimoConfig):
        super().__init__()
        d, eps = config.hidden_size, config.layer_norm_eps
        self.attn = SelfAttention(config)
        self.ln1 = nn.LayerNorm(d, eps=eps)
        self.fc1 = nn.Linear(d, config.intermediate_size)
        self.fc2 = nn.Linear(config.intermediate_size, d)
        self.ln2 = nn.LayerNorm(d, eps=eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self, x: Tensor, mask: Tensor | None, past: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        a, kv = self.attn(x, mask, past)  # (B, L, D)
        x = self.ln1(x + self.dropout(a))  # (B, L, D)
        h = self.fc2(F.gelu(self.fc1(x)))  # (B, L, D), exact (erf) GELU as BERT
        x = self.ln2(x + self.dropout(h))  # (B, L, D)
        return x, kv


class TransformerEncoder(nn.Module):
    """A stack of :class:`TransformerLayer`."""

    def __init__(self, config: UnimoConfig):
        super().__init__()
        self.layers = nn.ModuleList(
            TransformerLayer(config) for _ in range(config.num_hidden_layers)
        )

    def forward(
        self, x: Tensor, mask: Tensor | None, cache: KVCache | None = None
    ) -> tuple[Tensor, KVCache]:
        """Args: x (B, L, D); mask bool (B, 1, L or 1, Lk) or float additive (B, H, L, Lk);
        cache: from an earlier call on the preceding positions, or None.
        Returns: (B, L, D) and the cache extended by x."""
        new_cache: KVCache = []
        for i, layer in enumerate(self.layers):
            x, kv = layer(x, mask, None if cache is None else cache[i])
            new_cache.append(kv)
        return x, new_cache
