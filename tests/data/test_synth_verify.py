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

    def parse_many(self, texts):
        texts = list(texts)
        self.parsed += texts
        return self.inner.parse_many(texts)


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
        ("other", "a blue heart"),  # no gold scene: nothing to check, kept as a negative
    ]
    assert checker.true_of(items) == [True, True, False, False, False]
    assert "s" in checker and "other" not in checker
    assert checker.true_of([("s", "there is a pink heart")]) == [True]
    assert len(parser.parsed) == 4  # each distinct caption of a known scene parsed once
