"""Drawing scenes with PIL: flat colours, no anti-aliasing (so each object's pixels hold exactly
its colour), each shape filling its box."""

from __future__ import annotations

import math
import os
from functools import cache
from pathlib import Path

from PIL import Image, ImageDraw

from unimo_kit.data.synth.scene import Box, Scene
from unimo_kit.data.synth.vocab import BACKGROUND, COLORS


def _regular(
    n: int, start_deg: float, radii: tuple[float, ...] = (1.0,)
) -> list[tuple[float, float]]:
    """``n`` vertices on a circle (radii alternate, for stars), starting at ``start_deg``."""
    points = []
    for k in range(n):
        angle = math.radians(start_deg + 360.0 * k / n)
        r = radii[k % len(radii)]
        points.append((r * math.cos(angle), r * math.sin(angle)))
    return points


def _heart(steps: int = 48) -> list[tuple[float, float]]:
    points = []
    for k in range(steps):
        t = 2 * math.pi * k / steps
        x = 16 * math.sin(t) ** 3
        y = -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t))
        points.append((x, y))
    return points


@cache
def unit_polygon(shape: str) -> tuple[tuple[float, float], ...]:
    """The outline of a polygonal ``shape`` scaled to fill ``[0, 1]²`` (y down). Circles,
    ovals, squares and rectangles are drawn with PIL primitives."""
    raw = {
        "triangle": [(0.0, -1.0), (1.0, 1.0), (-1.0, 1.0)],
        "diamond": [(0.0, -1.0), (1.0, 0.0), (0.0, 1.0), (-1.0, 0.0)],
        "star": _regular(10, -90.0, (1.0, 0.45)),
        "heart": _heart(),
    }[shape]
    xs, ys = [p[0] for p in raw], [p[1] for p in raw]
    x0, y0, w, h = min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)
    return tuple(((x - x0) / w, (y - y0) / h) for x, y in raw)


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: Box, fill: tuple[int, int, int]) -> None:
    """Draw ``shape`` filling the inclusive pixel box ``(x1, y1, x2, y2)``."""
    x1, y1, x2, y2 = box
    if shape in ("circle", "oval"):
        draw.ellipse(box, fill=fill)
    elif shape in ("square", "rectangle"):
        draw.rectangle(box, fill=fill)
    else:
        w, h = x2 - x1, y2 - y1
        draw.polygon([(x1 + u * w, y1 + v * h) for u, v in unit_polygon(shape)], fill=fill)


def render_scene(scene: Scene) -> Image.Image:
    """The RGB image of ``scene``."""
    image = Image.new("RGB", (scene.width, scene.height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for obj in scene.objects:
        draw_shape(draw, obj.shape, obj.bbox, COLORS[obj.color])
    return image


def save_scene_image(scene: Scene, path: str | os.PathLike) -> None:
    """Render ``scene`` and write a PNG atomically (``PATH.tmp`` then ``os.replace``), so a
    file that exists is complete. PNG bytes depend only on the scene."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    render_scene(scene).save(tmp, format="PNG", optimize=False, compress_level=6)
    os.replace(tmp, path)
