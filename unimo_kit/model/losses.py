"""UNIMO pre-training losses, each a small ``nn.Module`` returning a dict of named tensors.

Keys ending in ``_loss`` are losses (the trainer sums them); every other key is a detached
metric.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unimo_kit.model.distributed import gather_features

IGNORE_INDEX = -100
#: Where hard negatives enter CMCL: columns of every row, of their own pair's row, or only the
#: rank loss.
HARD_NEGATIVE_SCOPES: tuple[str, ...] = ("all", "own", "rank")

# Owner key of a row: rank * _KEY_STRIDE + local index; unique across ranks without offsets.
_KEY_STRIDE = 1 << 32


def _upcast(x: Tensor) -> Tensor:
    """float16/bfloat16 -> float32; float32/float64 unchanged."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def multi_positive_nce(logits: Tensor, positive: Tensor) -> Tensor:
    """Per-row ``-log(Σ_pos exp(s) / Σ_all exp(s))`` = ``logsumexp(all) - logsumexp(pos)``.

    Args: logits (R, C); positive (R, C) bool, at least one True per row.
    Returns: (R,) losses.
    """
    pos_logits = logits.masked_fill(~positive, float("-inf"))  # (R, C)
    return logits.logsumexp(dim=1) - pos_logits.logsumexp(dim=1)


