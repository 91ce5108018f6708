"""Checking captions of *other* images against a gold scene.

Sentence-level hard negatives (TF-IDF neighbours in ``unimo rewrite``, captions of the nearest
other images in ``unimo index mine``) are captions of different images, but in a small world
many of them are true of this image as well: "there is a pink heart" describes every image
with a pink heart. Trained as negatives they push true captions away from their image. Where
gold scenes exist, :class:`SceneChecker` parses each candidate and tells which are true, so
the stages keep only false ones.

>>> checker = SceneChecker("data/synth/scenes.jsonl")
>>> checker.true_of([("syn-000000", "there is a pink heart"), ("syn-000000", "a red star")])
[True, False]
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from unimo_kit.data.synth.scene import Scene, load_scenes
from unimo_kit.data.synth.semantics import satisfies
from unimo_kit.utils.select import first_per_group

T = TypeVar("T")


class SceneChecker:
    """Whether captions are true of gold scenes; each distinct caption is parsed once.

    Args:
        scenes: a ``scenes.jsonl`` path or a mapping ``scene id -> Scene``.
        parser: a :class:`~unimo_kit.rewrite.parser.SceneGraphParser` or anything with its
            ``parse_each`` (default: one on the packaged spaCy pipeline, loaded on first use).
    """

    def __init__(self, scenes: str | os.PathLike | Mapping[str, Scene], parser: Any = None):
        self.scenes = scenes if isinstance(scenes, Mapping) else load_scenes(scenes, strict=False)
        self._parser = parser
        self._graphs: dict[str, Any] = {}

    def __contains__(self, scene_id: str) -> bool:
        return scene_id in self.scenes

    @property
    def parser(self) -> Any:
        if self._parser is None:
            from unimo_kit.rewrite.parser import SceneGraphParser

            self._parser = SceneGraphParser()
        return self._parser

    def true_of(self, items: Sequence[tuple[str, str]]) -> list[bool]:
        """For each ``(scene id, caption)``: whether the caption's parsed graph holds in the
        scene. A caption the parser fails on counts as true (not safe as a negative); a scene
        id without a gold scene counts as false (nothing to check against: keep)."""
        new = list(dict.fromkeys(t for s, t in items if s in self.scenes and t not in self._graphs))
        if new:
            self._graphs.update(zip(new, self.parser.parse_each(new), strict=True))
        out = []
        for scene_id, text in items:
            scene = self.scenes.get(scene_id)
            if scene is None:
                out.append(False)
                continue
            graph = self._graphs[text]
            out.append(isinstance(graph, Exception) or satisfies(scene, graph))
        return out

    def keep_false(
        self,
        scene_id: str,
        candidates: Sequence[T],
        k: int,
        *,
        text: Callable[[T], str] = str,
        group: Callable[[T], Hashable] | None = None,
        batch: int = 8,
    ) -> list[T]:
        """The first ``k`` candidates, in order, that are false of the scene (all of them count
        as false when the scene is unknown), at most one per ``group`` (e.g. one caption per
        neighbouring image). Candidates are checked lazily, ``batch`` at a time, so a long
        list costs only what is needed to fill ``k``."""

        def false_ones() -> Iterator[T]:
            for start in range(0, len(candidates), batch):
                chunk = list(candidates[start : start + batch])
                flags = self.true_of([(scene_id, text(c)) for c in chunk])
                yield from (c for c, true in zip(chunk, flags, strict=True) if not true)

        return first_per_group(false_ones(), k, group)
