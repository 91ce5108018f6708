"""Model configuration: one dataclass, named presets as JSON files next to this module."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class UnimoConfig:
    """Architecture of a :class:`~unimo_kit.model.unimo.UnimoModel`.

    Text hyper-parameters follow BERT's ``config.json`` names so a BERT checkpoint's config maps
    onto them one to one. Load presets with :func:`unimo_kit.model.create_model`.
    """

    name: str = "custom"  # preset name, recorded in checkpoints
    # --- text Transformer (BERT layout, post-LayerNorm) ---
    vocab_size: int = 30522  # word-piece vocabulary size (MiniLM/BERT uncased)
    hidden_size: int = 384  # D, width of every token state
    num_hidden_layers: int = 6  # Transformer blocks
    num_attention_heads: int = 12  # heads per block; hidden_size must divide evenly
    intermediate_size: int = 1536  # width of the feed-forward layer
    hidden_dropout_prob: float = 0.1  # dropout on embeddings, attention output and FFN output
    attention_probs_dropout_prob: float = 0.1  # dropout on attention weights (SDPA dropout_p)
    max_position_embeddings: int = 512  # longest text (in word pieces, [CLS] and [SEP] included)
    type_vocab_size: int = 2  # BERT segment embeddings (text uses segment 0)
    layer_norm_eps: float = 1e-12  # LayerNorm epsilon (BERT's value)
    initializer_range: float = 0.02  # std of the normal init of random weights
    # --- special token ids (BERT uncased vocabulary) ---
    pad_token_id: int = 0  # [PAD]
    cls_token_id: int = 101  # [CLS], first text token, its output is the text's CMCL feature
    sep_token_id: int = 102  # [SEP], ends a text; generation stops on it
    mask_token_id: int = 103  # [MASK], used by masked language modelling
    # --- visual tokens ---
    visual_feat_dim: int = 1280  # F, dim of a region/grid feature (EfficientNet-Lite0 grid: 1280)
    visual_num_classes: int = 0  # C, classes of the masked-region class head (0: no class head)
    # 0: boxes enter linearly (UNITER's 5-d location feature); K > 0: with sin/cos of each box
    # value at K octaves, so that attention can compare positions (model.md, "Box encoding")
    box_frequencies: int = 0
    # a learnt attention bias from the relative geometry of every two visual tokens (their
    # centre offsets and size ratios), shared by all layers (model.md, "Box relations")
    box_relation_bias: bool = False
    # --- heads ---
    embed_dim: int | None = None  # CMCL embedding size E; None = no projection (E = hidden_size)
    # an image-text matching head on the joint encoding (trained by TrainConfig.itm; model.md,
    # "Matching head"); False: no head, and checkpoints without one load as before
    matching_head: bool = False
    # --- initialisation ---
    # None: random init. "minilm": the packaged all-MiniLM-L6-v2 BERT weights
    # (unimo_kit.resources.minilm_path()); any other string: a folder with a BERT
    # config.json + model.safetensors whose shapes match this config.
    init_from: str | None = None
    # "minilm" (the packaged MiniLM tokenizer) or a tokenizer folder; a relative folder is
    # relative to the config.json naming it (a checkpoint's own vocabulary: "tokenizer")
    tokenizer: str = "minilm"

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size={self.hidden_size} is not a multiple of "
                f"num_attention_heads={self.num_attention_heads}"
            )
        if self.visual_feat_dim <= 0:
            raise ValueError(f"visual_feat_dim must be positive, got {self.visual_feat_dim}")
        if not 0 <= self.box_frequencies <= 16:
            raise ValueError(f"box_frequencies must be in [0, 16], got {self.box_frequencies}")

    @property
    def output_dim(self) -> int:
        """E, the size of :meth:`UnimoModel.encode_text` / ``encode_image`` outputs."""
        return self.embed_dim or self.hidden_size

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], **overrides: Any) -> UnimoConfig:
        """Build from a dict (a preset or a checkpoint's config.json); unknown keys are an error."""
        merged = {**data, **overrides}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(merged) - known)
        if unknown:
            raise ValueError(
                f"unknown UnimoConfig fields: {unknown}; known fields: {sorted(known)}"
            )
        return cls(**merged)

    @classmethod
    def from_json(cls, path: str | os.PathLike, **overrides: Any) -> UnimoConfig:
        """Read a config JSON file; a relative ``tokenizer`` folder that exists beside the file
        (a checkpoint's ``tokenizer/``) is made absolute, so the checkpoint folder can move."""
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        tokenizer = data.get("tokenizer")
        if isinstance(tokenizer, str) and tokenizer != "minilm" and not os.path.isabs(tokenizer):
            beside = Path(path).resolve().parent / tokenizer
            if beside.is_dir():
                data["tokenizer"] = str(beside)
        return cls.from_dict(data, **overrides)

    def save_json(self, path: str | os.PathLike) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
