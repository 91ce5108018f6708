"""SceneChecker (the synthetic world's Verifier) and CaptionVerifier: captions of other images
judged against a gold scene, with the parser the caller passes."""

from __future__ import annotations

import subprocess
import sys

from unimo_kit.data.scene_graph import SceneGraph
from unimo_kit.data.synth import Scene, SceneObject
from unimo_kit.data.synth.verify import SceneChecker
from unimo_kit.rewrite.verify import CaptionVerifier, Verifier, load_verifier


class CountingParser:
    """Wraps the real parser and counts the captions it is asked to parse."""

    def __init__(self):
        from unimo_kit.rewrite.parser import SceneGraphParser

        self.inner = SceneGraphParser()
        self.parsed: list[str] = []

    def parse_each(self, texts):
        texts = list(texts)
        self.parsed += texts
        return self.inner.parse_each(texts)


def _scene() -> Scene:
    pink_heart = SceneObject(shape="heart", color="pink", size="small", bbox=(10, 10, 44, 44))
    blue_square = SceneObject(shape="square", color="blue", size="large", bbox=(120, 10, 178, 68))
    return Scene(id="s", width=224, height=224, objects=[pink_heart, blue_square])


def test_scene_checker_is_a_graph_verifier():
    checker = SceneChecker({"s": _scene()})
    assert isinstance(checker, Verifier)
    assert "s" in checker and "other" not in checker
    assert checker.holds("s", SceneGraph.from_factual("( heart , is , pink )"))
    assert not checker.holds("s", SceneGraph.from_factual("( heart , is , blue )"))
    assert not checker.holds("s", SceneGraph.from_factual("( heart , right of , square )"))


def test_true_and_false_captions_and_parse_cache():
    parser = CountingParser()
    checker = CaptionVerifier(SceneChecker({"s": _scene()}), parser.parse_each)
    items = [
        ("s", "there is a pink heart"),
        ("s", "a pink heart to the left of a blue square"),
        ("s", "a blue heart"),
        ("s", "a pink heart to the right of a blue square"),
        ("other", "a green star"),  # no gold scene: nothing to check, kept as a negative
    ]
    assert checker.true_of(items) == [True, True, False, False, False]
    assert "s" in checker and "other" not in checker
    assert checker.true_of([("s", "there is a pink heart")]) == [True]
    assert len(parser.parsed) == 4  # each distinct caption of a known scene parsed once
    assert "a green star" not in parser.parsed


def test_keep_false_is_ordered_lazy_and_one_per_group():
    parser = CountingParser()
    checker = CaptionVerifier(SceneChecker({"s": _scene()}), parser.parse_each)
    candidates = [
        ("a", "a pink heart"),  # true
        ("b", "a blue heart"),
        ("b", "a red heart"),  # same group as the one kept before it
        ("c", "a pink heart to the left of a blue square"),  # true
        ("d", "a blue square to the left of a pink heart"),
        ("e", "a red star"),
        ("f", "a green oval"),
    ]
    kept = checker.keep_false("s", candidates, 2, text=lambda c: c[1], group=lambda c: c[0])
    assert kept == [("b", "a blue heart"), ("d", "a blue square to the left of a pink heart")]
    counting = CountingParser()
    lazy = CaptionVerifier(SceneChecker({"s": _scene()}), counting.parse_each)
    assert lazy.keep_false("s", candidates, 1, text=lambda c: c[1], batch=2) == [candidates[1]]
    assert len(counting.parsed) == 2  # the second batch was never needed
    assert checker.keep_false("other", candidates, 3, text=lambda c: c[1]) == candidates[:3]


class OnlyDogs:
    """A verifier that is not the synthetic world: image "d" shows a dog and nothing else."""

    def __contains__(self, pair_id):
        return pair_id == "d"

    def holds(self, pair_id, graph):
        return {e.name for e in graph.entities} <= {"dog"}


def test_any_verifier_and_a_failing_parse():
    def parse(texts):
        return [ValueError("bad") if t == "???" else SceneGraph.from_factual(t) for t in texts]

    checker = CaptionVerifier(OnlyDogs(), parse)
    assert isinstance(OnlyDogs(), Verifier)
    items = [("d", "( dog )"), ("d", "( cat )"), ("d", "???"), ("x", "( dog )")]
    assert checker.true_of(items) == [True, False, True, False]  # a failed parse is not safe


def test_load_verifier_reads_scenes(tmp_path):
    from unimo_kit.data.synth import generate_world, load_scenes

    world = generate_world(tmp_path, seed=0, n_images=2, captions_per_image=1, progress=False)
    verifier = load_verifier(world.scenes)
    assert isinstance(verifier, SceneChecker) and "syn-000000" in verifier
    assert verifier.scenes == load_scenes(world.scenes)
    assert load_verifier(None) is None


def test_the_synth_module_imports_nothing_from_rewrite():
    code = (
        "import sys, unimo_kit.data.synth.verify; "
        "print([m for m in sys.modules if m.startswith('unimo_kit.rewrite')])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
