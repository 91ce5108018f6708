"""CMCL across two real gloo processes equals one process on the doubled batch: the loss, the
gradient w.r.t. each rank's input features and (DDP-averaged) the gradient of a shared
projection. Ranks hold different numbers of extra positives and hard negatives, which
exercises gather_features' padding; a group absent on one rank (no hard negatives there) must
still be gathered."""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

from unimo_kit.model.losses import CMCLLoss

B, E, IN = 4, 6, 5
# per rank: (number of positive texts, positive images, hard negatives)
COUNTS = {0: (3, 2, 5), 1: (1, 0, 0)}


def rank_inputs(rank: int) -> dict[str, torch.Tensor]:
    """Raw inputs of one rank (the projection turns them into features)."""
    g = torch.Generator().manual_seed(100 + rank)
    p_t, p_v, h = COUNTS[rank]
    ids = torch.tensor([0, 1, 1, 2]) + 10 * rank  # globally unique image ids, one duplicate
    return {
        "image": torch.randn(B, IN, generator=g),
        "text": torch.randn(B, IN, generator=g),
        "pos_text": torch.randn(p_t, IN, generator=g),
        "pos_text_owner": torch.randint(B, (p_t,), generator=g),
        "pos_image": torch.randn(p_v, IN, generator=g),
        "pos_image_owner": torch.randint(B, (p_v,), generator=g),
        "neg_text": torch.randn(h, IN, generator=g),
        "neg_text_owner": torch.randint(B, (h,), generator=g),
        "image_ids": ids,
    }


def projection() -> torch.nn.Linear:
    torch.manual_seed(7)
    return torch.nn.Linear(IN, E)


def cmcl(loss_fn: CMCLLoss, proj: torch.nn.Linear, x: dict[str, torch.Tensor]) -> torch.Tensor:
    def f(name):  # an empty group is left out, as the objective does
        return F.normalize(proj(x[name]), dim=-1) if x[name].shape[0] else None

    return loss_fn(
        f("image"),
        f("text"),
        x["image_ids"],
        pos_text_features=f("pos_text"),
        pos_text_owner=x["pos_text_owner"],
        pos_image_features=f("pos_image"),
        pos_image_owner=x["pos_image_owner"],
        neg_text_features=f("neg_text"),
        neg_text_owner=x["neg_text_owner"],
    )["cmcl_loss"]


def _worker(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist
    from safetensors.torch import save_file

    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size
    )
    try:
        x = rank_inputs(rank)
        for name in ("image", "text", "pos_text", "pos_image", "neg_text"):
            x[name].requires_grad_()
        proj = projection()
        loss = cmcl(CMCLLoss(0.1, rank=rank, world_size=world_size), proj, x)
        loss.backward()
        global_loss = cmcl(
            CMCLLoss(0.1, rank=rank, world_size=world_size, local_loss=False), proj, x
        )
        result = {
            "loss": loss.detach().reshape(1),
            "global_loss": global_loss.detach().reshape(1),
            "proj_weight_grad": proj.weight.grad.clone(),
            **{
                f"{n}_grad": x[n].grad if x[n].grad is not None else torch.zeros_like(x[n])
                for n in ("image", "text", "pos_text", "neg_text")
            },
        }
        # a rank without pairs joins the gathers with no rows (and its backward with them)
        if rank == 1:
            empty = torch.zeros(0, E)  # not even requiring grad
            alone = CMCLLoss(0.1, rank=rank, world_size=world_size)(empty, empty)["cmcl_loss"]
        else:
            alone = cmcl(
                CMCLLoss(0.1, rank=rank, world_size=world_size),
                projection(),
                {k: v.detach() for k, v in x.items()},
            )
        alone.backward()
        result["alone"] = alone.detach().reshape(1)
        save_file(
            {k: v.contiguous() for k, v in result.items()},
            os.path.join(out_dir, f"rank{rank}.safetensors"),
        )
    finally:
        dist.destroy_process_group()


@pytest.mark.distributed
def test_two_gloo_ranks_match_one_process(tmp_path):
    import torch.multiprocessing as mp
    from safetensors.torch import load_file

    world = 2
    mp.spawn(_worker, args=(world, str(tmp_path / "init"), str(tmp_path)), nprocs=world, join=True)
    ranks = [load_file(str(tmp_path / f"rank{r}.safetensors")) for r in range(world)]

    # one process, the doubled batch: owners of rank 1 shift by B
    parts = [rank_inputs(r) for r in range(world)]
    x = {}
    for name in parts[0]:
        shift = B if name.endswith("owner") else 0
        x[name] = torch.cat([parts[0][name], parts[1][name] + shift])
    for name in ("image", "text", "pos_text", "pos_image", "neg_text"):
        x[name].requires_grad_()
    proj = projection()
    full = cmcl(CMCLLoss(0.1), proj, x)
    full.backward()

    alone = cmcl(CMCLLoss(0.1), projection(), rank_inputs(0))
    torch.testing.assert_close(ranks[0]["alone"][0], alone.detach(), rtol=1e-5, atol=1e-6)
    assert ranks[1]["alone"].item() == 0.0

    # the local losses average to the full loss; the global loss equals it on every rank
    mean_local = sum(r["loss"] for r in ranks) / world
    torch.testing.assert_close(mean_local[0], full.detach(), rtol=1e-5, atol=1e-6)
    for r in ranks:
        torch.testing.assert_close(r["global_loss"][0], full.detach(), rtol=1e-5, atol=1e-6)
    # each rank's input gradient is world_size x its slice of d(full)/d(input): every rank's
    # loss reaches it through the gather with grad
    offsets = {"image": B, "text": B}
    for name in ("image", "text", "pos_text", "neg_text"):
        n0 = offsets.get(name, parts[0][name].shape[0])
        expected = [x[name].grad[:n0], x[name].grad[n0:]]
        for r in range(world):
            torch.testing.assert_close(
                ranks[r][f"{name}_grad"] / world, expected[r], rtol=1e-5, atol=1e-7
            )
    # DDP averages parameter gradients over ranks: that is the full batch's gradient
    ddp_grad = sum(r["proj_weight_grad"] for r in ranks) / world
    torch.testing.assert_close(ddp_grad, proj.weight.grad, rtol=1e-5, atol=1e-7)
