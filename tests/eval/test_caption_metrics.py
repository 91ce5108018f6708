"""Caption metrics against hand-computed values and an independent CIDEr-D implementation."""

import math
from collections import Counter

import pytest

from unimo_kit.eval.caption import caption_metrics, simple_tokenize


def ngrams(words, n):
    return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def cider_d(hyps, refs, n_max=4, sigma=6.0):
    """CIDEr-D (Vedantam et al., 2015, as in the COCO evaluation code), written from the paper."""
    ids = list(hyps)
    num_docs = len(ids)
    df = Counter()
    for i in ids:
        seen = set()
        for r in refs[i]:
            for n in range(1, n_max + 1):
                seen |= set(ngrams(r.split(), n))
        df.update(seen)

    def vec(words, n):
        return {
            g: c * (math.log(num_docs) - math.log(max(1.0, df[g])))
            for g, c in ngrams(words, n).items()
        }

    scores = []
    for i in ids:
        h = hyps[i].split()
        total = 0.0
        for n in range(1, n_max + 1):
            vh = vec(h, n)
            for r in refs[i]:
                vr = vec(r.split(), n)
                dot = sum(min(vh[g], vr.get(g, 0.0)) * vr.get(g, 0.0) for g in vh)
                nh = math.sqrt(sum(v * v for v in vh.values()))
                nr = math.sqrt(sum(v * v for v in vr.values()))
                cos = dot / (nh * nr) if nh and nr else dot
                delta = len(h) - len(r.split())
                total += cos * math.exp(-(delta**2) / (2 * sigma**2)) / len(refs[i])
        scores.append(10.0 * total / n_max)
    return sum(scores) / len(scores)


def test_identical_captions_score_one():
    refs = {"a": ["a red circle left of a blue square"], "b": ["two green stars above a box"]}
    hyps = {k: v[0] for k, v in refs.items()}
    m = caption_metrics(hyps, refs, tokenizer="simple", meteor="no")
    assert m["bleu4"] == pytest.approx(1.0, abs=1e-6)
    assert m["bleu1"] == pytest.approx(1.0, abs=1e-6)
    assert m["rouge_l"] == pytest.approx(1.0)


def test_rouge_l_hand_computed():
    # LCS("a b c d", "a c d e") = "a c d" = 3 -> P = R = 3/4 -> F_beta = 0.75 for any beta
    m = caption_metrics({"x": "a b c d"}, {"x": ["a c d e"]}, tokenizer="simple", meteor="no")
    assert m["rouge_l"] == pytest.approx(0.75)


def test_bleu1_hand_computed():
    # hyp "the cat the cat" vs ref "the cat sat on the mat": clipped unigram matches:
    # the: min(2, 2) = 2, cat: min(2, 1) = 1 -> 3/4; brevity penalty exp(1 - 6/4)
    m = caption_metrics(
        {"x": "the cat the cat"}, {"x": ["the cat sat on the mat"]}, tokenizer="simple", meteor="no"
    )
    assert m["bleu1"] == pytest.approx(0.75 * math.exp(1 - 6 / 4), rel=1e-6)


def test_cider_matches_independent_implementation():
    refs = {
        "1": ["a red circle left of a blue square", "a red circle next to a square"],
        "2": ["two green stars above a yellow box", "green stars over a box"],
        "3": ["a small gray triangle", "one gray triangle in the middle"],
    }
    hyps = {
        "1": "a red circle next to a blue box",
        "2": "two stars above a box",
        "3": "a gray circle",
    }
    m = caption_metrics(hyps, refs, tokenizer="simple", meteor="no")
    assert m["cider"] == pytest.approx(cider_d(hyps, refs), rel=1e-9)
    assert m["cider"] > 0


def test_simple_tokenize():
    assert simple_tokenize("A red, round Circle.") == "a red round circle"


def test_mismatched_ids_raise():
    with pytest.raises(ValueError, match="different images"):
        caption_metrics({"a": "x"}, {"b": ["x"]}, tokenizer="simple", meteor="no")


