"""Lazy package exports: names a package's ``__init__`` lists but imports on first use, so
that importing the package stays cheap (no spaCy, torch or Ray until a name is used).

>>> __getattr__, __dir__ = lazy_exports(__name__, {"Rewriter": "unimo_kit.rewrite.negatives"})
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, table: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of ``package`` for ``table``
    (exported name -> module that defines it). A name is imported once, then kept in the
    package's namespace; an unknown name raises :class:`AttributeError` as usual."""

    def __getattr__(name: str) -> Any:
        if name not in table:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(table[name]), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(table))

    return __getattr__, __dir__
