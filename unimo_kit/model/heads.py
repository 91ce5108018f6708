"""Output heads: the language-model head (masked LM and seq2seq share it, as in UniLM), the
masked-region head (feature regression and region class) and the image-text matching head."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unimo_kit.model.config import UnimoConfig


class LMHead(nn.Module):
    """BERT's prediction head: ``Linear -> GELU -> LayerNorm`` then logits against the word
    embeddings (tied weights, own bias).

    The decoder weight is *not* a parameter of this module: :meth:`forward` takes the word
    embedding matrix, so checkpoints hold it once (safetensors refuses shared tensors).
    """

    def __init__(self, config: UnimoConfig):
        super().__init__()
        d = config.hidden_size
        self.dense = nn.Linear(d, d)
        self.LayerNorm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def transform(self, hidden: Tensor) -> Tensor:
        """The head before the vocabulary: (..., D) -> (..., D), what the word embeddings score
        (:func:`~unimo_kit.model.losses.linear_cross_entropy` takes it with them)."""
        return self.LayerNorm(F.gelu(self.dense(hidden)))  # (..., D)

    def forward(self, hidden: Tensor, word_embeddings: Tensor) -> Tensor:
        """Args: hidden (..., D); word_embeddings (V, D). Returns: logits (..., V)."""
        return F.linear(self.transform(hidden), word_embeddings, self.bias)  # (..., V)


class RegionHead(nn.Module):
    """Masked region prediction: regress the region feature and, when ``num_classes > 0``,
    predict its class distribution (UNITER's MRFR and MRC-kl, used by UNIMO)."""

    def __init__(self, config: UnimoConfig):
        super().__init__()
        d = config.hidden_size
        self.dense = nn.Linear(d, d)
        self.LayerNorm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.feat = nn.Linear(d, config.visual_feat_dim)
        self.cls = nn.Linear(d, config.visual_num_classes) if config.visual_num_classes else None

    def forward(self, hidden: Tensor) -> dict[str, Tensor]:
        """Args: hidden (..., D). Returns: ``feats`` (..., F) and, with a class head,
        ``class_logits`` (..., C)."""
        h = self.LayerNorm(F.gelu(self.dense(hidden)))  # (..., D)
        out = {"feats": self.feat(h)}  # (..., F)
        if self.cls is not None:
            out["class_logits"] = self.cls(h)  # (..., C)
        return out


class MatchingHead(nn.Module):
    """Image-text matching (UNITER's ITM, ALBEF's ITM): ``Linear -> tanh`` (BERT's pooler) then
    one logit, on the text's ``[CLS]`` state in the joint encoding of an image and a text.
    ``sigmoid(logit)`` is the probability that the text describes the image."""

    def __init__(self, config: UnimoConfig):
        super().__init__()
        d = config.hidden_size
        self.dense = nn.Linear(d, d)
        self.logit = nn.Linear(d, 1)

    def forward(self, cls: Tensor) -> Tensor:
        """Args: cls (B, D). Returns: logits (B,)."""
        return self.logit(torch.tanh(self.dense(cls))).squeeze(-1)
