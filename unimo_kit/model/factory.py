"""One factory over the presets: build models, load BERT weights into them, load tokenizers,
save and load checkpoints (safetensors weights + JSON config; never pickle)."""

from __future__ import annotations

import json
import os
import re
from importlib import resources as importlib_resources
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from unimo_kit.model.config import UnimoConfig
from unimo_kit.model.unimo import UnimoModel
from unimo_kit.model.vocabulary import CHECKPOINT_TOKENIZER_DIR, copy_tokenizer_folder
from unimo_kit.utils import atomic_write

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


def _presets_dir() -> Path:
    return Path(str(importlib_resources.files("unimo_kit.model") / "presets"))


def list_presets() -> list[str]:
    """Names accepted by :func:`create_model` (the ``presets/*.json`` files)."""
    return sorted(p.stem for p in _presets_dir().glob("*.json"))


def get_config(name_or_path: str | os.PathLike, **overrides: Any) -> UnimoConfig:
    """A preset name (see :func:`list_presets`) or a config JSON path, with field overrides."""
    name = str(name_or_path)
    preset = _presets_dir() / f"{name}.json"
    if preset.exists():
        return UnimoConfig.from_json(preset, **overrides)
    path = Path(name)
    if path.is_dir() and (path / CONFIG_NAME).exists():
        path = path / CONFIG_NAME
    if path.is_file():
        return UnimoConfig.from_json(path, **overrides)
    raise ValueError(
        f"unknown model {name!r}: not a preset ({', '.join(list_presets())}) nor a config file"
    )


def create_model(
    name_or_path: str | os.PathLike | UnimoConfig,
    *,
    device: str | torch.device | None = None,
    **overrides: Any,
) -> UnimoModel:
    """Build a :class:`UnimoModel` from a preset, a config JSON file or a config.

    ``unimo-minilm`` copies the packaged all-MiniLM-L6-v2 BERT weights into the text
    embeddings and the Transformer (heads, visual embeddings: random init).

    Args:
        name_or_path: ``"unimo-tiny"``, ``"unimo-minilm"``, a config JSON path or a config.
        device: where to put the model (default: CPU).
        **overrides: :class:`UnimoConfig` fields to change, e.g. ``visual_feat_dim=512``.

    Returns:
        The model, in training mode.

    Example:
        >>> model = create_model("unimo-tiny", visual_feat_dim=16)
    """
    if isinstance(name_or_path, UnimoConfig):
        config = UnimoConfig.from_dict(name_or_path.to_dict(), **overrides)
    else:
        config = get_config(name_or_path, **overrides)
    model = UnimoModel(config)
    if config.init_from:
        load_bert_weights(model, resolve_init_path(config.init_from))
    if device is not None:
        model = model.to(device)
    return model


# ---------------------------------------------------------------------- BERT weights


def resolve_init_path(init_from: str) -> Path:
    """``"minilm"`` -> the packaged MiniLM folder; anything else is taken as a folder."""
    if init_from == "minilm":
        from unimo_kit.resources import minilm_path

        return minilm_path()
    path = Path(init_from)
    if not (path / WEIGHTS_NAME).exists():
        raise FileNotFoundError(f"init_from={init_from!r}: no {WEIGHTS_NAME} in {path}")
    return path


_LAYER = re.compile(r"encoder\.layer\.(\d+)\.(.+)")
_LAYER_MAP = {
    "attention.output.dense": "attn.out",
    "attention.output.LayerNorm": "ln1",
    "intermediate.dense": "fc1",
    "output.dense": "fc2",
    "output.LayerNorm": "ln2",
}
_HEAD_MAP = {
    "cls.predictions.transform.dense": "lm_head.dense",
    "cls.predictions.transform.LayerNorm": "lm_head.LayerNorm",
}


