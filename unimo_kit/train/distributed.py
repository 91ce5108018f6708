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

Several machines: ``torchrun --nnodes N --rdzv-backend c10d --max-restarts R`` restarts the
whole group when a process dies, and the trainer resumes from the newest checkpoint in
``-o/--output`` (docs/train.md, "Several machines"). :func:`restart_hazard` names the one torchrun
setting such a restart needs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch

logger = logging.getLogger(__name__)

#: Exported for torchrun, it gives every restarted group a fresh TCP store (pytorch#135712).
SHARED_STORE_OPT_OUT = "TORCH_DISABLE_SHARE_RDZV_TCP_STORE"

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
    hazard = restart_hazard(os.environ)
    if hazard and dist.get_rank() == 0:
        logger.warning(hazard)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, device)


def restart_hazard(env: Mapping[str, str]) -> str | None:
    """Why a group that torchrun restarts (``--max-restarts``) would fail to reconnect.

    With c10d rendezvous torchrun lets its workers build their process group on the agent's
    own TCP store (``TORCHELASTIC_USE_AGENT_STORE=True``). That store outlives a restart and
    still holds the addresses the dead attempt published, so the restarted ranks dial them:
    with torch 2.14 a two-node restart here failed with "Gloo connectFullMesh failed ...
    Connection refused" (pytorch/pytorch#135712). ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1``
    in torchrun's environment gives every attempt a store of its own.

    Args:
        env: the worker's environment (``os.environ``).

    Returns:
        A one-line warning naming the fix; ``None`` when restarts are off or safe.
    """
    if env.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    restarts = int(env.get("TORCHELASTIC_MAX_RESTARTS") or 0)
    if restarts == 0:
        return None
    return (
        f"torchrun may restart this group (--max-restarts {restarts}) but shares its rendezvous "
        "store with the workers, and a restarted group then reads the dead attempt's addresses "
        f"and fails to connect: export {SHARED_STORE_OPT_OUT}=1 for torchrun (docs/train.md)"
    )


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
            "see the same run folder (-o/--output on a filesystem shared by all nodes)"
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
