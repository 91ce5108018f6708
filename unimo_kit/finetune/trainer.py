"""Fine-tune an open_clip model with hard negatives: one loop, read top to bottom (the
shape of :func:`unimo_kit.train.train`, whose schedule, parameter groups, distributed helpers,
checkpoint files and log it reuses).

    setup (process group, seed, open_clip model, generator, loss, AdamW)
    resume from the newest checkpoint of the run folder, if any
    for each step:
        batch -> image and text towers (bf16 autocast on CUDA) -> NegClipLoss
        average gradients over processes, clip, lr from the cosine schedule, AdamW step,
        clamp the logit scale to 100 (open_clip_train)
        rank 0: log.csv row, progress bar, checkpoint every save_every steps
    rank 0: OUT/final/model.safetensors + open_clip_config.json

A resumed run is exact: weights, optimizer, the schedule (a function of the step), the Python
/ numpy / torch generators of every rank and the data position (epoch, batch) come back, so
the weights after N steps do not depend on where the run was killed.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from unimo_kit.finetune import checkpoint as clip_ckpt
from unimo_kit.finetune.config import FinetuneConfig, resume_differences
from unimo_kit.finetune.data import PairBatches, build_dataset
from unimo_kit.finetune.loss import NegClipLoss
from unimo_kit.train import checkpoint as ckpt
from unimo_kit.train.distributed import (
    barrier,
    broadcast_parameters,
    check_same_step,
    init_distributed,
)
from unimo_kit.train.trainer import CsvLog, TrainState, optimizer_step, param_groups
from unimo_kit.utils import atomic_write, derive_seed, seed_everything

logger = logging.getLogger(__name__)

#: open_clip_train clamps the learnt logit scale to ln(100) after each step.
MAX_LOG_SCALE = math.log(100.0)


@dataclass
class FinetuneResult:
    """What :func:`finetune_clip` returns."""

    run_dir: Path  # the run folder
    final: Path | None  # OUT/final (model.safetensors + open_clip_config.json); None if stopped
    state: TrainState  # step, samples, data position, seconds
    last_losses: dict[str, float]  # mean loss and metrics of the last logged window


def load_open_clip(spec: str, device: str) -> tuple[torch.nn.Module, Any, Any, dict[str, Any]]:
    """The open_clip model of ``open_clip:ARCH[:WEIGHTS]`` (any spec of
    :func:`unimo_kit.resources.open_clip_model`: a config JSON, a model folder) in train mode.

    Returns:
        ``(model, preprocess, tokenizer, open_clip_config)``: the eval transform (no random
        augmentation, so items do not depend on workers), open_clip's tokenizer, and
        ``{"model_name", "model_cfg", "preprocess_cfg"}`` for the saved folders.

    Raises:
        unimo_kit.resources.ResourceNotFound: unknown architecture or weights not loadable.
    """
    import open_clip

    from unimo_kit.resources import open_clip_model, open_clip_source

    source = spec.removeprefix("open_clip:")
    name, _ = open_clip_source(source)
    model, preprocess, tokenizer = open_clip_model(source, device=device)
    config = {
        "model_name": name.removeprefix("local-dir:"),
        "model_cfg": open_clip.get_model_config(name),
        "preprocess_cfg": open_clip.get_model_preprocess_cfg(model),
    }
    return model.train(), preprocess, tokenizer, config


def _image_ids(ids: list[str], device: torch.device) -> torch.Tensor:
    """(B,) long identity of each item's image: its pair id (``"<pair>#<i>"`` -> pair)."""
    keys = [derive_seed(0, "image", str(i).rsplit("#", 1)[0]) for i in ids]
    return torch.tensor(keys, dtype=torch.long, device=device)


