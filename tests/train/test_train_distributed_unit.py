"""The process group's backends and the resumed-step check, without a second process (the
collectives are replaced by fakes)."""

from __future__ import annotations

import pytest
import torch
import torch.distributed

from unimo_kit.train import distributed
from unimo_kit.train.distributed import GPU_BACKEND, check_same_step, init_distributed


def _fake_group(monkeypatch) -> dict:
    """Replace the process group calls; returns what init_process_group was given."""
    seen: dict = {}
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.distributed, "init_process_group", lambda **kw: seen.update(kw))
    monkeypatch.setattr(torch.distributed, "get_rank", lambda *a: 1)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda *a: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: seen.update(cuda=device))
    return seen


def test_gpu_groups_run_nccl_for_cuda_tensors_and_gloo_for_cpu_ones(monkeypatch):
    """The RNG states a checkpoint gathers are CPU tensors: an nccl-only group refuses them
    ("No backend type associated with device type cpu")."""
    from torch.distributed.distributed_c10d import BackendConfig

    seen = _fake_group(monkeypatch)
    info = init_distributed("cuda")
    assert seen == {"backend": GPU_BACKEND, "cuda": "cuda:1"}
    assert (info.rank, info.world_size, info.device) == (1, 2, "cuda:1")
    backends = BackendConfig(torch.distributed.Backend(seen["backend"])).get_device_backend_map()
    assert backends == {"cpu": "gloo", "cuda": "nccl"}

    seen.clear()
    assert init_distributed("cpu").device == "cpu"
    assert seen == {"backend": "gloo"}


def test_ranks_that_resumed_at_different_steps_are_refused(monkeypatch):
    def all_gather(out, tensor):  # rank 0 resumed at step 500, rank 1 found no checkpoint
        out[0].fill_(500)
        out[1].fill_(0)

    monkeypatch.setattr(torch.distributed, "all_gather", all_gather)
    with pytest.raises(ValueError, match=r"different steps \(per rank: \[500, 0\]\).*shared"):
        check_same_step(500, world_size=2)

    monkeypatch.setattr(torch.distributed, "all_gather", lambda out, t: [o.copy_(t) for o in out])
    check_same_step(500, world_size=2)  # agreeing ranks go on
    check_same_step(7, world_size=1)  # one process: no collective at all
    assert distributed.all_gather_tensor(torch.ones(2), 1)[0].tolist() == [1.0, 1.0]
