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
from collections.abc import Mapping

from unimo_kit.data.scene_graph import SceneGraph
from unimo_kit.data.synth.scene import Scene, load_scenes
from unimo_kit.data.synth.semantics import satisfies


class SceneChecker:
    """Whether scene graphs hold in gold scenes (a :class:`~unimo_kit.rewrite.verify.Verifier`;
    the pair id is the scene id).

    Args:
        scenes: a ``scenes.jsonl`` path or a mapping ``scene id -> Scene`` (bad lines of the
            file are warned about and skipped).
    """

    def __init__(self, scenes: str | os.PathLike | Mapping[str, Scene]):
        self.scenes = scenes if isinstance(scenes, Mapping) else load_scenes(scenes, strict=False)

    def __contains__(self, scene_id: object) -> bool:
        return scene_id in self.scenes

    def holds(self, pair_id: str, graph: SceneGraph) -> bool:
        """Whether ``graph`` is true of the gold scene ``pair_id`` (which must be known)."""
        return satisfies(self.scenes[pair_id], graph)
