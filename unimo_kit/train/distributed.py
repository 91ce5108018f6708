"""Process group setup from the torchrun environment, and the few collectives the trainer uses.

``torchrun --nproc-per-node N -m unimo_kit.cli.main train ...`` sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; :func:`init_distributed` reads them and
starts a ``gloo`` group on CPU, or on GPUs one that runs ``nccl`` for CUDA tensors and ``gloo``
for CPU tensors (:data:`GPU_BACKEND`: the RNG states gathered into every checkpoint are CPU
tensors, which an nccl-only group refuses). Without them (``WORLD_SIZE`` unset or 1) it
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

#: Process group backends on GPUs: nccl for CUDA tensors (gradients, features), gloo for the
#: CPU tensors a checkpoint gathers (every generator's state is a CPU tensor).
GPU_BACKEND = "cpu:gloo,cuda:nccl"


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
        dist.init_process_group(backend=GPU_BACKEND if device.startswith("cuda") else "gloo")
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


def check_same_step(step: int, world_size: int) -> None:
    """Refuse to go on unless every process resumed at the same step.

    Each rank finds its checkpoint in the run folder by itself: a folder on one node's local
    disk lets rank 0 resume while the ranks of other nodes start at step 0, and their
    collectives would then disagree or hang.

    Raises:
        ValueError: on every rank, naming the step of each.
    """
    if world_size == 1:
        return
    steps = [int(t.item()) for t in all_gather_tensor(torch.tensor([step]), world_size)]
    if len(set(steps)) > 1:
        raise ValueError(
            f"the processes resumed at different steps (per rank: {steps}): every node must "
            "see the same run folder (--out on a filesystem shared by all nodes)"
        )


def barrier(world_size: int) -> None:
    if world_size > 1:
        import torch.distributed as dist

        dist.barrier()


def cleanup(world_size: int) -> None:
    if world_size > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
