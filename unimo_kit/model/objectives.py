"""UnimoPretraining: every UNIMO pre-training objective on one collated batch.

Forward passes per step (each only when its group and objective are on):

1. CMCL, texts alone: [pair texts; extra positive texts; hard negative texts] in one pass.
2. CMCL, images alone: [pair images; extra positive images] in one pass.
3. Pairs, bidirectional: masked text (MLM given the image) and, with ``mrp_on_pairs``, masked
   regions (MRP given the text) in the same pass.
4. Pairs, seq2seq: caption generation from the image.
   Pairs, matching (``itm``): each pair, its in-batch negatives and its hard negatives encoded
   together with their images in one pass.
5. Text-only, bidirectional MLM; 6. text-only seq2seq (random source/target split).
7. Image-only, masked region prediction.

Li et al., ACL 2021, "UNIMO", §2.2–2.3. Batch keys: ``docs/model.md`` ("Training batch").
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unimo_kit.model.losses import (
    IGNORE_INDEX,
    CMCLLoss,
    MaskedRegionLoss,
    linear_cross_entropy,
)
from unimo_kit.model.masking import mask_regions, mask_tokens
from unimo_kit.model.matching import MatchingLoss, sample_batch_negatives
from unimo_kit.model.paraphrase import ParaphraseRankLoss
from unimo_kit.model.registry import (
    BUILTIN_OBJECTIVES,
    OBJECTIVES,
    canonical_weights,
    check_objectives,
)
from unimo_kit.model.token_alignment import TokenAlignmentLoss
from unimo_kit.model.unimo import UnimoModel


def _pad_cat(tensors: list[Tensor], value: float) -> Tensor:
    """Concatenate along dim 0, right-padding dim 1 to the longest."""
    longest = max(t.shape[1] for t in tensors)
    padded = []
    for t in tensors:
        if t.shape[1] < longest:
            pad = [0, 0] * (t.dim() - 2) + [0, longest - t.shape[1]]
            t = F.pad(t, pad, value=value)
        padded.append(t)
    return torch.cat(padded, dim=0)


def _scored(hidden: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """The rows of ``hidden`` (..., D) whose label (...) is not ``IGNORE_INDEX``: (n, D), (n,).

    Under ``torch.compile`` every row is kept (labels -100 included, masked later by
    :meth:`UnimoPretraining._word_losses`), so that shapes stay static: no graph break."""
    hidden, labels = hidden.reshape(-1, hidden.shape[-1]), labels.reshape(-1)
    if torch.compiler.is_compiling():
        return hidden, labels
    keep = labels != IGNORE_INDEX  # (B·K,)
    return hidden[keep], labels[keep]


def _combine(parts: list[dict[str, Tensor]], count: str) -> dict[str, Tensor]:
    """Merge per-group results of one loss, weighting by their region counts."""
    if len(parts) == 1:
        return parts[0]
    counts = torch.stack([p[count].float() for p in parts])  # (G,)
    total = counts.sum().clamp(min=1)
    out: dict[str, Tensor] = {}
    for key in parts[0]:
        if key == count:
            out[key] = counts.sum()
        elif all(key in p for p in parts):
            out[key] = sum(p[key] * c for p, c in zip(parts, counts, strict=True)) / total
    return out


class _LookupTable(torch.autograd.Function):
    """The word table as the text passes look it up: the identity, whose one backward node
    gathers the sparse gradients of every lookup of the step (a cheap concatenation of their
    rows) before they reach the weight. Without it each lookup's sparse gradient is added to
    the tied head's dense (V, D) one out of place: a fresh 15.6 MB copy per text pass."""

    @staticmethod
    def forward(ctx, weight: Tensor) -> Tensor:
        return weight.view_as(weight)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return grad


