"""Evaluation errors with messages a user can act on, and checks that produce them.

:class:`EvalError` is raised for bad evaluation inputs (a missing or mismatched checkpoint, an
empty test set, a bad config); the CLI turns it, :class:`~unimo_kit.utils.RecordError` (a bad
line of a test file) and :class:`~unimo_kit.resources.ResourceNotFound` into one-line messages.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

WEIGHTS = "model.safetensors"
CONFIG = "config.json"


class EvalError(ValueError):
    """A bad evaluation input; the message names the file and what is wrong."""


def checkpoint_files(path: str | os.PathLike) -> tuple[Path, Path]:
    """The ``(weights, config)`` files of a checkpoint folder or weights file.

    Raises:
        EvalError: the path does not exist or is not a unimo checkpoint.
    """
    path = Path(path)
    if not path.exists():
        raise EvalError(f"checkpoint {path} does not exist")
    folder = path.parent if path.is_file() else path
    weights = path if path.is_file() else folder / WEIGHTS
    config = folder / CONFIG
    if path.is_dir() and not weights.exists():
        nested = sorted(folder.glob(f"*/{WEIGHTS}"))
        hint = f"; did you mean {nested[-1].parent}?" if nested else ""
        raise EvalError(f"checkpoint {folder}: no {WEIGHTS} in it{hint}")
    if weights.suffix != ".safetensors":
        raise EvalError(f"checkpoint {weights}: expected a {WEIGHTS} file (safetensors)")
    if not config.exists():
        raise EvalError(f"checkpoint {folder}: {WEIGHTS} without its {CONFIG}")
    return weights, config


def load_checkpoint_checked(path: str | os.PathLike, device: str | None = None) -> Any:
    """:func:`unimo_kit.model.load_checkpoint` with clear errors.

    Raises:
        EvalError: missing files, an unreadable config, weights that do not match the config
            (a "mismatched checkpoint"), or a corrupt weights file.
    """
    from unimo_kit.model import load_checkpoint

    weights, config = checkpoint_files(path)
    try:
        json.loads(config.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise EvalError(f"checkpoint config {config} is not valid JSON ({exc})") from None
    try:
        return load_checkpoint(weights, device=device or "cpu")
    except RuntimeError as exc:  # load_state_dict size / key mismatch
        first = str(exc).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:3])
        raise EvalError(
            f"checkpoint {weights} does not match its {config.name} ({detail[:300]})"
        ) from None
    except (ValueError, TypeError) as exc:  # unknown config fields, bad values
        raise EvalError(f"checkpoint {config}: {exc}") from None
    except Exception as exc:  # safetensors header errors and alike
        if type(exc).__name__ in ("SafetensorError", "HeaderTooLarge", "InvalidHeader"):
            raise EvalError(
                f"checkpoint {weights} is not a readable safetensors file ({exc})"
            ) from None
        raise


def check_feature_dim(model: Any, dim: int, source: str) -> None:
    """Raise :class:`EvalError` when visual features of size ``dim`` cannot feed ``model``."""
    expected = model.config.visual_feat_dim
    if dim != expected:
        raise EvalError(
            f"{source} gives {dim}-d visual features but the checkpoint expects "
            f"visual_feat_dim={expected}; use the features/extractor it was trained with"
        )
