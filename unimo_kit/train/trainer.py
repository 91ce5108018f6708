"""The training loop: one function, read top to bottom (nanoGPT ``train.py``, open_clip
``train_one_epoch``).

    setup (process group, seed, model, objective, optimizer, data)
    resume from the newest checkpoint of the run folder, if any
    for each optimizer step:
        grad_accum micro-batches: forward (bf16 autocast on GPU), sum of *_loss, backward
        average gradients over processes, clip, set lr from the schedule, AdamW step
        rank 0: log.csv row, progress bar, checkpoint, quick val R@1

A resumed run is exact: model, optimizer, the schedule (a function of the step), the Python /
numpy / torch generators of every rank and the data position (sampler epoch and index per kind)
all come back, so the weights after N steps do not depend on where the run was stopped.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from unimo_kit.train import checkpoint as ckpt
from unimo_kit.train.config import TrainConfig, resume_differences
from unimo_kit.train.distributed import (
    DistInfo,
    all_reduce_gradients,
    barrier,
    broadcast_parameters,
    check_same_step,
    init_distributed,
)
from unimo_kit.train.schedule import lr_at
from unimo_kit.utils import atomic_write, seed_everything

logger = logging.getLogger(__name__)


@dataclass
class TrainState:
    """What a checkpoint needs beyond weights and optimizer: where the run is."""

    step: int = 0  # optimizer steps done
    samples: int = 0  # records consumed, all processes and kinds
    data: dict[str, dict[str, int]] = field(default_factory=dict)  # sampler epoch/index per kind
    train_seconds: float = 0.0  # time spent training, over all resumes
    world_size: int = 1  # processes of the run that wrote the checkpoint


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    run_dir: Path  # the run folder
    final: Path | None  # runs/NAME/final (model.safetensors + config.json), None if stopped early
    state: TrainState  # state at the end
    last_losses: dict[str, float]  # mean losses/metrics of the last logged window
    eval: dict[str, float] | None  # the last quick retrieval check, if any


def param_groups(module: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: decay on weight matrices; none on biases, LayerNorms, embeddings and any
    other 1-D parameter (tokens, logit scale)."""
    no_decay: set[int] = set()
    for mod in module.modules():
        if isinstance(mod, torch.nn.Embedding | torch.nn.LayerNorm):
            no_decay.update(id(p) for p in mod.parameters(recurse=False))
    decay, other, seen = [], [], set()
    for _, p in module.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        (other if id(p) in no_decay or p.ndim < 2 else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": other, "weight_decay": 0.0},
    ]


#: At most this many CPU cores and a run uses one torch thread unless ``threads`` says otherwise.
FEW_CORES = 2


def device_threads(threads: int | None, device: str, cores: int | None = None) -> int | None:
    """The torch CPU threads of a run: ``threads`` when set; else, training on the CPU of a
    machine with at most :data:`FEW_CORES` cores, 1; else ``None`` (torch's default).

    On a 2-core machine two threads gave no faster step than one (synth-small, idle: 0.53 s
    either way) and, with other work running, a five times slower one (docs/train.md).

    Args:
        threads: the config's ``threads``.
        device: the run's device (``"cpu"``, ``"cuda:0"``, ...).
        cores: CPU cores this process may use (default: its affinity mask, or ``os.cpu_count``).
    """
    if threads:
        return threads
    if not device.startswith("cpu"):
        return None
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return 1 if (cores or 1) <= FEW_CORES else None


