"""Process group setup from the torchrun environment, and the few collectives the trainer uses.

``torchrun --nproc-per-node N -m unimo_kit.cli.main train ...`` sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; :func:`init_distributed` reads them and
starts a ``gloo`` (CPU) or ``nccl`` (GPU) group. Without them (``WORLD_SIZE`` unset or 1) it
returns a single-process :class:`DistInfo` and ``torch.distributed`` is never touched.

Gradients are averaged by :func:`all_reduce_gradients` once per optimizer step (after the
micro-batches of gradient accumulation) rather than by DDP: the objectives switch parts of the
model on and off (a parameter unused on one step is a zero gradient here, not a DDP error), and
there is exactly one communication point to read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands."""

    rank: int = 0  # global rank
    world_size: int = 1  # number of processes
    local_rank: int = 0  # rank on this machine (picks the GPU)
    device: str = "cpu"  # this process's torch device

    @property
    def is_main(self) -> bool:
        """Only the main process writes files and logs."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str | None = None) -> DistInfo:
    """Join the process group described by the torchrun environment variables.

    Args:
        device: ``"cpu"``, ``"cuda"`` or ``None`` (cuda when visible). With several processes
            on GPUs each takes ``cuda:LOCAL_RANK``.

    Returns:
        The :class:`DistInfo`; single process when ``WORLD_SIZE`` is unset or 1.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and ":" not in device:
        device = f"cuda:{local_rank}"
    if world_size == 1:
        return DistInfo(0, 1, 0, device)
    import torch.distributed as dist

    if device.startswith("cuda"):
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, device)


def all_reduce_gradients(parameters: list[torch.nn.Parameter], world_size: int) -> None:
    """Average the gradients of ``parameters`` over all processes, in one flat buffer.

    A parameter without a gradient on this process counts as a zero gradient (and gets one),
    so every process takes the same optimizer step.
    """
    if world_size == 1:
        return
    import torch.distributed as dist

    grads = []
    for p in parameters:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        grads.append(p.grad)
    flat = torch.cat([g.reshape(-1) for g in grads])  # (Σ numel,)
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def broadcast_parameters(module: torch.nn.Module, world_size: int) -> None:
    """Copy rank 0's parameters and buffers to every process (identical starting weights)."""
    if world_size == 1:
        return
    import torch.distributed as dist

    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=0)


def all_gather_tensor(tensor: torch.Tensor, world_size: int) -> list[torch.Tensor]:
    """Every process's copy of a same-shaped tensor, in rank order."""
    if world_size == 1:
        return [tensor]
    import torch.distributed as dist

    out = [torch.empty_like(tensor) for _ in range(world_size)]
    dist.all_gather(out, tensor.contiguous())
    return out


def barrier(world_size: int) -> None:
    if world_size > 1:
        import torch.distributed as dist

        dist.barrier()


def cleanup(world_size: int) -> None:
    if world_size > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
