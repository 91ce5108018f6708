"""Content fingerprints of input files: what resumable stages compare before they trust
earlier output (a copied or regenerated file keeps its bytes but not its modification time)."""

from __future__ import annotations

import hashlib
import os

_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks; cached per process by path, size
    and modification time, so asking again for an unchanged file costs one ``stat``."""
    info = os.stat(path)
    key = (os.path.realpath(path), info.st_size, info.st_mtime_ns)
    if key not in _CACHE:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _CACHE[key] = digest.hexdigest()
    return _CACHE[key]