def bert_to_unimo_state_dict(bert: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename (and fuse q/k/v of) a HF ``BertModel``/``BertForPreTraining`` state dict to
    :class:`UnimoModel` names. Keys with no counterpart (pooler, NSP head) are dropped."""
    bert = {k.removeprefix("bert."): v for k, v in bert.items()}
    out: dict[str, Tensor] = {}
    qkv: dict[tuple[int, str], dict[str, Tensor]] = {}
    for key, value in bert.items():
        if key.startswith("embeddings.") and not key.endswith("position_ids"):
            out[key] = value
            continue
        if key == "cls.predictions.bias":
            out["lm_head.bias"] = value
            continue
        for old, new in _HEAD_MAP.items():
            if key.startswith(old + "."):
                out[new + key[len(old) :]] = value
        match = _LAYER.fullmatch(key)
        if not match:
            continue
        layer, rest = int(match.group(1)), match.group(2)
        module, param = rest.rsplit(".", 1)
        if module.startswith("attention.self."):
            qkv.setdefault((layer, param), {})[module.rsplit(".", 1)[1]] = value
        elif module in _LAYER_MAP:
            out[f"encoder.layers.{layer}.{_LAYER_MAP[module]}.{param}"] = value
    for (layer, param), parts in qkv.items():
        fused = torch.cat([parts["query"], parts["key"], parts["value"]], dim=0)
        out[f"encoder.layers.{layer}.attn.qkv.{param}"] = fused
    return out


def load_bert_weights(model: UnimoModel, folder: str | os.PathLike) -> list[str]:
    """Copy BERT weights (``folder/model.safetensors``) into ``model``.

    Returns:
        The names of model parameters left at their random init (visual embeddings, heads
        absent from the checkpoint).

    Raises:
        ValueError: when the BERT config does not match the model's (layers, sizes, vocab).
    """
    from safetensors.torch import load_file

    folder = Path(folder)
    bert_config = json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8"))
    cfg = model.config
    for bert_key, ours in [
        ("vocab_size", cfg.vocab_size),
        ("hidden_size", cfg.hidden_size),
        ("num_hidden_layers", cfg.num_hidden_layers),
        ("num_attention_heads", cfg.num_attention_heads),
        ("intermediate_size", cfg.intermediate_size),
        ("max_position_embeddings", cfg.max_position_embeddings),
        ("type_vocab_size", cfg.type_vocab_size),
    ]:
        if bert_config.get(bert_key) != ours:
            raise ValueError(
                f"{folder}: BERT {bert_key}={bert_config.get(bert_key)} but the UnimoConfig "
                f"has {ours}; use a config matching the checkpoint"
            )
    if bert_config.get("hidden_act", "gelu") != "gelu":
        raise ValueError(f"{folder}: hidden_act={bert_config['hidden_act']!r}, only gelu is built")
    state = bert_to_unimo_state_dict(load_file(str(folder / WEIGHTS_NAME)))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected:  # pragma: no cover - the mapping only emits model names
        raise ValueError(f"unexpected keys after mapping BERT weights: {unexpected}")
    backbone = [k for k in missing if k.startswith(("embeddings.", "encoder."))]
    if backbone:
        raise ValueError(f"{folder}: the checkpoint lacks Transformer weights {backbone[:5]}")
    return list(missing)


# ---------------------------------------------------------------------- tokenizer


def load_tokenizer(config: UnimoConfig | UnimoModel | str | None = None) -> Any:
    """The word-piece tokenizer (HF ``BertTokenizerFast``) of a model or config.

    ``tokenizer="minilm"`` (both presets) loads the packaged MiniLM tokenizer; a folder
    (a checkpoint's corpus vocabulary, ``tokenizer/``) loads from there.
    """
    from transformers import BertTokenizerFast

    if isinstance(config, UnimoModel):
        config = config.config
    if isinstance(config, str):
        config = get_config(config)
    name = config.tokenizer if config is not None else "minilm"
    if name == "minilm":
        from unimo_kit.resources import minilm_path

        name = str(minilm_path())
    elif not Path(name).is_dir():
        raise FileNotFoundError(
            f"tokenizer {name!r}: no such folder (a checkpoint with a corpus vocabulary "
            "carries it as tokenizer/ beside its config.json: copy the whole folder)"
        )
    return BertTokenizerFast.from_pretrained(name)


# ---------------------------------------------------------------------- checkpoints


def save_checkpoint(
    model: UnimoModel, path: str | os.PathLike, metadata: dict[str, str] | None = None
) -> Path:
    """Write ``path/model.safetensors`` and ``path/config.json`` (each atomically), and a
    model with a tokenizer folder of its own (a corpus vocabulary) its copy in
    ``path/tokenizer/``, which ``config.json`` names relatively: the folder alone holds
    everything :func:`load_checkpoint` and :func:`load_tokenizer` need, wherever it is moved.

    Args:
        model: the model (a ``torch.compile`` or DDP wrapper is unwrapped).
        path: output folder, created if needed.
        metadata: optional string metadata stored in the safetensors header.

    Returns:
        The folder.
    """
    from safetensors.torch import save

    model = unwrap_model(model)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    config = model.config.to_dict()
    if config["tokenizer"] != "minilm":
        copy_tokenizer_folder(config["tokenizer"], path / CHECKPOINT_TOKENIZER_DIR)
        config["tokenizer"] = CHECKPOINT_TOKENIZER_DIR
    with atomic_write(path / WEIGHTS_NAME, mode="wb") as f:
        f.write(save(state, metadata=metadata))
    with atomic_write(path / CONFIG_NAME) as f:
        f.write(json.dumps(config, indent=2) + "\n")
    return path


def load_checkpoint(
    path: str | os.PathLike, *, device: str | torch.device = "cpu", **overrides: Any
) -> UnimoModel:
    """Load a model saved by :func:`save_checkpoint`.

    Args:
        path: the checkpoint folder, or its ``model.safetensors`` file.
        device: where to load the weights.
        **overrides: config fields to change that do not alter weight shapes (e.g. dropout).

    Returns:
        The model in eval mode (call ``.train()`` to fine-tune).
    """
    from safetensors.torch import load_file

    path = Path(path)
    folder = path.parent if path.is_file() else path
    weights = path if path.is_file() else folder / WEIGHTS_NAME
    if not weights.exists() or not (folder / CONFIG_NAME).exists():
        raise FileNotFoundError(f"{folder}: a checkpoint needs {WEIGHTS_NAME} and {CONFIG_NAME}")
    config = UnimoConfig.from_json(folder / CONFIG_NAME, **overrides)
    config.init_from = None  # the weights below replace any initialisation
    model = UnimoModel(config)
    model.load_state_dict(load_file(str(weights), device=str(device)), strict=True)
    return model.to(device).eval()


def unwrap_model(model: torch.nn.Module) -> UnimoModel:
    """Strip ``torch.compile`` (``_orig_mod``) and DDP (``module``) wrappers."""
    while not isinstance(model, UnimoModel):
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif hasattr(model, "module"):
            model = model.module
        else:
            raise TypeError(f"not a UnimoModel: {type(model).__name__}")
    return model