@pytest.mark.parametrize("tokenizer", ["simple", "ptb"])
def test_reference_without_words_names_the_image(tokenizer):
    if tokenizer == "ptb":
        from unimo_kit.eval.caption import java_available

        if not java_available():
            pytest.skip("the PTB tokenizer needs Java")
    hyps, refs = {"a": "a dog"}, {"a": ["..."]}
    with pytest.raises(ValueError, match=r"^image 'a': no reference caption has a word") as info:
        caption_metrics(hyps, refs, tokenizer=tokenizer, meteor="no")
    assert "['...']" in str(info.value) and "\n" not in str(info.value)
    # the other images' references are fine: still named (it would score 0 silently)
    hyps, refs = {"a": "a dog", "b": "a cat"}, {"a": ["a cat"], "b": [" ! ", "?"]}
    with pytest.raises(ValueError, match=r"^image 'b'"):
        caption_metrics(hyps, refs, tokenizer=tokenizer, meteor="no")
    # an empty reference next to a real one is fine
    refs = {"a": ["a dog", "..."], "b": ["a cat"]}
    assert caption_metrics(hyps, refs, tokenizer=tokenizer, meteor="no")["bleu1"] > 0.99


def test_evaluate_captioning_names_an_image_without_words_before_generating(tiny_world, tmp_path):
    import json

    from unimo_kit.eval.caption import evaluate_captioning

    records = [json.loads(line) for line in (tiny_world / "pairs.test.jsonl").open()]
    records[2]["captions"] = ["...", "--"]
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in records))
    # no checkpoint is needed: the references are checked before the model is loaded
    with pytest.raises(ValueError, match=r"image 'img-002' \(.*img-002\.png\): no reference"):
        evaluate_captioning(tmp_path / "missing", pairs, tokenizer="simple", meteor="no")


@pytest.mark.parametrize("beams", [1, 2])
def test_evaluate_captioning_end_to_end(tiny_world, tiny_checkpoint, beams):
    import torch

    from unimo_kit.eval.caption import evaluate_captioning, generate_captions
    from unimo_kit.model import load_checkpoint

    result = evaluate_captioning(
        tiny_checkpoint,
        tiny_world / "pairs.test.jsonl",
        features=str(tiny_world / "features"),
        num_beams=beams,
        max_length=6,
        tokenizer="simple",
        meteor="no",
        device="cpu",
        progress=False,
    )
    assert result["num_images"] == 6 and len(result["predictions"]) == 6
    assert {"bleu4", "rouge_l", "cider"} <= set(result) and "meteor" not in result
    assert result["predictions"][0]["references"] == ["a red square", "the square is red"]
    # the captions are the model's own greedy / beam output, decoded
    model = load_checkpoint(tiny_checkpoint)
    torch.manual_seed(0)
    again = generate_captions(
        model,
        [str(tiny_world / "images" / "img-000.png")],
        features=_store(tiny_world),
        num_beams=beams,
        max_length=6,
        progress=False,
    )
    assert again[0] == result["predictions"][0]["caption"]


def _store(world):
    from unimo_kit.features import FeatureStore

    return FeatureStore(world / "features")


def test_caption_cli(tiny_world, tiny_checkpoint, tmp_path):
    import json

    from click.testing import CliRunner

    from unimo_kit.cli.main import cli

    out, preds = tmp_path / "c.json", tmp_path / "p.jsonl"
    result = CliRunner().invoke(
        cli,
        [
            "eval",
            "caption",
            "--checkpoint",
            str(tiny_checkpoint),
            "--references",
            str(tiny_world / "pairs.test.jsonl"),
            "--features",
            str(tiny_world / "features"),
            "--max-length",
            "5",
            "--meteor",
            "no",
            "--tokenizer",
            "simple",
            "--predictions",
            str(preds),
            "-o",
            str(out),
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "cider=" in result.output
    assert len(preds.read_text().splitlines()) == 6
    assert json.loads(out.read_text())["num_images"] == 6
