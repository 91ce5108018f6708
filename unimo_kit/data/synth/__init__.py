"""The synthetic world: the project's own small stand-in for COCO and for single-modal corpora.

Rendered images of 1–4 coloured shapes, several captions per image with gold scene graphs,
train/val/test splits where val and test hold colour–shape compositions never seen in
training, a text-only corpus, an image-only collection and a compositional test set whose
negatives are checked false against the gold scene. See ``docs/synth.md``.

>>> from unimo_kit.data.synth import generate_world, load_scenes, satisfies
>>> world = generate_world("data/synth", seed=0, n_images=2000)
>>> scenes = load_scenes(world.scenes)
"""

from unimo_kit.data.synth.captions import (
    TEMPLATES,
    Caption,
    CaptionPlan,
    NounPhrase,
    describe_scene,
    realize,
)
from unimo_kit.data.synth.compositional import CATEGORIES, make_example
from unimo_kit.data.synth.render import render_scene
from unimo_kit.data.synth.scene import Scene, SceneObject, load_scenes, relation_holds, sample_scene
from unimo_kit.data.synth.semantics import normalise_predicate, satisfies
from unimo_kit.data.synth.vocab import (
    BACKGROUND,
    COLORS,
    INVERSE_RELATIONS,
    PLURALS,
    RELATION_FORMS,
    RELATIONS,
    SHAPES,
    SINGULARS,
    SIZES,
)
from unimo_kit.data.synth.world import WorldSummary, generate_world, held_out_compositions

__all__ = [
    "BACKGROUND",
    "CATEGORIES",
    "COLORS",
    "INVERSE_RELATIONS",
    "PLURALS",
    "RELATIONS",
    "RELATION_FORMS",
    "SHAPES",
    "SINGULARS",
    "SIZES",
    "TEMPLATES",
    "Caption",
    "CaptionPlan",
    "NounPhrase",
    "Scene",
    "SceneObject",
    "WorldSummary",
    "describe_scene",
    "generate_world",
    "held_out_compositions",
    "load_scenes",
    "make_example",
    "normalise_predicate",
    "realize",
    "relation_holds",
    "render_scene",
    "sample_scene",
    "satisfies",
]
