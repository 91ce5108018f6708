"""Compositional accuracy: ties, per-category counts, the three input formats, bad lines."""

import json

import numpy as np
import pytest

from unimo_kit.eval.compositional import (
    compositional_accuracy,
    evaluate_compositional,
    load_compositional,
    sugarcrepe_category,
)
from unimo_kit.utils import ErrorReport, RecordError


def test_accuracy_hand_computed_ties_are_wrong():
    pos = np.array([0.9, 0.5, 0.5, 0.2])
    neg = [np.array([0.1]), np.array([0.5]), np.array([0.4, 0.6]), np.array([0.1, 0.15])]
    cats = ["replace-att", "replace-att", "swap-obj", "swap-obj"]
    m = compositional_accuracy(pos, neg, cats)
    # example 1 correct, 2 a tie (wrong), 3 loses to 0.6, 4 beats both
    assert m["accuracy"] == 0.5
    ra = m["categories"]["replace-att"]
    assert {k: ra[k] for k in ("accuracy", "chance", "count")} == {
        "accuracy": 0.5,
        "chance": 0.5,
        "count": 2,
    }
    # 1 of 2 at chance 1/2: P(X >= 1) = 3/4; Wilson 95 %: 0.5 ± 0.4055
    assert ra["p_above_chance"] == pytest.approx(0.75)
    assert ra["ci95"] == pytest.approx([0.0945312, 0.9054688], abs=1e-6)
    assert m["categories"]["swap-obj"]["accuracy"] == 0.5
    assert m["categories"]["swap-obj"]["chance"] == pytest.approx(1 / 3)
    assert m["chance"] == pytest.approx((0.5 + 0.5 + 1 / 3 + 1 / 3) / 4)
    assert m["macro_accuracy"] == 0.5


def test_chance_statistics_hand_computed():
    from unimo_kit.eval.compositional import binomial_p_above, wilson_interval

    # 8 of 10 at 1/2: (C(10,8) + C(10,9) + C(10,10)) / 2^10 = 56 / 1024
    assert binomial_p_above(8, 10, 0.5) == pytest.approx(56 / 1024)
    assert binomial_p_above(0, 10, 0.5) == pytest.approx(1.0)
    # 2 of 3 at 1/3 (two negatives each): 3 * (1/3)^2 * (2/3) + (1/3)^3 = 7/27
    assert binomial_p_above(2, 3, 1 / 3) == pytest.approx(7 / 27)
    lo, hi = wilson_interval(8, 10)
    assert (lo, hi) == pytest.approx((0.490162, 0.943318), abs=1e-6)
    # large n: no overflow; 5,400 of 10,000 is far above chance, 5,000 is not
    assert binomial_p_above(5400, 10_000, 0.5) < 1e-14
    assert 0.49 < binomial_p_above(5000, 10_000, 0.5) < 0.51
    assert wilson_interval(0, 0) != wilson_interval(0, 0)  # nan for no items


class ConstantScorer:
    name = "constant"

    def encode_texts(self, texts):
        return np.ones((len(texts), 3), dtype=np.float32) / np.sqrt(3)

    def encode_images(self, images):
        return np.ones((len(images), 3), dtype=np.float32) / np.sqrt(3)


class ColorScorer:
    """Texts and images on colour axes (images by the colour of their pixels): an oracle."""

    name = "oracle"
    colors = ("red", "green", "blue", "yellow", "gray", "black")

    def _axis(self, index):
        v = np.zeros(len(self.colors), dtype=np.float32)
        v[index] = 1
        return v

    def encode_texts(self, texts):
        return np.stack(
            [
                self._axis(self.colors.index(next(w for w in t.split() if w in self.colors)))
                for t in texts
            ]
        )

    rgb = ((220, 30, 30), (30, 200, 30), (30, 30, 220), (230, 220, 20), (128, 128, 128), (5, 5, 5))

    def encode_images(self, images):
        from PIL import Image

        out = []
        for path in images:
            pixel = np.asarray(Image.open(path).convert("RGB"))[0, 0].astype(float)
            nearest = int(np.argmin([np.abs(pixel - np.array(c)).sum() for c in self.rgb]))
            out.append(self._axis(nearest))
        return np.stack(out)


def test_constant_scorer_scores_zero(tiny_world):
    examples = load_compositional(tiny_world / "compositional.test.jsonl")
    result = evaluate_compositional(ConstantScorer(), examples)
    assert result["accuracy"] == 0.0 and result["num_examples"] == 6
    assert set(result["categories"]) == {"replace-att", "swap-att"}


def test_oracle_scorer_scores_one(tiny_world):
    examples = load_compositional(tiny_world / "compositional.test.jsonl")
    result = evaluate_compositional(ColorScorer(), examples, data="tiny")
    assert result["accuracy"] == 1.0 and result["scorer"] == "oracle"
    assert result["categories"]["swap-att"]["count"] == 3


