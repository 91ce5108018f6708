"""Training configuration: one dataclass, named presets as JSON files next to this module.

``load_config("synth-small", overrides=["steps=200", "lr=3e-4"])`` reads
``presets/synth-small.json`` (or any JSON path) and applies ``key=value`` overrides, whose
values are parsed as JSON when they can be (``steps=200`` -> int, ``rewrites=null`` -> None,
``model_overrides={"embed_dim": 128}`` -> dict) and taken as strings otherwise; every value
is then checked against its field's type and range (``mlm=False`` is refused: booleans are
JSON's ``true`` / ``false``), the error naming the field. A dotted key
sets one entry of a dict field (:data:`DICT_FIELDS`) and keeps the others:
``model_overrides.box_relation_bias=true``, ``loss_weights.mlm=0.5``; an undotted one replaces
the whole dict.

A config file may start from another: ``"extends": "synth-d-full"`` (a preset name, or a JSON
path relative to the file) loads that one first, and the file's own keys replace its keys,
except the dict fields, which are merged entry by entry (a file that extends ``synth-small`` and
writes ``"model_overrides": {"num_hidden_layers": 4}`` keeps the preset's width). Data paths
taken from a parent file are still relative to the current directory (or ``data_dir``), not to
the parent.

Relative data paths in a preset are kept as written and resolved against the current
directory when the run starts (the run's ``config.json`` records absolute paths).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import typing
from dataclasses import dataclass, field
from importlib import resources as importlib_resources
from pathlib import Path
from typing import Any

#: Config fields holding file paths (made absolute when a run starts).
PATH_FIELDS = ("pairs", "val_pairs", "texts", "images", "features", "rewrites", "retrieved")

#: Dict fields: merged entry by entry through ``extends``, set one entry at a time by a dotted
#: override (``model_overrides.hidden_size=256``).
DICT_FIELDS = ("model_overrides", "loss_weights")
#: The vocabularies a run may train with (``vocab``).
VOCABS = ("full", "corpus")
#: Where sentence-level negatives come from (``sentence_negative_sources``).
SENTENCE_NEGATIVE_SOURCES = ("rewrites", "retrieved")

#: Fields a resumed run may change freely: how the run is carried out, not what it learns.
RUN_CONTROL_FIELDS = (
    "device",
    "threads",
    "num_workers",
    "progress",
    "log_every",
    "save_every",
    "keep_checkpoints",
    "eval_every",
    "eval_max_images",
)

#: Fields a resumed run may change with a warning: the length of the schedule (stretched or
#: cut from the resumed step on) and where the data lies (moved, or the same files elsewhere).
RESUME_NOTED_FIELDS = ("steps", "data_dir", *PATH_FIELDS)


@dataclass
class TrainConfig:
    """Everything one training run needs; saved as ``runs/NAME/config.json``."""

    # --- model ---
    model: str = "unimo-tiny"  # model preset (unimo-tiny, unimo-minilm) or a model config JSON
    model_overrides: dict[str, Any] = field(default_factory=dict)  # UnimoConfig fields to change
    init_checkpoint: str | None = None  # start from a saved checkpoint folder (weights only)
    # word pieces of the model: "full" (the model's whole vocabulary, 30,522 for the presets)
    # or "corpus" (only those the run's texts use, plus the special and single-character
    # pieces; checkpoints carry that vocabulary in tokenizer/; docs/model.md, "Corpus vocabulary")
    vocab: str = "full"

    # --- data (paths; None switches a source off) ---
    data_dir: str | None = None  # folder that relative data paths are in (None: the cwd)
    pairs: str | None = None  # pairs.jsonl with the training image-text pairs
    split: str | None = "train"  # keep pairs whose `split` is this (None: every pair)
    val_pairs: str | None = None  # pairs.jsonl for the quick retrieval check (split "val")
    texts: str | None = None  # texts.jsonl, the text-only corpus (MLM / seq2seq)
    images: str | None = None  # images.jsonl, the image-only collection (masked regions)
    features: str | None = None  # features store with visual tokens of every image used
    rewrites: str | None = None  # rewrites.jsonl (rewritten positives and hard negatives)
    retrieved: str | None = None  # retrieved.jsonl (retrieved texts/images, mined negatives)

    # --- batch composition per process and micro-step (the mixing ratio of the three kinds) ---
    batch_pairs: int = 32  # B_p image-text pairs
    batch_texts: int = 0  # B_t text-only records (0: none)
    batch_images: int = 0  # B_i image-only records (0: none)
    max_text_length: int = 40  # word pieces per text, [CLS] and [SEP] included
    max_visual_tokens: int | None = None  # keep at most this many visual tokens per image
    pos_texts_per_pair: int = 1  # extra positive texts sampled per pair (rewrites, retrieval)
    pos_images_per_pair: int = 1  # retrieved images sampled per pair
    neg_texts_per_pair: int = 3  # hard negative texts sampled per pair
    mirror_horizontal: float = 0.0  # chance a pair is seen mirrored left-right (train/mirror.py)
    mirror_vertical: float = 0.0  # chance a pair is seen mirrored top-bottom
    num_workers: int = 0  # DataLoader worker processes (0: load in the main process)

    # --- objectives (one flag per row of unimo_kit/model/registry.py's table: the flag's name is
    # also its loss_weights key and log key); the ablation arms are combinations of these ---
    cmcl: bool = True  # cross-modal contrastive learning (in-batch negatives at least)
    rewrite_negatives: bool = False  # + phrase/word-level hard negatives from rewrites
    sentence_negatives: bool = False  # + sentence-level hard negatives (captions of other images)
    # where they come from: "rewrites" (rewrite's TF-IDF neighbours) and/or "retrieved" (mined
    # neighbour captions); None: both. An ablation tells the two apart with this.
    sentence_negative_sources: list[str] | None = None
    negative_types: list[str] | None = None  # rewritten negative types to train on (None: all)
    sentence_negative_length_gap: int | None = None  # keep those within N words of the caption
    hard_negative_weight: float = 0.0  # rank loss of each pair's own hard negatives (0: off)
    hard_negative_scope: str = "all"  # softmax columns of "all" rows, the "own" row, or "rank" only
    token_alignment: bool = False  # + word-to-region matching loss (FILIP) with the negatives
    itm: bool = False  # + image-text matching head on the joint encoding, with the negatives
    paraphrase: bool = False  # + caption's paraphrases ranked above its hard negatives
    rewrite_positives: bool = False  # + rewritten positives (paraphrases of the caption)
    retrieval_positives: bool = False  # + retrieved texts and images as extra positives
    rewrite_on_the_fly: bool = True  # no rewrites file: make negatives with the rewriter
    mlm: bool = False  # masked language modelling (text-only and pairs)
    seq2seq: bool = False  # seq2seq generation (text-only and captioning)
    mrp: bool = False  # masked region prediction (image-only and pairs)
    extra_objectives: list[str] = field(default_factory=list)  # registered extension objectives
    temperature: float = 0.07  # CMCL temperature τ (initial value when learnt)
    learn_temperature: bool = False  # learn τ (CLIP-style logit scale)
    loss_weights: dict[str, float] = field(default_factory=dict)  # by objective: {"mlm": 0.5}
    mlm_probability: float = 0.15  # share of word pieces masked
    mrp_probability: float = 0.15  # share of visual tokens masked

    # --- optimisation ---
    steps: int = 1000  # optimizer steps in the whole run
    lr: float = 1e-4  # peak learning rate
    min_lr_ratio: float = 0.0  # lr at the end of the cosine, as a share of `lr`
    warmup_steps: int = 100  # linear warmup from 0 to `lr`
    weight_decay: float = 0.01  # AdamW decay (not on biases, LayerNorms, embeddings)
    adam_betas: tuple[float, float] = (0.9, 0.98)  # AdamW betas
    adam_eps: float = 1e-6  # AdamW epsilon
    grad_accum: int = 1  # micro-batches per optimizer step
    grad_clip: float = 1.0  # max global gradient norm (0: no clipping)
    precision: str = "auto"  # "auto" (bf16 autocast on GPU, fp32 on CPU), "bf16" or "fp32"

    # --- run ---
    seed: int = 0  # global seed: model init, data order, masking
    device: str | None = None  # torch device (default: the local GPU if any, else cpu)
    threads: int | None = None  # torch CPU threads (None: 1 on <= 2 cores, else torch's default)
    log_every: int = 10  # write a log.csv row every this many steps
    save_every: int = 500  # write a checkpoint every this many steps (and at the end)
    keep_checkpoints: int = 2  # keep the newest this many step checkpoints
    eval_every: int = 0  # quick val retrieval R@1 every this many steps (0: only at the end)
    eval_max_images: int = 200  # images used by the quick val check
    progress: bool = True  # tqdm bar on stderr (rank 0)

    def __post_init__(self) -> None:
        _check_field_types(self)
        _check_ranges(self)
        if self.vocab not in VOCABS:
            raise ValueError(f"vocab must be one of {list(VOCABS)}, got {self.vocab!r}")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"precision must be auto, bf16 or fp32, got {self.precision!r}")
        if self.batch_pairs + self.batch_texts + self.batch_images == 0:
            raise ValueError("batch_pairs, batch_texts and batch_images are all 0")
        if self.hard_negative_scope not in ("all", "own", "rank"):
            raise ValueError(
                "hard_negative_scope must be 'all', 'own' or 'rank', "
                f"got {self.hard_negative_scope!r}"
            )
        if self.hard_negative_scope == "rank" and self.hard_negative_weight <= 0:
            raise ValueError("hard_negative_scope 'rank' needs hard_negative_weight > 0")
        if self.negative_types is not None:
            from unimo_kit.rewrite.negatives import NEGATIVE_TYPES

            self.negative_types = list(self.negative_types)
            unknown = sorted(set(self.negative_types) - set(NEGATIVE_TYPES))
            if unknown or not self.negative_types:
                raise ValueError(
                    f"negative_types must be a non-empty list of {list(NEGATIVE_TYPES)}, "
                    f"got {self.negative_types!r}"
                )
        if self.sentence_negative_sources is not None:
            self.sentence_negative_sources = list(self.sentence_negative_sources)
            unknown = sorted(set(self.sentence_negative_sources) - set(SENTENCE_NEGATIVE_SOURCES))
            if unknown or not self.sentence_negative_sources:
                raise ValueError(
                    "sentence_negative_sources must be a non-empty list of "
                    f"{list(SENTENCE_NEGATIVE_SOURCES)}, got {self.sentence_negative_sources!r}"
                )
        if self.sentence_negative_length_gap is not None and self.sentence_negative_length_gap < 0:
            raise ValueError(
                "sentence_negative_length_gap must be >= 0 or null, "
                f"got {self.sentence_negative_length_gap}"
            )
        for name in ("mirror_horizontal", "mirror_vertical"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} is a probability in [0, 1], got {getattr(self, name)}")
        if self.hard_negative_weight < 0:
            raise ValueError(f"hard_negative_weight must be >= 0, got {self.hard_negative_weight}")
        _check_objectives(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def non_default_fields(self) -> dict[str, Any]:
        """The fields whose values differ from :class:`TrainConfig`'s defaults, as they read
        back from JSON: what identifies a run's training, such that a field added in a later
        version (whose default keeps what training did before) leaves it unchanged."""
        values, defaults = _as_json(self.to_dict()), _as_json(TrainConfig().to_dict())
        return {k: v for k, v in values.items() if defaults[k] != v}

    def objectives(self) -> dict[str, bool]:
        """Objective name -> switched on, for every row of the objectives table
        (:data:`~unimo_kit.model.registry.OBJECTIVES`)."""
        from unimo_kit.model.registry import BUILTIN_OBJECTIVES, OBJECTIVES

        on = {spec.name: getattr(self, spec.name) for spec in BUILTIN_OBJECTIVES}
        return on | {name: name in self.extra_objectives for name in OBJECTIVES if name not in on}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a dict; unknown keys are an error naming the known ones. Old spellings
        of objective flags (:data:`~unimo_kit.model.registry.ALIASES`, e.g.
        ``paraphrase_rank``) are read as today's names."""
        data = with_current_names(data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known - {"_comment"})
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}; known: {sorted(known)}")
        return cls(**{k: v for k, v in data.items() if k in known})

    def sentence_negatives_from(self, source: str) -> bool:
        """Whether sentence negatives are drawn from ``source`` (``"rewrites"``: TF-IDF
        neighbours in rewrites.jsonl; ``"retrieved"``: mined neighbours in retrieved.jsonl)."""
        sources = self.sentence_negative_sources
        return self.sentence_negatives and (sources is None or source in sources)

    def resolved(self, base: str | os.PathLike | None = None) -> TrainConfig:
        """A copy with the data paths made absolute (relative to ``base`` or the cwd)."""
        base = Path(base or self.data_dir or os.getcwd())
        changes = {}
        for name in PATH_FIELDS:
            value = getattr(self, name)
            if value:
                changes[name] = str((base / value).resolve())
        return dataclasses.replace(self, **changes)


