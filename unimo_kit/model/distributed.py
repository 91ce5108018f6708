"""Gathering contrastive features across ranks (the open_clip ``gather_features`` pattern,
Ilharco et al., open_clip ``src/open_clip/loss.py``), extended to tensors whose leading size
differs between ranks (the number of extra positives and hard negatives varies per batch).

A single process (``world_size == 1``) returns its inputs untouched and never touches
``torch.distributed``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def gather_features(
    *tensors: Tensor, rank: int = 0, world_size: int = 1, gather_with_grad: bool = True
) -> tuple[Tensor, ...]:
    """All-gather tensors along dim 0, concatenated in rank order.

    The leading size may differ per rank: sizes are exchanged first (one small all_gather),
    each tensor is padded to the largest size, gathered, and the padding dropped.

    Args:
        *tensors: local tensors (n_r, ...). Floating tensors keep their gradient path, integer
            ones (ids, owners) are gathered as data.
        rank: this process's rank.
        world_size: number of processes; 1 = no communication.
        gather_with_grad: backpropagate through the gather (``torch.distributed.nn``
            all_gather: every rank's loss sends gradient to every rank's features). If False,
            other ranks' slices are constants and only the local slice (re-inserted as the
            local tensor) carries gradient.

    Returns:
        One tensor (Σ_r n_r, ...) per input, rank r's rows at offset Σ_{q<r} n_q.
    """
    if world_size == 1:
        return tensors
    import torch.distributed as dist
    import torch.distributed.nn as dist_nn

    device = tensors[0].device
    local_sizes = torch.tensor([t.shape[0] for t in tensors], device=device)  # (K,)
    all_sizes = [torch.empty_like(local_sizes) for _ in range(world_size)]
    dist.all_gather(all_sizes, local_sizes)
    sizes = torch.stack(all_sizes).tolist()  # [world][K]
    out = []
    for k, tensor in enumerate(tensors):
        per_rank = [sizes[r][k] for r in range(world_size)]
        longest = max(per_rank)
        padded = tensor
        if tensor.shape[0] < longest:
            pad = tensor.new_zeros((longest - tensor.shape[0], *tensor.shape[1:]))
            padded = torch.cat([tensor, pad], dim=0)  # (longest, ...)
        if gather_with_grad and tensor.is_floating_point():
            gathered = list(dist_nn.all_gather(padded))
        else:
            gathered = [torch.empty_like(padded) for _ in range(world_size)]
            dist.all_gather(gathered, padded.contiguous())
            gathered[rank] = padded  # keep the local gradient path
        out.append(torch.cat([g[:n] for g, n in zip(gathered, per_rank, strict=True)], dim=0))
    return tuple(out)


def rank_offset(local_size: int, rank: int) -> int:
    """First global row of this rank when every rank has ``local_size`` rows."""
    return rank * local_size
