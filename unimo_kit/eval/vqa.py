"""Visual question answering as answer classification on the unified model.

The image (grid features) and the question go through the UNIMO Transformer together
(bidirectional attention); the ``[IMG]`` and ``[CLS]`` outputs are concatenated and an MLP picks
one answer from a fixed answer list (UNIMO fine-tunes VQA the same way, as classification over
frequent answers; Li et al., ACL 2021, §3.3).

Data: the easy-VQA set (PyPI ``easy-vqa``: 4,000 train / 1,000 test shape images of 64x64,
38,575 / 9,673 questions, 13 answers), or a JSONL file of
``{"image": PATH, "question": str, "answer": str}`` lines (paths relative to the file).
Visual features are computed once and cached (:func:`unimo_kit.eval.visual.cached_grid_features`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from unimo_kit.data.records import resolve_path
from unimo_kit.utils import ErrorReport, RecordError, iter_jsonl


@dataclass
class VqaExample:
    """One question about one image."""

    image: str  # image path
    question: str  # the question text
    answer: str  # the gold answer (one of the answer list)


# unimo-tiny widened to 128 (4 heads, FFN 256): the fresh backbone measured in docs/eval.md
FRESH_MODEL = {"hidden_size": 128, "num_attention_heads": 4, "intermediate_size": 256}


VQA_EXTRACTORS = ("effnet", "effnet-ms")
FUSIONS = ("concat", "product")


@dataclass
class VqaConfig:
    """Fine-tuning and evaluation settings for :func:`train_vqa`."""

    model: str = "unimo-tiny"  # preset name or config JSON for a fresh model
    checkpoint: str | None = None  # a unimo checkpoint folder to start from (overrides model)
    # UnimoConfig fields to change; None: FRESH_MODEL for a fresh model, nothing for a checkpoint
    model_overrides: dict[str, Any] | None = None
    image_size: int = 128  # CNN input side; grid = image_size / 32 (128 -> 4x4 tokens)
    # "effnet" (last stage) or "effnet-ms" (+ two earlier stages); None: the one the
    # checkpoint's run used, else effnet
    extractor: str | None = None
    epochs: int = 4  # passes over the training questions (easy-VQA: 93-99 % by seed, docs/eval.md)
    batch_size: int = 128  # questions per step
    lr: float = 1e-3  # peak AdamW learning rate (train.schedule.lr_at: warm-up, cosine to 0)
    backbone_lr: float | None = None  # lr of the Transformer (None: same as lr)
    weight_decay: float = 0.01  # AdamW decay (train.trainer.param_groups: weight matrices only)
    warmup: float = 0.05  # fraction of steps for linear warm-up
    max_question_tokens: int = 24  # word pieces per question, [CLS]/[SEP] included
    head_hidden: int = 256  # width of the answer MLP
    fusion: str = "concat"  # answer MLP input: [IMG; CLS] ("concat") or [IMG; CLS; IMG*CLS]
    seed: int = 0  # seeds model init, shuffling and dropout
    threads: int | None = None  # torch CPU threads (None: torch's default)
    max_train: int | None = None  # use only the first N training questions (quick runs)
    max_test: int | None = None  # evaluate only the first N test questions
    cache_dir: str | None = None  # where grid features are cached (.npz); None: no cache
    device: str | None = None  # torch device (None: cuda when visible, else cpu)
    eval_each_epoch: bool = False  # also log test accuracy after every epoch (learning curve)
    keep_predictions: bool = False  # return the predicted answer of every test question


def load_easy_vqa(split: str) -> list[VqaExample]:
    """The easy-VQA questions of ``split`` (``"train"`` or ``"test"``) from the installed package.

    Raises:
        ResourceNotFound: easy-vqa is not installed.
    """
    from unimo_kit.resources import ResourceNotFound

    try:
        import easy_vqa
    except ImportError:
        raise ResourceNotFound("easy-VQA data is missing: pip install easy-vqa") from None
    if split == "train":
        questions, answers, image_ids = easy_vqa.get_train_questions()
        paths = easy_vqa.get_train_image_paths()
    elif split == "test":
        questions, answers, image_ids = easy_vqa.get_test_questions()
        paths = easy_vqa.get_test_image_paths()
    else:
        raise ValueError(f"easy-VQA has splits 'train' and 'test', not {split!r}")
    return [
        VqaExample(image=paths[i], question=q, answer=a)
        for q, a, i in zip(questions, answers, image_ids, strict=True)
    ]


def read_vqa_jsonl(path: str | os.PathLike, *, strict: bool = False) -> list[VqaExample]:
    """Questions from a JSONL file of ``{"image", "question", "answer"}`` objects.

    Image paths are relative to the file's directory. A bad line raises (``strict``) or is
    skipped with a warning naming the file and line.
    """
    report = ErrorReport(strict=strict)
    base = Path(path).parent
    out = []
    for line, d in iter_jsonl(path, strict=strict, on_error=report):
        missing = [k for k in ("image", "question", "answer") if not isinstance(d.get(k), str)]
        if missing:
            report(RecordError(path, line, f"missing or non-string field(s) {missing}"))
            continue
        out.append(VqaExample(resolve_path(d["image"], base), d["question"], d["answer"]))
    return out


def question_type(question: str) -> str:
    """A coarse type for per-type accuracy: ``yes/no``, ``color``, ``shape`` or ``other``."""
    q = question.lower()
    if q.startswith(("is ", "does ", "are ", "do ", "can ", "was ")):
        return "yes/no"
    if "color" in q or "colour" in q:
        return "color"
    if "shape" in q:
        return "shape"
    return "other"


def _vqa_extractor(config: VqaConfig) -> str:
    """The grid extractor of a run: the configured one, else the checkpoint run's, else
    ``effnet``."""
    name = config.extractor
    if name is None and config.checkpoint:
        from unimo_kit.eval.scorers import run_extractor

        name = run_extractor(config.checkpoint)
    name = name or "effnet"
    if name not in VQA_EXTRACTORS:
        raise ValueError(f"VQA extractor must be one of {VQA_EXTRACTORS}, got {name!r}")
    return name


def _check_checkpoint_dim(checkpoint: str, dim: int, extractor: str) -> None:
    """Refuse, before any image is read, a checkpoint whose visual input is not ``dim``."""
    import json

    from unimo_kit.eval.errors import CONFIG, EvalError

    try:
        want = json.loads((Path(checkpoint) / CONFIG).read_text()).get("visual_feat_dim")
    except (OSError, ValueError, AttributeError):
        return  # load_checkpoint reports a broken checkpoint later
    if want is not None and want != dim:
        other = [e for e in VQA_EXTRACTORS if e != extractor]
        raise EvalError(
            f"{checkpoint} takes {want}-d visual features but the {extractor} grid has {dim}"
            + (f"; try --extractor {other[0]}" if other else "")
        )


def _build_classifier(config: VqaConfig, num_answers: int, feat_dim: int) -> Any:
    import torch
    from torch import nn

    from unimo_kit.eval.errors import check_feature_dim
    from unimo_kit.model import create_model, load_checkpoint

    if config.checkpoint:
        backbone = load_checkpoint(config.checkpoint, **(config.model_overrides or {}))
        check_feature_dim(backbone, feat_dim, "the VQA image extractor")
    else:  # a fresh model takes the extractor's feature size
        chosen = FRESH_MODEL if config.model_overrides is None else config.model_overrides
        overrides = {"visual_feat_dim": feat_dim, **chosen}
        backbone = create_model(config.model, **overrides)
    hidden = backbone.config.hidden_size

    if config.fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {FUSIONS}, got {config.fusion!r}")
    parts = 3 if config.fusion == "product" else 2

    class VqaClassifier(nn.Module):
        """Backbone + MLP over the [IMG] and [CLS] outputs: concatenated, and with ``product``
        fusion also their elementwise product (the multiplicative fusion of VQA heads since
        Anderson et al. 2018), meant to make "is the asked colour the image's colour" easier to
        read off; measured, it speeds up the first epoch but does not by itself get a fresh
        backbone past the colour-presence plateau (docs/eval.md)."""

        def __init__(self) -> None:
            super().__init__()
            self.backbone = backbone
            self.head = nn.Sequential(
                nn.Linear(parts * hidden, config.head_hidden),
                nn.GELU(),
                nn.LayerNorm(config.head_hidden),
                nn.Linear(config.head_hidden, num_answers),
            )

        def forward(self, input_ids, attention_mask, feats, boxes):  # type: ignore[no-untyped-def]
            out = self.backbone(
                input_ids=input_ids,
                attention_mask=attention_mask,
                visual_feats=feats,
                visual_boxes=boxes,
            )
            img, cls = out["img"], out["cls"]  # (B, D) each
            fused = [img, cls, img * cls] if parts == 3 else [img, cls]
            return self.head(torch.cat(fused, dim=-1))  # (B, A)

    return VqaClassifier()


def _tokenize(tokenizer: Any, questions: Sequence[str], max_tokens: int) -> tuple[Any, Any]:
    import torch

    enc = tokenizer(
        list(questions), padding=True, truncation=True, max_length=max_tokens, return_tensors="pt"
    )
    return enc["input_ids"], enc["attention_mask"].to(torch.long)


def _image_table(examples: Sequence[VqaExample]) -> tuple[list[str], np.ndarray]:
    """Unique image paths (first-seen order) and each example's index into them."""
    index: dict[str, int] = {}
    rows = np.fromiter((index.setdefault(ex.image, len(index)) for ex in examples), dtype=np.int64)
    return list(index), rows