def with_current_names(data: dict[str, Any]) -> dict[str, Any]:
    """A config dict with old objective spellings renamed: flags (``paraphrase_rank`` ->
    ``paraphrase``) and loss-weight keys (``token`` -> ``token_alignment``).

    Raises:
        ValueError: an old and a new spelling of one flag are both given.
    """
    from unimo_kit.model.registry import ALIASES, canonical

    out = dict(data)
    for old, new in ALIASES.items():
        if old in out and old not in _FIELD_NAMES:
            if new in out:
                raise ValueError(f"{old} is the old name of {new}: give one of them")
            out[new] = out.pop(old)
    weights = out.get("loss_weights")
    if isinstance(weights, dict):
        renamed = {canonical(k): v for k, v in weights.items()}
        if len(renamed) < len(weights):
            raise ValueError(f"loss_weights {weights} name one objective twice")
        out["loss_weights"] = renamed
    return out


def _check_objectives(config: TrainConfig) -> None:
    """Every switched-on objective is known, has what it needs and has data, and every loss
    weight names an objective — all read from the objectives table."""
    from unimo_kit.model.registry import OBJECTIVES, canonical_weights, check_objectives

    extensions = sorted(name for name, spec in OBJECTIVES.items() if spec.build is not None)
    wrong = [name for name in config.extra_objectives if name not in extensions]
    if wrong:
        raise ValueError(
            f"extra_objectives {wrong}: not registered extension objectives (registered: "
            f"{extensions}; a built-in objective has its own flag)"
        )
    config.loss_weights = canonical_weights(config.loss_weights)
    on = config.objectives()
    check_objectives(
        on,
        # paraphrases come from the rewrites, ranked above their rewritten hard negatives
        {"hard_negatives": config.rewrite_negatives, "matching_head": True},
        lambda need: "rewrite_negatives=true" if need == "hard_negatives" else f"{need}=true",
    )
    sizes = {
        "pairs": config.batch_pairs,
        "texts": config.batch_texts,
        "images": config.batch_images,
    }
    fed = {name: any(sizes[k] for k in OBJECTIVES[name].data) for name, used in on.items() if used}
    if not any(fed.values()):
        feeds = "; ".join(
            f"{spec.name} on {' or '.join(spec.data)}"
            for spec in OBJECTIVES.values()
            if spec.needs == ()
        )
        raise ValueError(
            f"no objective has data (objectives on: {', '.join(fed) or 'none'}; batch_pairs="
            f"{config.batch_pairs}, batch_texts={config.batch_texts}, batch_images="
            f"{config.batch_images}): {feeds}"
        )


