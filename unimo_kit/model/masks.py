"""UniLM attention masks (Dong et al., NeurIPS 2019, "Unified Language Model Pre-training for
Natural Language Understanding and Generation", Fig. 1), as boolean masks for
:func:`torch.nn.functional.scaled_dot_product_attention` (``True`` = may attend).

A sequence is a *source* prefix followed by a *target* part. Bidirectional mode is the special
case where everything is source. In UNIMO's seq2seq mode the source is ``[IMG]`` + regions (and,
for text-only seq2seq, the first words of the text), the target is the text to generate:

- source tokens attend to every valid source token (not to the target);
- target tokens attend to every valid source token and causally to the target up to themselves.

Every query also attends to itself, so that padded queries never see an all-False row (SDPA
would return NaN there); padded outputs are ignored by every loss.
"""

from __future__ import annotations

import torch
from torch import Tensor


def bidirectional_mask(key_valid: Tensor) -> Tensor:
    """Every token attends to every valid token.

    Args:
        key_valid: (B, L) bool, True at real (non-padding) tokens.

    Returns:
        (B, 1, 1, L) bool mask, broadcast by SDPA over heads and queries.
    """
    return key_valid[:, None, None, :]


def seq2seq_mask(key_valid: Tensor, prefix_length: Tensor) -> Tensor:
    """Source prefix attends bidirectionally; the rest attends to the source and causally.

    Args:
        key_valid: (B, L) bool, True at real tokens.
        prefix_length: (B,) long, number of leading positions that form the source. A value of
            ``L`` gives the bidirectional mask (as a full (L, L) mask), ``0`` a causal one.

    Returns:
        (B, 1, L, L) bool mask.
    """
    length = key_valid.shape[1]
    pos = torch.arange(length, device=key_valid.device)  # (L,)
    causal = pos[None, :] <= pos[:, None]  # (L, L) key j <= query i
    key_in_source = pos[None, :] < prefix_length[:, None]  # (B, L)
    allowed = key_valid[:, None, :] & (key_in_source[:, None, :] | causal[None])  # (B, L, L)
    allowed = allowed | torch.eye(length, dtype=torch.bool, device=key_valid.device)[None]
    return allowed[:, None]  # (B, 1, L, L)
