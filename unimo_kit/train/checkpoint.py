"""Training checkpoints without pickle: model, optimizer and RNG states in safetensors, the rest
in JSON.

A checkpoint folder ``runs/NAME/checkpoints/step-000500/`` holds

- ``model.safetensors`` + ``config.json``: the model (:func:`unimo_kit.model.save_checkpoint`;
  ``load_checkpoint`` reads the folder directly; another model's files through
  ``write_checkpoint(save_model=...)``, as :mod:`unimo_kit.finetune.checkpoint` does);
- ``optimizer.safetensors``: every tensor of the optimizer state, flattened to
  ``state.<param index>.<name>`` (AdamW: ``exp_avg``, ``exp_avg_sq``, ``step``);
- ``objective.safetensors``: trained tensors of the objective outside the model (a learnt
  CMCL temperature), often empty (absent in ``unimo finetune-clip`` checkpoints);
- ``rng.safetensors``: the Python, numpy, torch (and CUDA) generator states of every rank, as
  ``rank<r>.<generator>`` integer tensors;
- ``state.json``: the :class:`~unimo_kit.train.trainer.TrainState` (step, data position, ...),
  the optimizer's non-tensor state (``param_groups``), and the training config.

The folder is written as ``step-000500.tmp`` and renamed when complete, so a kill never leaves
a half checkpoint under the final name.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from unimo_kit.utils import atomic_write

if TYPE_CHECKING:
    from unimo_kit.train.distributed import DistInfo

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "step-"


# ----------------------------------------------------------------------------- optimizer


def optimizer_state_tensors(
    optimizer: torch.optim.Optimizer,
) -> tuple[dict[str, torch.Tensor], dict]:
    """Split ``optimizer.state_dict()`` into flat tensors and a JSON-able rest."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entries in state["state"].items():
        for name, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"state.{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def load_optimizer_state(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], rest: dict[str, Any]
) -> None:
    """Inverse of :func:`optimizer_state_tensors`."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    for index, entries in rest.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(entries)
    optimizer.load_state_dict({"state": state, "param_groups": rest["param_groups"]})


# ----------------------------------------------------------------------------- RNG


def rng_state_tensors() -> dict[str, torch.Tensor]:
    """This process's Python, numpy, torch (and current CUDA device) generator states."""
    version, py_state, gauss = random.getstate()
    _, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    out = {
        "python": torch.tensor([version, *py_state], dtype=torch.int64),
        "python_gauss": torch.tensor([gauss is not None, gauss or 0.0], dtype=torch.float64),
        "numpy": torch.tensor([*np_keys.tolist(), np_pos, np_has_gauss], dtype=torch.int64),
        "numpy_gauss": torch.tensor([np_gauss], dtype=torch.float64),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state()
    return out


def set_rng_state_tensors(state: dict[str, torch.Tensor]) -> None:
    """Inverse of :func:`rng_state_tensors`."""
    py = state["python"].tolist()
    has_gauss, gauss = state["python_gauss"].tolist()
    random.setstate((py[0], tuple(py[1:]), gauss if has_gauss else None))
    keys = state["numpy"][:-2].numpy().astype(np.uint32)
    pos, has_np_gauss = state["numpy"][-2:].tolist()
    np.random.set_state(("MT19937", keys, pos, has_np_gauss, float(state["numpy_gauss"][0])))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def gather_rng_states(world_size: int) -> list[dict[str, torch.Tensor]]:
    """Every rank's :func:`rng_state_tensors`, in rank order: what :func:`write_checkpoint`
    takes as ``rng_states``.

    A collective: every rank calls it, also those that write nothing (a single process
    gathers nothing and touches no process group).

    Args:
        world_size: processes in the group.

    Returns:
        One dict of generator states per rank.
    """
    from unimo_kit.train.distributed import all_gather_tensor

    local = rng_state_tensors()
    per_generator = [all_gather_tensor(v, world_size) for v in local.values()]  # [gen][rank]
    return [dict(zip(local, parts, strict=True)) for parts in zip(*per_generator, strict=True)]


def restore_rng_states(
    rng: dict[str, torch.Tensor] | None,
    saved_world_size: int,
    world_size: int,
    source: str | os.PathLike,
) -> bool:
    """Put this rank's generators back where a checkpoint left them, when it can.

    A checkpoint written by another number of processes holds other ranks' states (or none
    for this rank): the run then goes on from the generators as the trainer seeded them, with
    a warning naming ``source``; the result is no longer bit-exact with an uninterrupted run.

    Args:
        rng: this rank's states from :func:`read_checkpoint` (``None``: the checkpoint had
            fewer ranks).
        saved_world_size: the world size the checkpoint was written with.
        world_size: the world size now.
        source: the checkpoint folder, for the warning.

    Returns:
        ``True`` when the states were restored.
    """
    if rng is not None and saved_world_size == world_size:
        set_rng_state_tensors(rng)
        return True
    logger.warning("%s: RNG states of another world size; the run goes on reseeded", source)
    return False


# ----------------------------------------------------------------------------- folders


def list_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """Complete step checkpoints of a run, oldest first."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    found = [
        p
        for p in folder.iterdir()
        if p.name.startswith(CHECKPOINT_PREFIX)
        and not p.name.endswith(".tmp")
        and (p / "state.json").exists()
    ]
    return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX) :]))


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def _save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Write ``tensors`` as a safetensors file through :func:`~unimo_kit.utils.atomic_write`.

    Serialised in memory rather than with ``save_file``, which creates its file mode 0600
    whatever the umask: this way the file gets the umask's permissions (others can read a
    shared run) and is synced before the checkpoint folder is renamed into place.
    """
    from safetensors.torch import save

    data = save(tensors)
    with atomic_write(path, "wb") as handle:
        handle.write(data)


#: Writes a model's own files into a checkpoint folder: ``(model, folder, metadata)``.
ModelSaver = Callable[[torch.nn.Module, Path, dict[str, str]], Any]


def _save_unimo_model(model: torch.nn.Module, folder: Path, metadata: dict[str, str]) -> None:
    """The default :data:`ModelSaver`: ``model.safetensors`` + ``config.json`` of a UNIMO model."""
    from unimo_kit.model import save_checkpoint

    save_checkpoint(model, folder, metadata=metadata)


def write_checkpoint(
    run_dir: str | os.PathLike,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    rng_states: list[dict[str, torch.Tensor]],
    state: dict[str, Any],
    keep: int,
    extra: dict[str, torch.Tensor] | None = None,
    save_model: ModelSaver | None = None,
) -> Path:
    """Write ``checkpoints/step-NNNNNN`` atomically and drop all but the newest ``keep``.

    Args:
        run_dir: the run folder (``checkpoints/`` is made in it).
        step: optimizer steps done; names the folder and goes into the model's metadata.
        model: the model, written by ``save_model``.
        optimizer: its state goes to ``optimizer.safetensors`` and ``state.json``.
        rng_states: one :func:`rng_state_tensors` dict per rank, in rank order.
        state: JSON-able training state (the trainer's ``TrainState`` and config).
        keep: newest checkpoints kept (0: all).
        extra: trained tensors outside the model (the objective's learnt temperature), saved
            as ``objective.safetensors``; ``None`` writes no such file.
        save_model: writes the model's files into the folder (default: a UNIMO model's
            ``model.safetensors`` + ``config.json``; ``unimo finetune-clip`` passes an
            open_clip one).

    Returns:
        The checkpoint folder.
    """
    folder = Path(run_dir) / "checkpoints"
    final = folder / f"{CHECKPOINT_PREFIX}{step:06d}"
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (save_model or _save_unimo_model)(model, tmp, {"step": str(step)})
    tensors, rest = optimizer_state_tensors(optimizer)
    _save_tensors(tensors, tmp / "optimizer.safetensors")
    rng = {f"rank{r}.{k}": v.contiguous() for r, s in enumerate(rng_states) for k, v in s.items()}
    _save_tensors(rng, tmp / "rng.safetensors")
    if extra is not None:
        objective = {k: v.detach().cpu().contiguous() for k, v in extra.items()}
        _save_tensors(objective, tmp / "objective.safetensors")
    with atomic_write(tmp / "state.json") as handle:
        handle.write(json.dumps({**state, "optimizer": rest}, indent=2) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def save_from_every_rank(
    run_dir: str | os.PathLike,
    train_state: Any,
    config: Any,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    dist: DistInfo,
    extra: dict[str, torch.Tensor] | None = None,
    save_model: ModelSaver | None = None,
) -> None:
    """A trainer's checkpoint, called on every rank: the RNG states of all ranks are gathered
    (a collective), rank 0 writes them with :func:`write_checkpoint`, and every rank waits
    until it has, so no rank runs ahead of a checkpoint it may resume from.

    Args:
        run_dir: the run folder.
        train_state: the trainer's ``TrainState`` dataclass (its ``step`` names the folder).
        config: the run's config (``to_dict()`` and ``keep_checkpoints``).
        model, optimizer, extra, save_model: as :func:`write_checkpoint`.
        dist: this process's place in the group.
    """
    import dataclasses

    from unimo_kit.train.distributed import barrier

    rng_states = gather_rng_states(dist.world_size)  # a collective: before the rank test
    if dist.is_main:
        write_checkpoint(
            run_dir,
            train_state.step,
            model,
            optimizer,
            rng_states,
            {"train_state": dataclasses.asdict(train_state), "config": config.to_dict()},
            config.keep_checkpoints,
            extra=extra,
            save_model=save_model,
        )
    barrier(dist.world_size)


def read_state(folder: str | os.PathLike) -> dict[str, Any]:
    """A checkpoint's ``state.json``: ``train_state``, ``config`` and the optimizer's
    non-tensor state (``optimizer``)."""
    return json.loads((Path(folder) / "state.json").read_text(encoding="utf-8"))


def finished_train_state(
    final_weights: str | os.PathLike, saved_state: dict[str, Any], steps: int
) -> dict[str, Any] | None:
    """The ``train_state`` of the newest checkpoint when the run is already done: that
    checkpoint (its :func:`read_state`: ``saved_state``) reached ``steps`` and
    ``final_weights`` (``OUT/final/<weights>.safetensors``) were saved at that very step (a
    run extended and stopped since has an older ``final/``, saved again on resume). ``None``
    otherwise. Shared by the UNIMO trainer and ``finetune-clip``."""
    from safetensors import safe_open

    state = saved_state["train_state"]
    if state["step"] < steps or not os.path.isfile(final_weights):
        return None
    with safe_open(str(final_weights), framework="np") as handle:
        final_step = (handle.metadata() or {}).get("step")
    return state if final_step == str(state["step"]) else None


def read_train_config(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The training config a checkpoint was written under (``None`` when it has none)."""
    return read_state(folder).get("config")


def read_checkpoint(
    folder: str | os.PathLike, rank: int, state: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What :func:`write_checkpoint` wrote, for one rank.

    Args:
        folder: the checkpoint folder.
        rank: whose RNG states to return.
        state: the folder's :func:`read_state`, when the caller has read it already.

    Returns:
        ``model`` (state dict), ``objective`` (``{}`` when none was saved), ``optimizer``
        (tensors), ``optimizer_rest``, ``rng`` (this rank's states; ``None`` when the
        checkpoint had fewer ranks) and ``state`` (the JSON without ``optimizer``).
    """
    from safetensors.torch import load_file

    folder = Path(folder)
    state = dict(read_state(folder) if state is None else state)  # a copy: "optimizer" is popped
    rng_all = load_file(str(folder / "rng.safetensors"))
    prefix = f"rank{rank}."
    rng = {k[len(prefix) :]: v for k, v in rng_all.items() if k.startswith(prefix)} or None
    extra = folder / "objective.safetensors"
    return {
        "model": load_file(str(folder / "model.safetensors")),
        "objective": load_file(str(extra)) if extra.exists() else {},
        "optimizer": load_file(str(folder / "optimizer.safetensors")),
        "optimizer_rest": state.pop("optimizer"),
        "rng": rng,
        "state": state,
    }