def build_optimizer(config: TrainConfig, objective: torch.nn.Module) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups`, with the config's betas and epsilon; the fused kernel
    (one pass per tensor; on CPU about 5 times faster than the per-tensor loop, which spent
    ~30 ms a step on the 30,522-row word embedding alone)."""
    return torch.optim.AdamW(
        param_groups(objective, config.weight_decay),
        lr=config.lr,
        betas=config.adam_betas,
        eps=config.adam_eps,
        fused=True,
    )


def build_objective(config: TrainConfig, model: torch.nn.Module, dist: DistInfo) -> torch.nn.Module:
    """The :class:`~unimo_kit.model.UnimoPretraining` module with the run's objectives: one
    flag per built-in row of the objectives table (:mod:`unimo_kit.model.registry`), the
    registered extensions named by ``extra_objectives``."""
    from unimo_kit.model import UnimoPretraining
    from unimo_kit.model.registry import BUILTIN_OBJECTIVES

    return UnimoPretraining(
        model,
        **{spec.name: getattr(config, spec.name) for spec in BUILTIN_OBJECTIVES},
        extra_objectives=config.extra_objectives,
        temperature=config.temperature,
        learn_temperature=config.learn_temperature,
        use_hard_negatives=config.rewrite_negatives or config.sentence_negatives,
        hard_negative_weight=config.hard_negative_weight,
        hard_negative_scope=config.hard_negative_scope,
        use_extra_positives=config.rewrite_positives or config.retrieval_positives,
        mlm_probability=config.mlm_probability,
        mrp_probability=config.mrp_probability,
        weights=config.loss_weights or None,
        rank=dist.rank,
        world_size=dist.world_size,
    )


def build_model(config: TrainConfig, store_meta: dict[str, Any] | None) -> torch.nn.Module:
    """The model of ``config``, its visual input sized to the features store."""
    from unimo_kit.model import create_model, load_checkpoint

    if config.init_checkpoint:
        overrides = dict(config.model_overrides)
        head = bool(overrides.pop("matching_head", False)) or config.itm
        _check_shape_preserving(config.init_checkpoint, overrides)
        model = load_checkpoint(config.init_checkpoint, **overrides).train()
        if head:
            model.add_matching_head()  # a checkpoint trained without matching has none
        return model
    overrides = dict(config.model_overrides)
    if config.itm:
        overrides["matching_head"] = True
    if store_meta:
        overrides.setdefault("visual_feat_dim", int(store_meta["dim"]))
        if config.mrp and store_meta.get("has_class_probs"):
            overrides.setdefault("visual_num_classes", int(store_meta["num_classes"]))
    return create_model(config.model, **overrides)


#: The run folder's copy of a corpus vocabulary (``vocab = "corpus"``); every checkpoint of
#: the run carries its own copy too (``tokenizer/``, :func:`unimo_kit.model.save_checkpoint`).
RUN_TOKENIZER_DIR = "tokenizer"


def corpus_vocabulary(
    config: TrainConfig,
    model: torch.nn.Module,
    tokenizer_dir: str | os.PathLike,
    checkpoint: str | os.PathLike | None = None,
) -> tuple[Any, Any, list[int]]:
    """Cut ``model``'s vocabulary to the word pieces of the run's texts (``vocab="corpus"``).

    The pieces are those the model's tokenizer emits on :func:`~unimo_kit.train.data.corpus_texts`
    plus the special and single-character ones
    (:func:`~unimo_kit.model.vocabulary.corpus_piece_ids`); a resumed run takes the vocabulary
    of the checkpoint it resumes (its ``tokenizer/``) instead, so it cannot change under it.

    Args:
        config: the run's config (paths resolved).
        model: the freshly built model, changed in place
            (:func:`~unimo_kit.model.vocabulary.restrict_vocabulary`).
        tokenizer_dir: where the vocabulary's tokenizer folder will be (the model's config
            names it; the caller writes it there with
            :func:`~unimo_kit.model.vocabulary.write_tokenizer_folder`).
        checkpoint: the checkpoint folder the run resumes, if any.

    Returns:
        ``(tokenizer, base_tokenizer, keep_ids)``: the tokenizer of the new vocabulary, the
        model's tokenizer before and the ids of the base vocabulary kept, ascending.
    """
    from unimo_kit.model import load_tokenizer
    from unimo_kit.model.vocabulary import (
        CHECKPOINT_TOKENIZER_DIR,
        corpus_piece_ids,
        ids_in,
        restrict_vocabulary,
        subset_tokenizer,
    )
    from unimo_kit.train.data import corpus_texts

    base = load_tokenizer(model.config)
    saved = Path(checkpoint) / CHECKPOINT_TOKENIZER_DIR if checkpoint is not None else None
    if saved is not None and saved.is_dir():
        keep_ids = ids_in(base, saved)
    else:
        keep_ids = corpus_piece_ids(base, corpus_texts(config), progress=config.progress)
    restrict_vocabulary(model, keep_ids, str(tokenizer_dir))
    logger.info("corpus vocabulary: %d of %d word pieces", len(keep_ids), len(base))
    return subset_tokenizer(base, keep_ids), base, keep_ids


def _check_shape_preserving(checkpoint: str | os.PathLike, overrides: dict[str, Any]) -> None:
    """Refuse ``model_overrides`` that would change the shapes of ``checkpoint``'s weights
    (layers, widths, vocabulary): its weights could not be loaded into such a model. Shapes
    are compared on models built on the ``meta`` device (no memory, no initialisation)."""
    from unimo_kit.model import UnimoConfig, UnimoModel

    path = Path(checkpoint)
    folder = path.parent if path.is_file() else path
    if not overrides or not (folder / "config.json").exists():
        return  # nothing to check, or load_checkpoint names the missing file

    def shapes(**changes: Any) -> dict[str, tuple[int, ...]]:
        config = UnimoConfig.from_json(folder / "config.json", **changes)
        config.init_from = None
        with torch.device("meta"):
            return {k: tuple(v.shape) for k, v in UnimoModel(config).state_dict().items()}

    saved = shapes()
    changing = [f"{k}={json.dumps(v)}" for k, v in overrides.items() if shapes(**{k: v}) != saved]
    if changing:
        raise ValueError(
            f"init_checkpoint {checkpoint}: model_overrides {', '.join(changing)} change the "
            "shapes of its weights; only overrides that keep them (e.g. dropout) apply to a "
            "checkpoint: drop them, or train from scratch without init_checkpoint"
        )


def _check_resumable(checkpoint: Path, saved: dict[str, Any] | None, config: TrainConfig) -> None:
    """Refuse to resume ``checkpoint`` (written under the config ``saved``) under a config
    that would learn something else; warn about a changed schedule length or data location."""
    if saved is None:
        return
    refused, noted = resume_differences(saved, config)
    run_dir = checkpoint.parent.parent
    if refused:
        raise ValueError(
            f"{run_dir} holds a run of another config (newest checkpoint {checkpoint.name}), "
            f"which differs in {'; '.join(refused)}. Resume it with its own config "
            f"({run_dir / 'config.json'}), start afresh with --no-resume, or pass another "
            "-o/--output"
        )
    for line in noted:
        logger.warning("resuming %s with a changed %s", checkpoint, line)


def optimizer_step(
    optimizer: torch.optim.Optimizer,
    params: list[torch.nn.Parameter],
    config: Any,
    step: int,
    world_size: int,
) -> tuple[torch.Tensor, float]:
    """One update of the trainers (UNIMO's and ``unimo finetune-clip``'s): sparse gradients
    made dense (AdamW needs them so), gradients averaged
    over processes, clipped to ``config.grad_clip`` (0: not clipped), the learning rate of
    ``step`` on the schedule (:func:`~unimo_kit.train.schedule.lr_at` from ``config.lr``,
    ``warmup_steps``, ``steps``, ``min_lr_ratio``), the optimizer step, gradients cleared.

    Returns:
        The gradient norm before clipping (0 when not clipped) and the learning rate used.
    """
    for p in params:  # word lookups give sparse gradients (objectives.py); AdamW: dense
        if p.grad is not None and p.grad.is_sparse:
            p.grad = p.grad.to_dense()
    all_reduce_gradients(params, world_size)
    grad_norm = (
        torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        if config.grad_clip > 0
        else torch.zeros(())
    )
    lr = lr_at(
        step,
        lr=config.lr,
        warmup_steps=config.warmup_steps,
        total_steps=config.steps,
        min_lr_ratio=config.min_lr_ratio,
    )
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return grad_norm, lr


def train(
    config: TrainConfig,
    run_dir: str | os.PathLike,
    *,
    resume: bool = True,
    stop_after: int | None = None,
    _kill: bool = False,
) -> TrainResult:
    """Train (or continue training) a UNIMO model.

    Args:
        config: the run's configuration (data paths are made absolute here).
        run_dir: ``runs/NAME``: config.json, log.csv, checkpoints/, final/.
        resume: continue from the newest checkpoint in ``run_dir`` (``False``: start afresh,
            removing the old checkpoints and log).
        stop_after: stop once this many steps are done, with a checkpoint at that step so
            the next call resumes there (the schedule still spans ``config.steps``).
        _kill: with ``stop_after``, stop without that checkpoint, as a killed run would
            (tests only).

    Returns:
        A :class:`TrainResult`.
    """
    from tqdm import tqdm

    from unimo_kit.model import load_tokenizer, save_checkpoint
    from unimo_kit.train.data import UnimoTrainData
    from unimo_kit.train.quick_eval import val_pairs

    # ---- setup ------------------------------------------------------------------------------
    dist = init_distributed(config.device)
    config = config.resolved()
    run_dir = Path(run_dir)
    threads = device_threads(config.threads, dist.device)
    if threads:
        torch.set_num_threads(threads)
    latest = ckpt.latest_checkpoint(run_dir) if resume else None
    saved_state = ckpt.read_state(latest) if latest is not None else None  # read once
    if latest is not None:
        _check_resumable(latest, saved_state.get("config"), config)
        done = ckpt.finished_train_state(
            run_dir / "final" / "model.safetensors", saved_state, config.steps
        )
        if done is not None:  # a rerun of a finished run: nothing to load, save or check
            return TrainResult(run_dir, run_dir / "final", TrainState(**done), {}, None)
    if dist.is_main and config.warmup_steps > config.steps:
        logger.warning(
            "warmup_steps %d > steps %d: the learning rate never reaches lr; lower "
            "warmup_steps with steps",
            config.warmup_steps,
            config.steps,
        )
    seed_everything(config.seed)  # same seed on every rank: identical initial weights
    from unimo_kit.features import FeatureStore

    store_meta = FeatureStore(config.features).meta if config.features else None
    model = build_model(config, store_meta)
    vocabulary = None  # (base tokenizer, kept ids) of a corpus vocabulary
    if config.vocab == "corpus":  # before the objective, which reads the special ids
        tokenizer, *vocabulary = corpus_vocabulary(
            config, model, (run_dir / RUN_TOKENIZER_DIR).resolve(), latest
        )
    else:
        tokenizer = load_tokenizer(model.config)
    model = model.to(dist.device)
    objective = build_objective(config, model, dist).to(dist.device)
    broadcast_parameters(objective, dist.world_size)
    seed_everything(config.seed + dist.rank)  # from here ranks differ (masking, dropout)
    data = UnimoTrainData(config, tokenizer)
    if config.val_pairs:  # fail now rather than after the last step
        val_pairs(config.val_pairs, data.store, max_images=1)
    # The inputs are good: only now may the run folder change (a typo must not cost a run).
    if dist.is_main:
        if not resume:  # start afresh: drop what an earlier run left
            for stale in ("checkpoints", "final"):
                shutil.rmtree(run_dir / stale, ignore_errors=True)
        if latest is None:  # nothing to resume: the logs start afresh too
            shutil.rmtree(run_dir / "tensorboard", ignore_errors=True)
            for stale in ("log.csv", "eval.jsonl"):
                (run_dir / stale).unlink(missing_ok=True)
        run_dir.mkdir(parents=True, exist_ok=True)
        with atomic_write(run_dir / "config.json") as handle:
            handle.write(json.dumps(config.to_dict(), indent=2) + "\n")
        if vocabulary is not None:  # the folder the model's config names
            from unimo_kit.model.vocabulary import write_tokenizer_folder

            write_tokenizer_folder(*vocabulary, run_dir / RUN_TOKENIZER_DIR)
    barrier(dist.world_size)
    if dist.is_main:
        for kind, count in data.without_features.items():
            if count:
                logger.warning("%d %s without features in %s skipped", count, kind, config.features)
        if data.skipped.count:
            logger.warning(data.skipped.summary())
    params = [p for p in objective.parameters() if p.requires_grad]
    optimizer = build_optimizer(config, objective)
    use_bf16 = config.precision == "bf16" or (
        config.precision == "auto" and dist.device.startswith("cuda")
    )
    device_type = "cuda" if dist.device.startswith("cuda") else "cpu"

    # ---- resume -----------------------------------------------------------------------------
    state = TrainState(world_size=dist.world_size)
    sampler = data.make_sampler(dist.rank, dist.world_size)  # advanced per consumed batch
    if latest is not None:
        saved = ckpt.read_checkpoint(latest, dist.rank, state=saved_state)
        model.load_state_dict(saved["model"])
        objective.load_state_dict(saved["objective"], strict=False)  # e.g. a learnt τ
        ckpt.load_optimizer_state(optimizer, saved["optimizer"], saved["optimizer_rest"])
        state = TrainState(**saved["state"]["train_state"])
        sampler.load_state_dict(state.data)
        ckpt.restore_rng_states(saved["rng"], state.world_size, dist.world_size, latest)
        state.world_size = dist.world_size
        if dist.is_main:
            logger.info("resumed from %s (step %d)", latest, state.step)
    check_same_step(state.step, dist.world_size)
    saved_step = state.step  # the step of the newest checkpoint on disk
    loader = torch.utils.data.DataLoader(
        data,
        sampler=_copy_sampler(sampler),
        batch_size=None,
        num_workers=config.num_workers,
        pin_memory=device_type == "cuda",
        persistent_workers=config.num_workers > 0,
        generator=torch.Generator().manual_seed(config.seed),  # keeps the global RNG untouched
    )
    batches = iter(loader)

    log = CsvLog(run_dir / "log.csv", after_step=state.step) if dist.is_main else None
    if dist.is_main:
        _drop_eval_rows(run_dir / "eval.jsonl", after_step=state.step)
    tb = _tensorboard(run_dir) if dist.is_main else None
    bar = tqdm(
        total=config.steps,
        initial=state.step,
        desc="train",
        disable=not (dist.is_main and config.progress),
        file=sys.stderr,
        dynamic_ncols=True,
    )
    window: dict[str, list[torch.Tensor]] = {}
    last_losses: dict[str, float] = {}
    last_eval: dict[str, float] | None = None
    per_step = config.batch_pairs + config.batch_texts + config.batch_images
    objective.train()

    def save() -> None:  # on every rank (a collective)
        extra = _objective_extras(objective)
        ckpt.save_from_every_rank(run_dir, state, config, model, optimizer, dist=dist, extra=extra)

    # ---- loop -------------------------------------------------------------------------------
    while state.step < config.steps:
        if stop_after is not None and state.step >= stop_after:
            break
        t0 = time.perf_counter()
        for _ in range(config.grad_accum):
            batch = next(batches)
            sampler.next_spec()  # the consumed position, for the checkpoint
            batch = {k: v.to(dist.device, non_blocking=True) for k, v in batch.items()}
            with torch.autocast(device_type=device_type, dtype=torch.bfloat16, enabled=use_bf16):
                out = objective(batch)
                loss = sum(v for k, v in out.items() if k.endswith("_loss"))
            (loss / config.grad_accum).backward()
            for key, value in [("loss", loss), *out.items()]:
                window.setdefault(key, []).append(value.detach())  # no host sync here
        grad_norm, lr = optimizer_step(optimizer, params, config, state.step, dist.world_size)
        state.step += 1
        state.samples += per_step * config.grad_accum * dist.world_size
        state.data = sampler.state_dict()
        step_seconds = time.perf_counter() - t0
        state.train_seconds += step_seconds
        bar.update(1)

        if dist.is_main and (state.step % config.log_every == 0 or state.step == config.steps):
            last_losses = {k: torch.stack(v).float().mean().item() for k, v in window.items()}
            window = {}
            if not math.isfinite(last_losses["loss"]):
                raise FloatingPointError(f"loss is {last_losses['loss']} at step {state.step}")
            row = {
                "step": state.step,
                "lr": lr,
                "grad_norm": float(grad_norm),
                "step_seconds": step_seconds,
                "samples_per_second": per_step * config.grad_accum * dist.world_size / step_seconds,
                **last_losses,
            }
            log.write(row)
            if tb is not None:
                for key, value in row.items():
                    tb.add_scalar(f"train/{key}", value, state.step)
            bar.set_postfix({k: f"{v:.3f}" for k, v in last_losses.items() if k.endswith("loss")})
        if config.eval_every and state.step % config.eval_every == 0 and config.val_pairs:
            last_eval = _quick_eval(config, model, tokenizer, data, dist, state.step, log, run_dir)
        if state.step % config.save_every == 0 or state.step == config.steps:
            save()
            saved_step = state.step
    bar.close()
    if state.step < config.steps and state.step != saved_step and not _kill:
        save()  # stopped early
        saved_step = state.step

    # ---- end --------------------------------------------------------------------------------
    final = None
    if state.step >= config.steps:
        if dist.is_main:
            final = save_checkpoint(model, run_dir / "final", metadata={"step": str(state.step)})
        if config.val_pairs and not (config.eval_every and state.step % config.eval_every == 0):
            try:  # the model is saved: a failed check only loses its figures
                last_eval = _quick_eval(
                    config, model, tokenizer, data, dist, state.step, log, run_dir
                )
            except (ValueError, OSError) as exc:
                logger.warning("the quick val check at the end failed: %s", exc)
    barrier(dist.world_size)
    if tb is not None:
        tb.close()
    return TrainResult(run_dir, final, state, last_losses, last_eval)


# ----------------------------------------------------------------------------- helpers


def _copy_sampler(sampler: Any) -> Any:
    import copy

    return copy.deepcopy(sampler)


def _objective_extras(objective: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The objective's own trained tensors (not the model's), e.g. a learnt temperature."""
    return {k: v for k, v in objective.state_dict().items() if not k.startswith("model.")}


def _quick_eval(
    config: TrainConfig,
    model: torch.nn.Module,
    tokenizer: Any,
    data: Any,
    dist: DistInfo,
    step: int,
    log: CsvLog | None,
    run_dir: Path,
) -> dict[str, float] | None:
    if not dist.is_main:
        return None
    from unimo_kit.train.quick_eval import retrieval_r1

    result = retrieval_r1(
        model,
        tokenizer,
        config.val_pairs,
        data.store,
        max_images=config.eval_max_images,
        max_text_length=config.max_text_length,
        max_visual_tokens=config.max_visual_tokens,
        device=dist.device,
    )
    result["step"] = step
    with open(run_dir / "eval.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps(result) + "\n")
    logger.info("step %d: %s", step, result)
    return result


def _drop_eval_rows(path: Path, after_step: int) -> None:
    """On resume, drop the ``eval.jsonl`` rows of steps after ``after_step`` (written before
    the kill; the resumed run writes them again), as :class:`CsvLog` does for ``log.csv``."""
    if not path.exists():
        return
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if not line.strip() or json.loads(line)["step"] <= after_step]
    if len(kept) < len(lines):
        with atomic_write(path) as handle:
            handle.writelines(kept)


class CsvLog:
    """``log.csv``: one row per logged step; the columns are fixed by the first row. On resume
    the rows after the resumed step (written before the kill) are dropped."""

    def __init__(self, path: Path, after_step: int = 0):
        self.path = path
        self.columns: list[str] | None = None
        if path.exists():
            with open(path, newline="", encoding="utf-8") as handle:
                rows = list(csv.DictReader(handle))
            if rows:
                self.columns = list(rows[0].keys())
                kept = [r for r in rows if int(r["step"]) <= after_step]
                with atomic_write(path) as handle:
                    writer = csv.DictWriter(handle, self.columns)
                    writer.writeheader()
                    writer.writerows(kept)

    def write(self, row: dict[str, float]) -> None:
        new = self.columns is None
        if new:
            self.columns = list(row)
        with open(self.path, "a", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, self.columns, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(
                {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()}
            )


def _tensorboard(run_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(run_dir / "tensorboard"))