#: Lower bounds of numeric fields: ``(bound, inclusive)``; a ``None`` value (where the field
#: allows it) is not checked.
_LOWER_BOUNDS: dict[str, tuple[float, bool]] = {
    **dict.fromkeys(("batch_pairs", "batch_texts", "batch_images"), (0, True)),
    **dict.fromkeys(("pos_texts_per_pair", "pos_images_per_pair", "neg_texts_per_pair"), (0, True)),
    **dict.fromkeys(("num_workers", "warmup_steps", "keep_checkpoints", "eval_every"), (0, True)),
    **dict.fromkeys(("weight_decay", "grad_clip", "min_lr_ratio"), (0, True)),
    **dict.fromkeys(("steps", "grad_accum", "log_every", "save_every", "threads"), (1, True)),
    **dict.fromkeys(("max_visual_tokens", "eval_max_images"), (1, True)),
    "max_text_length": (3, True),  # [CLS], one word piece, [SEP]
    **dict.fromkeys(("lr", "adam_eps", "temperature"), (0, False)),
    **dict.fromkeys(("mlm_probability", "mrp_probability"), (0, False)),
}

#: Fields at most 1 (shares and probabilities).
_AT_MOST_ONE = ("min_lr_ratio", "mlm_probability", "mrp_probability")


