"""The synthetic world's gold scenes as a :class:`~unimo_kit.rewrite.verify.Verifier`.

Hard negatives must be false of their image. Sentence-level ones (TF-IDF neighbours in
``unimo rewrite``, captions of the nearest other images in ``unimo index mine``) are captions
of different images, but in a small world many of them are true of this image as well: "there
is a pink heart" describes every image with a pink heart; and a typed negative can be true by
accident (adding ``small`` to an object that is small). Where gold scenes exist,
:class:`SceneChecker` says whether a scene graph holds in a pair's scene (``satisfies``), so
the stages keep only false ones. Checking caption *texts* needs a parser, which the caller
passes: :class:`unimo_kit.rewrite.verify.CaptionVerifier` (this module imports nothing from
``unimo_kit.rewrite``).

>>> checker = SceneChecker("data/synth/scenes.jsonl")
>>> checker.holds("syn-000000", graph)  # graph: a SceneGraph, e.g. parsed or edited
True
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, TypeVar

from unimo_kit.data.scene_graph import SceneGraph
from unimo_kit.data.synth.scene import Scene, load_scenes
from unimo_kit.data.synth.semantics import satisfies

T = TypeVar("T")


class SceneChecker:
    """Whether scene graphs hold in gold scenes (a :class:`~unimo_kit.rewrite.verify.Verifier`;
    the pair id is the scene id).

    Args:
        scenes: a ``scenes.jsonl`` path or a mapping ``scene id -> Scene`` (bad lines of the
            file are warned about and skipped).
        parser: deprecated; only for :meth:`true_of` / :meth:`keep_false`, which wrap this
            checker in a :class:`~unimo_kit.rewrite.verify.CaptionVerifier` with its
            ``parse_each`` (use that class directly instead).
    """

    def __init__(self, scenes: str | os.PathLike | Mapping[str, Scene], parser: Any = None):
        self.scenes = scenes if isinstance(scenes, Mapping) else load_scenes(scenes, strict=False)
        self._parser = parser
        self._captions: Any = None

    def __contains__(self, scene_id: object) -> bool:
        return scene_id in self.scenes

    def holds(self, pair_id: str, graph: SceneGraph) -> bool:
        """Whether ``graph`` is true of the gold scene ``pair_id`` (which must be known)."""
        return satisfies(self.scenes[pair_id], graph)

    # ------------------------------------------------------------------ deprecated
    # Kept while index/mine.py calls them; use unimo_kit.rewrite.verify.CaptionVerifier.

    def _caption_verifier(self) -> Any:
        if self._captions is None:
            from unimo_kit.rewrite.verify import CaptionVerifier

            parser = self._parser
            if parser is None:
                warnings.warn(
                    "SceneChecker.true_of/keep_false without parser= are deprecated: use "
                    "unimo_kit.rewrite.verify.CaptionVerifier(checker, parser.parse_each)",
                    DeprecationWarning,
                    stacklevel=3,
                )
                from unimo_kit.rewrite.parser import SceneGraphParser

                parser = SceneGraphParser()
            self._captions = CaptionVerifier(self, parser.parse_each)
        return self._captions

    def true_of(self, items: Sequence[tuple[str, str]]) -> list[bool]:
        """Deprecated: :meth:`CaptionVerifier.true_of <unimo_kit.rewrite.verify.CaptionVerifier.true_of>`."""  # noqa: E501
        return self._caption_verifier().true_of(items)

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
        """Deprecated: :meth:`CaptionVerifier.keep_false <unimo_kit.rewrite.verify.CaptionVerifier.keep_false>`."""  # noqa: E501
        return self._caption_verifier().keep_false(
            scene_id, candidates, k, text=text, group=group, batch=batch
        )
