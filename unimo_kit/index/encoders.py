"""The index stage's encoders: :mod:`unimo_kit.encoders`, the one encoder layer of the project
(index and eval both use it). Kept so that ``unimo_kit.index.encoders`` imports keep working."""

from unimo_kit import encoders as _encoders
from unimo_kit.encoders import *  # noqa: F403  (the same names, old path)

__all__ = list(_encoders.__all__)
