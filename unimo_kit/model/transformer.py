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
        self,
        x: Tensor,
        mask: Tensor | None,
        past: tuple[Tensor, Tensor] | None = None,
        queries: Tensor | None = None,
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Args: x (B, Lq, D); mask broadcastable to (B, H, Lq, Lk), bool (True = attend) or
        float (added to the attention logits, ``-inf`` = do not attend);
        past: cached (keys, values) of earlier positions, each (B, H, Lp, Dh);
        queries: (B, K, D), the states of the only positions whose output is wanted (then
        ``x`` gives only keys and values, and ``mask`` has K query rows or one).
        Returns: (B, Lq, D) (or (B, K, D)) and the (keys, values) of all Lk = Lp + Lq
        positions."""
        b, length, d = x.shape
        if queries is None:
            qkv = self.qkv(x).view(b, length, 3, self.num_heads, self.head_dim)  # (B, L, 3, H, Dh)
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, Lq, Dh)
        else:  # the fused projection's rows: queries for K positions, keys/values for all
            weight, bias = self.qkv.weight, self.qkv.bias
            q = F.linear(queries, weight[:d], bias[:d])  # (B, K, D)
            q = q.view(b, -1, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, K, Dh)
            kv = F.linear(x, weight[d:], bias[d:]).view(b, length, 2, self.num_heads, -1)
            k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, Lq, Dh)
            length = queries.shape[1]
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
        self,
        x: Tensor,
        mask: Tensor | None,
        past: tuple[Tensor, Tensor] | None = None,
        positions: Tensor | None = None,
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Args: x (B, L, D); mask as :class:`SelfAttention`'s; past: cached keys/values;
        positions: (B, K) long, compute the output at these positions of ``x`` only (all of
        ``x`` still gives keys and values). Returns: (B, L or K, D) and the keys/values."""
        queries = None
        if positions is not None:
            queries = x.gather(1, positions[..., None].expand(-1, -1, x.shape[-1]))  # (B, K, D)
            if mask is not None and mask.shape[-2] > 1:  # one row per query: keep K of them
                rows = positions[:, None, :, None].expand(-1, mask.shape[1], -1, mask.shape[-1])
                mask = mask.gather(2, rows)  # (B, 1 or H, K, Lk)
        a, kv = self.attn(x, mask, past, queries)  # (B, L or K, D)
        x = self.ln1((x if queries is None else queries) + self.dropout(a))  # (B, L or K, D)
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
        self,
        x: Tensor,
        mask: Tensor | None,
        cache: KVCache | None = None,
        positions: Tensor | None = None,
    ) -> tuple[Tensor, KVCache]:
        """Args: x (B, L, D); mask bool (B, 1, L or 1, Lk) or float additive (B, H, L, Lk);
        cache: from an earlier call on the preceding positions, or None;
        positions: (B, K) long: only the final states at these positions are wanted, so the
        last layer runs its queries, feed-forward and norms on them alone (the sparse
        prediction of the word and region heads carried into the last layer).
        Returns: (B, L, D) (or (B, K, D) with ``positions``) and the cache extended by x."""
        new_cache: KVCache = []
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            at = positions if i == last else None
            x, kv = layer(x, mask, None if cache is None else cache[i], at)
            new_cache.append(kv)
        return x, new_cache
