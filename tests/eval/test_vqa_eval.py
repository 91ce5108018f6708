"""VQA fine-tuning machinery on a tiny world with a colour extractor (fast, no CNN)."""

import json

import numpy as np
import pytest

from unimo_kit.eval.vqa import VqaConfig, VqaExample, question_type, read_vqa_jsonl, train_vqa
from unimo_kit.utils import RecordError

RGB = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220), "gray": (128,) * 3}


class ColourExtractor:
    """One visual token per image: a one-hot of its nearest colour (x4); a fixed box."""

    name = "colour"
    tokens = 1
    dim = 4

    def preprocess(self, image):
        import torch

        pixel = np.asarray(image.convert("RGB"), dtype=np.float32)[0, 0]
        nearest = np.argmin([np.abs(pixel - np.array(c)).sum() for c in RGB.values()])
        return 4.0 * torch.nn.functional.one_hot(torch.tensor(nearest), 4).float()  # (4,)

    def __call__(self, pixels):
        from unimo_kit.features import VisualFeatures

        box = np.array([[0, 0, 1, 1, 1]], dtype=np.float32)
        return [VisualFeatures(p.numpy()[None], box) for p in pixels]


@pytest.fixture(scope="module")
def colour_vqa(tmp_path_factory):
    """24 one-colour images; a colour question on each (answer from the image only) and a
    yes/no question (answer from the question only: 'is it a shape' vs 'is it a word')."""
    from PIL import Image

    root = tmp_path_factory.mktemp("vqa")
    train, test = [], []
    for i in range(24):
        color = list(RGB)[i % 4]
        path = root / f"{i}.png"
        Image.new("RGB", (16, 16), RGB[color]).save(path)
        qs = [
            VqaExample(str(path), "what color is the shape?", color),
            VqaExample(
                str(path),
                "is there a shape?" if i % 3 else "is there a word?",
                "yes" if i % 3 else "no",
            ),
        ]
        (train if i < 16 else test).extend(qs)
    return train, test


SMALL = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
}


def test_vqa_learns_colours(colour_vqa):
    train, test = colour_vqa
    config = VqaConfig(
        epochs=30,
        batch_size=4,
        lr=3e-3,
        seed=0,
        head_hidden=64,
        threads=1,
        model_overrides=SMALL,
        keep_predictions=True,
    )
    result = train_vqa(train, test, config, progress=False, extractor=ColourExtractor())
    right = [p == ex.answer for p, ex in zip(result["predictions"], test, strict=True)]
    assert sum(right) / len(test) == pytest.approx(result["accuracy"])
    assert result["num_train"] == 32 and result["num_test"] == 16
    assert result["answers"] == sorted({"blue", "gray", "green", "red", "no", "yes"})
    assert result["count_by_type"] == {"color": 8, "yes/no": 8}
    # test answers: colours 2 each; yes 6 (i = 16, 17, 19, 20, 22, 23), no 2 (i = 18, 21)
    assert result["majority_baseline"] == pytest.approx(6 / 16)
    assert result["train_loss"][-1] < result["train_loss"][0]
    # colour questions need the image (chance 0.25); yes/no ones only the question
    assert result["accuracy_by_type"]["color"] >= 0.75, result
    assert result["accuracy_by_type"]["yes/no"] == 1.0, result
    assert result["cpu_seconds"] > 0 and result["total_seconds"] >= result["train_seconds"]


def test_vqa_is_deterministic(colour_vqa):
    train, test = colour_vqa
    config = VqaConfig(epochs=2, batch_size=8, seed=3, threads=1, model_overrides=SMALL)
    a = train_vqa(train, test, config, progress=False, extractor=ColourExtractor())
    b = train_vqa(train, test, config, progress=False, extractor=ColourExtractor())
    assert a["train_loss"] == b["train_loss"] and a["accuracy"] == b["accuracy"]


def test_question_types():
    assert question_type("what color is the shape?") == "color"
    assert question_type("what is the blue shape?") == "shape"
    assert question_type("does the image not contain a circle?") == "yes/no"
    assert question_type("is there a red shape?") == "yes/no"


def test_read_vqa_jsonl(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text(
        json.dumps({"image": "a.png", "question": "q?", "answer": "yes"})
        + "\n"
        + json.dumps({"image": "a.png", "question": "q?"})
        + "\n"
    )
    examples = read_vqa_jsonl(path)
    assert len(examples) == 1 and examples[0].image == str(tmp_path / "a.png")
    with pytest.raises(
        RecordError, match=r"q.jsonl:2: missing or non-string field\(s\) \['answer'\]"
    ):
        read_vqa_jsonl(path, strict=True)


def test_unknown_vqa_extractor_is_refused(colour_vqa):
    train, test = colour_vqa
    with pytest.raises(ValueError, match="effnet-ms"):
        train_vqa(train, test, VqaConfig(extractor="resnet"), progress=False)


def test_extractor_choice_and_checkpoint_dim_are_checked_before_extraction(tmp_path):
    from unimo_kit.cli.eval_vqa import vqa
    from unimo_kit.eval.errors import EvalError
    from unimo_kit.eval.vqa import VQA_EXTRACTORS, _check_checkpoint_dim, _vqa_extractor

    option = next(p for p in vqa.params if p.name == "extractor")
    assert tuple(option.type.choices) == VQA_EXTRACTORS
    (tmp_path / "config.json").write_text(json.dumps({"visual_feat_dim": 1432}))
    _check_checkpoint_dim(str(tmp_path), 1432, "effnet-ms")
    with pytest.raises(EvalError, match=r"takes 1432-d visual features.*try --extractor effnet-ms"):
        _check_checkpoint_dim(str(tmp_path), 1280, "effnet")
    assert _vqa_extractor(VqaConfig()) == "effnet"
    assert _vqa_extractor(VqaConfig(extractor="effnet-ms")) == "effnet-ms"


def test_product_fusion_trains_and_bad_fusion_is_refused(colour_vqa):
    train, test = colour_vqa
    config = VqaConfig(epochs=1, batch_size=8, threads=1, model_overrides=SMALL, fusion="product")
    result = train_vqa(train, test, config, progress=False, extractor=ColourExtractor())
    assert result["config"]["fusion"] == "product" and 0 <= result["accuracy"] <= 1
    with pytest.raises(ValueError, match="fusion must be one of"):
        train_vqa(train, test, VqaConfig(fusion="sum"), progress=False, extractor=ColourExtractor())
