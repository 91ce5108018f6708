"""The configuration of one CLIP fine-tuning run: a dataclass with a comment on each field.

The model is named as the eval commands name open_clip models, ``open_clip:ARCH[:WEIGHTS]``
(``open_clip:`` may be left out): ``ARCH`` is an open_clip architecture
(``open_clip.list_models()``) or the path of a model config JSON (registered with
``open_clip.add_model_config`` under its file stem), ``WEIGHTS`` a pretrained tag (needs the
hub), a local checkpoint file, or nothing (random initialisation). A model folder
(``open_clip_config.json`` beside a checkpoint, e.g. an earlier run's ``OUT/final``) names both
at once: ``open_clip:runs/base/final``. See :func:`unimo_kit.resources.open_clip_model`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Fields holding file paths (made absolute when a run starts).
PATH_FIELDS = ("pairs", "rewrites", "retrieved", "shards")

#: Fields a resumed run may change: how the run is carried out, not what it learns.
RUN_CONTROL_FIELDS = (
    "out",
    "device",
    "threads",
    "num_workers",
    "log_every",
    "save_every",
    "keep_checkpoints",
    "progress",
    "steps",  # the schedule is stretched or cut from the resumed step on (a warning)
)

PRECISIONS = ("auto", "fp32", "bf16")


@dataclass
class FinetuneConfig:
    """Everything one ``unimo finetune-clip`` run needs; saved as ``OUT/config.json``."""

    # --- model ---
    model: str = ""  # open_clip:ARCH[:WEIGHTS] (module docstring)
    # --- data: pairs.jsonl (+ rewrites.jsonl, retrieved.jsonl), or shards of `unimo export` ---
    pairs: str | None = None  # pairs.jsonl of the training pairs
    rewrites: str | None = None  # its rewrites.jsonl (None with pairs: rewrite on the fly)
    retrieved: str | None = None  # its retrieved.jsonl (neighbour-caption negatives)
    shards: str | None = None  # a folder of `unimo export` tar shards, instead of pairs
    on_the_fly: bool = False  # no rewrites: rewrite the captions while loading (spaCy; slow)
    split: str | None = None  # keep only pairs of this split (None: every pair)
    num_negatives: int = 4  # K hard negatives per pair (0: plain CLIP fine-tuning)
    type_mix: dict[str, float] | None = None  # weight per negative type (None: all alike)
    sentence_negatives: bool = True  # use the rewrite stage's TF-IDF caption negatives
    retrieved_negatives: bool = True  # use retrieved.jsonl negatives
    num_positives: int = 0  # extra positive texts per pair (rewritten / retrieved)
    # --- loss ---
    hard_negative_scope: str = "all"  # all: negatives are columns of every image (NegCLIP);
    # own: of their own image only; rank: of none, only the rank loss (rank_weight > 0)
    rank_weight: float = 0.0  # weight of the rank loss s(v, w-) vs s(v, w) (CE-CLIP); 0: off
    # --- optimisation ---
    steps: int = 500  # optimizer steps
    batch_size: int = 32  # pairs per step and process
    lr: float = 1e-5  # peak learning rate
    min_lr_ratio: float = 0.0  # cosine floor as a share of lr
    warmup_steps: int = 50  # linear warmup steps
    weight_decay: float = 0.1  # AdamW decay of weight matrices (none on gains, biases, scale)
    adam_betas: tuple[float, float] = (0.9, 0.98)  # AdamW betas (open_clip's for ViTs)
    adam_eps: float = 1e-6  # AdamW epsilon
    grad_clip: float = 1.0  # max gradient norm (0: no clipping)
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU; or fp32 / bf16
    seed: int = 0  # seeds the initial weights (random init), the data order and every draw
    # --- run control ---
    out: str = "runs/finetune-clip"  # run folder: config.json, log.csv, checkpoints/, final/
    save_every: int = 100  # checkpoint every N steps (and at the last)
    keep_checkpoints: int = 2  # newest checkpoints kept
    log_every: int = 10  # log.csv row every N steps
    num_workers: int = 0  # DataLoader workers
    device: str | None = None  # torch device (None: cuda when visible, else cpu)
    threads: int = 0  # torch CPU threads (0: torch's default)
    progress: bool = True  # progress bar on stderr

    def __post_init__(self) -> None:
        self.adam_betas = tuple(self.adam_betas)  # type: ignore[assignment]
        if not self.model:
            raise ValueError("model is required: open_clip:ARCH[:WEIGHTS], e.g. ViT-B-32:openai")
        if (self.pairs is None) == (self.shards is None):
            raise ValueError("give exactly one data source: pairs (a pairs.jsonl) or shards")
        if self.shards is not None:  # exported shards carry their negatives already chosen
            ignored = [
                name
                for name, value in (
                    ("rewrites", self.rewrites is not None),
                    ("retrieved", self.retrieved is not None),
                    ("on_the_fly", self.on_the_fly),
                    ("split", self.split is not None),
                    ("sentence_negatives", not self.sentence_negatives),
                    ("retrieved_negatives", not self.retrieved_negatives),
                )
                if value
            ]
            if ignored:
                raise ValueError(
                    f"{', '.join(ignored)} apply to pairs, not to shards (an export already "
                    "chose its pairs and negatives: set them on `unimo export`)"
                )
        if self.on_the_fly and self.rewrites is not None:
            raise ValueError(
                "on_the_fly rewrites the captions instead of reading rewrites: not both"
            )
        for name in ("steps", "batch_size", "save_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("num_negatives", "num_positives", "warmup_steps", "num_workers", "threads"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        no_source = self.rewrites is None and self.retrieved is None and not self.on_the_fly
        if self.pairs is not None and self.num_negatives > 0 and no_source:
            raise ValueError(
                "num_negatives > 0 needs a source of negatives: rewrites (unimo rewrite), "
                "retrieved (unimo index mine) or on_the_fly; num_negatives 0 fine-tunes without"
            )
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")

    def to_dict(self) -> dict[str, Any]:
        """The config as JSON-able values."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FinetuneConfig:
        """Build from a dict; unknown keys are an error naming the known ones."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown FinetuneConfig fields {unknown}; known: {sorted(known)}")
        return cls(**data)

    def resolved(self) -> FinetuneConfig:
        """A copy with data paths and a local model config / weights file made absolute."""
        changes: dict[str, Any] = {
            name: str(Path(getattr(self, name)).resolve())
            for name in PATH_FIELDS
            if getattr(self, name)
        }
        arch, weights = split_model_spec(self.model)
        if (arch.endswith(".json") or os.path.isdir(arch)) and os.path.exists(arch):
            arch = str(Path(arch).resolve())  # a config JSON or a model folder
        if weights and os.path.exists(weights):
            weights = str(Path(weights).resolve())
        changes["model"] = f"open_clip:{arch}" + (f":{weights}" if weights else "")
        return dataclasses.replace(self, **changes)


def split_model_spec(spec: str) -> tuple[str, str | None]:
    """``"open_clip:ARCH[:WEIGHTS]"`` (or ``"ARCH[:WEIGHTS]"``) -> ``(ARCH, WEIGHTS or None)``.

    Raises:
        ValueError: an empty architecture.
    """
    rest = spec[len("open_clip:") :] if spec.startswith("open_clip:") else spec
    arch, _, weights = rest.partition(":")
    if not arch:
        raise ValueError(f"model {spec!r}: expected open_clip:ARCH[:WEIGHTS], e.g. ViT-B-32:openai")
    return arch, weights or None


def resume_differences(saved: dict[str, Any], current: FinetuneConfig) -> list[str]:
    """``"name: old -> new"`` for each field outside :data:`RUN_CONTROL_FIELDS` that differs
    between a checkpoint's config and ``current`` (a resume under them would learn something
    else); fields the saved config lacks count as their defaults."""
    now = current.to_dict()
    out = []
    for name in sorted(set(now) - set(RUN_CONTROL_FIELDS)):
        if name in saved and saved[name] != now[name]:
            out.append(f"{name}: {json.dumps(saved[name])} -> {json.dumps(now[name])}")
    return out
