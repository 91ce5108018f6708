"""Picking candidates in rank order, at most one per group."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import TypeVar

T = TypeVar("T")


def first_per_group(
    items: Iterable[T], k: int, group: Callable[[T], Hashable] | None = None
) -> list[T]:
    """The first ``k`` items in order, at most one per ``group(item)`` (every item when
    ``group`` is None). ``items`` is consumed lazily: nothing after the ``k``-th kept item
    is read, so a generator that does work per item does only what is needed.

    >>> first_per_group(["a1", "a2", "b1", "c1"], 2, group=lambda s: s[0])
    ['a1', 'b1']
    """
    kept: list[T] = []
    if k <= 0:
        return kept
    groups: set[Hashable] = set()
    for item in items:
        if group is not None:
            key = group(item)
            if key in groups:
                continue
            groups.add(key)
        kept.append(item)
        if len(kept) == k:
            break
    return kept
