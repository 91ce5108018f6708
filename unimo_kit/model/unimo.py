"""UnimoModel: one Transformer over text alone, an image alone, or image + text.

Sequence layout (whichever parts are present)::

    [IMG] r_1 ... r_N [CLS] w_1 ... w_n [SEP] [PAD]...
    '--- visual ---'  '------------ text -----------'

Text tokens come in as the tokenizer makes them (``[CLS] ... [SEP]``); they keep BERT's absolute
positions 0..T-1 and segment 0, so with no image the model *is* the initialising BERT. Visual
tokens carry their box embedding instead of a position. Li et al., ACL 2021, "UNIMO: Towards
Unified-Modal Understanding and Generation via Cross-Modal Contrastive Learning", §2.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unimo_kit.model.config import UnimoConfig
from unimo_kit.model.embeddings import TextEmbeddings, VisualEmbeddings
from unimo_kit.model.geometry import BoxRelationBias
from unimo_kit.model.heads import LMHead, MatchingHead, RegionHead
from unimo_kit.model.masks import bidirectional_mask, seq2seq_mask
from unimo_kit.model.transformer import KVCache, TransformerEncoder

MODES = ("bidirectional", "seq2seq")


class UnimoModel(nn.Module):
    """The UNIMO Transformer with its embeddings and heads. Build it with
    :func:`unimo_kit.model.create_model`.

    Attributes:
        config: the :class:`UnimoConfig` it was built from (saved with checkpoints).
        embeddings / visual_embeddings: text (BERT) and visual-token embeddings.
        encoder: the Transformer.
        lm_head: word prediction, shared by masked LM and seq2seq.
        region_head: masked region prediction.
        matching_head: image-text matching on the joint encoding (``config.matching_head``),
            else None; add one to a model without it with :meth:`add_matching_head`.
        text_proj / image_proj: optional CMCL projections (``config.embed_dim``), else identity.
    """

    def __init__(self, config: UnimoConfig):
        super().__init__()
        self.config = config
        self.embeddings = TextEmbeddings(config)
        self.visual_embeddings = VisualEmbeddings(config)
        self.encoder = TransformerEncoder(config)
        self.box_relation = (
            BoxRelationBias(config.num_attention_heads) if config.box_relation_bias else None
        )
        self.lm_head = LMHead(config)
        self.region_head = RegionHead(config)
        self.matching_head = MatchingHead(config) if config.matching_head else None
        if config.embed_dim:
            self.text_proj: nn.Module = nn.Linear(config.hidden_size, config.embed_dim, bias=False)
            self.image_proj: nn.Module = nn.Linear(config.hidden_size, config.embed_dim, bias=False)
        else:
            self.text_proj = nn.Identity()
            self.image_proj = nn.Identity()
        self.apply(self._init_weights)
        if self.box_relation is not None:
            self.box_relation.reset_parameters()  # its own scale (geometry.py)

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=std)
            if module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, VisualEmbeddings):
            nn.init.normal_(module.img_token, std=std)

    def draws_dropout(self) -> bool:
        """Whether a pass draws dropout masks now (training with a dropout rate > 0); a pass
        that runs fewer positions would then draw other masks than the full pass."""
        rates = (self.config.hidden_dropout_prob, self.config.attention_probs_dropout_prob)
        return self.training and any(p > 0 for p in rates)

    def states_at(self, positions: Tensor, **inputs: Any) -> Tensor:
        """Final states (B, K, D) of one pass on ``inputs`` at ``positions`` (B, K) of the whole
        sequence (visual tokens first): the only states a head scores. The last layer runs on
        those positions alone (``hidden_positions``), except under dropout, whose masks would
        then be drawn for fewer positions than a full pass draws (the run would no longer
        repeat one made with the full pass)."""
        if self.draws_dropout():
            hidden = self(**inputs)["hidden"]  # (B, L, D)
            return hidden.gather(1, positions[..., None].expand(-1, -1, hidden.shape[-1]))
        return self(**inputs, hidden_positions=positions)["hidden"]  # (B, K, D)

    def _first_state(self, **inputs: Any) -> Tensor:
        """The final state (B, D) at position 0 ([IMG], or [CLS] of a text alone)."""
        x = inputs.get("input_ids", inputs.get("visual_feats"))
        first = torch.zeros(x.shape[0], 1, dtype=torch.long, device=x.device)  # (B, 1)
        return self.states_at(first, **inputs)[:, 0]  # (B, D)

    @property
    def device(self) -> torch.device:
        return self.embeddings.word_embeddings.weight.device

    # ------------------------------------------------------------------ forward

    def embed(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        visual_feats: Tensor | None = None,
        visual_boxes: Tensor | None = None,
        visual_mask: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, int]:
        """Embed and concatenate the parts present.

        Returns:
            x (B, L, D), valid (B, L) bool, and the number of visual positions (1 + N, or 0).
        """
        parts: list[Tensor] = []
        valid: list[Tensor] = []
        num_visual = 0
        if visual_feats is not None:
            v = self.visual_embeddings(visual_feats, visual_boxes)  # (B, 1 + N, D)
            b, n = visual_feats.shape[:2]
            vmask = torch.ones(b, n, dtype=torch.bool, device=v.device)
            if visual_mask is not None:
                vmask = visual_mask.bool()
            img_valid = torch.ones(b, 1, dtype=torch.bool, device=v.device)
            parts.append(v)
            valid.append(torch.cat([img_valid, vmask], dim=1))  # (B, 1 + N)
            num_visual = 1 + n
        if input_ids is not None:
            parts.append(self.embeddings(input_ids))  # (B, T, D)
            if attention_mask is None:
                valid.append(input_ids != self.config.pad_token_id)
            else:
                valid.append(attention_mask.bool())
        if not parts:
            raise ValueError("give input_ids, visual_feats or both")
        if len(parts) == 2 and parts[0].dtype != parts[1].dtype:
            parts[0] = parts[0].to(parts[1].dtype)
        return torch.cat(parts, dim=1), torch.cat(valid, dim=1), num_visual

    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        visual_feats: Tensor | None = None,
        visual_boxes: Tensor | None = None,
        visual_mask: Tensor | None = None,
        mode: str = "bidirectional",
        text_prefix_length: Tensor | None = None,
        *,
        hidden_positions: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Encode text, an image, or both.

        Args:
            input_ids: (B, T) word-piece ids, ``[CLS] ... [SEP]`` then padding; or None.
            attention_mask: (B, T), 1 at real tokens; None = ``input_ids != pad_token_id``.
            visual_feats: (B, N, F) region/grid features; or None.
            visual_boxes: (B, N, 5) ``[x1, y1, x2, y2, area]`` in [0, 1]; None = no box term.
            visual_mask: (B, N), 1 at real regions; None = all real.
            mode: ``"bidirectional"`` (every token sees every valid token) or ``"seq2seq"``
                (visual tokens see each other; text sees all visual tokens and the text
                causally — UniLM's seq2seq mask).
            text_prefix_length: seq2seq only: (B,) long, the number of leading text tokens that
                join the bidirectional source (UniLM text-to-text seq2seq); default 0.
            hidden_positions: (B, K) long positions of the whole sequence (visual tokens
                first, see the module docstring) whose final states are all that is wanted,
                e.g. the masked words and regions: the last layer computes only those
                (same values as the full pass at those positions).

        Returns:
            dict with ``hidden`` (B, L, D) for the whole sequence; ``visual_hidden``
            (B, 1 + N, D) and ``img`` (B, D) when an image is given; ``text_hidden`` (B, T, D)
            and ``cls`` (B, D) when text is given. With ``hidden_positions``: only ``hidden``
            (B, K, D), the states at those positions.
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if text_prefix_length is not None and mode != "seq2seq":
            raise ValueError("text_prefix_length only applies to mode='seq2seq'")
        x, valid, num_visual = self.embed(
            input_ids, attention_mask, visual_feats, visual_boxes, visual_mask
        )
        prefix = None
        if mode == "seq2seq":
            prefix = torch.full((x.shape[0],), num_visual, dtype=torch.long, device=x.device)
            if text_prefix_length is not None:
                prefix = prefix + text_prefix_length.to(prefix.device)
        mask = self.attention_mask(valid, num_visual, visual_boxes, prefix)
        hidden, _ = self.encoder(x, mask, positions=hidden_positions)  # (B, L or K, D)
        out = {"hidden": hidden}
        if hidden_positions is not None:
            return out
        if num_visual:
            out["visual_hidden"] = hidden[:, :num_visual]  # (B, 1 + N, D)
            out["img"] = hidden[:, 0]  # (B, D)
        if input_ids is not None:
            out["text_hidden"] = hidden[:, num_visual:]  # (B, T, D)
            out["cls"] = hidden[:, num_visual]  # (B, D)
        return out

    def attention_mask(
        self,
        valid: Tensor,
        num_visual: int,
        visual_boxes: Tensor | None = None,
        prefix_length: Tensor | None = None,
    ) -> Tensor:
        """The attention mask of an embedded sequence (:meth:`embed`'s ``valid`` and
        ``num_visual``).

        Args:
            prefix_length: (B,) long: UniLM's seq2seq mask with this source prefix; None:
                bidirectional.
            visual_boxes: (B, N, 5), for the box relation bias (``config.box_relation_bias``).

        Returns:
            A bool mask (True = attend), (B, 1, 1, L) bidirectional or (B, 1, L, L) seq2seq;
            with a box relation bias and boxes, a float additive mask (B, H, L, L): 0 or the
            bias where attention is allowed, ``-inf`` where it is not.
        """
        if prefix_length is None:
            mask = bidirectional_mask(valid)  # (B, 1, 1, L)
        else:
            mask = seq2seq_mask(valid, prefix_length)  # (B, 1, L, L)
        if self.box_relation is None or visual_boxes is None or num_visual == 0:
            return mask
        b, length = valid.shape
        heads = self.config.num_attention_heads
        bias = self.box_relation(visual_boxes)  # (B, H, N, N)
        full = bias.new_zeros(b, heads, length, length)
        full[:, :, 1:num_visual, 1:num_visual] = bias  # regions on regions; [IMG] and text: 0
        return full.masked_fill(~mask, float("-inf"))

    # ------------------------------------------------------------------ encoders

    def encode_text(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, normalize: bool = True
    ) -> Tensor:
        """CMCL text embedding: the [CLS] output of the text encoded alone (projected when
        ``config.embed_dim`` is set). Differentiable; wrap in ``torch.no_grad()`` for inference.

        Args: input_ids, attention_mask (B, T). Returns: (B, E), L2-normalised by default.
        """
        cls = self._first_state(input_ids=input_ids, attention_mask=attention_mask)  # (B, D)
        z = self.text_proj(cls)  # (B, E)
        return F.normalize(z, dim=-1) if normalize else z

    def encode_image(
        self,
        visual_feats: Tensor,
        visual_boxes: Tensor | None = None,
        visual_mask: Tensor | None = None,
        normalize: bool = True,
    ) -> Tensor:
        """CMCL image embedding: the [IMG] output of the image encoded alone (projected when
        ``config.embed_dim`` is set). Differentiable; wrap in ``torch.no_grad()`` for inference.

        Args: visual_feats (B, N, F), visual_boxes (B, N, 5), visual_mask (B, N).
        Returns: (B, E), L2-normalised by default.
        """
        img = self._first_state(
            visual_feats=visual_feats, visual_boxes=visual_boxes, visual_mask=visual_mask
        )  # (B, D)
        z = self.image_proj(img)  # (B, E)
        return F.normalize(z, dim=-1) if normalize else z

    def encode_text_tokens(
        self, input_ids: Tensor, attention_mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The CMCL text embedding and one embedding per word piece, from one pass.

        Word pieces go through the same projection as [CLS] and are L2-normalised; ``valid``
        marks the words (not [CLS], [SEP] or padding) that token alignment
        (:class:`~unimo_kit.model.token_alignment.TokenAlignmentLoss`) matches against image
        regions.

        Returns: ``z`` (B, E), ``tokens`` (B, T, E), ``valid`` (B, T) bool.
        """
        hidden = self(input_ids=input_ids, attention_mask=attention_mask)["text_hidden"]
        projected = F.normalize(self.text_proj(hidden), dim=-1)  # (B, T, E)
        cfg = self.config
        real = input_ids != cfg.pad_token_id if attention_mask is None else attention_mask.bool()
        valid = real & (input_ids != cfg.cls_token_id) & (input_ids != cfg.sep_token_id)
        return projected[:, 0], projected, valid

    def encode_image_tokens(
        self,
        visual_feats: Tensor,
        visual_boxes: Tensor | None = None,
        visual_mask: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The CMCL image embedding and one embedding per visual token, from one pass.

        Visual tokens go through the same projection as [IMG] and are L2-normalised.

        Returns: ``z`` (B, E), ``tokens`` (B, N, E) (the regions, [IMG] left out),
        ``valid`` (B, N) bool.
        """
        out = self(visual_feats=visual_feats, visual_boxes=visual_boxes, visual_mask=visual_mask)
        projected = F.normalize(self.image_proj(out["visual_hidden"]), dim=-1)  # (B, 1 + N, E)
        valid = (
            torch.ones(visual_feats.shape[:2], dtype=torch.bool, device=visual_feats.device)
            if visual_mask is None
            else visual_mask.bool()
        )
        return projected[:, 0], projected[:, 1:], valid

    # ------------------------------------------------------------------ heads

    def lm_logits(self, hidden: Tensor) -> Tensor:
        """Word logits (..., V) for hidden states (..., D)."""
        return self.lm_head(hidden, self.embeddings.word_embeddings.weight)

    def add_matching_head(self) -> None:
        """Give the model a freshly initialised matching head (and ``config.matching_head``),
        e.g. to train image-text matching from a checkpoint that had none; no-op when present."""
        if self.matching_head is not None:
            return
        self.config.matching_head = True
        head = MatchingHead(self.config)
        head.apply(self._init_weights)
        self.matching_head = head.to(self.device)

    def match_logits(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None,
        visual_feats: Tensor,
        visual_boxes: Tensor | None = None,
        visual_mask: Tensor | None = None,
    ) -> Tensor:
        """Image-text matching logits of text k with image k: one bidirectional pass over
        ``[IMG] regions [CLS] text [SEP]`` (words and regions attend to each other), the
        matching head on the text's ``[CLS]`` state. Differentiable.

        Args: input_ids, attention_mask (B, T); visual_feats (B, N, F), visual_boxes
            (B, N, 5), visual_mask (B, N).
        Returns: (B,) logits; ``sigmoid`` gives the probability of a match.

        Raises:
            ValueError: the model has no matching head (``config.matching_head`` is off).
        """
        if self.matching_head is None:
            raise ValueError(
                "this model has no matching head: train it with itm=true "
                "(or call add_matching_head() before training)"
            )
        out = self(
            input_ids=input_ids,
            attention_mask=attention_mask,
            visual_feats=visual_feats,
            visual_boxes=visual_boxes,
            visual_mask=visual_mask,
        )
        return self.matching_head(out["cls"])  # (B,)

    # ------------------------------------------------------------------ decoding

    def decode_step(
        self, input_ids: Tensor, position: int, cache: KVCache, key_valid: Tensor
    ) -> tuple[Tensor, KVCache]:
        """One incremental seq2seq step: new text tokens at ``position..`` attend to the
        cached positions and to themselves.

        Args:
            input_ids: (B, 1) next tokens.
            position: text position of the token (0 is the [CLS]).
            cache: key/value cache of all earlier positions.
            key_valid: (B, Lp + 1) bool validity of the cached positions plus the new one.

        Returns:
            hidden (B, 1, D) and the extended cache.
        """
        emb = self.embeddings
        x = emb.word_embeddings(input_ids) + emb.position_embeddings.weight[position]
        x = emb.dropout(emb.LayerNorm(x + emb.token_type_embeddings.weight[0]))  # (B, 1, D)
        return self.encoder(x, bidirectional_mask(key_valid), cache)

    def generate(
        self,
        visual_feats: Tensor,
        visual_boxes: Tensor | None = None,
        visual_mask: Tensor | None = None,
        max_length: int = 20,
        num_beams: int = 1,
        **kwargs: Any,
    ) -> list[list[int]]:
        """Caption images; see :func:`unimo_kit.model.generation.generate`."""
        from unimo_kit.model.generation import generate

        return generate(
            self,
            visual_feats,
            visual_boxes,
            visual_mask,
            max_length=max_length,
            num_beams=num_beams,
            **kwargs,
        )
