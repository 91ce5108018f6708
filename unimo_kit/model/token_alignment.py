"""Token alignment: a fine-grained image-text score and its contrastive loss.

The CMCL score compares one vector per image with one vector per text, so "a blue oval and a red
star" and "a red oval and a blue star" can only be told apart if both vectors encode which colour
goes with which shape. Token alignment scores a text by matching **each word to its best image
region** and averaging (FILIP, Yao et al., ICLR 2022, eq. 3; ColBERT's late interaction, Khattab
& Zaharia, SIGIR 2020)::

    s(image, text) = mean over words w of  max over regions r of  cos(w, r)

A word whose contextual embedding says "blue oval" finds a region that is both blue and an oval
only where the two are in the same place; in the swapped caption the best regions of "blue star"
and "oval" match one half each. Binding can come from where things are instead of a learnt
conjunction of every colour with every shape. (Measured on the synthetic world, docs/RESULTS.md:
it lifts retrieval and the replace / add categories a lot, the swaps only on some seeds.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unimo_kit.model.losses import _upcast, multi_positive_nce


def _mean_best(sim: Tensor, text_valid: Tensor, image_valid: Tensor) -> Tensor:
    """Mean over valid words of the best valid region, from similarities (..., T, N) whose
    masks broadcast as ``text_valid`` (..., T) and ``image_valid`` (..., N). A word facing no
    valid region scores 0, and a text without valid words scores 0."""
    if sim.shape[-1] == 0:  # no regions at all
        best = sim.new_zeros(sim.shape[:-1])
    else:
        sim = sim.masked_fill_(~image_valid[..., None, :], float("-inf"))  # in place: big
        best = sim.amax(dim=-1)  # (..., T)
        best = best.masked_fill(~image_valid.any(-1)[..., None], 0.0)  # region-less images
    words = text_valid.to(best.dtype)
    best = best.masked_fill(words == 0, 0.0)
    return best.sum(-1) / words.sum(-1).clamp(min=1)


def token_similarity(
    text_tokens: Tensor, text_valid: Tensor, image_tokens: Tensor, image_valid: Tensor
) -> Tensor:
    """Token-alignment scores of every text against every image.

    Args:
        text_tokens: (Bt, T, E) L2-normalised word embeddings; ``text_valid`` (Bt, T) bool.
        image_tokens: (Bi, N, E) L2-normalised region embeddings; ``image_valid`` (Bi, N) bool.

    Returns:
        (Bt, Bi) in [-1, 1] (float32, or float64 for float64 inputs): for each text and image
        the mean over the text's valid words of the best cosine with a valid region of the
        image. A text without valid words, or an image without valid regions, scores 0.
        Memory: one (Bt, Bi, T, N) tensor.
    """
    sim = torch.einsum("tle,ine->tiln", _upcast(text_tokens), _upcast(image_tokens))
    return _mean_best(sim, text_valid[:, None, :], image_valid[None])  # sim: (Bt, Bi, T, N)


def paired_token_similarity(
    text_tokens: Tensor, text_valid: Tensor, image_tokens: Tensor, image_valid: Tensor
) -> Tensor:
    """Token-alignment score of text k with image k (the diagonal of :func:`token_similarity`
    without computing the rest).

    Args: text_tokens (K, T, E), text_valid (K, T), image_tokens (K, N, E), image_valid (K, N).
    Returns: (K,).
    """
    sim = torch.einsum("kle,kne->kln", _upcast(text_tokens), _upcast(image_tokens))  # (K, T, N)
    return _mean_best(sim, text_valid, image_valid)


class TokenAlignmentLoss(nn.Module):
    """Contrastive loss on :func:`token_similarity` (FILIP's token-wise loss, text side):

    - an in-batch InfoNCE in both directions over the pairs (a column is a positive when it
      shows the row's image, as in :class:`~unimo_kit.model.losses.CMCLLoss`);
    - with ``hard_negative_weight`` > 0, each hard negative text ranked against its own pair's
      text on the pair's image, ``softplus(s(v, w⁻)/τ − s(v, w)/τ)`` — the term aimed at
      binding, since a swap negative differs from its caption only in which word goes where.
      With weight 0 hard negatives only feed the ``token_alignment_hardneg_acc`` metric (they
      are never
      columns of the InfoNCE).

    It uses this process's pairs only (no all-gather, so nothing to synchronise between
    ranks).

    Args:
        temperature: τ of both terms, unless :meth:`forward` gets a ``logit_scale``.
        hard_negative_weight: weight of the rank term (0: off, as in ``CMCLLoss``).
    """

    def __init__(self, temperature: float = 0.07, *, hard_negative_weight: float = 0.0):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if hard_negative_weight < 0:
            raise ValueError(f"hard_negative_weight must be >= 0, got {hard_negative_weight}")
        self.scale = 1.0 / temperature
        self.hard_negative_weight = hard_negative_weight

    def forward(
        self,
        image_tokens: Tensor,
        image_valid: Tensor,
        text_tokens: Tensor,
        text_valid: Tensor,
        image_ids: Tensor | None = None,
        *,
        neg_text_tokens: Tensor | None = None,
        neg_text_valid: Tensor | None = None,
        neg_text_owner: Tensor | None = None,
        logit_scale: Tensor | float | None = None,
    ) -> dict[str, Tensor]:
        """Args:
            image_tokens (B, N, E), image_valid (B, N): the pairs' images, row i = pair i.
            text_tokens (B, T, E), text_valid (B, T): the pairs' texts.
            image_ids: (B,) image identity of each pair (default: all different).
            neg_text_tokens (H, T', E), neg_text_valid (H, T'), neg_text_owner (H,): hard
                negative texts and the pair index in [0, B) each belongs to (all three or
                none).
            logit_scale: ``1/τ`` to use instead of ``1/temperature`` (e.g. CMCL's learnt one).

        Returns:
            ``token_alignment_loss``; metrics ``token_alignment_acc`` (image→text top-1 shows the
            image; with
            pairs), ``token_alignment_hardneg_acc`` (pair text above its own hard negative) and
            ``token_alignment_hardneg_rank`` (the rank term, when weighted), with hard negatives.
        """
        b, device = image_tokens.shape[0], image_tokens.device
        if image_ids is None:
            image_ids = torch.arange(b, device=device)
        given = [x is not None for x in (neg_text_tokens, neg_text_valid, neg_text_owner)]
        if any(given) and not all(given):
            raise ValueError("give neg_text_tokens, neg_text_valid and neg_text_owner together")
        h = 0 if neg_text_owner is None else neg_text_owner.shape[0]
        if h and not (neg_text_tokens.shape[0] == neg_text_valid.shape[0] == h):
            raise ValueError(
                f"{h} hard negative owners but {neg_text_tokens.shape[0]} token rows and "
                f"{neg_text_valid.shape[0]} masks"
            )
        if h and (int(neg_text_owner.min()) < 0 or int(neg_text_owner.max()) >= b):
            raise ValueError(f"neg_text_owner must index the {b} pairs, got values outside")
        scale = self.scale if logit_scale is None else logit_scale
        out: dict[str, Tensor] = {}
        with torch.autocast(device_type=device.type, enabled=False):
            t2i = scale * token_similarity(
                text_tokens, text_valid, image_tokens, image_valid
            )  # (B texts, B images)
            positive = image_ids[:, None] == image_ids[None, :]  # (B, B), symmetric
            # sum / rows: no pairs contributes 0, not NaN
            loss = (
                multi_positive_nce(t2i, positive).sum() + multi_positive_nce(t2i.T, positive).sum()
            ) / (2 * max(b, 1))
            if h:
                grad = self.hard_negative_weight > 0 and torch.is_grad_enabled()
                with torch.set_grad_enabled(grad):
                    s_neg = paired_token_similarity(
                        neg_text_tokens,
                        neg_text_valid,
                        image_tokens[neg_text_owner],
                        image_valid[neg_text_owner],
                    )  # (H,)
                    s_pos = t2i.diagonal()[neg_text_owner] / scale  # (H,)
                    if self.hard_negative_weight > 0:
                        rank = F.softplus(scale * (s_neg - s_pos)).mean()
                        loss = loss + self.hard_negative_weight * rank
                        out["token_alignment_hardneg_rank"] = rank.detach()
                out["token_alignment_hardneg_acc"] = (s_pos > s_neg).float().mean().detach()
        if b:
            with torch.no_grad():
                top = t2i.T.argmax(dim=1, keepdim=True)  # (B images, 1)
                out["token_alignment_acc"] = positive.gather(1, top).float().mean()
        out["token_alignment_loss"] = loss
        return out
