"""``--shard i/n``: contiguous slices of an input, so that the outputs of shards 0..n-1
concatenated in order equal the unsharded output."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (0-based) of ``count``."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"invalid shard {self.index}/{self.count}: need 0 <= i < n")

    def bounds(self, total: int) -> tuple[int, int]:
        """``[start, stop)`` positions of this shard among ``total`` items."""
        return total * self.index // self.count, total * (self.index + 1) // self.count

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str | None) -> Shard:
    """Parse ``"i/n"`` (``None`` or empty means the whole input)."""
    if not text:
        return Shard()
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"invalid shard {text!r}: expected i/n, e.g. 0/4") from None
    return Shard(index, count)