@contextmanager
def _sparse_lookup_gradients(model: UnimoModel, on: bool) -> Iterator[None]:
    """Within the block, word lookups give sparse gradients (only the rows looked up),
    gathered over all text passes into one (:class:`_LookupTable`).

    Each text pass would otherwise add a dense (V, D) gradient (zeroed, filled, then summed
    into the others: for the 30,522-word vocabulary about as costly as a pass of a 2-layer
    model); the tied word head gives a dense one anyway, which the sparse ones are added into.
    Under ``torch.compile`` the lookups read the weight itself (no module state changes while
    tracing).
    """
    text = model.embeddings
    embedding = text.word_embeddings
    before = embedding.sparse
    embedding.sparse = on
    if on and not torch.compiler.is_compiling():
        text.word_table = _LookupTable.apply(embedding.weight)
    try:
        yield
    finally:
        embedding.sparse = before
        text.word_table = None


class UnimoPretraining(nn.Module):
    """UNIMO pre-training objective: ``forward(batch) -> {"cmcl_loss", "mlm_loss",
    "seq2seq_loss", "mrp_loss", metrics...}``; the trainer sums the keys ending in ``_loss``.

    Args:
        model: the :class:`UnimoModel`.
        cmcl, mlm, seq2seq, mrp: switch each objective on or off.
        token_alignment: add :class:`~unimo_kit.model.token_alignment.TokenAlignmentLoss`
            (word-to-region matching, FILIP) on the CMCL passes' encodings, with CMCL's
            temperature (learnt along when ``learn_temperature``) and the same hard negatives
            in its rank term, weighted by ``hard_negative_weight`` (0: they only feed a
            metric); loss key ``token_alignment_loss``, weight key ``"token_alignment"``
            (the old key ``"token"`` is read too). Needs ``cmcl``.
        itm: image-text matching on the joint encoding
            (:class:`~unimo_kit.model.matching.MatchingLoss`): each pair against an in-batch
            image and text drawn by CMCL similarity (uniformly without ``cmcl``) and, with
            ``use_hard_negatives``, its own hard negatives, ranked at
            ``hard_negative_weight``; loss key ``itm_loss``, weight key ``"itm"``. The model
            needs a matching head (``config.matching_head``).
        paraphrase: rank each caption's meaning-preserving rewrites (``para_text_*``) above
            its own hard negatives by text–text similarity
            (:class:`~unimo_kit.model.paraphrase.ParaphraseRankLoss`: the CMCL cosine, and the
            token score with ``token_alignment``), on the CMCL text pass; loss key
            ``paraphrase_loss``, weight key ``"paraphrase"``. Needs ``cmcl`` and
            ``use_hard_negatives``.
        temperature, learn_temperature: CMCL τ (see :class:`CMCLLoss`).
        use_hard_negatives: use ``neg_text_*`` as extra negatives (off = in-batch negatives).
        hard_negative_weight: weight of CMCL's rank loss on each pair's own hard negatives
            (:class:`CMCLLoss`; 0: hard negatives only join the batch softmax).
        hard_negative_scope: ``"all"`` rows or only the ``"own"`` pair's row see a hard
            negative in the batch softmax, or none (``"rank"``: the rank loss only;
            :class:`CMCLLoss`).
        use_extra_positives: use ``pos_text_*`` / ``pos_visual_*`` as extra positives.
        mlm_probability: fraction of word pieces to predict (BERT: 0.15).
        mrp_probability: fraction of regions to mask (UNIMO: 0.15).
        mrp_on_pairs: also mask regions of pairs, predicted given the text (in the MLM pass).
        text_seq2seq_source: (lo, hi) fraction range of a text-only sequence that forms the
            bidirectional source in text seq2seq; the rest is generated.
        label_smoothing: seq2seq label smoothing.
        weights: per-objective loss weights, e.g. ``{"mlm": 0.5}`` (default 1 each), keyed by
            the names of :data:`~unimo_kit.model.registry.OBJECTIVES`.
        extra_objectives: names of registered extension objectives
            (:func:`~unimo_kit.model.registry.register_objective`) to add; each is built with
            its spec's ``build(model)`` and called as ``module(batch, shared)`` after the
            built-in passes, ``shared`` holding the CMCL pass's ``image_features`` and
            ``text_features`` (B, E) when CMCL ran.
        local_loss, gather_with_grad, rank, world_size: distributed CMCL (:class:`CMCLLoss`).
    """

    def __init__(
        self,
        model: UnimoModel,
        *,
        cmcl: bool = True,
        mlm: bool = True,
        seq2seq: bool = True,
        mrp: bool = True,
        token_alignment: bool = False,
        itm: bool = False,
        paraphrase: bool = False,
        temperature: float = 0.07,
        learn_temperature: bool = False,
        use_hard_negatives: bool = True,
        hard_negative_weight: float = 0.0,
        hard_negative_scope: str = "all",
        use_extra_positives: bool = True,
        mlm_probability: float = 0.15,
        mrp_probability: float = 0.15,
        mrp_on_pairs: bool = True,
        text_seq2seq_source: tuple[float, float] = (0.25, 0.75),
        label_smoothing: float = 0.0,
        weights: dict[str, float] | None = None,
        extra_objectives: Sequence[str] = (),
        local_loss: bool = True,
        gather_with_grad: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ):
        super().__init__()
        self.model = model
        flags = {
            "cmcl": cmcl,
            "token_alignment": token_alignment,
            "itm": itm,
            "paraphrase": paraphrase,
            "mlm": mlm,
            "seq2seq": seq2seq,
            "mrp": mrp,
        }
        unknown = [n for n in extra_objectives if n not in OBJECTIVES or n in flags]
        if unknown:
            extension = sorted(set(OBJECTIVES) - set(flags))
            raise ValueError(f"unknown extra objectives {unknown}; registered: {extension}")
        #: objective name -> on, in the table's order (built-ins, then the extensions)
        self.use = {spec.name: flags[spec.name] for spec in BUILTIN_OBJECTIVES}
        self.use |= dict.fromkeys(extra_objectives, True)
        spelt = {
            "hard_negatives": "use_hard_negatives=True",
            "matching_head": "a model with a matching head (create it with "
            "matching_head=True or call model.add_matching_head())",
        }
        check_objectives(
            self.use,
            {
                "hard_negatives": use_hard_negatives,
                "matching_head": model.matching_head is not None,
            },
            lambda need: spelt.get(need, f"{need}=True"),
        )
        self.extra = nn.ModuleDict({n: OBJECTIVES[n].build(model) for n in extra_objectives})
        self.use_hard_negatives = use_hard_negatives
        self.use_extra_positives = use_extra_positives
        self.mlm_probability = mlm_probability
        self.mrp_probability = mrp_probability
        self.mrp_on_pairs = mrp_on_pairs
        self.text_seq2seq_source = text_seq2seq_source
        self.weights = {k: 1.0 for k in self.use} | canonical_weights(weights)
        unused = sorted(set(self.weights) - set(self.use))
        if unused:
            raise ValueError(f"unknown loss weights {unused}; known: {sorted(self.use)}")
        self.cmcl_loss = CMCLLoss(
            temperature,
            hard_negative_weight=hard_negative_weight if use_hard_negatives else 0.0,
            hard_negative_scope=hard_negative_scope,
            learn_temperature=learn_temperature,
            local_loss=local_loss,
            gather_with_grad=gather_with_grad,
            rank=rank,
            world_size=world_size,
        )
        self.token_alignment = (
            TokenAlignmentLoss(
                temperature,
                hard_negative_weight=hard_negative_weight if use_hard_negatives else 0.0,
            )
            if token_alignment
            else None
        )
        self.matching_loss = MatchingLoss(
            rank_weight=hard_negative_weight if use_hard_negatives else 0.0
        )
        self.paraphrase_loss = ParaphraseRankLoss()
        self.label_smoothing = label_smoothing  # seq2seq rows only
        self.mrp_loss = MaskedRegionLoss()
        cfg = model.config
        self._special = (cfg.pad_token_id, cfg.cls_token_id, cfg.sep_token_id, cfg.mask_token_id)

    # ------------------------------------------------------------------ helpers

    def _maskable(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """(B, T) bool: real tokens that are not special."""
        ok = attention_mask.bool()
        for special in self._special:
            ok = ok & (input_ids != special)
        return ok

    def _mask_text(self, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, ...]:
        cfg = self.model.config
        return mask_tokens(
            input_ids,
            self._maskable(input_ids, attention_mask),
            mask_token_id=cfg.mask_token_id,
            vocab_size=cfg.vocab_size,
            probability=self.mlm_probability,
        )

    def _word_losses(self, targets: dict[str, list[tuple[Tensor, Tensor]]]) -> dict[str, dict]:
        """MLM and seq2seq losses from the word head, run once on every scored position of
        every pass (sparse prediction: padding, unmasked words and sources are never
        scored). Returns ``{"mlm": {...}, "seq2seq": {...}}`` for the objectives with
        targets; each loss is the mean over its scored words of all passes."""
        names = [name for name, parts in targets.items() if parts]
        if not names:
            return {}
        hidden = torch.cat([h for name in names for h, _ in targets[name]])  # (N, D)
        labels = torch.cat([y for name in names for _, y in targets[name]])  # (N,)
        counts = [sum(y.shape[0] for _, y in targets[name]) for name in names]
        smoothing: Tensor | float = 0.0
        if self.label_smoothing and "seq2seq" in names:
            smoothing = torch.cat(
                [
                    torch.full((c,), self.label_smoothing if n == "seq2seq" else 0.0)
                    for n, c in zip(names, counts, strict=True)
                ]
            ).to(hidden.device)  # (N,)
        head = self.model.lm_head
        scored = labels != IGNORE_INDEX  # (N,), all True but under torch.compile
        losses, correct = linear_cross_entropy(
            head.transform(hidden),
            self.model.embeddings.word_embeddings.weight,
            head.bias,
            labels.clamp(min=0),
            smoothing,
        )  # (N,), (N,)
        losses, correct = losses * scored, correct & scored
        out = {}
        for name, loss, right, real in zip(
            names,
            torch.split(losses, counts),
            torch.split(correct, counts),
            torch.split(scored, counts),
            strict=True,
        ):
            n = real.sum()
            out[name] = {
                f"{name}_loss": loss.sum() / n.clamp(min=1),
                f"{name}_acc": right.float().sum() / n.clamp(min=1),
                f"{name}_tokens": n,
            }
        return out

    def _mrp(
        self,
        h: Tensor,
        feats: Tensor,
        positions: Tensor,
        picked: Tensor,
        class_probs: Tensor | None,
    ) -> dict[str, Tensor]:
        """Masked region loss from the states ``h`` (B, K, D) of the regions at ``positions``
        (B, K) (region indices, [IMG] not counted) and their original ``feats`` (B, N, F)."""
        f = feats.shape[-1]
        target = feats.gather(1, positions[..., None].expand(-1, -1, f))  # (B, K, F)
        pred = self.model.region_head(h)
        probs = None
        if class_probs is not None:
            if "class_logits" not in pred:
                raise ValueError(
                    "the batch has visual class probabilities but the model has no class head: "
                    f"create it with visual_num_classes={class_probs.shape[-1]}"
                )
            c = class_probs.shape[-1]
            probs = class_probs.gather(1, positions[..., None].expand(-1, -1, c))  # (B, K, C)
        return self.mrp_loss(pred["feats"], target, picked, pred.get("class_logits"), probs)

    def _seq2seq(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        source_length: Tensor,
        visual: dict[str, Tensor | None] | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Generate text positions >= source_length from everything before them: the states
        (n, D) that predict the real target words and those words (n,)."""
        visual = visual or {}
        b, t = input_ids.shape
        pos = torch.arange(1, t, device=input_ids.device)  # (T - 1,) target positions
        is_target = attention_mask[:, 1:].bool() & (pos[None] >= source_length[:, None])
        labels = input_ids[:, 1:].masked_fill(~is_target, IGNORE_INDEX)  # (B, T - 1)
        # position t predicts the word at t + 1; only real target words are scored
        feats = visual.get("visual_feats")
        offset = 0 if feats is None else 1 + feats.shape[1]  # visual tokens come first
        states = self.model.states_at(
            (offset + pos - 1).expand(b, -1),  # (B, T - 1)
            input_ids=input_ids,
            attention_mask=attention_mask,
            mode="seq2seq",
            text_prefix_length=source_length,
            **visual,
        )  # (B, T - 1, D)
        return _scored(states, labels)  # (n, D), (n,)

    # ------------------------------------------------------------------ forward

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Args: batch: the collated training batch (all groups optional; see docs/model.md).

        Returns:
            dict of weighted ``*_loss`` tensors for the objectives that had data, and detached
            metrics (``cmcl_acc``, ``mlm_acc``, ``seq2seq_acc``, ``mrp_feat``, ...).
        """
        # With a word objective every text pass ends in the word head, whose gradient for the
        # tied embeddings is dense: the lookups' sparse gradients are added into it.
        sparse = torch.is_grad_enabled() and (self.use["mlm"] or self.use["seq2seq"])
        with _sparse_lookup_gradients(self.model, sparse):
            return self._forward(batch)

    def _forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        model = self.model
        has_pairs = "text_input_ids" in batch and "visual_feats" in batch
        has_text = "textonly_input_ids" in batch
        has_images = "imageonly_visual_feats" in batch
        results: dict[str, list[dict[str, Tensor]]] = {k: [] for k in self.use}
        words: dict[str, list[tuple[Tensor, Tensor]]] = {"mlm": [], "seq2seq": []}
        shared: dict[str, Tensor] = {}
        out: dict[str, Tensor] = {}

        if has_pairs:
            ids, amask = batch["text_input_ids"], batch["text_attention_mask"]
            visual = {
                "visual_feats": batch["visual_feats"],
                "visual_boxes": batch.get("visual_boxes"),
                "visual_mask": batch.get("visual_mask"),
            }
            similarity = None
            if self.use["cmcl"]:
                parts, similarity, shared = self._cmcl(batch)
                for name, part in parts.items():
                    results[name].append(part)
            if self.use["itm"]:
                results["itm"].append(self._itm(batch, similarity))
            do_mlm, do_mrp = self.use["mlm"], self.use["mrp"] and self.mrp_on_pairs
            if do_mlm or do_mrp:
                joint = dict(visual)
                masked_ids = ids
                if do_mlm:
                    masked_ids, positions, labels = self._mask_text(ids, amask)
                if do_mrp:
                    feats = batch["visual_feats"]
                    vmask = visual["visual_mask"]
                    eligible = (
                        torch.ones(feats.shape[:2], dtype=torch.bool, device=feats.device)
                        if vmask is None
                        else vmask.bool()
                    )
                    joint["visual_feats"], rpos, rpicked = mask_regions(
                        feats, eligible, probability=self.mrp_probability
                    )
                # the states of the masked words (after [IMG] and the regions) and regions
                offset = 1 + batch["visual_feats"].shape[1]
                wanted = ([positions + offset] if do_mlm else []) + ([rpos + 1] if do_mrp else [])
                states = self.model.states_at(
                    torch.cat(wanted, dim=1), input_ids=masked_ids, attention_mask=amask, **joint
                )  # (B, K_words + K_regions, D)
                split = [w.shape[1] for w in wanted]
                if do_mlm:
                    words["mlm"].append(_scored(states[:, : split[0]], labels))
                if do_mrp:
                    results["mrp"].append(
                        self._mrp(
                            states[:, states.shape[1] - split[-1] :],
                            feats,
                            rpos,
                            rpicked,
                            batch.get("visual_class_probs"),
                        )
                    )
            if self.use["seq2seq"]:
                source = torch.ones(ids.shape[0], dtype=torch.long, device=ids.device)  # [CLS]
                words["seq2seq"].append(self._seq2seq(ids, amask, source, visual))

        elif self.use["cmcl"] and self.cmcl_loss.world_size > 1:
            # No pairs here, but the other ranks gather CMCL features: join with no rows.
            empty = torch.zeros(0, model.config.output_dim, device=model.device)
            results["cmcl"].append(self.cmcl_loss(empty, empty))

        if has_text:
            ids, amask = batch["textonly_input_ids"], batch["textonly_attention_mask"]
            if self.use["mlm"]:
                masked_ids, positions, labels = self._mask_text(ids, amask)
                states = self.model.states_at(positions, input_ids=masked_ids, attention_mask=amask)
                words["mlm"].append(_scored(states, labels))  # (n, D), (n,)
            if self.use["seq2seq"]:
                n = amask.sum(dim=1)  # (B,) real tokens with [CLS] and [SEP]
                lo, hi = self.text_seq2seq_source
                u = lo + (hi - lo) * torch.rand(n.shape, device=n.device)  # (B,)
                source = (u * n).long().clamp(min=1)
                source = torch.minimum(source, (n - 2).clamp(min=1))  # >= 1 word to generate
                words["seq2seq"].append(self._seq2seq(ids, amask, source))

        if has_images and self.use["mrp"]:
            feats = batch["imageonly_visual_feats"]
            vmask = batch.get("imageonly_visual_mask")
            eligible = (
                torch.ones(feats.shape[:2], dtype=torch.bool, device=feats.device)
                if vmask is None
                else vmask.bool()
            )
            masked, rpos, rpicked = mask_regions(feats, eligible, probability=self.mrp_probability)
            states = self.model.states_at(
                rpos + 1,  # after [IMG]
                visual_feats=masked,
                visual_boxes=batch.get("imageonly_visual_boxes"),
                visual_mask=vmask,
            )  # (B, K, D)
            results["mrp"].append(
                self._mrp(
                    states,
                    feats,
                    rpos,
                    rpicked,
                    batch.get("imageonly_visual_class_probs"),
                )
            )

        for name, part in self._word_losses(words).items():
            results[name].append(part)
        for name, module in self.extra.items():
            results[name].append(module(batch, shared))
        for name, parts in results.items():
            if not parts:
                continue
            # only masked regions come from two passes (pairs and images), weighted by count
            merged = parts[0] if len(parts) == 1 else _combine(parts, "mrp_regions")
            merged[f"{name}_loss"] = merged[f"{name}_loss"] * self.weights[name]
            out.update(merged)
        return out

    def _cmcl(
        self, batch: dict[str, Tensor]
    ) -> tuple[dict[str, dict[str, Tensor]], Tensor | None, dict[str, Tensor]]:
        """Encode texts and images alone (one pass per modality) and apply :class:`CMCLLoss`,
        and :class:`TokenAlignmentLoss` and :class:`ParaphraseRankLoss` when on, to the same
        encodings: ``{"cmcl": ..., "token_alignment": ..., "paraphrase": ...}`` (the
        objectives that ran). Also returns, with ``itm`` on, the pairs' detached image-to-text
        logits (B, B), which mine the matching negatives (else None), and the pairs' CMCL
        embeddings ``{"image_features", "text_features"}`` (B, E) for extension
        objectives."""
        model = self.model
        text_ids = [batch["text_input_ids"]]
        text_masks = [batch["text_attention_mask"]]
        use_pos_t = self.use_extra_positives and "pos_text_input_ids" in batch
        use_neg_t = self.use_hard_negatives and "neg_text_input_ids" in batch
        use_para = self.use["paraphrase"] and use_neg_t and "para_text_input_ids" in batch
        use_pos_v = self.use_extra_positives and "pos_visual_feats" in batch
        if use_pos_t:
            text_ids.append(batch["pos_text_input_ids"])
            text_masks.append(batch["pos_text_attention_mask"])
        if use_neg_t:
            text_ids.append(batch["neg_text_input_ids"])
            text_masks.append(batch["neg_text_attention_mask"])
        if use_para:  # last: the groups before keep their rows
            text_ids.append(batch["para_text_input_ids"])
            text_masks.append(batch["para_text_attention_mask"])
        pad = model.config.pad_token_id
        sizes = [t.shape[0] for t in text_ids]
        # Word tokens are scored for the pairs' texts, hard negatives and paraphrases; the
        # extra positive texts (group 1) only give their [CLS] embedding, a pass of its own
        # whose last layer runs at [CLS] alone (UnimoModel.encode_text).
        tok = list(range(len(sizes))) if self.token_alignment is not None else []
        if use_pos_t and tok:
            tok.remove(1)
        cls_only = [g for g in range(len(sizes)) if g not in tok]
        by_group: dict[int, Tensor] = {}
        for groups in (tok, cls_only):
            if not groups:
                continue
            ids_g = _pad_cat([text_ids[g] for g in groups], pad)
            mask_g = _pad_cat([text_masks[g] for g in groups], 0)
            if groups is tok:
                z_g, w_tok, w_valid = model.encode_text_tokens(ids_g, mask_g)  # (Σ, E), ...
            else:
                z_g = model.encode_text(ids_g, mask_g)  # (Σ, E)
            by_group.update(zip(groups, torch.split(z_g, [sizes[g] for g in groups]), strict=True))
        text_parts = [by_group[g] for g in range(len(sizes))]
        tok_rows = {g: sum(sizes[h] for h in tok[: tok.index(g)]) for g in tok}  # first row

        feats, boxes, masks = [batch["visual_feats"]], [batch.get("visual_boxes")], []
        masks.append(batch.get("visual_mask"))
        if use_pos_v:
            feats.append(batch["pos_visual_feats"])
            boxes.append(batch.get("pos_visual_boxes"))
            masks.append(batch.get("pos_visual_mask"))
        if any(x is not None for x in boxes):  # one group with boxes: zeros for the others
            boxes = [
                x if x is not None else f.new_zeros((*f.shape[:2], 5))
                for x, f in zip(boxes, feats, strict=True)
            ]
        # One pass per group (no copy of the features into one batch): the pairs' images give
        # their region tokens to token alignment, the extra positive images only [IMG].
        img_parts = []
        for group, (f, x, m) in enumerate(zip(feats, boxes, masks, strict=True)):
            m = torch.ones(f.shape[:2], dtype=torch.bool, device=f.device) if m is None else m
            if group == 0 and self.token_alignment is not None:
                z_g, r_tok, r_valid = model.encode_image_tokens(f, x, m.bool())  # (B, E), ...
            else:
                z_g = model.encode_image(f, x, m.bool())  # (B or P_v, E)
            img_parts.append(z_g)

        def words(group: int) -> tuple[Tensor, Tensor] | None:  # word tokens of a group
            if self.token_alignment is None:
                return None
            rows = slice(tok_rows[group], tok_rows[group] + sizes[group])
            return w_tok[rows], w_valid[rows]

        kwargs: dict[str, Tensor] = {}
        i = 1
        if use_pos_t:
            kwargs["pos_text_features"] = text_parts[i]
            kwargs["pos_text_owner"] = batch["pos_text_owner"]
            i += 1
        negatives: dict[str, Tensor] = {}
        neg_group = i
        if use_neg_t:
            kwargs["neg_text_features"] = text_parts[i]
            kwargs["neg_text_owner"] = batch["neg_text_owner"]
            if self.token_alignment is not None:
                neg_tokens, neg_valid = words(i)
                negatives = {
                    "neg_text_tokens": neg_tokens,
                    "neg_text_valid": neg_valid,
                    "neg_text_owner": batch["neg_text_owner"],
                }
            i += 1
        if use_pos_v:
            kwargs["pos_image_features"] = img_parts[1]
            kwargs["pos_image_owner"] = batch["pos_visual_owner"]
        image_ids = batch.get("pair_image_ids")
        parts = {"cmcl": self.cmcl_loss(img_parts[0], text_parts[0], image_ids, **kwargs)}
        similarity = None  # only matching mines with it
        if self.use["itm"]:
            with torch.no_grad():
                scale = self.cmcl_loss.logit_scale
                similarity = scale * img_parts[0].float() @ text_parts[0].float().T
        if use_para:
            parts["paraphrase"] = self.paraphrase_loss(
                text_parts[0],
                text_parts[i],
                batch["para_text_owner"],
                text_parts[neg_group],
                batch["neg_text_owner"],
                self.cmcl_loss.logit_scale,
                caption_tokens=words(0),
                paraphrase_tokens=words(i),
                negative_tokens=words(neg_group),
            )
        if self.token_alignment is not None:
            b = sizes[0]
            parts["token_alignment"] = self.token_alignment(
                r_tok[:b],
                r_valid[:b],
                w_tok[:b],
                w_valid[:b],
                image_ids,
                logit_scale=self.cmcl_loss.logit_scale,
                **negatives,
            )
        shared = {"image_features": img_parts[0], "text_features": text_parts[0]}
        return parts, similarity, shared

    def _itm(self, batch: dict[str, Tensor], similarity: Tensor | None) -> dict[str, Tensor]:
        """Matching logits of the pairs, of one in-batch negative image per text and one
        in-batch negative text per image (drawn by ``similarity``, image rows × text columns),
        and of the pairs' own hard negatives — all in one joint pass — and their loss."""
        ids, amask = batch["text_input_ids"], batch["text_attention_mask"]
        b = ids.shape[0]
        image_ids = batch.get("pair_image_ids")
        if image_ids is None:
            image_ids = torch.arange(b, device=ids.device)
        # image for each text (t2i: transpose) and text for each image
        neg_image = sample_batch_negatives(image_ids, None if similarity is None else similarity.T)
        neg_text = sample_batch_negatives(image_ids, similarity)
        text_rows = [torch.arange(b, device=ids.device)]  # which text of the pairs
        image_rows = [torch.arange(b, device=ids.device)]  # which image of the pairs
        has_image, has_text = neg_image >= 0, neg_text >= 0
        text_rows += [text_rows[0][has_image], neg_text[has_text]]
        image_rows += [neg_image[has_image], image_rows[0][has_text]]
        texts_ids = [ids[torch.cat(text_rows)]]
        texts_mask = [amask[torch.cat(text_rows)]]
        hard_owner = None
        if self.use_hard_negatives and "neg_text_input_ids" in batch:
            hard_owner = batch["neg_text_owner"]
            texts_ids.append(batch["neg_text_input_ids"])
            texts_mask.append(batch["neg_text_attention_mask"])
            image_rows.append(hard_owner)
        rows = torch.cat(image_rows)
        boxes, vmask = batch.get("visual_boxes"), batch.get("visual_mask")
        logits = self.model.match_logits(
            _pad_cat(texts_ids, self.model.config.pad_token_id),
            _pad_cat(texts_mask, 0),
            batch["visual_feats"][rows],
            None if boxes is None else boxes[rows],
            None if vmask is None else vmask[rows],
        )  # (B + M + H,)
        m = int(has_image.sum() + has_text.sum())
        return self.matching_loss(
            logits[:b],
            logits[b : b + m],
            logits[b + m :] if hard_owner is not None else None,
            hard_owner,
        )