class CMCLLoss(nn.Module):
    """Cross-modal contrastive loss of UNIMO (Li et al., ACL 2021, arXiv:2012.15409, §2.2, eq. 1):

        L = -log( Σ_{pos} exp(d(V+, W+)/τ) / Σ_{pos ∪ neg} exp(d(V', W')/τ) )

    computed as a multi-positive InfoNCE in both directions, averaged:

    - image → text: each pair image against the columns [pair texts; extra positive texts;
      hard negative texts]. Hard negatives are extra candidate columns for every row
      (Henderson et al. 2017 / sentence-transformers ``MultipleNegativesRankingLoss``).
    - text → image: each pair text against [pair images; extra positive images].

    A column is a positive of a row when it belongs to the same pair (its owner) or to a pair
    with the same image id (BLIP's id mask, Li et al. 2022) — so two captions of one image in a
    batch are not each other's negatives, and a rewritten/retrieved positive of pair k is a
    positive of every pair showing k's image. Hard negatives are never positives.

    Across ranks the columns are all-gathered by :func:`gather_features` (open_clip pattern);
    with ``local_loss`` each rank keeps rows for its own pairs only (the losses of the ranks
    sum to ``world_size`` times the single-process loss on the union batch when local batches
    are equal). A single process never touches ``torch.distributed``.

    With ``hard_negative_weight`` > 0 each hard negative is also ranked against its own pair's
    text by a two-way softmax on the pair's image, ``softplus(s(v, w⁻)/τ - s(v, w)/τ)``,
    averaged over hard negatives and added with that weight — the cross-modal rank loss of
    CE-CLIP (Zhang et al., CVPR 2024) in smooth form. In the batch softmax one's own hard
    negatives are a handful of columns among hundreds; this term gives them a gradient of
    their own. It uses local features only (no gather).

    Args:
        temperature: τ (initial value when learned).
        learn_temperature: learn ``log(1/τ)`` (CLIP), clamped to ``1/τ <= max_logit_scale``.
        max_logit_scale: upper bound of ``1/τ``.
        local_loss: rows = this rank's pairs (True) or all gathered pairs (False).
        gather_with_grad: backpropagate through the all_gather.
        rank, world_size: this process's rank and the number of processes.
        hard_negative_weight: weight of the rank loss on own hard negatives (0: off).
        hard_negative_scope: ``"all"``: a hard negative is a column of every row (the
            MultipleNegativesRankingLoss / NegCLIP way); ``"own"``: of its own pair's row only
            (in a small world another pair's hard negative is often *true* of this pair's
            image, e.g. a caption of another image); ``"rank"``: of no row — hard negatives
            act through the rank loss only (needs ``hard_negative_weight`` > 0).
    """

    def __init__(
        self,
        temperature: float = 0.07,
        *,
        hard_negative_weight: float = 0.0,
        hard_negative_scope: str = "all",
        learn_temperature: bool = False,
        max_logit_scale: float = 100.0,
        local_loss: bool = True,
        gather_with_grad: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if hard_negative_weight < 0:
            raise ValueError(f"hard_negative_weight must be >= 0, got {hard_negative_weight}")
        self.hard_negative_weight = hard_negative_weight
        if hard_negative_scope not in HARD_NEGATIVE_SCOPES:
            raise ValueError(
                f"hard_negative_scope must be one of {HARD_NEGATIVE_SCOPES}, "
                f"got {hard_negative_scope!r}"
            )
        if hard_negative_scope == "rank" and hard_negative_weight <= 0:
            raise ValueError(
                "hard_negative_scope='rank' uses hard negatives in the rank loss only: "
                "set hard_negative_weight > 0"
            )
        self.hard_negative_scope = hard_negative_scope
        init = torch.tensor(math.log(1.0 / temperature))
        if learn_temperature:
            self.log_scale = nn.Parameter(init)
        else:
            self.register_buffer("log_scale", init)
        self.max_log_scale = math.log(max_logit_scale)
        self.local_loss = local_loss
        self.gather_with_grad = gather_with_grad
        self.rank = rank
        self.world_size = world_size

    @property
    def logit_scale(self) -> Tensor:
        """``1/τ`` (clamped)."""
        return self.log_scale.clamp(max=self.max_log_scale).exp()

    def forward(
        self,
        image_features: Tensor,
        text_features: Tensor,
        image_ids: Tensor | None = None,
        *,
        pos_text_features: Tensor | None = None,
        pos_text_owner: Tensor | None = None,
        pos_image_features: Tensor | None = None,
        pos_image_owner: Tensor | None = None,
        neg_text_features: Tensor | None = None,
        neg_text_owner: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Args:
            image_features, text_features: (B, E) L2-normalised, row i = pair i.
            image_ids: (B,) long image identity of each pair, unique across ranks (e.g. a
                dataset index); default: every pair its own image.
            pos_text_features: (P_t, E) extra positive texts, ``pos_text_owner`` (P_t,) their
                pair index in [0, B).
            pos_image_features: (P_v, E) extra positive images, ``pos_image_owner`` (P_v,).
            neg_text_features: (H, E) hard negative texts, ``neg_text_owner`` (H,) their pair
                index (used by the rank loss and the ``cmcl_hardneg_acc`` metric; in the
                batch softmax they are negatives of every row).

        Returns:
            ``cmcl_loss``; metrics ``cmcl_i2t``, ``cmcl_t2i`` (the two directions),
            ``cmcl_acc`` (image→text top-1 is a positive), ``cmcl_hardneg_acc`` (pair text
            scores above its own hard negative; with hard negatives), ``cmcl_hardneg_rank``
            (the rank loss, when weighted), ``cmcl_logit_scale``.
        """
        b, device = image_features.shape[0], image_features.device
        local = torch.arange(b, device=device)  # (B,)
        keys = local + self.rank * _KEY_STRIDE  # (B,) pair identity across ranks
        if image_ids is None:
            image_ids = keys

        def group(feats: Tensor | None, owner: Tensor | None, like: Tensor):
            # Absent groups are empty, not skipped: every rank must run the same collectives.
            if feats is None or owner is None:
                feats = like.new_zeros((0, like.shape[1]))
                owner = torch.zeros(0, dtype=torch.long, device=device)
            return feats, keys[owner], image_ids[owner]

        if neg_text_features is None:
            neg_text_features = text_features.new_zeros((0, text_features.shape[1]))
        no_owner = torch.full((neg_text_features.shape[0],), -1, device=device)
        h = neg_text_features.shape[0]
        owners_given = neg_text_owner is not None and neg_text_owner.shape[0] == h
        needs_owners = self.hard_negative_weight > 0 or self.hard_negative_scope == "own"
        if h and needs_owners and not owners_given:
            raise ValueError(
                "hard_negative_weight > 0 and hard_negative_scope='own' need neg_text_owner with "
                f"one pair index per hard negative ({h}), got "
                f"{None if neg_text_owner is None else tuple(neg_text_owner.shape)}"
            )
        neg_owner = keys[neg_text_owner] if self.hard_negative_scope == "own" and h else no_owner
        groups = [
            (image_features, keys, image_ids),
            (text_features, keys, image_ids),
            group(pos_text_features, pos_text_owner, text_features),
            group(pos_image_features, pos_image_owner, image_features),
            (neg_text_features, neg_owner, no_owner),
        ]
        # float32 features before the gather: ranks agree on dtype whatever autocast did.
        groups = [(_upcast(f), k, i) for f, k, i in groups]
        gathered = gather_features(
            *[t for g in groups for t in g],
            rank=self.rank,
            world_size=self.world_size,
            gather_with_grad=self.gather_with_grad,
        )
        img, txt, pos_txt, pos_img, neg_txt = (gathered[i : i + 3] for i in range(0, 15, 3))

        if self.local_loss:
            img_rows, txt_rows, row_keys, row_ids = image_features, text_features, keys, image_ids
        else:
            img_rows, row_keys, row_ids = img
            txt_rows = txt[0]
        rows = row_keys.shape[0]

        def positive(g: tuple[Tensor, ...]) -> Tensor:  # (R, C) same owner pair or same image
            return (g[1][None] == row_keys[:, None]) | (g[2][None] == row_ids[:, None])

        # hard negatives as batch-softmax columns (none with the "rank" scope)
        neg_cols = neg_txt[0][:0] if self.hard_negative_scope == "rank" else neg_txt[0]
        text_cols = torch.cat([txt[0], pos_txt[0], neg_cols])  # (Ct, E)
        i2t_pos = torch.cat(
            [
                positive(txt),
                positive(pos_txt),
                torch.zeros(rows, neg_cols.shape[0], dtype=torch.bool, device=device),
            ],
            dim=1,
        )  # (R, Ct), hard negatives are never positive
        image_cols = torch.cat([img[0], pos_img[0]])  # (Cv, E)
        t2i_pos = torch.cat([positive(img), positive(pos_img)], dim=1)  # (R, Cv)

        # Similarities in float32: a bf16 cosine times 1/τ is off by ~0.1 in the logits.
        with torch.autocast(device_type=device.type, enabled=False):
            scale = self.logit_scale
            i2t = scale * _upcast(img_rows) @ _upcast(text_cols).T  # (R, Ct)
            if self.hard_negative_scope == "own" and neg_txt[0].shape[0]:
                # a hard negative is a column of its own pair's row only
                other = neg_txt[1][None] != row_keys[:, None]  # (R, H)
                pad = torch.zeros(
                    rows, text_cols.shape[0] - other.shape[1], dtype=torch.bool, device=device
                )
                i2t = i2t.masked_fill(torch.cat([pad, other], dim=1), float("-inf"))
            t2i = scale * _upcast(txt_rows) @ _upcast(image_cols).T  # (R, Cv)
            # sum / rows: a rank without pairs joins the gathers and contributes 0
            loss_i2t = multi_positive_nce(i2t, i2t_pos).sum() / max(rows, 1)
            loss_t2i = multi_positive_nce(t2i, t2i_pos).sum() / max(rows, 1)
        loss = (loss_i2t + loss_t2i) / 2
        out = {
            "cmcl_i2t": loss_i2t.detach(),
            "cmcl_t2i": loss_t2i.detach(),
            "cmcl_logit_scale": scale.detach(),
        }
        if h and owners_given:
            grad = self.hard_negative_weight > 0
            with (
                torch.autocast(device_type=device.type, enabled=False),
                torch.set_grad_enabled(grad and torch.is_grad_enabled()),
            ):
                own = _upcast(image_features[neg_text_owner])  # (H, E)
                s_pos = (own * _upcast(text_features[neg_text_owner])).sum(-1)  # (H,)
                s_neg = (own * _upcast(neg_text_features)).sum(-1)  # (H,)
                if self.hard_negative_weight > 0:
                    rank_loss = F.softplus(scale * (s_neg - s_pos)).mean()
                    loss = loss + self.hard_negative_weight * rank_loss
                    out["cmcl_hardneg_rank"] = rank_loss.detach()
            out["cmcl_hardneg_acc"] = (s_pos > s_neg).float().mean().detach()
        out["cmcl_loss"] = loss
        with torch.no_grad():
            top = i2t.argmax(dim=1, keepdim=True)  # (R, 1)
            out["cmcl_acc"] = i2t_pos.gather(1, top).float().sum() / max(rows, 1)
        return out


def _token_cross_entropy(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Mean cross-entropy over labelled tokens (0 when none), their count and accuracy."""
    flat_logits = logits.reshape(-1, logits.shape[-1])  # (n, V)
    flat_labels = labels.reshape(-1)  # (n,)
    labelled = flat_labels != IGNORE_INDEX  # (n,)
    count = labelled.sum()
    ce = F.cross_entropy(
        flat_logits.float(), flat_labels, ignore_index=IGNORE_INDEX, reduction="sum"
    )
    loss = ce / count.clamp(min=1)
    with torch.no_grad():
        correct = (flat_logits.argmax(-1) == flat_labels) & labelled
        acc = correct.sum() / count.clamp(min=1)
    return loss, count, acc


#: Vocabulary columns per block of the word head on CPU (:func:`linear_cross_entropy`): an
#: (N, 2048) float32 block of ~460 scored rows is ~4 MB, which stays in cache between its
#: matrix product, exponentials and sums, and which the allocator reuses from step to step (a
#: whole (N, 30522) block is a fresh ~56 MB mapping each step, page-faulted in on first touch).
CPU_VOCAB_BLOCK = 2048


def _in_block(labels: Tensor, start: int, width: int) -> tuple[Tensor, Tensor]:
    """Which labels (N,) fall in the columns ``[start, start + width)``, and their column
    in the block (clamped into it for the others)."""
    inside = (labels >= start) & (labels < start + width)  # (N,)
    return inside, (labels - start).clamp(0, width - 1)


class _LinearCrossEntropy(torch.autograd.Function):
    """Word logits and their cross-entropy in one function (see :func:`linear_cross_entropy`),
    over blocks of the vocabulary.

    Each (N, C) block of logits is made once and turned, in place, into ``exp(z - max_block)``;
    the blocks' maxima and sums give the log-sum-exp (as an online softmax does). The backward
    scales each saved block into the softmax, again in place, and takes the three products of
    that block: no log-softmax copy, no zeroed one-hot gradient, no dense (N, V) temporary, no
    copy of the transposed gradient."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, labels, smoothing, dtype, block):
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            h, w, b = hidden.to(dtype), weight.to(dtype), bias.to(dtype)
            n, vocab = h.shape[0], w.shape[0]
            picked = torch.zeros(n, dtype=_upcast(h).dtype, device=h.device)  # (N,) z_y
            z_sum = torch.zeros_like(picked) if smoothing is not None else None  # (N,)
            exps, maxima, sums = [], [], []
            for start in range(0, vocab, block):
                z = _upcast(torch.addmm(b[start : start + block], h, w[start : start + block].T))
                inside, column = _in_block(labels, start, z.shape[1])  # (N,)
                picked = torch.where(inside, z.gather(1, column[:, None]).squeeze(1), picked)
                if z_sum is not None:
                    z_sum += z.sum(dim=-1)
                top = z.amax(dim=-1)  # (N,)
                exp = z.sub_(top[:, None]).exp_()  # (N, C) exp(z - max of the block), in place
                exps.append(exp)
                maxima.append(top)
                sums.append(exp.sum(dim=-1))
            tops = torch.stack(maxima, dim=1)  # (N, blocks)
            top = tops.amax(dim=1)  # (N,)
            total = (torch.stack(sums, dim=1) * (tops - top[:, None]).exp()).sum(dim=1)  # (N,)
            lse = top + total.log()  # (N,)
            correct = picked >= top  # (N,), a tie counts as right
            loss = lse - picked  # (N,)
            if smoothing is not None:  # lse - (1 - ε) z_y - ε mean(z)
                loss = loss + smoothing * (picked - z_sum / vocab)
        ctx.save_for_backward(h, w, labels, tops, lse, smoothing)
        ctx.exps, ctx.block = exps, block
        ctx.input_dtypes = (hidden.dtype, weight.dtype, bias.dtype)
        ctx.mark_non_differentiable(correct)
        return loss, correct

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss, _grad_correct):
        if ctx.exps is None:  # the softmax was made in place of the saved exponentials
            raise RuntimeError("linear_cross_entropy: backward through the graph a second time")
        exps, block, ctx.exps = ctx.exps, ctx.block, None
        h, w, labels, tops, lse, smoothing = ctx.saved_tensors
        vocab = w.shape[0]
        with torch.autocast(device_type=h.device.type, enabled=False):
            g = grad_loss.to(h.dtype)  # (N,)
            hg = h * g[:, None]  # (N, D)
            grad_hidden = torch.zeros(h.shape, dtype=_upcast(h).dtype, device=h.device)
            grad_weight = torch.empty_like(w)  # (V, D), every row written once
            grad_bias = torch.empty(vocab, dtype=h.dtype, device=h.device)  # (V,)
            target = 1.0 if smoothing is None else 1.0 - smoothing  # (N,) or float
            for i, exp in enumerate(exps):
                start = i * block
                grad = exp.mul_((tops[:, i] - lse).exp()[:, None])  # (N, C) softmax, in place
                if smoothing is not None:
                    grad.sub_((smoothing / vocab)[:, None])
                inside, column = _in_block(labels, start, grad.shape[1])
                grad.scatter_add_(1, column[:, None], -(inside * target)[:, None].to(grad.dtype))
                grad = grad.to(h.dtype)  # dloss/dz of the block (N, C)
                grad_hidden += grad @ w[start : start + block]  # (N, D)
                torch.mm(grad.T, hg, out=grad_weight[start : start + block])  # (C, D)
                torch.mv(grad.T, g, out=grad_bias[start : start + block])  # (C,)
        dtypes = ctx.input_dtypes
        return (
            (grad_hidden * g[:, None]).to(dtypes[0]),
            grad_weight.to(dtypes[1]),
            grad_bias.to(dtypes[2]),
            None,
            None,
            None,
            None,
        )


def linear_cross_entropy(
    hidden: Tensor,
    weight: Tensor,
    bias: Tensor,
    labels: Tensor,
    label_smoothing: Tensor | float = 0.0,
    *,
    block: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Per-row cross-entropy of the logits ``hidden @ weight.T + bias`` (the word head's last
    layer), without materialising them twice: the sparse-prediction path of MLM and seq2seq
    (only scored positions reach it). Same value and gradients as
    ``F.cross_entropy(F.linear(hidden, weight, bias), labels, reduction="none",
    label_smoothing=ε)`` (Szegedy et al., CVPR 2016, for the smoothing), to float rounding (the
    log-sum-exp is summed block by block); the matrix products run in the autocast dtype when
    autocast is on, the softmax in float32.

    Args:
        hidden: (N, D) head states of the scored positions.
        weight: (V, D) word embeddings; bias: (V,).
        labels: (N,) long target ids (every row is scored: no ignore index).
        label_smoothing: ε, a float or an (N,) tensor (one per row, e.g. 0 for MLM rows).
        block: vocabulary columns per block (default :data:`CPU_VOCAB_BLOCK` on CPU, the
            whole vocabulary on other devices, where one big product is fastest).

    Returns:
        ``losses`` (N,) float32 and ``correct`` (N,) bool (the label has the top logit).
    """
    device_type = hidden.device.type
    dtype = (
        torch.get_autocast_dtype(device_type)
        if torch.is_autocast_enabled(device_type)
        else hidden.dtype
    )
    smoothing = None
    if isinstance(label_smoothing, Tensor) or label_smoothing:
        smoothing = torch.as_tensor(
            label_smoothing, dtype=_upcast(hidden).dtype, device=hidden.device
        )
        smoothing = smoothing.expand(labels.shape).contiguous()  # (N,)
    if block is None:
        block = CPU_VOCAB_BLOCK if device_type == "cpu" else weight.shape[0]
    if block < 1:
        raise ValueError(f"block must be >= 1 vocabulary columns, got {block}")
    return _LinearCrossEntropy.apply(hidden, weight, bias, labels, smoothing, dtype, block)


class MLMLoss(nn.Module):
    """Masked language modelling (Devlin et al., NAACL 2019, "BERT", §3.1), on text alone and
    on text conditioned on its image (UNIMO §2.3, "Bidirectional prediction").

    Masking happens in :func:`unimo_kit.model.masking.mask_tokens`; this takes the logits at
    the picked positions.
    """

    def forward(self, logits: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """Args: logits (B, K, V); labels (B, K) original ids, -100 where not picked.
        Returns: ``mlm_loss`` (mean over picked tokens), ``mlm_acc``, ``mlm_tokens``."""
        loss, count, acc = _token_cross_entropy(logits, labels)
        return {"mlm_loss": loss, "mlm_acc": acc, "mlm_tokens": count}


class Seq2SeqLoss(nn.Module):
    """Sequence-to-sequence generation with UniLM's seq2seq mask (Dong et al., NeurIPS 2019,
    "UniLM", §2.3; UNIMO §2.3, "Seq2Seq generation"): predict each target token from the
    source and the target tokens before it. For pairs the source is the image and the target
    the caption; for text alone a random leading segment is the source.

    Args:
        label_smoothing: cross-entropy label smoothing (UNIMO fine-tuning uses 0.1 for
            captioning; 0 for pre-training).
    """

    def __init__(self, label_smoothing: float = 0.0):
        super().__init__()
        self.label_smoothing = label_smoothing

    def forward(self, logits: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """Args: logits (B, T, V) at positions t; labels (B, T) the token at t + 1 when it is a
        target, else -100. Returns: ``seq2seq_loss`` (mean over target tokens), ``seq2seq_acc``,
        ``seq2seq_tokens``."""
        if self.label_smoothing:
            flat = logits.reshape(-1, logits.shape[-1]).float()
            target = labels.reshape(-1)
            count = (target != IGNORE_INDEX).sum()
            ce = F.cross_entropy(
                flat,
                target,
                ignore_index=IGNORE_INDEX,
                reduction="sum",
                label_smoothing=self.label_smoothing,
            )
            loss = ce / count.clamp(min=1)
            _, _, acc = _token_cross_entropy(logits.detach(), labels)
        else:
            loss, count, acc = _token_cross_entropy(logits, labels)
        return {"seq2seq_loss": loss, "seq2seq_acc": acc, "seq2seq_tokens": count}


class MaskedRegionLoss(nn.Module):
    """Masked region prediction (UNITER, Chen et al., ECCV 2020, §3.1 MRFR and MRC-kl; used by
    UNIMO §2.3 "Visual learning"): L2 regression of the masked region's feature, plus
    ``KL(p_detector || softmax(class_logits))`` when class probabilities are given.

    Args:
        class_weight: weight of the class KL term relative to the regression.
    """

    def __init__(self, class_weight: float = 1.0):
        super().__init__()
        self.class_weight = class_weight

    def forward(
        self,
        pred_feats: Tensor,
        target_feats: Tensor,
        picked: Tensor,
        class_logits: Tensor | None = None,
        target_probs: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Args:
            pred_feats, target_feats: (B, K, F) predicted and original features at the masked
                regions.
            picked: (B, K) bool, which slots are real masked regions.
            class_logits: (B, K, C) or None; target_probs: (B, K, C) or None.

        Returns: ``mrp_loss``; metrics ``mrp_feat`` (mean squared error), ``mrp_kl``,
            ``mrp_regions``.
        """
        weight = picked.float()  # (B, K)
        count = weight.sum().clamp(min=1)
        sq = (pred_feats.float() - target_feats.float()).pow(2).mean(-1)  # (B, K)
        feat_loss = (sq * weight).sum() / count
        out = {"mrp_feat": feat_loss.detach(), "mrp_regions": picked.sum()}
        loss = feat_loss
        if class_logits is not None and target_probs is not None:
            log_q = F.log_softmax(class_logits.float(), dim=-1)  # (B, K, C)
            p = target_probs.float()
            kl = (p * (torch.log(p.clamp(min=1e-12)) - log_q)).sum(-1)  # (B, K)
            kl_loss = (kl * weight).sum() / count
            loss = loss + self.class_weight * kl_loss
            out["mrp_kl"] = kl_loss.detach()
        out["mrp_loss"] = loss
        return out
