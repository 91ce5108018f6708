"""Input embeddings: BERT text embeddings and UNIMO visual-token embeddings."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unimo_kit.model.config import UnimoConfig

# The box of the [IMG] token: the whole image, [x1, y1, x2, y2, area] in [0, 1].
FULL_IMAGE_BOX = (0.0, 0.0, 1.0, 1.0, 1.0)


class TextEmbeddings(nn.Module):
    """BERT embeddings: word + absolute position + segment, then LayerNorm and dropout.

    Parameter names match ``transformers.BertEmbeddings`` so BERT weights load by name.
    """

    def __init__(self, config: UnimoConfig):
        super().__init__()
        d = config.hidden_size
        self.word_embeddings = nn.Embedding(config.vocab_size, d, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, d)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, d)
        self.LayerNorm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.max_positions = config.max_position_embeddings
        #: the word table lookups read instead of ``word_embeddings.weight`` when set (a
        #: training step's one view of it, see ``objectives._sparse_lookup_gradients``)
        self.word_table: Tensor | None = None

    def forward(self, input_ids: Tensor) -> Tensor:
        """Args: input_ids (B, T) long. Returns: (B, T, D). Positions count from 0 at the first
        text token (the [CLS]) whether or not visual tokens come before it."""
        length = input_ids.shape[1]
        if length > self.max_positions:
            raise ValueError(
                f"text of {length} tokens is longer than max_position_embeddings="
                f"{self.max_positions}; truncate it in the tokenizer"
            )
        positions = torch.arange(length, device=input_ids.device)  # (T,)
        words = self.word_embeddings
        if self.word_table is None:
            x = words(input_ids)  # (B, T, D)
        else:
            x = F.embedding(input_ids, self.word_table, words.padding_idx, sparse=words.sparse)
        x = x + self.position_embeddings(positions)[None]  # (B, T, D)
        x = x + self.token_type_embeddings.weight[0]  # segment 0 for every text token
        return self.dropout(self.LayerNorm(x))


class VisualEmbeddings(nn.Module):
    """Visual tokens: ``LayerNorm(Linear(feature) + Linear(box))`` per region/grid cell, with a
    learned ``[IMG]`` token (box = the whole image) prepended.

    Boxes are ``[x1, y1, x2, y2, area]`` normalised to [0, 1] (UNITER/UNIMO's 5-d location
    feature; for grid features the cell's box). With ``config.box_frequencies = K > 0`` the
    box term is ``Linear([box, sin(πf·box), cos(πf·box)])`` for ``f = 1, 2, ..., 2^(K-1)``:
    a shift of a box is then a rotation of its features, so a query can prefer keys to its
    left or right (a linear box term only lets every token prefer the same side).
    """

    def __init__(self, config: UnimoConfig):
        super().__init__()
        d = config.hidden_size
        self.feat_proj = nn.Linear(config.visual_feat_dim, d)
        self.box_frequencies = config.box_frequencies
        self.box_proj = nn.Linear(5 * (1 + 2 * config.box_frequencies), d)
        freqs = math.pi * 2.0 ** torch.arange(config.box_frequencies, dtype=torch.float32)
        self.register_buffer("box_freqs", freqs, persistent=False)  # (K,)
        self.img_token = nn.Parameter(torch.zeros(d))
        self.LayerNorm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.register_buffer("full_box", torch.tensor(FULL_IMAGE_BOX), persistent=False)
        self.feat_dim = config.visual_feat_dim

    def forward(self, feats: Tensor, boxes: Tensor | None = None) -> Tensor:
        """Args: feats (B, N, F); boxes (B, N, 5) or None (then zeros).
        Returns: (B, 1 + N, D), the [IMG] token first."""
        if feats.shape[-1] != self.feat_dim:
            raise ValueError(
                f"visual_feats have dim {feats.shape[-1]} but the model expects "
                f"visual_feat_dim={self.feat_dim}"
            )
        batch = feats.shape[0]
        regions = self.feat_proj(feats)  # (B, N, D)
        if boxes is not None:
            regions = regions + self.box_proj(self.box_features(boxes.to(regions.dtype)))
        full = self.box_features(self.full_box.to(self.img_token.dtype))
        img = self.img_token + self.box_proj(full)  # (D,)
        img = img.to(regions.dtype).expand(batch, 1, -1)  # (B, 1, D)
        x = torch.cat([img, regions], dim=1)  # (B, 1 + N, D)
        return self.dropout(self.LayerNorm(x))

    def box_features(self, boxes: Tensor) -> Tensor:
        """(..., 5) boxes -> (..., 5 (1 + 2K)): the boxes, then their sines and cosines."""
        if not self.box_frequencies:
            return boxes
        angles = (boxes[..., None] * self.box_freqs.to(boxes.dtype)).flatten(-2)  # (..., 5K)
        return torch.cat([boxes, angles.sin(), angles.cos()], dim=-1)
