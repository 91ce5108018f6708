"""Random masking for masked language modelling and masked region prediction, on the whole
batch with torch RNG (a seeded or restored RNG state reproduces it exactly).

Each row masks ``max(1, round(p * n))`` of its ``n`` eligible positions (BERT's
``create_pretraining_data`` rule), chosen by top-k of random scores, so the number of predicted
positions per row is a static ``K = ceil(p * L)``: no boolean indexing, no host sync, and the
word head runs on ``B * K`` states instead of ``B * L``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def select_positions(
    eligible: Tensor, probability: float, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Pick ``max(1, round(p * n_i))`` random eligible positions per row.

    Args:
        eligible: (B, L) bool, positions that may be picked.
        probability: fraction to pick.
        generator: optional torch generator (default: the global RNG of the device).

    Returns:
        positions (B, K) long and picked (B, K) bool; ``picked`` is False on the slots a row
        does not fill (rows with fewer eligible positions, or none).
    """
    b, length = eligible.shape
    k_max = max(1, math.ceil(probability * length))
    n = eligible.sum(dim=1)  # (B,)
    k = torch.clamp(torch.round(n * probability), min=1).long()  # (B,)
    k = torch.minimum(k, n)  # rows with nothing eligible pick nothing
    scores = torch.rand(b, length, device=eligible.device, generator=generator)  # (B, L)
    scores = scores.masked_fill(~eligible, -1.0)
    positions = scores.topk(k_max, dim=1).indices  # (B, K), eligible ones first
    picked = torch.arange(k_max, device=eligible.device)[None] < k[:, None]  # (B, K)
    return positions, picked


def mask_tokens(
    input_ids: Tensor,
    eligible: Tensor,
    *,
    mask_token_id: int,
    vocab_size: int,
    probability: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """BERT masking (Devlin et al., NAACL 2019, §3.1): of the picked tokens 80% become
    ``[MASK]``, 10% a random word, 10% stay.

    Args:
        input_ids: (B, T) long.
        eligible: (B, T) bool, maskable tokens (real, not special).
        mask_token_id, vocab_size: the vocabulary's ``[MASK]`` id and size.
        probability: fraction of eligible tokens to predict.
        generator: optional torch generator.

    Returns:
        masked_ids (B, T), positions (B, K) long, labels (B, K) long (the original ids, -100
        on unfilled slots).
    """
    positions, picked = select_positions(eligible, probability, generator)  # (B, K)
    original = input_ids.gather(1, positions)  # (B, K)
    labels = original.masked_fill(~picked, -100)  # (B, K)
    u = torch.rand(positions.shape, device=input_ids.device, generator=generator)  # (B, K)
    random_words = torch.randint(
        vocab_size, positions.shape, device=input_ids.device, generator=generator
    )  # (B, K)
    replaced = torch.where(u < 0.8, torch.full_like(original, mask_token_id), original)
    replaced = torch.where((u >= 0.8) & (u < 0.9), random_words, replaced)  # (B, K)
    replaced = torch.where(picked, replaced, original)
    masked_ids = input_ids.scatter(1, positions, replaced)  # (B, T)
    return masked_ids, positions, labels


def mask_regions(
    feats: Tensor,
    eligible: Tensor,
    *,
    probability: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Zero out random regions (UNITER's masked region modelling, used by UNIMO §2.3).

    Args:
        feats: (B, N, F) region features.
        eligible: (B, N) bool, real regions.

    Returns:
        masked_feats (B, N, F), positions (B, K) long, picked (B, K) bool.
    """
    positions, picked = select_positions(eligible, probability, generator)  # (B, K)
    hit = torch.zeros_like(eligible)  # (B, N)
    hit = hit.scatter(1, positions, picked)  # (B, N), True at masked regions
    masked = feats.masked_fill(hit[..., None], 0.0)  # (B, N, F)
    return masked, positions, picked
