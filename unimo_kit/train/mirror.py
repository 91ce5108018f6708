"""Layout mirroring: a training pair seen in its mirror image, with its spatial words exchanged.

The model sees an image only as visual tokens with boxes (``LayerNorm(Linear(feature) +
Linear(box))``, no token index), so mirroring the *boxes* left–right puts every object where
its mirror image would be, and exchanging ``left`` and ``right`` in the pair's texts keeps them
true: "a red square to the left of a blue circle" becomes "... to the right of ...". Top–bottom
mirroring does the same with ``above`` / ``below`` / ``under``. The features of each token are
kept as they are: objects are moved, not turned over (an upright triangle stays upright),
which is what the words describe.

Why: a relation is the one thing a caption says that no single region shows. Seen only as
captured, a model can learn which relations go with which objects in the training images and
not what the words mean; a mirrored twin of every relational caption, with the same objects
and the opposite word, leaves position as the only cue (docs/train.md, "Mirrored layouts").

Caveats for real data: features of asymmetric content (text, a face in profile) are not
mirrored, and the word lists are English and literal (``right`` in "the right answer" is
exchanged too); keep it off there unless that is acceptable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

#: Words exchanged by a left-right mirror.
HORIZONTAL_WORDS: dict[str, str] = {"left": "right", "right": "left"}
#: Words exchanged by a top-bottom mirror ("under" and "beneath" become "above").
VERTICAL_WORDS: dict[str, str] = {
    "above": "below",
    "below": "above",
    "under": "above",
    "beneath": "above",
    "top": "bottom",
    "bottom": "top",
}


def mirror_boxes(boxes: np.ndarray, *, horizontal: bool, vertical: bool) -> np.ndarray:
    """Mirror normalised boxes.

    Args:
        boxes: (N, 4 or 5) ``[x1, y1, x2, y2(, area)]`` in [0, 1].
        horizontal: mirror left-right (``x -> 1 - x``).
        vertical: mirror top-bottom (``y -> 1 - y``).

    Returns:
        A new array of the same shape and dtype; ``x1 <= x2`` and ``y1 <= y2`` still hold and
        the area is unchanged.
    """
    out = np.array(boxes, copy=True)
    if horizontal:
        out[:, 0], out[:, 2] = 1.0 - boxes[:, 2], 1.0 - boxes[:, 0]
    if vertical:
        out[:, 1], out[:, 3] = 1.0 - boxes[:, 3], 1.0 - boxes[:, 1]
    return out


def _pattern(words: Mapping[str, str]) -> re.Pattern[str]:
    alternatives = "|".join(sorted(map(re.escape, words), key=len, reverse=True))
    return re.compile(rf"\b({alternatives})\b", re.IGNORECASE)


_PATTERNS: dict[tuple[tuple[str, str], ...], re.Pattern[str]] = {}


def mirror_text(text: str, words: Mapping[str, str]) -> str:
    """``text`` with each whole word of ``words`` replaced by its counterpart, all at once
    (``left`` and ``right`` trade places), case-insensitively; a capitalised word stays
    capitalised."""
    if not words:
        return text
    key = tuple(sorted(words.items()))
    pattern = _PATTERNS.get(key)
    if pattern is None:
        pattern = _PATTERNS[key] = _pattern(words)
    lower = {k.lower(): v for k, v in words.items()}

    def swap(match: re.Match[str]) -> str:
        word = match.group(0)
        new = lower[word.lower()]
        if word.isupper() and len(word) > 1:
            return new.upper()
        return new[:1].upper() + new[1:] if word[:1].isupper() else new

    return pattern.sub(swap, text)


def mirror_words(*, horizontal: bool, vertical: bool) -> dict[str, str]:
    """The word exchanges of a mirror along the given axes."""
    words: dict[str, str] = {}
    if horizontal:
        words.update(HORIZONTAL_WORDS)
    if vertical:
        words.update(VERTICAL_WORDS)
    return words
