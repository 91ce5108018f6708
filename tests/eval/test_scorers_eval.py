"""Scorers: unimo checkpoint (features store and on-the-fly), open_clip with random weights;
retrieval through a scorer matches the model's own encoders."""

import json

import numpy as np
import pytest

from unimo_kit.eval.errors import EvalError
from unimo_kit.eval.retrieval import evaluate_retrieval, retrieval_metrics
from unimo_kit.eval.scorers import OpenClipScorer, Scorer, UnimoScorer


@pytest.fixture(scope="module")
def unimo_scorer(tiny_checkpoint, tiny_world):
    return UnimoScorer(tiny_checkpoint, tiny_world / "features", device="cpu")


def test_unimo_scorer_matches_model_encoders(unimo_scorer, tiny_world):
    import torch

    from unimo_kit.features import FeatureStore

    assert isinstance(unimo_scorer, Scorer)
    texts = ["a red square", "the square is very very blue indeed", "x"]
    z = unimo_scorer.encode_texts(texts)
    assert z.shape == (3, 64) and z.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1, atol=1e-5)
    model, tok = unimo_scorer.model, unimo_scorer.tokenizer
    with torch.no_grad():  # one text at a time (no padding): same as the sorted batches
        for i, t in enumerate(texts):
            enc = tok([t], return_tensors="pt")
            ref = model.encode_text(enc["input_ids"], enc["attention_mask"])[0].numpy()
            np.testing.assert_allclose(z[i], ref, atol=1e-5)
    store = FeatureStore(tiny_world / "features")
    path = str(tiny_world / "images" / "img-002.png")
    v = unimo_scorer.encode_images([path])
    item = store["img-002"]
    with torch.no_grad():
        ref = model.encode_image(
            torch.from_numpy(item["feats"])[None], torch.from_numpy(item["boxes"])[None]
        )[0].numpy()
    np.testing.assert_allclose(v[0], ref, atol=1e-5)


def test_evaluate_retrieval_equals_metrics_on_embeddings(unimo_scorer, tiny_world):
    result = evaluate_retrieval(unimo_scorer, str(tiny_world / "pairs.test.jsonl"))
    pairs = [
        json.loads(line) for line in (tiny_world / "pairs.test.jsonl").read_text().splitlines()
    ]
    images = [str(tiny_world / p["image"]) for p in pairs]
    texts = [c for p in pairs for c in p["captions"]]
    owners = np.repeat(np.arange(len(pairs)), 2)
    want = retrieval_metrics(
        unimo_scorer.encode_images(images), unimo_scorer.encode_texts(texts), owners
    )
    assert result["num_images"] == 6 and result["num_texts"] == 12
    assert result["num_shared_captions"] == 0
    for key in ("i2t_r1", "t2i_r5", "rsum", "t2i_medr"):
        assert result[key] == want[key]


def test_missing_image_in_store_is_named(unimo_scorer, tmp_path):
    with pytest.raises(KeyError, match="nope"):
        unimo_scorer.encode_images([str(tmp_path / "nope.png")])


def test_feature_dim_mismatch_is_clear(tiny_checkpoint, tiny_world):
    scorer = UnimoScorer(tiny_checkpoint, extractor="effnet-random", device="cpu")
    with pytest.raises(EvalError, match=r"1280-d visual features .* visual_feat_dim=16"):
        scorer.encode_images([str(tiny_world / "images" / "img-000.png")])


