"""Evaluation errors with messages a user can act on, and checks that produce them.

:class:`EvalError` is raised for bad evaluation inputs (a missing or mismatched checkpoint, an
empty test set, a bad config); the CLI turns it, :class:`~unimo_kit.utils.RecordError` (a bad
line of a test file) and :class:`~unimo_kit.resources.ResourceNotFound` into one-line messages.

The class and the checkpoint checks live in the encoder layer, which raises them when it loads
a unimo checkpoint (:mod:`unimo_kit.encoders.base`, :mod:`unimo_kit.encoders.unimo`), so the
encoders import nothing from ``unimo_kit.eval``. This module re-exports them: the same objects,
so ``except EvalError`` catches an error raised by either layer.
"""

from __future__ import annotations

from unimo_kit.encoders.base import EvalError
from unimo_kit.encoders.unimo import (
    CONFIG,
    WEIGHTS,
    check_feature_dim,
    checkpoint_files,
    load_checkpoint_checked,
)

__all__ = [
    "CONFIG",
    "WEIGHTS",
    "EvalError",
    "check_feature_dim",
    "checkpoint_files",
    "load_checkpoint_checked",
]
