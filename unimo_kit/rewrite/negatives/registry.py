"""The registry of hard-negative types (:class:`NegativeType`, :func:`register_negative_type`,
the live :data:`NEGATIVE_TYPES`) and the record a type makes (:class:`Negative`). The built-in
types register here the way a user's type does (docs/extending.md)."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from unimo_kit.data.scene_graph import SceneGraph
from unimo_kit.rewrite.edits import Edit
from unimo_kit.rewrite.negatives.context import RewriteContext

if TYPE_CHECKING:
    from unimo_kit.rewrite.negatives.rewriter import Rewriter


Made = tuple[list[Edit], SceneGraph] | None | bool
"""What a negative type's maker returns for one attempt: the edits (spans into the caption)
and the caption's graph with the same change; ``None``: this attempt failed, try again;
``False``: the caption offers nothing this type can change, stop trying."""


Maker = Callable[["Rewriter", "RewriteContext", random.Random], Made]
"""``maker(rewriter, context, rng) -> Made``: one attempt at a negative of one type. The
rewriter gives the evidence (``rewriter.vocab``; ``features``, ``fits``, ``lift``, ``pick``,
``cached``), the context the caption, its graph and its phrases; every random choice must come
from ``rng`` (seeded per caption and type)."""


@dataclass(frozen=True)
class NegativeType:
    """One hard-negative type: its name (output ``type``, ``--types``), how to make one, and
    its SugarCrepe family."""

    name: str  # e.g. "replace-obj"; what RewriteConfig.types and --types name
    make: Maker  # one attempt at a negative (see Maker)
    category: str = "other"  # SugarCrepe family: "replace", "swap", "add"; "other" for the rest
    description: str = ""  # one line for docs and help

    def __post_init__(self) -> None:
        if not self.name or self.name != self.name.strip() or "," in self.name:
            raise ValueError(f"a negative type name must be a word without commas: {self.name!r}")
        if not callable(self.make):
            raise TypeError(f"negative type {self.name!r}: make must be callable")


_REGISTRY: dict[str, NegativeType] = {}
"""Every registered type by name, in registration order (= output order)."""


def register_negative_type(spec: NegativeType, *, replace: bool = False) -> NegativeType:
    """Add a hard-negative type; :data:`NEGATIVE_TYPES`, :class:`Rewriter`, ``RewriteConfig``
    validation and ``unimo rewrite --types`` then know it. New types come after the built-in
    ones in the output. Register at import time of your module (workers are forked with it).

    Args:
        spec: the type (see :class:`NegativeType`).
        replace: allow replacing a type of the same name (default: an error).

    Returns:
        ``spec``.
    """
    if spec.name in _REGISTRY and not replace:
        raise ValueError(f"negative type {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def unregister_negative_type(name: str) -> None:
    """Remove a registered type (tests, plugins that replace a built-in)."""
    if name not in _REGISTRY:
        raise KeyError(f"no negative type {name!r}; registered: {negative_types()}")
    del _REGISTRY[name]


def negative_types() -> tuple[str, ...]:
    """The names of all registered types, in output order."""
    return tuple(_REGISTRY)


def negative_type(name: str) -> NegativeType:
    """The registered type ``name``."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"no negative type {name!r}; registered: {negative_types()}") from None


def check_negative_types(types: Sequence[str]) -> None:
    """Raise ``ValueError`` naming the types in ``types`` that are not registered."""
    unknown = set(types) - set(_REGISTRY)
    if unknown:
        raise ValueError(f"unknown negative type(s) {sorted(unknown)}; use {negative_types()}")


class _RegisteredNames(Sequence[str]):
    """A live, read-only tuple of the registered type names (see :data:`NEGATIVE_TYPES`)."""

    def __getitem__(self, index):  # type: ignore[no-untyped-def]
        return negative_types()[index]

    def __len__(self) -> int:
        return len(_REGISTRY)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(negative_types())

    def __contains__(self, name: object) -> bool:
        return name in _REGISTRY

    def __eq__(self, other: object) -> bool:
        return tuple(self) == (tuple(other) if isinstance(other, Sequence) else other)

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return repr(negative_types())


NEGATIVE_TYPES: Sequence[str] = _RegisteredNames()
"""All hard-negative types, in output order: the registry's names, read live (a type
registered later is in it). ``tuple(NEGATIVE_TYPES)`` for a snapshot."""


@dataclass
class Negative:
    """One hard negative: its type, text, edits, and the edited scene graph."""

    type: str  # one of NEGATIVE_TYPES
    text: str  # the rewritten caption
    edits: list[Edit]  # spans into the original caption
    graph: SceneGraph  # the caption's graph with the same change applied

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "text": self.text, "edits": [e.to_dict() for e in self.edits]}


GraphCheck = Callable[[SceneGraph], bool]
"""Says whether a candidate negative's graph is TRUE of the sample's image (then it is
dropped). Only possible with gold knowledge of the image: the stage passes
``functools.partial(verifier.holds, pair_id)`` of a :class:`~unimo_kit.rewrite.verify.Verifier`
(``--scenes``)."""
