"""``vocab = "corpus"``: the run's word pieces only, the same tokenization of its corpus, a
checkpoint that carries its tokenizer and loads from its folder alone, wherever it lies."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
import torch

from unimo_kit.model import load_checkpoint, load_tokenizer
from unimo_kit.model.vocabulary import corpus_piece_ids, subset_tokenizer
from unimo_kit.train import load_config, train
from unimo_kit.train.data import corpus_texts


def _overrides(tiny_overrides: dict, **more) -> dict:
    return {**tiny_overrides, "steps": 3, "save_every": 10, "vocab": "corpus", **more}


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_corpus_texts_cover_every_input_file(tiny_overrides):
    config = load_config("tiny", _overrides(tiny_overrides)).resolved()
    texts = set(corpus_texts(config))
    assert "a red circle" in texts  # a caption
    assert "there is a blue square" in texts  # another caption of a pair
    assert "one red circle" in texts  # a rewritten positive
    assert "a blue circle" in texts  # a rewritten negative
    assert "the red circle is here" in texts  # the text-only corpus
    assert "star" in texts  # a retrieved text


def test_corpus_tokenizes_the_same_under_the_subset_vocab(tiny_overrides):
    config = load_config("tiny", _overrides(tiny_overrides)).resolved()
    texts = [*corpus_texts(config), "Left, of: the 2 BIG ovals!", "naïve café"]
    base = load_tokenizer()
    keep = corpus_piece_ids(base, texts)
    assert len(keep) < len(base) // 10  # specials + single characters + a few words
    sub = subset_tokenizer(base, keep)
    assert len(sub) == len(keep)
    for text in texts:
        want, got = base(text)["input_ids"], sub(text)["input_ids"]
        assert base.convert_ids_to_tokens(want) == sub.convert_ids_to_tokens(got), text
        assert [keep[i] for i in got] == want  # new id i is old id keep[i]
    # a word of no corpus text still tokenizes, spelt out (no [UNK])
    spelt = sub.tokenize("zebra")
    assert "[UNK]" not in spelt and "".join(p.removeprefix("##") for p in spelt) == "zebra"


@pytest.mark.slow
def test_corpus_vocab_checkpoint_loads_and_decodes_after_a_move(tmp_path, tiny_overrides):
    result = train(load_config("tiny", _overrides(tiny_overrides)), tmp_path / "run", resume=False)
    final = result.final
    config = json.loads((final / "config.json").read_text())
    assert config["tokenizer"] == "tokenizer"  # relative: no path of this machine
    assert config["vocab_size"] < 3000 and (final / "tokenizer" / "vocab.txt").is_file()
    moved = tmp_path / "elsewhere" / "model"
    shutil.copytree(final, moved)
    shutil.rmtree(tmp_path / "run")  # nothing of the run folder is needed any more
    model = load_checkpoint(moved)
    tok = load_tokenizer(model)
    assert len(tok) == model.config.vocab_size
    ids = tok(["a red circle"], return_tensors="pt")["input_ids"]
    assert tok.decode(ids[0], skip_special_tokens=True) == "a red circle"
    assert ids[0, 0] == model.config.cls_token_id and ids[0, -1] == model.config.sep_token_id
    with torch.no_grad():
        emb = model.encode_text(ids, torch.ones_like(ids))
        captions = model.generate(torch.randn(1, 3, 16), max_length=5)
    assert emb.shape == (1, model.config.output_dim)
    assert isinstance(tok.batch_decode(captions)[0], str)
    # the evaluation's encoder reads the moved folder alone, and embeds as the model does
    from unimo_kit.encoders.unimo import UnimoEncoder

    encoder = UnimoEncoder(moved, device="cpu", extractor="none")
    got = encoder.encode_texts(["a red circle"])
    torch.testing.assert_close(torch.from_numpy(got), emb, rtol=1e-5, atol=1e-6)
    # saved again from where it was loaded: the same files, still relative
    again = tmp_path / "again"
    from unimo_kit.model import save_checkpoint

    save_checkpoint(model, again)
    assert json.loads((again / "config.json").read_text())["tokenizer"] == "tokenizer"
    assert _sha256(again / "tokenizer" / "vocab.txt") == _sha256(moved / "tokenizer" / "vocab.txt")


@pytest.mark.slow
def test_corpus_vocab_runs_are_deterministic_and_resume(tmp_path, tiny_overrides):
    config = load_config("tiny", _overrides(tiny_overrides, save_every=2, steps=4))
    first = train(config, tmp_path / "a", resume=False)
    second = train(config, tmp_path / "b", resume=False)
    for name in ("model.safetensors", "config.json", "tokenizer/vocab.txt"):
        assert _sha256(first.final / name) == _sha256(second.final / name), name
    # stopped at step 2 and resumed: the same model as the run straight through
    train(config, tmp_path / "c", resume=False, stop_after=2)
    resumed = train(config, tmp_path / "c", resume=True)
    weights = "model.safetensors"
    assert _sha256(resumed.final / weights) == _sha256(first.final / weights)


def test_vocab_is_checked(tiny_overrides):
    with pytest.raises(ValueError, match="vocab must be one of"):
        load_config("tiny", {**tiny_overrides, "vocab": "small"})
