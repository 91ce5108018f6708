"""SceneChecker: captions of other images judged against a gold scene."""

from __future__ import annotations

from unimo_kit.data.synth import Scene, SceneObject
from unimo_kit.data.synth.verify import SceneChecker


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


def test_true_and_false_captions_and_parse_cache():
    parser = CountingParser()
    checker = SceneChecker({"s": _scene()}, parser=parser)
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
    checker = SceneChecker({"s": _scene()}, parser=parser)
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
    lazy = SceneChecker({"s": _scene()}, parser=CountingParser())
    assert lazy.keep_false("s", candidates, 1, text=lambda c: c[1], batch=2) == [candidates[1]]
    assert len(lazy._parser.parsed) == 2  # the second batch was never needed
    assert checker.keep_false("other", candidates, 3, text=lambda c: c[1]) == candidates[:3]
