"""The fine-tuning loss: CLIP's contrastive loss with hard negatives as extra text columns."""

from __future__ import annotations

from torch import Tensor, nn

from unimo_kit.model.losses import CMCLLoss


class NegClipLoss(nn.Module):
    """CLIP's symmetric InfoNCE under the model's own learnt temperature, with each pair's
    hard negatives joining the text side of the image→text softmax (NegCLIP, Yuksekgonul et
    al., ICLR 2023) and an optional rank loss on each pair's own negatives (CE-CLIP, Zhang et
    al., CVPR 2024).

    It is the toolkit's :class:`~unimo_kit.model.losses.CMCLLoss` (gather across ranks as
    open_clip's ``ClipLoss``, id mask, hard-negative scopes, rank loss) at τ = 1 on image
    features multiplied by the model's ``logit_scale.exp()``: every similarity CMCL takes
    (both directions and the rank loss) is linear in the image feature, so this is exactly
    ``scale · v·w`` with the model's scale, and the scale gets its gradient.

    Args:
        hard_negative_weight: weight of the rank loss (0: off).
        hard_negative_scope: ``"all"`` (NegCLIP: a negative is a column of every image),
            ``"own"`` (of its own image only) or ``"rank"`` (rank loss only).
        rank, world_size: this process in a distributed run.
    """

    def __init__(
        self,
        *,
        hard_negative_weight: float = 0.0,
        hard_negative_scope: str = "all",
        rank: int = 0,
        world_size: int = 1,
    ):
        super().__init__()
        self.cmcl = CMCLLoss(
            1.0,
            hard_negative_weight=hard_negative_weight,
            hard_negative_scope=hard_negative_scope,
            max_logit_scale=1.0,
            local_loss=True,
            gather_with_grad=True,
            rank=rank,
            world_size=world_size,
        )

    def forward(
        self,
        image_features: Tensor,
        text_features: Tensor,
        logit_scale: Tensor,
        *,
        image_ids: Tensor | None = None,
        neg_text_features: Tensor | None = None,
        neg_text_owner: Tensor | None = None,
        pos_text_features: Tensor | None = None,
        pos_text_owner: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Args:
            image_features, text_features: (B, E) L2-normalised, row i = pair i.
            logit_scale: the model's ``logit_scale.exp()`` (scalar).
            image_ids: (B,) long image identity (two captions of one image are not each
                other's negatives); default: every pair its own image.
            neg_text_features: (H, E) hard negatives, ``neg_text_owner`` (H,) their pair.
            pos_text_features: (P, E) extra positive texts, ``pos_text_owner`` (P,).

        Returns:
            ``clip_loss``; metrics ``i2t``, ``t2i``, ``acc`` (image→text top-1 right),
            ``hardneg_acc`` (pair text above its own negative), ``hardneg_rank`` (the rank
            loss, when weighted), ``logit_scale``.
        """
        out = self.cmcl(
            image_features * logit_scale,  # (B, E): CMCL at τ = 1 gives scale · v·w
            text_features,
            image_ids,
            pos_text_features=pos_text_features,
            pos_text_owner=pos_text_owner,
            neg_text_features=neg_text_features,
            neg_text_owner=neg_text_owner,
        )
        result = {"clip_loss": out.pop("cmcl_loss")}
        out.pop("cmcl_logit_scale")
        result.update({k.removeprefix("cmcl_"): v for k, v in out.items()})
        result["logit_scale"] = logit_scale.detach()
        return result