def batch_loss(
    model: torch.nn.Module, loss_fn: NegClipLoss, batch: dict[str, Any], device: str
) -> dict[str, torch.Tensor]:
    """The loss dict of one collated batch: captions, real negatives and positives through the
    text tower in one pass, images through the image tower."""
    from unimo_kit.generators import flatten_columns

    dev = torch.device(device)
    images = batch["images"].to(dev, non_blocking=True)  # (B, C, H, W)
    texts = batch["texts"]  # (B, L)
    negatives, neg_owner = flatten_columns(batch["negatives"], batch["negatives_mask"])  # (H, L)
    positives, pos_owner = flatten_columns(batch["positives"], batch["positives_mask"])  # (P, L)
    tokens = torch.cat([texts, negatives, positives]).to(dev, non_blocking=True)  # (B+H+P, L)
    image_features = model.encode_image(images, normalize=True)  # (B, E)
    text_all = model.encode_text(tokens, normalize=True)  # (B+H+P, E)
    b, h = texts.shape[0], negatives.shape[0]
    return loss_fn(
        image_features,
        text_all[:b],
        model.logit_scale.exp(),
        image_ids=_image_ids(batch["ids"], dev),
        neg_text_features=text_all[b : b + h],
        neg_text_owner=neg_owner.to(dev),
        pos_text_features=text_all[b + h :] if positives.shape[0] else None,
        pos_text_owner=pos_owner.to(dev) if positives.shape[0] else None,
    )