@pytest.mark.parametrize("trained_on", ["effnet-random", "test"])
def test_a_store_of_another_extractor_than_training_is_warned_about(
    trained_on, tiny_checkpoint, tiny_world, tmp_path, caplog
):
    """Same dimension, other extractor (effnet vs effnet-random, two 768-d CLIPs): scored,
    with one warning naming both; the extractor the run trained on: no warning."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_checkpoint, run / "final")
    train_store = tmp_path / "train-features"
    train_store.mkdir()
    (train_store / "meta.json").write_text(json.dumps({"extractor": trained_on, "dim": 16}))
    (run / "config.json").write_text(json.dumps({"steps": 1, "features": str(train_store)}))
    with caplog.at_level("WARNING", logger="unimo_kit.eval.scorers"):
        scorer = UnimoScorer(run / "final", tiny_world / "features", device="cpu")
    assert scorer.features is not None  # not refused
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    if trained_on == "test":  # the store's own extractor
        assert not warnings
    else:
        assert len(warnings) == 1 and "\n" not in warnings[0]
        assert "trained on effnet-random features" in warnings[0]
        assert "holds test features" in warnings[0]


def test_on_the_fly_extraction_matches_extractor(tmp_path, tiny_world):
    import torch

    from unimo_kit.eval.visual import extract_images
    from unimo_kit.features import build_extractor
    from unimo_kit.model import create_model

    torch.manual_seed(0)
    model = create_model("unimo-tiny")  # visual_feat_dim 1280 = EfficientNet-Lite0
    extractor = build_extractor("effnet-random", device="cpu")
    scorer = UnimoScorer(model, extractor=extractor, device="cpu")
    paths = [str(tiny_world / "images" / f"img-00{i}.png") for i in range(3)]
    got = scorer.encode_images(paths)
    feats, boxes, mask = extract_images(extractor, paths)
    assert feats.shape == (3, 49, 1280) and mask.all()
    with torch.no_grad():
        want = model.encode_image(torch.from_numpy(feats), torch.from_numpy(boxes)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_on_the_fly_scoring_extracts_each_image_once(tiny_world):
    """Without a features store, the generative score reads each distinct image once per call
    (a compositional item repeats its image for every caption) and equals pair-by-pair
    scoring."""
    import torch

    from unimo_kit.features import build_extractor
    from unimo_kit.model import create_model

    torch.manual_seed(0)
    model = create_model("unimo-tiny")
    extractor = build_extractor("effnet-random", device="cpu")
    seen: list[int] = []

    class Counting:
        dim, preprocess = extractor.dim, extractor.preprocess

        def __call__(self, pixels):
            seen.append(len(pixels))
            return extractor(pixels)

    scorer = UnimoScorer(model, extractor=Counting(), device="cpu", batch_size=4)
    paths = [str(tiny_world / "images" / f"img-00{i}.png") for i in range(3)]
    images = [paths[0], paths[1], paths[0], paths[2], paths[1], paths[0]]
    texts = ["a red square", "a blue circle", "a blue square", "x", "a red circle", "red"]
    got = scorer.caption_log_likelihood(images, texts)
    assert sum(seen) == 3
    pairs = zip(images, texts, strict=True)
    want = [scorer.caption_log_likelihood([im], [t])[0] for im, t in pairs]
    np.testing.assert_allclose(got, want, atol=1e-4)


@pytest.fixture(scope="module")
def random_open_clip(tmp_path_factory):
    """A tiny open_clip model with random weights from a custom config (no download)."""
    import open_clip
    import torch

    folder = tmp_path_factory.mktemp("oc_cfg")
    config = {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 16},
        "text_cfg": {
            "context_length": 77,
            "vocab_size": 49408,
            "width": 32,
            "heads": 2,
            "layers": 1,
        },
    }
    (folder / "unimo-test-clip.json").write_text(json.dumps(config))
    open_clip.add_model_config(folder)
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms("unimo-test-clip")
    return model, preprocess, open_clip.get_tokenizer("unimo-test-clip")


def test_open_clip_scorer_random_weights(random_open_clip, tiny_world):
    from unimo_kit.eval.compositional import evaluate_compositional, load_compositional

    scorer = OpenClipScorer.from_model(*random_open_clip, name="open_clip:random")
    z = scorer.encode_texts(["a red square", "a blue square"])
    assert z.shape == (2, 32)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1, atol=1e-5)
    examples = load_compositional(tiny_world / "compositional.test.jsonl")
    result = evaluate_compositional(scorer, examples)
    assert 0.0 <= result["accuracy"] <= 1.0 and result["scorer"] == "open_clip:random"
    # the same model scored by hand
    pos = scorer.encode_texts([e.positive for e in examples])
    neg = scorer.encode_texts([e.negatives[0] for e in examples])
    img = scorer.encode_images([e.image for e in examples])
    want = np.mean((pos * img).sum(1) > (neg * img).sum(1))
    assert result["accuracy"] == pytest.approx(want)


def test_open_clip_spec_without_weights_is_clear():
    from unimo_kit.resources import ResourceNotFound

    with pytest.raises(ResourceNotFound, match=r"could not be loaded|no model"):
        OpenClipScorer("ViT-B-32:/nonexistent/weights.bin", device="cpu")


class FakeSentenceTransformer:
    """Stands in for a sentence-transformers CLIP: texts and PIL images through one encode."""

    def encode(self, items, batch_size=32, convert_to_numpy=True, **kwargs):
        from PIL import Image

        out = []
        for item in items:
            if isinstance(item, Image.Image):
                out.append(np.asarray(item, dtype=np.float32)[0, 0] + 1.0)  # (3,) pixel colour
            else:
                out.append(np.array([len(item), 1.0, 2.0], dtype=np.float32))
        return np.stack(out)


def test_sentence_transformer_scorer_contract(tiny_world):
    from unimo_kit.eval.scorers import SentenceTransformerClipScorer

    scorer = SentenceTransformerClipScorer(FakeSentenceTransformer(), batch_size=2)
    images = [str(tiny_world / "images" / f"img-00{i}.png") for i in range(3)]
    z = scorer.encode_images(images)
    assert z.shape == (3, 3)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1, atol=1e-6)
    red = np.array([221.0, 31.0, 31.0])
    np.testing.assert_allclose(z[0], red / np.linalg.norm(red), atol=1e-6)
    assert scorer.encode_texts(["ab", "abc"]).shape == (2, 3)


def test_caption_log_likelihood_is_teacher_forced_seq2seq(unimo_scorer, tiny_world):
    """The generative score of (image, caption) equals the per-token log-probabilities read
    off one seq2seq forward pass of that pair alone; batching and sorting do not change it."""
    import torch
    import torch.nn.functional as F

    from unimo_kit.features import FeatureStore

    images = [str(tiny_world / "images" / f"img-00{i}.png") for i in (2, 3, 2)]
    texts = ["a red square", "the square is very very blue indeed", "x"]
    total = unimo_scorer.caption_log_likelihood(images, texts)
    mean = unimo_scorer.caption_log_likelihood(images, texts, per_token=True)
    model, tok = unimo_scorer.model, unimo_scorer.tokenizer
    store = FeatureStore(tiny_world / "features")
    for i, (image, text) in enumerate(zip(images, texts, strict=True)):
        item = store[image.rsplit("/", 1)[1][:-4]]
        ids = tok([text], return_tensors="pt")["input_ids"]  # [CLS] ... [SEP]
        with torch.no_grad():
            out = model(
                input_ids=ids,
                visual_feats=torch.from_numpy(item["feats"])[None],
                visual_boxes=torch.from_numpy(item["boxes"])[None],
                mode="seq2seq",
            )
            logp = F.log_softmax(model.lm_logits(out["text_hidden"][0, :-1]), dim=-1)
            want = logp.gather(1, ids[0, 1:, None]).sum().item()
        assert total[i] == pytest.approx(want, abs=1e-4)
        assert mean[i] == pytest.approx(want / (ids.shape[1] - 1), abs=1e-5)
    with pytest.raises(ValueError, match="2 images but 3 texts"):
        unimo_scorer.caption_log_likelihood(images[:2], texts)


def test_generative_compositional_scoring_needs_a_unimo_model(unimo_scorer, tiny_world):
    from unimo_kit.eval.compositional import evaluate_compositional, load_compositional

    examples = load_compositional(tiny_world / "compositional.test.jsonl")
    result = evaluate_compositional(unimo_scorer, examples, score="generative")
    assert result["score"] == "generative" and result["num_examples"] == len(examples)

    class EmbeddingsOnly:
        name = "clip"

    with pytest.raises(EvalError, match="generative scoring needs a unimo checkpoint"):
        evaluate_compositional(EmbeddingsOnly(), examples, score="generative")


def test_token_alignment_scores_are_the_models_word_region_match(unimo_scorer, tiny_world):
    """The token score of (image, text) equals the model's word-to-region match computed by
    hand; compositional scoring with it needs a unimo checkpoint trained with it."""
    import torch

    from unimo_kit.eval.compositional import evaluate_compositional, load_compositional
    from unimo_kit.model.token_alignment import paired_token_similarity

    examples = load_compositional(tiny_world / "compositional.test.jsonl")
    images = [ex.image for ex in examples[:3]]
    texts = [ex.positive for ex in examples[:3]]
    scores = unimo_scorer.token_alignment_scores(images, texts)
    model = unimo_scorer.model
    for i in range(3):
        feats, boxes, mask = (torch.from_numpy(x) for x in unimo_scorer.visual_tokens([images[i]]))
        enc = unimo_scorer.tokenizer([texts[i]], return_tensors="pt")
        with torch.no_grad():
            _, regions, rvalid = model.encode_image_tokens(feats.float(), boxes, mask)
            _, words, wvalid = model.encode_text_tokens(enc["input_ids"], enc["attention_mask"])
        want = paired_token_similarity(words, wvalid, regions, rvalid).item()
        assert scores[i] == pytest.approx(want, abs=1e-5)
    assert unimo_scorer.trained_with("token_alignment") is None  # no run config: unknown, runs
    result = evaluate_compositional(unimo_scorer, examples, score="token")
    assert result["score"] == "token" and result["num_examples"] == len(examples)

    class EmbeddingsOnly:
        name = "clip"

    with pytest.raises(EvalError, match="token scoring needs a unimo checkpoint"):
        evaluate_compositional(EmbeddingsOnly(), examples, score="token")
    with pytest.raises(ValueError, match="2 images but 3 texts"):
        unimo_scorer.token_alignment_scores(images[:2], texts)


def test_matching_scores_are_the_models_matching_logits(tiny_world, tmp_path):
    """The matching score of (image, text) is the model's matching logit on their joint
    encoding; a checkpoint without a matching head is refused with a clear message."""
    import torch

    from unimo_kit.eval.compositional import evaluate_compositional, load_compositional
    from unimo_kit.model import create_model, save_checkpoint

    torch.manual_seed(0)
    model = create_model("unimo-tiny", visual_feat_dim=16, matching_head=True)
    save_checkpoint(model, tmp_path / "itm")
    scorer = UnimoScorer(tmp_path / "itm", tiny_world / "features", device="cpu", batch_size=2)
    examples = load_compositional(tiny_world / "compositional.test.jsonl")
    images = [ex.image for ex in examples[:3]] + [examples[0].image]
    texts = [ex.positive for ex in examples[:3]] + ["a much longer text about a green square"]
    scores = scorer.matching_scores(images, texts)
    for i in range(4):
        feats, boxes, mask = (torch.from_numpy(x) for x in scorer.visual_tokens([images[i]]))
        enc = scorer.tokenizer([texts[i]], return_tensors="pt")
        with torch.no_grad():
            want = scorer.model.match_logits(
                enc["input_ids"], enc["attention_mask"], feats.float(), boxes, mask
            )
        assert scores[i] == pytest.approx(want.item(), abs=1e-5)
    result = evaluate_compositional(scorer, examples, score="matching")
    assert result["score"] == "matching" and result["num_examples"] == len(examples)

    save_checkpoint(create_model("unimo-tiny", visual_feat_dim=16), tmp_path / "plain")
    plain = UnimoScorer(tmp_path / "plain", tiny_world / "features", device="cpu")
    with pytest.raises(EvalError, match="no matching head: it was not trained with itm"):
        evaluate_compositional(plain, examples, score="matching")
    (tmp_path / "config.json").write_text(json.dumps({"steps": 10, "itm": False}))
    with pytest.raises(EvalError, match="trained without the itm objective"):
        evaluate_compositional(plain, examples, score="matching")
