"""Caption generation in UNIMO's seq2seq mode: greedy and beam search, batched, with a
key/value cache (visual tokens and earlier words never attend to later words under the
seq2seq mask, so their states are computed once).

Decoding starts from ``[CLS]`` after the visual tokens and stops at ``[SEP]`` or after
``max_length`` generated tokens. Scores are sums of token log-probabilities (``[SEP]``
included when generated), optionally divided by ``length ** length_penalty``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from unimo_kit.model.transformer import KVCache
from unimo_kit.model.unimo import UnimoModel


@contextlib.contextmanager
def _eval_mode(model: UnimoModel) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _prefix(
    model: UnimoModel, visual_feats: Tensor, visual_boxes: Tensor | None, visual_mask: Tensor | None
) -> tuple[Tensor, KVCache, Tensor]:
    """Encode ``[IMG] regions [CLS]``; returns log-probs of the first word (B, V), the cache
    and the validity of the cached positions (B, 2 + N)."""
    b = visual_feats.shape[0]
    cls = torch.full((b, 1), model.config.cls_token_id, dtype=torch.long, device=model.device)
    x, valid, num_visual = model.embed(cls, None, visual_feats, visual_boxes, visual_mask)
    prefix = torch.full((b,), num_visual, dtype=torch.long, device=x.device)
    hidden, cache = model.encoder(x, model.attention_mask(valid, num_visual, visual_boxes, prefix))
    logp = F.log_softmax(model.lm_logits(hidden[:, -1]).float(), dim=-1)  # (B, V)
    return logp, cache, valid


def _block_sep(logp: Tensor, step: int, min_length: int, sep: int) -> Tensor:
    if step < min_length:
        logp = logp.clone()
        logp[:, sep] = float("-inf")
    return logp


def generate(
    model: UnimoModel,
    visual_feats: Tensor,
    visual_boxes: Tensor | None = None,
    visual_mask: Tensor | None = None,
    *,
    max_length: int = 20,
    num_beams: int = 1,
    min_length: int = 0,
    length_penalty: float = 0.0,
    return_scores: bool = False,
) -> list[list[int]] | tuple[list[list[int]], list[float]]:
    """Generate captions for a batch of images.

    Args:
        model: the model (switched to eval mode for the call, then restored).
        visual_feats: (B, N, F); visual_boxes: (B, N, 5) or None; visual_mask: (B, N) or None.
        max_length: most generated tokens per caption (``[SEP]`` included).
        num_beams: 1 = greedy, k > 1 = beam search with k beams.
        min_length: ``[SEP]`` is forbidden before this many tokens.
        length_penalty: final beam scores are divided by ``length ** length_penalty``
            (0 = plain sum of log-probabilities).
        return_scores: also return each caption's score.

    Returns:
        One list of token ids per image, without ``[CLS]``/``[SEP]`` (decode with the
        tokenizer); with ``return_scores``, a tuple (ids, scores).
    """
    if num_beams < 1 or max_length < 1:
        raise ValueError(f"need num_beams >= 1 and max_length >= 1, got {num_beams}, {max_length}")
    if max_length >= model.config.max_position_embeddings:
        raise ValueError(
            f"max_length={max_length} needs {max_length + 1} text positions but the model has "
            f"max_position_embeddings={model.config.max_position_embeddings}"
        )
    with _eval_mode(model):
        visual_feats = visual_feats.to(model.device)
        if visual_boxes is not None:
            visual_boxes = visual_boxes.to(model.device)
        if visual_mask is not None:
            visual_mask = visual_mask.to(model.device)
        if num_beams == 1:
            tokens, scores, lengths = _greedy(
                model, visual_feats, visual_boxes, visual_mask, max_length, min_length
            )
        else:
            tokens, scores, lengths = _beam(
                model,
                visual_feats,
                visual_boxes,
                visual_mask,
                max_length,
                min_length,
                num_beams,
                length_penalty,
            )
    sep = model.config.sep_token_id
    out = []
    for row, n in zip(tokens.tolist(), lengths.tolist(), strict=True):
        row = row[:n]
        out.append(row[:-1] if row and row[-1] == sep else row)
    if return_scores:
        return out, scores.tolist()
    return out


def _greedy(
    model: UnimoModel,
    visual_feats: Tensor,
    visual_boxes: Tensor | None,
    visual_mask: Tensor | None,
    max_length: int,
    min_length: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """Returns tokens (B, S), scores (B,), lengths (B,) (tokens counted up to [SEP])."""
    sep = model.config.sep_token_id
    logp, cache, valid = _prefix(model, visual_feats, visual_boxes, visual_mask)
    b = logp.shape[0]
    done = torch.zeros(b, dtype=torch.bool, device=logp.device)
    scores = torch.zeros(b, device=logp.device)
    lengths = torch.zeros(b, dtype=torch.long, device=logp.device)
    steps: list[Tensor] = []
    for step in range(max_length):
        logp = _block_sep(logp, step, min_length, sep)
        best, token = logp.max(dim=-1)  # (B,), (B,)
        scores = scores + best.masked_fill(done, 0.0)
        lengths = lengths + (~done).long()
        token = token.masked_fill(done, model.config.pad_token_id)
        steps.append(token)
        done = done | (token == sep)
        if step == max_length - 1 or bool(done.all()):
            break
        valid = torch.cat([valid, torch.ones(b, 1, dtype=torch.bool, device=valid.device)], 1)
        hidden, cache = model.decode_step(token[:, None], step + 1, cache, valid)  # (B, 1, D)
        logp = F.log_softmax(model.lm_logits(hidden[:, -1]).float(), dim=-1)  # (B, V)
    return torch.stack(steps, dim=1), scores, lengths


def _beam(
    model: UnimoModel,
    visual_feats: Tensor,
    visual_boxes: Tensor | None,
    visual_mask: Tensor | None,
    max_length: int,
    min_length: int,
    k: int,
    length_penalty: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """Beam search; a finished beam stays in the beam with its score frozen (its only
    continuation is padding at log-prob 0), so finished and open hypotheses compete for the k
    slots on their raw scores. Returns the best hypothesis per image: tokens (B, S), scores
    (B,) (length-penalised), lengths (B,)."""
    cfg = model.config
    sep, pad = cfg.sep_token_id, cfg.pad_token_id
    logp, cache, valid = _prefix(model, visual_feats, visual_boxes, visual_mask)
    b, vocab = logp.shape
    device = logp.device
    # Expand every image to k beams; only beam 0 is live at first so the first step picks k
    # different words.
    expand = torch.arange(b, device=device).repeat_interleave(k)  # (B*k,)
    cache = [(key[expand], value[expand]) for key, value in cache]
    valid = valid[expand]
    logp = logp[expand]  # (B*k, V)
    scores = torch.full((b, k), float("-inf"), device=device)
    scores[:, 0] = 0.0
    scores = scores.view(-1)  # (B*k,)
    done = torch.zeros(b * k, dtype=torch.bool, device=device)
    lengths = torch.zeros(b * k, dtype=torch.long, device=device)
    tokens = torch.zeros(b * k, 0, dtype=torch.long, device=device)
    frozen = torch.full((vocab,), float("-inf"), device=device)
    frozen[pad] = 0.0
    for step in range(max_length):
        logp = _block_sep(logp, step, min_length, sep)
        logp = torch.where(done[:, None], frozen[None], logp)  # (B*k, V)
        cand = (scores[:, None] + logp).view(b, k * vocab)  # (B, k*V)
        top_scores, top_index = cand.topk(k, dim=1)  # (B, k)
        parent = top_index // vocab + torch.arange(b, device=device)[:, None] * k  # (B, k)
        parent = parent.view(-1)  # (B*k,)
        token = (top_index % vocab).view(-1)  # (B*k,)
        scores = top_scores.view(-1)
        tokens = torch.cat([tokens[parent], token[:, None]], dim=1)  # (B*k, step + 1)
        was_done = done[parent]
        lengths = lengths[parent] + (~was_done).long()
        done = was_done | (token == sep)
        if step == max_length - 1 or bool(done.all()):
            break
        cache = [(key[parent], value[parent]) for key, value in cache]
        valid = torch.cat([valid[parent], torch.ones_like(done)[:, None]], dim=1)
        hidden, cache = model.decode_step(token[:, None], step + 1, cache, valid)  # (B*k, 1, D)
        logp = F.log_softmax(model.lm_logits(hidden[:, -1]).float(), dim=-1)  # (B*k, V)
    final = scores / lengths.clamp(min=1).float() ** length_penalty  # (B*k,)
    best = final.view(b, k).argmax(dim=1) + torch.arange(b, device=device) * k  # (B,)
    return tokens[best], final[best], lengths[best]


def score_sequences(
    model: UnimoModel,
    visual_feats: Tensor,
    visual_boxes: Tensor | None,
    visual_mask: Tensor | None,
    sequences: list[list[int]],
    ended: list[bool],
) -> Tensor:
    """Teacher-forced sum of log-probabilities of given captions (no cache; a check on
    :func:`generate` and a scorer for reranking).

    Args:
        sequences: token ids without [CLS]/[SEP], one list per image.
        ended: whether each caption ends with [SEP] (its log-prob is then included).

    Returns:
        (B,) float scores.
    """
    cfg = model.config
    rows = [
        [cfg.cls_token_id, *seq, *([cfg.sep_token_id] if e else [])]
        for seq, e in zip(sequences, ended, strict=True)
    ]
    t = max(len(r) for r in rows)
    ids = torch.full((len(rows), t), cfg.pad_token_id, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
    ids = ids.to(model.device)
    amask = (
        torch.arange(t, device=ids.device)[None]
        < torch.tensor([len(r) for r in rows], device=ids.device)[:, None]
    )  # (B, T)
    with _eval_mode(model):
        out = model(
            input_ids=ids,
            attention_mask=amask,
            visual_feats=visual_feats,
            visual_boxes=visual_boxes,
            visual_mask=visual_mask,
            mode="seq2seq",
        )
        logp = F.log_softmax(model.lm_logits(out["text_hidden"][:, :-1]).float(), dim=-1)
        picked = logp.gather(2, ids[:, 1:, None])[..., 0]  # (B, T - 1)
        return (picked * amask[:, 1:]).sum(dim=1)