def _check_ranges(config: TrainConfig) -> None:
    """Refuse numbers outside their field's range (after :func:`_check_field_types`)."""
    for name, (bound, inclusive) in _LOWER_BOUNDS.items():
        value = getattr(config, name)
        if value is not None and (value < bound if inclusive else value <= bound):
            raise ValueError(f"{name} must be {'>=' if inclusive else '>'} {bound}, got {value}")
    for name in _AT_MOST_ONE:
        if getattr(config, name) > 1:
            raise ValueError(f"{name} must be <= 1, got {getattr(config, name)}")
    if not all(0 <= beta < 1 for beta in config.adam_betas):
        raise ValueError(f"adam_betas must both be in [0, 1), got {list(config.adam_betas)}")


def _check_field_types(config: TrainConfig) -> None:
    """Check every field against its annotation, normalising in place where the value is
    unambiguous (an integral float such as ``1e3`` for an int, an int for a float, a list for
    the tuple ``adam_betas``).

    Raises:
        ValueError: naming the field, what it takes and the value (``mlm`` must be
            ``true`` or ``false``: a string such as ``"False"`` or ``"off"`` is refused).
    """
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        setattr(config, f.name, _typed(f.name, getattr(config, f.name), hints[f.name]))


def _typed(name: str, value: Any, hint: Any) -> Any:
    """``value`` checked against the annotation ``hint`` (see :func:`_check_field_types`)."""
    args = typing.get_args(hint)
    if type(None) in args:  # X | None
        if value is None:
            return None
        (hint,) = [a for a in args if a is not type(None)]
        args = typing.get_args(hint)
    origin = typing.get_origin(hint) or hint
    wanted = {
        bool: "true or false",
        int: "an integer",
        float: "a number",
        str: "a string",
        dict: "a JSON object",
        list: "a list of strings",
        tuple: f"a list of {len(args)} numbers",
    }[origin]
    if origin is bool and isinstance(value, bool):
        return value
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if origin is int and number and float(value).is_integer():
        return int(value)
    if origin is float and number:
        return float(value)
    if origin is str and isinstance(value, str):
        return value
    if origin is dict and isinstance(value, dict) and all(isinstance(k, str) for k in value):
        if args[1] is float:
            return {k: _typed(f"{name}.{k}", v, float) for k, v in value.items()}
        return value
    if (
        origin is list
        and isinstance(value, list | tuple)
        and all(isinstance(v, str) for v in value)
    ):
        return list(value)
    if origin is tuple and isinstance(value, list | tuple) and len(value) == len(args):
        return tuple(_typed(name, v, a) for v, a in zip(value, args, strict=True))
    shown = json.dumps(value) if not isinstance(value, tuple) else json.dumps(list(value))
    raise ValueError(f"{name} must be {wanted}, got {shown}")


_FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(TrainConfig))


def presets_dir() -> Path:
    return Path(str(importlib_resources.files("unimo_kit.train") / "presets"))


def list_presets() -> list[str]:
    """Names of the shipped presets (``unimo_kit/train/presets/*.json``)."""
    return sorted(p.stem for p in presets_dir().glob("*.json"))


def parse_override(text: str) -> tuple[str, Any]:
    """``"key=value"`` -> ``(key, value)``, the value parsed as JSON when possible."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"override {text!r} is not key=value")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value


def _config_path(name: str, base: Path, extended_by: Path | None = None) -> Path:
    """The JSON file of a preset name or a path (relative to ``base``); a folder means its
    ``config.json`` (a run folder). A name ending in ``.json`` or holding a ``/`` is a path."""
    if not name:
        raise ValueError(f"{extended_by or 'training config'}: the config name is empty")
    is_path = name.endswith(".json") or "/" in name or os.sep in name
    path = presets_dir() / f"{name}.json"
    if is_path or not path.exists():
        path = base / name
        if path.is_dir():
            path = path / "config.json"
    if not path.is_file():
        by = f" (extended by {extended_by})" if extended_by else ""
        raise ValueError(
            f"unknown training config {name!r}{by}: not a preset ({', '.join(list_presets())}) "
            f"nor a JSON file at {path}"
        )
    return path


def _read_config(
    name: str, base: Path, chain: tuple[Path, ...] = (), extended_by: Path | None = None
) -> dict[str, Any]:
    """The keys of config ``name`` with its ``extends`` chain resolved (``_comment`` dropped)."""
    path = _config_path(name, base, extended_by).absolute()
    if path in chain:
        cycle = " -> ".join(str(p) for p in (*chain, path))
        raise ValueError(f"training configs extend each other in a cycle: {cycle}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ValueError(f"training config {path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"training config {path} must hold a JSON object")
    data.pop("_comment", None)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise ValueError(f"{path}: 'extends' must be a preset name or a path, got {parent!r}")
    inherited = _read_config(parent, path.parent, (*chain, path), path)
    for name in DICT_FIELDS:
        if isinstance(inherited.get(name), dict) and isinstance(data.get(name), dict):
            data[name] = inherited[name] | data[name]
    return inherited | data


def _apply_override(data: dict[str, Any], key: str, value: Any) -> None:
    """Set ``key`` in the raw config ``data``; ``field.entry`` sets one entry of a dict field."""
    name, dot, entry = key.partition(".")
    if not dot:
        data[key] = value
        return
    if name not in DICT_FIELDS or not entry:
        raise ValueError(
            f"override {key!r}: a dotted key sets one entry of {' or '.join(DICT_FIELDS)} "
            f"(e.g. model_overrides.hidden_size=256)"
        )
    current = data.get(name) or {}
    if not isinstance(current, dict):
        raise ValueError(f"override {key!r}: {name} is not a dict ({current!r})")
    data[name] = {**current, entry: value}


def load_config(
    preset_or_path: str | os.PathLike, overrides: list[str] | dict[str, Any] | None = None
) -> TrainConfig:
    """A preset name or a JSON file, with overrides applied.

    Args:
        preset_or_path: a shipped preset (:func:`list_presets`) or a config JSON path (a run's
            folder or its ``config.json`` works too); the file may ``extends`` another.
        overrides: ``["key=value", ...]`` or a dict.

    Raises:
        ValueError: for an unknown preset or unknown fields, a file that is not a JSON
            object, or ``extends`` naming an unknown config or forming a cycle.
    """
    data = _read_config(str(preset_or_path), Path.cwd())
    if isinstance(overrides, dict):
        pairs = list(overrides.items())
    else:  # applied in the order given: a later --set wins
        pairs = [parse_override(text) for text in overrides or []]
    for key, value in pairs:
        _apply_override(data, key, value)
    return TrainConfig.from_dict(data)


def resume_differences(saved: dict[str, Any], current: TrainConfig) -> tuple[list[str], list[str]]:
    """How ``current`` differs from the config a checkpoint was trained with.

    Args:
        saved: the checkpoint's config (``TrainConfig.to_dict()`` as JSON); fields it lacks
            (written by an older version) count as their defaults, fields unknown here are
            dropped.
        current: the config the run is resumed with (resolved, as the trainer writes it).

    Returns:
        ``(refused, noted)``: ``"name: old -> new"`` lines for the fields that change what the
        run learns (the resume should stop) and for :data:`RESUME_NOTED_FIELDS` (a warning);
        :data:`RUN_CONTROL_FIELDS` are left out.
    """
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    with contextlib.suppress(ValueError):  # both spellings: compare as written
        saved = with_current_names(saved)
    kept = {k: v for k, v in saved.items() if k in known}
    try:
        old = _as_json(TrainConfig.from_dict(kept).to_dict())
    except (TypeError, ValueError):  # invalid under today's checks: compare as written
        old = _as_json(kept)
    new = _as_json(current.to_dict())
    refused: list[str] = []
    noted: list[str] = []
    for name in sorted(known - set(RUN_CONTROL_FIELDS)):
        if name in old and old[name] != new[name]:
            line = f"{name}: {json.dumps(old[name])} -> {json.dumps(new[name])}"
            (noted if name in RESUME_NOTED_FIELDS else refused).append(line)
    return refused, noted


def _as_json(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` as they read back from JSON (tuples become lists)."""
    return json.loads(json.dumps(values, default=str))