def train_vqa(
    train: Sequence[VqaExample],
    test: Sequence[VqaExample],
    config: VqaConfig,
    *,
    progress: bool = True,
    extractor: Any = None,
) -> dict[str, Any]:
    """Fine-tune an answer classifier on ``train`` and report accuracy on ``test``.

    Args:
        train, test: the questions; the answer list is the set of training answers (a test
            question with an unseen answer counts as wrong).
        config: see :class:`VqaConfig`.
        progress: tqdm bars on stderr.
        extractor: an image extractor with a fixed number of tokens (default: the
            EfficientNet-Lite0 grid at ``config.image_size``).

    Returns:
        A results dict: ``accuracy`` (test), ``accuracy_by_type``, ``train_loss`` per epoch,
        ``predictions`` (the answer given to each test question, with ``keep_predictions``),
        wall-clock timings in seconds (``feature_seconds``, ``train_seconds``,
        ``eval_seconds``, ``total_seconds``), ``cpu_seconds`` (process CPU time, all threads:
        the budget figure on a shared machine), sizes and the config.
    """
    import torch
    import torch.nn.functional as F
    from tqdm import tqdm

    from unimo_kit.eval.visual import cached_grid_features
    from unimo_kit.model import load_tokenizer
    from unimo_kit.resources import torch_device
    from unimo_kit.train.schedule import lr_at
    from unimo_kit.train.trainer import param_groups
    from unimo_kit.utils import seed_everything

    started = time.perf_counter()
    cpu_started = time.process_time()
    extractor_name = _vqa_extractor(config)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = torch_device(config.device)
    train = list(train)[: config.max_train] if config.max_train else list(train)
    test = list(test)[: config.max_test] if config.max_test else list(test)
    if not train or not test:
        raise ValueError("VQA needs at least one training and one test question")
    answers = sorted({ex.answer for ex in train})
    answer_id = {a: i for i, a in enumerate(answers)}

    # ---- visual features, once per image (cached across runs)
    t0 = time.perf_counter()
    feats_by_split = {}
    if extractor is None:
        from unimo_kit.eval.visual import grid_extractor

        multi_scale = extractor_name == "effnet-ms"
        extractor = grid_extractor(config.image_size, multi_scale=multi_scale, device=config.device)
    if config.checkpoint:
        _check_checkpoint_dim(config.checkpoint, int(extractor.dim), extractor_name)
    for split, examples in (("train", train), ("test", test)):
        images, rows = _image_table(examples)
        cache = None
        if config.cache_dir:
            name = f"vqa-{split}-{extractor_name}-{config.image_size}.npz"
            cache = Path(config.cache_dir) / name
        feats, boxes = cached_grid_features(
            images,
            cache,
            image_size=config.image_size,
            progress=progress,
            batch_size=128,
            extractor=extractor,
        )
        feats_by_split[split] = (torch.from_numpy(feats), torch.from_numpy(rows))
    boxes_t = torch.from_numpy(boxes).to(device)  # (G, 5)
    feature_seconds = time.perf_counter() - t0

    # ---- model, tokens
    seed_everything(config.seed)
    feat_dim = int(feats_by_split["train"][0].shape[-1])
    classifier = _build_classifier(config, len(answers), feat_dim).to(device)
    tokenizer = load_tokenizer(classifier.backbone.config)
    train_ids, train_mask = _tokenize(
        tokenizer, [ex.question for ex in train], config.max_question_tokens
    )
    test_ids, test_mask = _tokenize(
        tokenizer, [ex.question for ex in test], config.max_question_tokens
    )
    labels = torch.tensor([answer_id[ex.answer] for ex in train])
    test_labels = torch.tensor([answer_id.get(ex.answer, -1) for ex in test])

    # the trainer's AdamW groups (no decay on biases, LayerNorms, embeddings) and schedule
    # (linear warm-up, cosine to 0 at the last step); the answer head at its own lr
    backbone_lr = config.backbone_lr or config.lr
    optimizer = torch.optim.AdamW(
        [
            *(
                {**g, "lr": backbone_lr}
                for g in param_groups(classifier.backbone, config.weight_decay)
            ),
            *({**g, "lr": config.lr} for g in param_groups(classifier.head, config.weight_decay)),
        ]
    )
    peak = [g["lr"] for g in optimizer.param_groups]
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    warmup_steps = max(1, int(config.warmup * total_steps))

    train_feats, train_rows = feats_by_split["train"]

    def batch_visual(feats: Any, rows: Any) -> tuple[Any, Any]:
        v = feats[rows].to(device=device, dtype=torch.float32)  # (B, G, F)
        return v, boxes_t.expand(len(rows), -1, -1)  # (B, G, 5)

    test_feats, test_rows = feats_by_split["test"]

    def evaluate() -> np.ndarray:
        """(N_test,) predicted answer ids (argmax)."""
        classifier.eval()
        predictions = []
        with torch.inference_mode():
            for start in range(0, len(test), 512):
                sl = slice(start, start + 512)
                v, bx = batch_visual(test_feats, test_rows[sl])
                width = int(test_mask[sl].sum(1).max())
                logits = classifier(
                    test_ids[sl, :width].to(device), test_mask[sl, :width].to(device), v, bx
                )  # (B, A)
                predictions.append(logits.argmax(-1).cpu())
        return torch.cat(predictions).numpy()

    generator = torch.Generator().manual_seed(config.seed)
    accuracy_by_epoch = []
    t0 = time.perf_counter()
    epoch_losses = []
    step = 0
    for epoch in range(config.epochs):
        classifier.train()
        order = torch.randperm(len(train), generator=generator)
        total, seen = 0.0, 0
        bar = tqdm(range(steps_per_epoch), desc=f"vqa epoch {epoch + 1}", disable=not progress)
        for b in bar:
            idx = order[b * config.batch_size : (b + 1) * config.batch_size]
            v, bx = batch_visual(train_feats, train_rows[idx])
            mask = train_mask[idx]
            width = int(mask.sum(1).max())
            logits = classifier(
                train_ids[idx, :width].to(device), mask[:, :width].to(device), v, bx
            )  # (B, A)
            loss = F.cross_entropy(logits, labels[idx].to(device))
            for group, base in zip(optimizer.param_groups, peak, strict=True):
                group["lr"] = lr_at(
                    step, lr=base, warmup_steps=warmup_steps, total_steps=total_steps
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(classifier.parameters(), 1.0)
            optimizer.step()
            step += 1
            total += loss.item() * len(idx)
            seen += len(idx)
            if b % 20 == 0:
                bar.set_postfix(loss=f"{total / seen:.4f}")
        epoch_losses.append(total / seen)
        if config.eval_each_epoch and epoch + 1 < config.epochs:
            accuracy_by_epoch.append(float((evaluate() == test_labels.numpy()).mean()))
            if progress:
                print(
                    f"epoch {epoch + 1}: train loss {epoch_losses[-1]:.4f}, "
                    f"test accuracy {accuracy_by_epoch[-1]:.4f}",
                    file=sys.stderr,
                )
    train_seconds = time.perf_counter() - t0

    # ---- test accuracy
    t0 = time.perf_counter()
    predicted = evaluate()
    correct = predicted == test_labels.numpy()
    eval_seconds = time.perf_counter() - t0

    by_type: dict[str, list[bool]] = {}
    for ex, ok in zip(test, correct, strict=True):
        by_type.setdefault(question_type(ex.question), []).append(bool(ok))
    extra = {}
    if config.keep_predictions:
        extra["predictions"] = [answers[i] for i in predicted.tolist()]
    return {
        "task": "vqa",
        "accuracy": float(correct.mean()),
        "accuracy_by_type": {k: float(np.mean(v)) for k, v in sorted(by_type.items())},
        "count_by_type": {k: len(v) for k, v in sorted(by_type.items())},
        "num_train": len(train),
        "num_test": len(test),
        "num_answers": len(answers),
        "answers": answers,
        "majority_baseline": max(Counter(ex.answer for ex in test).values()) / len(test),
        "train_loss": epoch_losses,
        "test_accuracy_by_epoch": [*accuracy_by_epoch, float(correct.mean())]
        if config.eval_each_epoch
        else None,
        "parameters": sum(p.numel() for p in classifier.parameters()),
        "feature_seconds": feature_seconds,
        "train_seconds": train_seconds,
        "eval_seconds": eval_seconds,
        "total_seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu_started,
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "config": dataclasses.asdict(config),
        **extra,
    }


# ------------------------------------------------------------------------- batch task

#: the batch options of a VQA task: the :class:`VqaConfig` fields a config may set
_BATCH_FIELDS = (
    "epochs",
    "batch_size",
    "lr",
    "backbone_lr",
    "image_size",
    "extractor",
    "fusion",
    "seed",
    "threads",
    "max_train",
    "max_test",
    "cache_dir",
)


def _vqa_data(data: str, train_path: str | None) -> tuple[list[VqaExample], list[VqaExample]]:
    """``(train, test)``: easy-VQA's splits, or the ``train`` and ``data`` JSONL files."""
    if data == "easy-vqa":
        return load_easy_vqa("train"), load_easy_vqa("test")
    if not train_path:
        from unimo_kit.eval.errors import EvalError

        raise EvalError(f"a vqa task on {data} needs 'train' (its training JSONL)")
    return read_vqa_jsonl(train_path), read_vqa_jsonl(data)


def _run_task(run: Any) -> dict[str, Any]:
    """The batch task: fine-tune on the checkpoint and report test accuracy (no predictions)."""
    opts = run.options
    train, test = _vqa_data(run.task.data, opts.get("train"))
    fields = {k: opts[k] for k in _BATCH_FIELDS if k in opts}
    config = VqaConfig(checkpoint=run.checkpoint.path, device=run.device, **fields)
    result = train_vqa(train, test, config, progress=False)
    result.pop("predictions", None)
    return {**result, "data": run.task.data}


def _data_sha256(task: Any) -> str:
    """easy-VQA: its package version; JSONL: the test and training files."""
    import hashlib

    from unimo_kit.utils import file_sha256

    if task.data == "easy-vqa":
        from importlib.metadata import PackageNotFoundError, version

        try:
            tag = f"easy-vqa=={version('easy-vqa')}"
        except PackageNotFoundError:
            tag = "easy-vqa (not installed)"
        return hashlib.sha256(tag.encode()).hexdigest()
    parts = [file_sha256(task.data)]
    if task.options.get("train"):
        parts.append(file_sha256(task.options["train"]))
    return hashlib.sha256("".join(parts).encode()).hexdigest()


def _task() -> Any:
    from unimo_kit.eval.registry import EvalTask, Option

    return EvalTask(
        name="vqa",
        run=_run_task,
        options={
            "train": Option.string(path=True),
            "epochs": Option.positive_int(),
            "batch_size": Option.positive_int(),
            "lr": Option.positive_number(),
            "backbone_lr": Option.positive_number(),
            "image_size": Option.positive_int(),
            "extractor": Option.one_of(*VQA_EXTRACTORS),
            "fusion": Option.one_of(*FUSIONS),
            "seed": Option.integer(),
            "threads": Option.positive_int(),
            "max_train": Option.positive_int(optional=True),
            "max_test": Option.positive_int(optional=True),
            "cache_dir": Option.string(path=True),
        },
        metrics=("accuracy", "majority_baseline"),
        needs_checkpoint=lambda options: True,
        uses_scorer=False,
        data_sha256=_data_sha256,
        named_data=("easy-vqa",),
    )


TASK = _task()