def test_jsonl_paths_resolved_and_bad_lines_reported(tmp_path):
    path = tmp_path / "generic.jsonl"
    path.write_text(
        json.dumps({"image": "a.png", "positive": "a dog", "negatives": ["a cat"]})
        + "\n"
        + "{not json\n"
        + json.dumps({"image": "b.png", "positive": "x", "negatives": []})
        + "\n"
    )
    report = ErrorReport()
    examples = load_compositional(path, on_error=report)
    assert len(examples) == 1 and report.count == 2
    assert examples[0].image == str(tmp_path / "a.png") and examples[0].category == "all"
    assert f"{path}:2:" in str(report.errors[0]) and f"{path}:3:" in str(report.errors[1])
    with pytest.raises(RecordError, match=r"generic.jsonl:2"):
        load_compositional(path, strict=True)


def test_sugarcrepe_format(tmp_path):
    folder = tmp_path / "sugarcrepe"
    folder.mkdir()
    (folder / "replace_att.json").write_text(
        json.dumps(
            {
                "0": {
                    "filename": "0001.jpg",
                    "caption": "a red bus",
                    "negative_caption": "a blue bus",
                },
                "1": {"filename": "0002.jpg", "caption": "a man", "negative_caption": "a woman"},
            }
        )
    )
    (folder / "swap_obj.json").write_text(
        json.dumps(
            {"7": {"filename": "0003.jpg", "caption": "a cat on a dog", "negative_caption": "x"}}
        )
    )
    examples = load_compositional(folder, images_dir=tmp_path / "coco")
    assert [e.category for e in examples] == ["replace-att", "replace-att", "swap-obj"]
    assert examples[0].image == str(tmp_path / "coco" / "0001.jpg")
    assert examples[0].negatives == ["a blue bus"]
    assert sugarcrepe_category("add_obj.json") == "add-obj"
    with pytest.raises(ValueError, match="images folder"):
        load_compositional(folder)


def test_subsets_are_reported_on_their_own(tmp_path):
    """``subset`` slices: the same accuracies over each slice's examples; examples without a
    slice count overall only; a malformed subset is a reported bad line."""
    pos = np.array([0.9, 0.5, 0.3, 0.8])
    neg = [np.array([0.1]), np.array([0.6]), np.array([0.2]), np.array([0.9])]
    cats = ["swap-obj", "swap-obj", "replace-att", "replace-att"]
    m = compositional_accuracy(pos, neg, cats, ["held-out", "held-out", "seen", None])
    assert m["accuracy"] == 0.5
    assert set(m["subsets"]) == {"held-out", "seen"}
    held = m["subsets"]["held-out"]
    assert held["accuracy"] == 0.5 and held["num_examples"] == 2
    assert list(held["categories"]) == ["swap-obj"]
    swap = held["categories"]["swap-obj"]
    assert (swap["accuracy"], swap["chance"], swap["count"]) == (0.5, 0.5, 2)
    assert m["subsets"]["seen"]["categories"]["replace-att"]["count"] == 1
    assert "subsets" not in compositional_accuracy(pos, neg, cats)

    path = tmp_path / "sets.jsonl"
    rows = [
        {"image": "a.png", "positive": "p", "negatives": ["n"], "subset": "held-out"},
        {"image": "a.png", "positive": "p", "negatives": ["n"], "subset": 3},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = ErrorReport()
    examples = load_compositional(path, on_error=report)
    assert [e.subset for e in examples] == ["held-out"] and report.count == 1
    assert "subset must be a string" in str(report.errors[0])


def test_negative_equal_to_the_positive_is_reported_and_skipped(tmp_path):
    path = tmp_path / "same.jsonl"
    items = [
        {"image": "a.png", "positive": "a red dog", "negatives": ["a blue dog"]},
        {"image": "b.png", "positive": "a red dog", "negatives": ["a cat", "A  red dog "]},
        {"image": "c.png", "positive": "a cat", "negatives": "a cat"},
    ]
    path.write_text("".join(json.dumps(item) + "\n" for item in items))
    report = ErrorReport()
    examples = load_compositional(path, on_error=report)
    assert [e.image for e in examples] == [str(tmp_path / "a.png")]
    assert report.count == 2
    assert str(report.errors[0]) == f"{path}:2: negatives[1] equals the positive ('A  red dog ')"
    assert str(report.errors[1]).startswith(f"{path}:3: negatives[0] equals the positive")
    with pytest.raises(RecordError, match=r"same.jsonl:2: negatives\[1\]"):
        load_compositional(path, strict=True)

    folder = tmp_path / "sugarcrepe"
    folder.mkdir()
    entries = {
        "0": {"filename": "1.jpg", "caption": "a man", "negative_caption": "A man"},
        "1": {"filename": "2.jpg", "caption": "a man", "negative_caption": "a woman"},
    }
    (folder / "replace_rel.json").write_text(json.dumps(entries))
    report = ErrorReport()
    examples = load_compositional(folder, images_dir=tmp_path, on_error=report)
    assert [e.id for e in examples] == ["1"] and report.count == 1
    assert "entry '0': negative_caption equals the caption" in str(report.errors[0])
