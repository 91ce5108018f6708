"""Paraphrase ranking: relations and binding taught on the text side.

A caption and its hard negatives differ by one word or one word order (``a red circle left of a
blue square`` / ``... right of ...``), and a text encoder trained only against images may
keep them nearly identical: on the synthetic world the CMCL text embeddings of a caption and
of its direction flip sit at cosine 0.99, closer than the caption's true paraphrase ``a blue
square right of a red circle`` (0.97) — with gold object features as the image side too
(docs/RESULTS.md). Nothing in image-text contrast asks the text side to tell them apart first.

:class:`ParaphraseRankLoss` asks it directly: a meaning-preserving rewrite of the caption
(``inverse-rel``, ``symmetric-rel``, ``passive``, ``there-is``, ``determiner``: made from its
scene graph, :mod:`unimo_kit.rewrite.positives`) must be closer to the caption than each of the
caption's own hard negatives, ``softplus(s(c, n)/τ − s(c, p)/τ)`` for every paraphrase ``p``
and negative ``n`` of caption ``c``, by the CMCL cosine and, with token alignment, by the
token score (each word of ``p`` or ``n`` matched to its best word of ``c``) — the same score
the compositional evaluation ranks images with.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from unimo_kit.model.losses import _upcast
from unimo_kit.model.token_alignment import paired_token_similarity


class ParaphraseRankLoss(nn.Module):
    """Rank each caption's paraphrases above its hard negatives by text–text similarity."""

    def forward(
        self,
        captions: Tensor,
        paraphrases: Tensor,
        paraphrase_owner: Tensor,
        negatives: Tensor,
        negative_owner: Tensor,
        logit_scale: Tensor | float,
        *,
        caption_tokens: tuple[Tensor, Tensor] | None = None,
        paraphrase_tokens: tuple[Tensor, Tensor] | None = None,
        negative_tokens: tuple[Tensor, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        """Args:
            captions: (B, E) L2-normalised caption embeddings.
            paraphrases: (P, E) L2-normalised; ``paraphrase_owner`` (P,) the caption of each.
            negatives: (H, E) L2-normalised hard negatives; ``negative_owner`` (H,).
            logit_scale: 1/τ, CMCL's (learnt along when it is).
            caption_tokens, paraphrase_tokens, negative_tokens: optional ``(tokens (·, T, E)
                L2-normalised, valid (·, T) bool)`` word embeddings; given all three, the same
                ranking is added on the token score.

        Returns:
            ``paraphrase_loss`` (mean over every (paraphrase, negative) couple of one caption;
            0 when there is none), ``paraphrase_acc`` (detached: share of couples ranked right
            by the cosine) and, with tokens, ``paraphrase_token_acc``.
        """
        match = paraphrase_owner[:, None] == negative_owner[None, :]  # (P, H)
        para_index, neg_index = match.nonzero(as_tuple=True)  # (K,), (K,)
        if para_index.numel() == 0:
            zero = captions.sum() * 0.0 + paraphrases.sum() * 0.0 + negatives.sum() * 0.0
            return {"paraphrase_loss": zero}
        captions = _upcast(captions)
        para_score = (captions[paraphrase_owner] * _upcast(paraphrases)).sum(-1)  # (P,)
        neg_score = (captions[negative_owner] * _upcast(negatives)).sum(-1)  # (H,)
        margin = neg_score[neg_index] - para_score[para_index]  # (K,) > 0: ranked wrong
        loss = F.softplus(logit_scale * margin).mean()
        out = {"paraphrase_acc": (margin < 0).float().mean().detach()}
        if caption_tokens and paraphrase_tokens and negative_tokens:
            words, valid = caption_tokens
            para_tok = paired_token_similarity(
                *paraphrase_tokens, words[paraphrase_owner], valid[paraphrase_owner]
            )  # (P,)
            neg_tok = paired_token_similarity(
                *negative_tokens, words[negative_owner], valid[negative_owner]
            )  # (H,)
            token_margin = neg_tok[neg_index] - para_tok[para_index]
            loss = loss + F.softplus(logit_scale * token_margin).mean()
            out["paraphrase_token_acc"] = (token_margin < 0).float().mean().detach()
        out["paraphrase_loss"] = loss
        return out
