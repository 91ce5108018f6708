"""Image-text matching (ITM): a cross-encoder score and its loss.

CMCL and token alignment compare an image and a text encoded *apart*; whether "the oval is left
of the star" holds needs both objects' positions and the relation word at once. Matching encodes
``[IMG] regions [CLS] text [SEP]`` in one bidirectional pass, so words and regions attend to
each other, and classifies the text's ``[CLS]`` state as match / no match (UNITER's ITM, Chen et
al., ECCV 2020; with negatives mined from the contrastive similarities as in ALBEF, Li et al.,
NeurIPS 2021). Its negatives for each pair:

- one **in-batch image** for the text and one **in-batch text** for the image, drawn with
  probability ``softmax(s / τ)`` over the batch's other images (texts), from CMCL's detached
  similarities (uniformly without them); never a pair showing the same image;
- the pair's own **hard negatives** (rewrites such as a replaced relation), each also ranked
  against the pair's text by ``softplus(logit⁻ − logit⁺)``, the quantity compositional
  evaluation checks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def sample_batch_negatives(
    image_ids: Tensor, similarity: Tensor | None = None, generator: torch.Generator | None = None
) -> Tensor:
    """For each row, the index of another row of the batch showing a different image.

    Args:
        image_ids: (B,) image identity of each pair.
        similarity: (B, B) logits, row i's preference for column j (e.g. CMCL similarity / τ);
            None: uniform.
        generator: random source (default: torch's global one).

    Returns:
        (B,) long column per row, -1 where every other row shows the same image.
    """
    b = image_ids.shape[0]
    allowed = image_ids[None, :] != image_ids[:, None]  # (B, B), False on the diagonal too
    logits = (
        torch.zeros(b, b, device=image_ids.device)
        if similarity is None
        else similarity.detach().float()
    )
    logits = logits.masked_fill(~allowed, float("-inf"))
    has = allowed.any(dim=1)  # (B,)
    picked = torch.full((b,), -1, dtype=torch.long, device=image_ids.device)
    if has.any():
        probs = torch.softmax(logits[has], dim=1)  # (B', B)
        picked[has] = torch.multinomial(probs, 1, generator=generator).squeeze(1)
    return picked


class MatchingLoss(nn.Module):
    """Loss of the matching head on one batch of logits:

    - class-balanced binary cross-entropy: ``(BCE(positives, 1) + BCE(negatives, 0)) / 2``
      over every positive and every negative (batch and hard);
    - with ``rank_weight`` > 0, the rank term ``softplus(logit(v, w⁻) − logit(v, w))`` of each
      hard negative against its own pair's positive, averaged and added with that weight.

    Args:
        rank_weight: weight of the rank term (0: hard negatives only join the BCE).
    """

    def __init__(self, rank_weight: float = 1.0):
        super().__init__()
        if rank_weight < 0:
            raise ValueError(f"rank_weight must be >= 0, got {rank_weight}")
        self.rank_weight = rank_weight

    def forward(
        self,
        positive_logits: Tensor,
        negative_logits: Tensor,
        hard_negative_logits: Tensor | None = None,
        hard_negative_owner: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Args:
            positive_logits: (B,) logits of the pairs.
            negative_logits: (M,) logits of in-batch negatives (image or text swapped).
            hard_negative_logits: (H,) logits of hard negative texts on their pair's image,
                ``hard_negative_owner`` (H,) their pair index in [0, B).

        Returns:
            ``itm_loss``; metrics ``itm_acc`` (share of positives with logit > 0 and of
            negatives with logit < 0, averaged over the two classes), ``itm_hardneg_acc``
            (a pair scores above its own hard negative; with hard negatives) and
            ``itm_hardneg_rank`` (the rank term, when weighted).
        """
        pos = positive_logits.float()
        negs = [negative_logits.float()]
        h = 0 if hard_negative_logits is None else hard_negative_logits.shape[0]
        if h:
            if hard_negative_owner is None or hard_negative_owner.shape[0] != h:
                raise ValueError("hard_negative_owner needs one pair index per hard negative")
            negs.append(hard_negative_logits.float())
        neg = torch.cat(negs)
        if pos.numel() == 0:
            raise ValueError("matching needs at least one positive pair")
        bce_pos = F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos))
        if neg.numel():
            bce_neg = F.binary_cross_entropy_with_logits(neg, torch.zeros_like(neg))
            loss = (bce_pos + bce_neg) / 2
        else:
            loss = bce_pos
        out: dict[str, Tensor] = {}
        with torch.no_grad():
            acc_pos = (pos > 0).float().mean()
            acc = (acc_pos + (neg < 0).float().mean()) / 2 if neg.numel() else acc_pos
            out["itm_acc"] = acc
        if h:
            gap = hard_negative_logits.float() - pos[hard_negative_owner]  # (H,)
            if self.rank_weight > 0:
                rank = F.softplus(gap).mean()
                loss = loss + self.rank_weight * rank
                out["itm_hardneg_rank"] = rank.detach()
            out["itm_hardneg_acc"] = (gap < 0).float().mean().detach()
        out["itm_loss"] = loss
        return out
