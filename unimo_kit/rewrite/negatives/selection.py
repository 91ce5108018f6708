"""Which candidate negatives are kept: :func:`select` (the first or best ``per_type`` of each
type) and :class:`CandidateFilter` (the round-trip check and an optional language model over a
batch of captions)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from unimo_kit.rewrite.negatives.registry import Negative


def select(
    candidates: Sequence[Negative], per_type: int, scores: Sequence[float] | None = None
) -> list[Negative]:
    """The ``per_type`` candidates of each type to keep: the first ones in draw order, or
    with ``scores`` (higher is better, e.g. a language model's) the best-scoring ones, ties
    in draw order. The output keeps draw order within each type."""
    if scores is None:
        scores = [0.0] * len(candidates)
    by_type: dict[str, list[int]] = {}
    for i, negative in enumerate(candidates):
        by_type.setdefault(negative.type, []).append(i)
    keep: set[int] = set()
    for indices in by_type.values():
        keep.update(sorted(indices, key=lambda i: (-scores[i], i))[:per_type])
    return [n for i, n in enumerate(candidates) if i in keep]


class CandidateFilter:
    """What turns candidates into the negatives kept: the round-trip check and an optional
    language model, applied to many captions' candidates in one batch.

    Args:
        parse: the parser's ``parse_each`` (see :data:`~unimo_kit.rewrite.roundtrip.Parse`)
            for the round-trip check; ``None`` keeps every candidate.
        scorer: ranks the survivors of each type (``score(texts) -> array``, higher = more
            plausible, e.g. :class:`~unimo_kit.rewrite.lm.LanguageModelScorer`); ``None``
            keeps them in draw order.

    ``dropped`` counts the candidates the round trip rejected, by ``(type, reason)``.
    """

    def __init__(self, parse: Any = None, scorer: Any = None):
        self.parse = parse
        self.scorer = scorer
        self.dropped: Counter[tuple[str, str]] = Counter()

    def __call__(
        self, groups: Sequence[Sequence[Any]], per_type: int, *, rank: bool = True
    ) -> list[list[Any]]:
        """For each group (one caption's candidates, objects with ``type``, ``text`` and
        ``graph``), the ``per_type`` kept per type (ranked by the scorer when ``rank``).

        Returns:
            The kept candidates of each group, in draw order.
        """
        from unimo_kit.rewrite.roundtrip import roundtrip_filter

        flat = [c for group in groups for c in group]
        problems = roundtrip_filter(self.parse, flat) if self.parse else [None] * len(flat)
        for candidate, problem in zip(flat, problems, strict=True):
            if problem is not None:
                self.dropped[(candidate.type, problem)] += 1
        good = [c for c, p in zip(flat, problems, strict=True) if p is None]
        score_of: dict[int, float] = {}
        if rank and self.scorer is not None and good:
            scores = self.scorer.score([c.text for c in good])
            score_of = {id(c): float(x) for c, x in zip(good, scores, strict=True)}
        out, start = [], 0
        for group in groups:
            end = start + len(group)
            kept = [c for c, p in zip(flat[start:end], problems[start:end], strict=True)
                    if p is None]  # fmt: skip
            out.append(select(kept, per_type, [score_of.get(id(c), 0.0) for c in kept]))
            start = end
        return out
