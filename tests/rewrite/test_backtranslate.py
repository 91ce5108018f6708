"""Back-translation with tiny random seq2seq models built in the test (MarianMT architecture,
a BertTokenizerFast from a small vocabulary file, since MarianTokenizer needs sentencepiece)."""

from __future__ import annotations

import json
import pickle

import pytest

pytest.importorskip("transformers")

WORDS = [
    "a",
    "an",
    "the",
    "red",
    "blue",
    "green",
    "circle",
    "square",
    "star",
    "left",
    "right",
    "of",
    "above",
    "below",
    "is",
]


def _tiny_model(folder, seed: int) -> str:
    import torch
    from transformers import BertTokenizerFast, MarianConfig, MarianMTModel

    folder.mkdir()
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    tokenizer = BertTokenizerFast(vocab={t: i for i, t in enumerate(tokens)}, do_lower_case=True)
    assert len(tokenizer) == len(tokens)
    config = MarianConfig(
        vocab_size=len(tokenizer), d_model=16, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
        decoder_ffn_dim=32, max_position_embeddings=128, pad_token_id=0, eos_token_id=3,
        decoder_start_token_id=2, forced_eos_token_id=None,
    )  # fmt: skip
    torch.manual_seed(seed)
    model = MarianMTModel(config)
    # a random model tends to emit special tokens only: make it say words
    model.generation_config.suppress_tokens = [0, 1, 2, 3, 4]
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("bt")
    return _tiny_model(root / "fwd", 0), _tiny_model(root / "bwd", 1)


def test_back_translation_is_deterministic_and_picklable(models):
    from unimo_kit.rewrite.backtranslate import BackTranslator

    translator = BackTranslator(*models, device="cpu", max_length=8, batch_size=2)
    texts = ["a red circle above a blue square", "the star", "green"]
    first = translator(texts)
    assert len(first) == 3 and all(isinstance(t, str) for t in first) and any(first)
    assert all(set(t.split()) <= set(WORDS) for t in first)  # decoded from the vocabulary
    assert translator(texts) == first
    clone = pickle.loads(pickle.dumps(translator))
    assert clone._models == {} and clone(texts) == first
    assert translator([]) == []


def test_missing_folder():
    from unimo_kit.rewrite.backtranslate import BackTranslator

    with pytest.raises(FileNotFoundError, match="not found"):
        BackTranslator("/nonexistent/fwd", "/nonexistent/bwd")


@pytest.mark.slow
def test_stage_adds_back_translation_positives(models, tmp_path, parser):
    from unimo_kit.rewrite.backtranslate import BackTranslator
    from unimo_kit.rewrite.pipeline import rewrite_file

    pairs = tmp_path / "pairs.jsonl"
    captions = ["a red circle above a blue square", "the star is green"]
    pairs.write_text(json.dumps({"id": "p", "image": "p.png", "captions": captions}) + "\n")
    out = tmp_path / "out.jsonl"
    rewrite_file(pairs, out, back_translation=models, progress=False)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    expected = BackTranslator(*models, device="cpu")(captions)
    for line, text in zip(lines, expected, strict=True):
        got = [p["text"] for p in line["positives"] if p["type"] == "back-translation"]
        assert got == ([text] if text.strip() and text != line["caption"] else [])