def finetune_clip(
    config: FinetuneConfig, *, resume: bool = True, stop_after: int | None = None
) -> FinetuneResult:
    """Fine-tune an open_clip model with the toolkit's hard negatives (NegCLIP).

    Args:
        config: the run (``config.out`` is the run folder: config.json, log.csv,
            checkpoints/step-N/, final/).
        resume: continue from the newest checkpoint in the run folder (``False``: start
            afresh, removing old checkpoints, final/ and the log).
        stop_after: stop once this many steps are done, with a checkpoint there (the
            schedule still spans ``config.steps``); the next call resumes.

    Returns:
        A :class:`FinetuneResult`. ``final`` loads where open_clip models load:
        ``unimo eval compositional --open-clip ARCH:OUT/final/model.safetensors``.

    Raises:
        ValueError: the run folder holds a run of another config, or the data give no batch.
    """
    from tqdm import tqdm

    # ---- setup ------------------------------------------------------------------------------
    dist = init_distributed(config.device)
    config = config.resolved()
    run_dir = Path(config.out)
    if config.threads:
        torch.set_num_threads(config.threads)
    latest = ckpt.latest_checkpoint(run_dir) if resume else None
    saved_state = ckpt.read_state(latest) if latest is not None else None  # read once
    if latest is not None:
        _check_resumable(latest, saved_state.get("config"), config)
        final_weights = run_dir / "final" / clip_ckpt.WEIGHTS_NAME
        done = ckpt.finished_train_state(final_weights, saved_state, config.steps)
        if done is not None:
            return FinetuneResult(run_dir, run_dir / "final", TrainState(**done), {})
    seed_everything(config.seed)  # same on every rank: identical initial weights
    model, preprocess, tokenizer, clip_config = load_open_clip(config.model, dist.device)
    broadcast_parameters(model, dist.world_size)
    seed_everything(config.seed + dist.rank)  # from here ranks differ (dropout)
    dataset = build_dataset(config, preprocess, tokenizer, dist.rank, dist.world_size)
    device_type = "cuda" if dist.device.startswith("cuda") else "cpu"
    batches = PairBatches(
        dataset,
        config.batch_size,
        seed=config.seed,
        rank=dist.rank,
        world_size=dist.world_size,
        num_workers=config.num_workers,
        pin_memory=device_type == "cuda",
    )
    loss_fn = NegClipLoss(
        hard_negative_weight=config.rank_weight,
        hard_negative_scope=config.hard_negative_scope,
        rank=dist.rank,
        world_size=dist.world_size,
    )
    if dist.is_main:  # inputs are good: only now may the run folder change
        if not resume:
            for stale in ("checkpoints", "final"):
                shutil.rmtree(run_dir / stale, ignore_errors=True)
        if latest is None:
            (run_dir / "log.csv").unlink(missing_ok=True)
        run_dir.mkdir(parents=True, exist_ok=True)
        with atomic_write(run_dir / "config.json") as handle:
            handle.write(json.dumps(config.to_dict(), indent=2) + "\n")
    barrier(dist.world_size)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        param_groups(model, config.weight_decay),
        lr=config.lr,
        betas=config.adam_betas,
        eps=config.adam_eps,
    )
    use_bf16 = config.precision == "bf16" or (config.precision == "auto" and device_type == "cuda")

    # ---- resume -----------------------------------------------------------------------------
    state = TrainState(world_size=dist.world_size)
    if latest is not None:
        saved = ckpt.read_checkpoint(latest, dist.rank, state=saved_state)
        model.load_state_dict(saved["model"])
        ckpt.load_optimizer_state(optimizer, saved["optimizer"], saved["optimizer_rest"])
        state = TrainState(**saved["state"]["train_state"])
        batches.load_state_dict(state.data["pairs"])
        ckpt.restore_rng_states(saved["rng"], state.world_size, dist.world_size, latest)
        state.world_size = dist.world_size
        if dist.is_main:
            logger.info("resumed from %s (step %d)", latest, state.step)
    check_same_step(state.step, dist.world_size)
    saved_step = state.step
    stream = iter(batches)
    log = CsvLog(run_dir / "log.csv", after_step=state.step) if dist.is_main else None
    bar = tqdm(
        total=config.steps,
        initial=state.step,
        desc="finetune-clip",
        disable=not (dist.is_main and config.progress),
        file=sys.stderr,
        dynamic_ncols=True,
    )
    window: dict[str, list[torch.Tensor]] = {}
    last_losses: dict[str, float] = {}
    model.train()
    saver = clip_ckpt.model_saver(clip_config)

    def save() -> None:  # on every rank (a collective)
        ckpt.save_from_every_rank(
            run_dir, state, config, model, optimizer, dist=dist, save_model=saver
        )

    # ---- loop -------------------------------------------------------------------------------
    while state.step < config.steps:
        if stop_after is not None and state.step >= stop_after:
            break
        t0 = time.perf_counter()
        batch = next(stream)
        with torch.autocast(device_type=device_type, dtype=torch.bfloat16, enabled=use_bf16):
            out = batch_loss(model, loss_fn, batch, dist.device)
            loss = sum(v for k, v in out.items() if k.endswith("_loss"))
        loss.backward()
        for key, value in [("loss", loss), *out.items()]:
            window.setdefault(key, []).append(value.detach().float())
        grad_norm, lr = optimizer_step(optimizer, params, config, state.step, dist.world_size)
        with torch.no_grad():
            model.logit_scale.clamp_(0, MAX_LOG_SCALE)
        state.step += 1
        state.samples += config.batch_size * dist.world_size
        state.data = {"pairs": batches.state_dict()}
        step_seconds = time.perf_counter() - t0
        state.train_seconds += step_seconds
        bar.update(1)
        if dist.is_main and (state.step % config.log_every == 0 or state.step == config.steps):
            last_losses = {k: torch.stack(v).mean().item() for k, v in window.items()}
            window = {}
            if not math.isfinite(last_losses["loss"]):
                raise FloatingPointError(f"loss is {last_losses['loss']} at step {state.step}")
            log.write(
                {
                    "step": state.step,
                    "lr": lr,
                    "grad_norm": float(grad_norm),
                    "step_seconds": step_seconds,
                    **last_losses,
                }
            )
            bar.set_postfix(loss=f"{last_losses['loss']:.3f}")
        if state.step % config.save_every == 0 or state.step == config.steps:
            save()
            saved_step = state.step
    bar.close()
    if state.step < config.steps and state.step != saved_step:
        save()  # stopped early

    # ---- end --------------------------------------------------------------------------------
    final = None
    if state.step >= config.steps and dist.is_main:
        final = clip_ckpt.save_model(
            model, run_dir / "final", clip_config, metadata={"step": str(state.step)}
        )
    barrier(dist.world_size)
    return FinetuneResult(run_dir, final, state, last_losses)


# ----------------------------------------------------------------------------- helpers


def _check_resumable(
    checkpoint: Path, saved: dict[str, Any] | None, config: FinetuneConfig
) -> None:
    """Refuse to resume ``checkpoint``, trained under the config ``saved``, with a config
    that learns something else."""
    if saved is None:
        return
    refused = resume_differences(saved, config)
    if refused:
        run_dir = checkpoint.parent.parent
        raise ValueError(
            f"{run_dir} holds a fine-tuning run of another config (newest checkpoint "
            f"{checkpoint.name}), which differs in {'; '.join(refused)}: resume it with its own "
            "settings, start afresh with --no-resume, or pass another -o/--output"
        )
    if saved.get("steps") != config.steps:
        logger.warning(
            "resuming %s with steps %s -> %s", checkpoint, saved.get("steps"), config.steps
        )
