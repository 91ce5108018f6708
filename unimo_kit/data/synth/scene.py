"""Scenes of the synthetic world: objects with shape, colour, size and a box; the spatial
relations read off their boxes; the seeded layout sampler; ``scenes.jsonl`` I/O.

Layout. Objects sit in distinct cells of a 3 × 3 grid, each inside its cell with a clear
margin (``CELL_MARGIN``) and a little jitter, so boxes never overlap and every relation is
either clearly true or clearly false:

- ``A left of B``  iff  ``B.x1 - A.x2 >= MARGIN · width``   (A entirely left of B, with a gap);
  ``right of`` is its inverse, ``above``/``below`` the same on the y axis.
- ``A next to B``  iff  the boxes share a row (their y ranges overlap) and the horizontal gap
  between them is at least ``MARGIN · width`` and at most ``NEXT_TO_GAP · width``; symmetric.

With the grid, two objects in one column overlap on x (``left of`` clearly false), objects in
different columns are at least ``2 · CELL_MARGIN`` apart (clearly true), objects in adjacent
columns of a row have a gap well below ``NEXT_TO_GAP`` and objects two columns apart one well
above it. ``tests/data/test_synth_world.py`` checks these clearances on generated worlds.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from unimo_kit.data.synth.vocab import COLORS, RELATIONS, SHAPES, SIZES, WIDE_ASPECT, WIDE_SHAPES
from unimo_kit.utils.jsonl import ErrorReport, RecordError, iter_jsonl

GRID = 3  # cells per side of the layout grid
CELL_MARGIN = 0.03  # min distance from an object's box to its cell border (fraction of side)
MAX_JITTER = 0.03  # max offset of an object's centre from its cell centre (fraction of side)
RADIUS = {"small": 0.075, "large": 0.13}  # half the box width per size (fraction of side)
MARGIN = 0.02  # min gap for left of / right of / above / below / next to (fraction of side)
NEXT_TO_GAP = 0.30  # max horizontal gap for "next to" (fraction of width)
OBJECT_COUNT_WEIGHTS = {1: 1, 2: 3, 3: 3, 4: 2}  # relative frequency of 1..4 objects per scene

Box = tuple[int, int, int, int]
"""``(x1, y1, x2, y2)`` in pixels, inclusive, as PIL draws them."""


@dataclass(frozen=True)
class SceneObject:
    """One rendered object."""

    shape: str  # one of vocab.SHAPES
    color: str  # one of vocab.COLORS
    size: str  # one of vocab.SIZES
    bbox: Box  # (x1, y1, x2, y2) pixels, inclusive; the shape fills this box

    @property
    def center(self) -> tuple[int, int]:
        """Centre pixel ``(x, y)``; always inside the drawn shape."""
        x1, y1, x2, y2 = self.bbox
        return (x1 + x2) // 2, (y1 + y2) // 2

    def to_json(self) -> dict[str, Any]:
        return {
            "shape": self.shape,
            "color": self.color,
            "size": self.size,
            "bbox": list(self.bbox),
        }

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> SceneObject:
        bbox = tuple(int(v) for v in record["bbox"])
        if len(bbox) != 4:
            raise ValueError(f"bbox must have 4 numbers, got {record['bbox']!r}")
        return cls(str(record["shape"]), str(record["color"]), str(record["size"]), bbox)  # type: ignore[arg-type]


def relation_holds(predicate: str, a: SceneObject, b: SceneObject, width: int, height: int) -> bool:
    """Whether ``a <predicate> b`` holds geometrically (predicate normalised, see module doc).

    Raises:
        ValueError: for a predicate outside :data:`vocab.RELATIONS`.
    """
    ax1, ay1, ax2, ay2 = a.bbox
    bx1, by1, bx2, by2 = b.bbox
    mx, my = MARGIN * width, MARGIN * height
    if predicate == "left of":
        return bx1 - ax2 >= mx
    if predicate == "right of":
        return ax1 - bx2 >= mx
    if predicate == "above":
        return by1 - ay2 >= my
    if predicate == "below":
        return ay1 - by2 >= my
    if predicate == "next to":
        same_row = min(ay2, by2) - max(ay1, by1) > 0
        gap = max(bx1 - ax2, ax1 - bx2)
        return same_row and mx <= gap <= NEXT_TO_GAP * width
    raise ValueError(f"unknown relation {predicate!r}; expected one of {RELATIONS}")


@dataclass
class Scene:
    """A gold scene: the objects of one image (or of one text-only description)."""

    id: str  # image id ("syn-000012", "img-000003") or text id
    objects: list[SceneObject] = field(default_factory=list)
    width: int = 224  # image width in pixels
    height: int = 224  # image height in pixels
    image: str | None = None  # image path relative to the world directory, if rendered
    split: str | None = None  # "train" / "val" / "test" / "image-only" / "text-only"

    def holds(self, predicate: str, i: int, j: int) -> bool:
        """Whether ``objects[i] <predicate> objects[j]`` (normalised predicate)."""
        if i == j:
            return False
        return relation_holds(predicate, self.objects[i], self.objects[j], self.width, self.height)

    def relations(self) -> list[tuple[int, str, int]]:
        """All true ``(i, predicate, j)`` triples, in object and :data:`RELATIONS` order."""
        n = len(self.objects)
        return [
            (i, p, j) for i in range(n) for j in range(n) for p in RELATIONS if self.holds(p, i, j)
        ]

    def compositions(self) -> set[tuple[str, str]]:
        """The ``(color, shape)`` pairs present."""
        return {(o.color, o.shape) for o in self.objects}

    def to_json(self) -> dict[str, Any]:
        """The ``scenes.jsonl`` record (``relations`` are derived, for readers' convenience)."""
        record: dict[str, Any] = {"id": self.id}
        if self.image is not None:
            record["image"] = self.image
        if self.split is not None:
            record["split"] = self.split
        record["width"] = self.width
        record["height"] = self.height
        record["objects"] = [o.to_json() for o in self.objects]
        record["relations"] = [[i, p, j] for i, p, j in self.relations()]
        return record

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> Scene:
        """Inverse of :meth:`to_json` (``relations`` are recomputed, not read)."""
        return cls(
            id=str(record["id"]),
            objects=[SceneObject.from_json(o) for o in record["objects"]],
            width=int(record.get("width", 224)),
            height=int(record.get("height", 224)),
            image=record.get("image"),
            split=record.get("split"),
        )


def load_scenes(path: str | os.PathLike, *, strict: bool = True) -> dict[str, Scene]:
    """Read ``scenes.jsonl`` into ``{scene id: Scene}``.

    Args:
        path: the file written by :func:`unimo_kit.data.synth.generate_world`.
        strict: raise :class:`RecordError` (file:line: what) on the first bad record;
            otherwise warn and skip it.

    Returns:
        Scenes by id, in file order.
    """
    scenes: dict[str, Scene] = {}
    report = ErrorReport(strict=strict)
    for line, record in iter_jsonl(path, strict=strict, on_error=report):
        try:
            scene = Scene.from_json(record)
        except (KeyError, TypeError, ValueError) as exc:
            report.add(RecordError(path, line, f"not a scene record ({type(exc).__name__}: {exc})"))
            continue
        scenes[scene.id] = scene
    return scenes


def _cell_positions(size: int) -> list[tuple[float, float]]:
    cell = size / GRID
    return [((c + 0.5) * cell, (r + 0.5) * cell) for r in range(GRID) for c in range(GRID)]


def place_objects(
    rng: random.Random, attributes: Iterable[tuple[str, str, str]], size: int
) -> list[SceneObject]:
    """Put objects ``(shape, color, size)`` into distinct random grid cells with jitter.

    Args:
        rng: the scene's random generator.
        attributes: at most ``GRID**2`` objects' ``(shape, color, size)``.
        size: image side in pixels.

    Returns:
        Objects with boxes, in the order given.
    """
    attributes = list(attributes)
    cells = rng.sample(range(GRID * GRID), len(attributes))
    centres = _cell_positions(size)
    half_cell = size / GRID / 2
    objects = []
    for (shape, color, obj_size), cell in zip(attributes, cells, strict=True):
        radius = round(RADIUS[obj_size] * size)
        slack = min(half_cell - radius - CELL_MARGIN * size, MAX_JITTER * size)
        jitter = max(0, math.floor(slack))
        cx = round(centres[cell][0]) + rng.randint(-jitter, jitter)
        cy = round(centres[cell][1]) + rng.randint(-jitter, jitter)
        half_height = round(WIDE_ASPECT * radius) if shape in WIDE_SHAPES else radius
        box = (cx - radius, cy - half_height, cx + radius, cy + half_height)
        objects.append(SceneObject(shape, color, obj_size, box))
    return objects


def sample_scene(
    rng: random.Random,
    scene_id: str,
    *,
    size: int = 224,
    held_out: frozenset[tuple[str, str]] = frozenset(),
    include_held_out: bool = False,
    n_objects: int | None = None,
) -> Scene:
    """Sample a scene of 1–4 objects.

    Args:
        rng: the scene's own generator (seed it with ``derive_seed(seed, scene_id)``).
        scene_id: id stored on the scene.
        size: image side in pixels.
        held_out: ``(color, shape)`` pairs reserved for val/test.
        include_held_out: ``False`` → no object is a held-out pair (training data);
            ``True`` → at least one object is (val/test), the others are unrestricted.
        n_objects: fixed object count (default: drawn from ``OBJECT_COUNT_WEIGHTS``).

    Returns:
        The scene (``image``/``split`` unset).
    """
    if n_objects is None:
        counts, weights = zip(*OBJECT_COUNT_WEIGHTS.items(), strict=True)
        n_objects = rng.choices(counts, weights=weights)[0]
    colors = list(COLORS)
    attributes: list[tuple[str, str, str]] = []
    if include_held_out:
        if not held_out:
            raise ValueError("include_held_out=True needs a non-empty held_out set")
        color, shape = rng.choice(sorted(held_out))
        attributes.append((shape, color, rng.choice(SIZES)))
    while len(attributes) < n_objects:
        shape = rng.choice(SHAPES)
        allowed = [c for c in colors if include_held_out or (c, shape) not in held_out]
        attributes.append((shape, rng.choice(allowed), rng.choice(SIZES)))
    rng.shuffle(attributes)
    return Scene(scene_id, place_objects(rng, attributes, size), width=size, height=size)


__all__ = [
    "Scene",
    "SceneObject",
    "load_scenes",
    "place_objects",
    "relation_holds",
    "sample_scene",
]
