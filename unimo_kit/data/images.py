"""Image loading that counts missing and corrupt files instead of stopping a long run.

Used wherever images are decoded (``unimo data convert --check-images``, feature extraction,
image indexes)::

    loader = ImageLoader()
    for pair in read_pairs("pairs.jsonl"):
        image = loader.load(pair.image)      # PIL RGB image, or None
        if image is None:
            continue
    print(loader.stats.summary())            # "images: 998 ok, 1 missing, 1 corrupt"

An image counts as corrupt when PIL cannot identify it or cannot decode all of its pixels
(``Image.open(path).load()``), which catches truncated files; as missing when the file does
not exist. PIL's global ``ImageFile.LOAD_TRUNCATED_IMAGES = True``, if some other code sets
it, makes truncated files load (padded) and pass.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

PathLike = str | os.PathLike


class ImageError(OSError):
    """A missing or corrupt image, raised by a strict :class:`ImageLoader`."""

    def __init__(self, path: PathLike, kind: str, reason: str):
        self.path = str(path)
        self.kind = kind  # "missing" or "corrupt"
        self.reason = reason
        super().__init__(f"{self.path}: {kind} image ({reason})")

    def __reduce__(self):  # picklable across worker processes
        return type(self), (self.path, self.kind, self.reason)


@dataclass
class ImageStats:
    """Counts of loaded, missing and corrupt images, with the first few bad paths."""

    ok: int = 0  # images decoded
    missing: int = 0  # paths that do not exist (or are not files)
    corrupt: int = 0  # files PIL could not identify or fully decode
    missing_paths: list[str] = field(default_factory=list)  # first max_examples missing
    corrupt_paths: list[str] = field(default_factory=list)  # first max_examples, "path (why)"
    max_examples: int = 5  # how many bad paths to keep

    @property
    def bad(self) -> int:
        """Missing plus corrupt."""
        return self.missing + self.corrupt

    def summary(self) -> str:
        """One line, e.g. ``images: 98 ok, 1 missing (a.jpg), 1 corrupt (b.png (truncated))``."""

        def part(count: int, name: str, examples: list[str]) -> str:
            if not count:
                return f"0 {name}"
            more = ", ..." if count > len(examples) else ""
            return f"{count} {name} ({', '.join(examples)}{more})"

        return (
            f"images: {self.ok} ok, {part(self.missing, 'missing', self.missing_paths)}, "
            f"{part(self.corrupt, 'corrupt', self.corrupt_paths)}"
        )


class ImageLoader:
    """Decode images to RGB, counting missing and corrupt files in :attr:`stats`.

    Thread-safe (the counters are locked); each process has its own counts.

    Args:
        strict: raise :class:`ImageError` on the first missing or corrupt image instead of
            returning ``None``.
        mode: PIL mode to convert to.
        max_examples: how many bad paths :attr:`stats` keeps for the report.
    """

    def __init__(self, strict: bool = False, mode: str = "RGB", max_examples: int = 5):
        self.strict = strict
        self.mode = mode
        self.stats = ImageStats(max_examples=max_examples)
        self._lock = threading.Lock()

    def load(self, path: PathLike) -> Image.Image | None:
        """The decoded image in :attr:`mode`, or ``None`` (counted) when missing or corrupt.

        Raises:
            ImageError: when ``strict`` and the image is missing or corrupt.
        """
        from PIL import Image, UnidentifiedImageError

        if not os.path.isfile(path):
            return self._fail(path, "missing", "no such file")
        try:
            with Image.open(path) as image:
                image.load()
                converted = image.convert(self.mode)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            # OSError covers "image file is truncated"; SyntaxError and ValueError are what
            # some PIL decoders raise on garbage headers.
            return self._fail(path, "corrupt", _reason(exc))
        except Image.DecompressionBombError as exc:
            return self._fail(path, "corrupt", f"decompression bomb: {exc}")
        with self._lock:
            self.stats.ok += 1
        return converted

    def check(self, path: PathLike) -> bool:
        """Whether the image loads (counted like :meth:`load`; the pixels are not kept)."""
        return self.load(path) is not None

    def _fail(self, path: PathLike, kind: str, reason: str) -> None:
        if self.strict:
            raise ImageError(path, kind, reason)
        with self._lock:
            stats = self.stats
            if kind == "missing":
                stats.missing += 1
                if len(stats.missing_paths) < stats.max_examples:
                    stats.missing_paths.append(str(path))
            else:
                stats.corrupt += 1
                if len(stats.corrupt_paths) < stats.max_examples:
                    stats.corrupt_paths.append(f"{path} ({reason})")
        return None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 80 else text[:77] + "..."
