"""Deterministic seeds: one global seed, per-item seeds derived from stable ids."""

from __future__ import annotations

import hashlib
import os
import random


def derive_seed(global_seed: int, *keys: object) -> int:
    """A 63-bit seed from ``global_seed`` and any keys (e.g. a record id), stable across runs,
    processes and Python versions (unlike ``hash``). Order and sharding of the input do not
    change it."""
    digest = hashlib.blake2b(repr((int(global_seed), *map(str, keys))).encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "little") >> 1


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and (if imported or importable) torch."""
    random.seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover
        pass
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:  # pragma: no cover
        pass
