"""Gathering contrastive features across ranks (the open_clip ``gather_features`` pattern,
Ilharco et al., open_clip ``src/open_clip/loss.py``), extended to tensors whose leading size
differs between ranks (the number of extra positives and hard negatives varies per batch).

All tensors of one dtype travel in one packed buffer, so a step costs one small all_gather for
the sizes plus one all_gather per dtype, and the backward pass exactly one all_reduce: every
rank runs the same collectives in the same order whatever groups its batch holds.

A single process (``world_size == 1``) returns its inputs untouched and never touches
``torch.distributed``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


class _AllGatherWithGrad(torch.autograd.Function):
    """All-gather whose backward sends each rank the sum over ranks of the gradient of its slice
    (an all_reduce, so it also runs on gloo, which has no reduce_scatter)."""

    @staticmethod
    def forward(ctx, tensor: Tensor, rank: int, world_size: int) -> Tensor:
        import torch.distributed as dist

        ctx.rank = rank
        parts = [torch.empty_like(tensor) for _ in range(world_size)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.stack(parts)  # (W, n)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:
        import torch.distributed as dist

        grad = grad.contiguous()
        dist.all_reduce(grad)  # Σ over ranks of d(loss_r)/d(gathered)
        return grad[ctx.rank], None, None


def gather_features(
    *tensors: Tensor, rank: int = 0, world_size: int = 1, gather_with_grad: bool = True
) -> tuple[Tensor, ...]:
    """All-gather tensors along dim 0, concatenated in rank order.

    The leading size may differ per rank (sizes are exchanged first and each tensor padded to
    the longest); trailing shapes and dtypes must agree across ranks.

    Args:
        *tensors: local tensors (n_r, ...). Floating tensors keep their gradient path; integer
            ones (ids, owners) are gathered as data.
        rank: this process's rank.
        world_size: number of processes; 1 = no communication.
        gather_with_grad: backpropagate through the gather (every rank's loss sends gradient
            to every rank's features). If False, other ranks' slices are constants and only the
            local slice (the local tensor itself) carries gradient.

    Returns:
        One tensor (Σ_r n_r, ...) per input, rank r's rows at offset Σ_{q<r} n_q.
    """
    if world_size == 1:
        return tensors
    import torch.distributed as dist

    device = tensors[0].device
    local_sizes = torch.tensor([t.shape[0] for t in tensors], device=device)  # (K,)
    all_sizes = [torch.empty_like(local_sizes) for _ in range(world_size)]
    dist.all_gather(all_sizes, local_sizes)
    sizes = torch.stack(all_sizes).tolist()  # [W][K]
    longest = [max(*(sizes[r][k] for r in range(world_size)), 1) for k in range(len(tensors))]

    # Pack per dtype: flat buffers of padded tensors, in argument order.
    by_dtype: dict[torch.dtype, list[int]] = {}
    for k, tensor in enumerate(tensors):
        by_dtype.setdefault(tensor.dtype, []).append(k)
    out: list[Tensor | None] = [None] * len(tensors)
    for dtype in sorted(by_dtype, key=str):
        ks = by_dtype[dtype]
        flat = []
        for k in ks:
            t = tensors[k]
            if t.shape[0] < longest[k]:
                t = torch.cat([t, t.new_zeros((longest[k] - t.shape[0], *t.shape[1:]))])
            flat.append(t.reshape(-1))
        buffer = torch.cat(flat)  # (n,)
        if gather_with_grad and dtype.is_floating_point:
            if not buffer.requires_grad:  # keep this rank in the backward all_reduce
                buffer = buffer.detach().requires_grad_()
            gathered = _AllGatherWithGrad.apply(buffer, rank, world_size)  # (W, n)
            per_rank = list(gathered.unbind(0))
        else:
            per_rank = [torch.empty_like(buffer) for _ in range(world_size)]
            dist.all_gather(per_rank, buffer.contiguous())
            per_rank[rank] = buffer  # the local slice keeps its gradient
        for k in ks:
            trailing = tensors[k].shape[1:]
            numel = longest[k] * math.prod(trailing)
            offset = sum(longest[j] * math.prod(tensors[j].shape[1:]) for j in ks[: ks.index(k)])
            out[k] = torch.cat(
                [
                    per_rank[r][offset : offset + numel].view(longest[k], *trailing)[: sizes[r][k]]
                    for r in range(world_size)
                ]
            )
    return tuple(out)  # type: ignore[arg-type]
