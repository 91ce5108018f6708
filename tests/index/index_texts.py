"""Random short texts over a small shape/colour vocabulary for the index tests."""

from __future__ import annotations

import numpy as np

VOCABULARY = (
    "red green blue yellow purple circle square triangle star cross left right above below "
    "next to big small two three a the of"
)
WORDS = VOCABULARY.split()


def make_texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(2, 12))) for _ in range(n)]
