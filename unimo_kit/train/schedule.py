"""The learning-rate schedule as a function of the step (nanoGPT style: no scheduler object, so
nothing to save or restore)."""

from __future__ import annotations

import math


def lr_at(
    step: int, *, lr: float, warmup_steps: int, total_steps: int, min_lr_ratio: float = 0.0
) -> float:
    """Linear warmup to ``lr`` then cosine decay to ``min_lr_ratio * lr``.

    Args:
        step: the optimizer step about to be taken (0-based).
        lr: peak learning rate.
        warmup_steps: steps of linear warmup; step ``s < warmup_steps`` gets
            ``lr * (s + 1) / warmup_steps``, so the first step is not wasted at 0.
        total_steps: steps of the whole run; the cosine reaches its floor at the last step.
        min_lr_ratio: the floor, as a share of ``lr``.

    Returns:
        The learning rate for ``step``.
    """
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    floor = lr * min_lr_ratio
    span = max(1, total_steps - 1 - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return floor + 0.5 * (lr - floor) * (1.0 + math.cos(math.pi * progress))
