"""A model cut to a corpus vocabulary computes what the full model computes on the pieces it
keeps; checkpoints with the full vocabulary stay as they were."""

from __future__ import annotations

import json

import pytest
import torch

from unimo_kit.model import create_model, load_checkpoint, load_tokenizer, save_checkpoint
from unimo_kit.model.vocabulary import (
    corpus_piece_ids,
    restrict_vocabulary,
    subset_tokenizer,
    write_tokenizer_folder,
)

TEXTS = ["a red circle left of a blue square", "two green stars above a yellow heart"]


def test_restricted_model_equals_the_full_model_on_the_kept_pieces(tmp_path, tokenizer):
    torch.manual_seed(0)
    full = create_model("unimo-tiny", visual_feat_dim=16).eval()
    keep = corpus_piece_ids(tokenizer, TEXTS)
    small = create_model("unimo-tiny", visual_feat_dim=16).eval()
    small.load_state_dict(full.state_dict())
    restrict_vocabulary(small, keep, str(write_tokenizer_folder(tokenizer, keep, tmp_path)))
    sub = load_tokenizer(small)
    want = tokenizer(TEXTS, padding=True, return_tensors="pt")
    got = sub(TEXTS, padding=True, return_tensors="pt")
    assert torch.equal(torch.as_tensor(keep)[got["input_ids"]], want["input_ids"])
    assert small.embeddings.word_embeddings.weight.shape == (len(keep), full.config.hidden_size)
    with torch.no_grad():
        h_full = full(input_ids=want["input_ids"], attention_mask=want["attention_mask"])
        h_small = small(input_ids=got["input_ids"], attention_mask=got["attention_mask"])
        torch.testing.assert_close(h_small["hidden"], h_full["hidden"])
        logits_full = full.lm_logits(h_full["hidden"])[..., keep]  # the kept columns
        torch.testing.assert_close(small.lm_logits(h_small["hidden"]), logits_full)
    for name in ("pad", "cls", "sep", "mask"):
        old, new = (
            getattr(full.config, f"{name}_token_id"),
            getattr(small.config, f"{name}_token_id"),
        )
        assert keep[new] == old, name


def test_restrict_vocabulary_refuses_a_vocabulary_without_special_tokens():
    model = create_model("unimo-tiny", visual_feat_dim=16)
    with pytest.raises(ValueError, match="special token"):
        restrict_vocabulary(model, [0, 101, 102, 2000], "x")  # no [MASK] (103)
    with pytest.raises(ValueError, match="ascending"):
        restrict_vocabulary(model, [0, 103, 101, 102], "x")


def test_full_vocab_checkpoint_is_as_before(tmp_path):
    """A full-vocabulary model saves no tokenizer folder and names the packaged tokenizer,
    as checkpoints always did, and loads with the 30,522-piece tokenizer."""
    model = create_model("unimo-tiny", visual_feat_dim=16)
    folder = save_checkpoint(model, tmp_path / "ckpt")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    assert config["tokenizer"] == "minilm" and config["vocab_size"] == 30522
    loaded = load_checkpoint(folder)
    assert loaded.config.tokenizer == "minilm" and len(load_tokenizer(loaded)) == 30522


def test_checkpoint_without_its_tokenizer_folder_is_explained(tmp_path, tokenizer):
    model = create_model("unimo-tiny", visual_feat_dim=16)
    keep = corpus_piece_ids(tokenizer, TEXTS)
    restrict_vocabulary(model, keep, str(write_tokenizer_folder(tokenizer, keep, tmp_path / "t")))
    folder = save_checkpoint(model, tmp_path / "ckpt")
    assert (folder / "tokenizer" / "vocab.txt").read_text() == (
        tmp_path / "t" / "vocab.txt"
    ).read_text()
    for path in (folder / "tokenizer").iterdir():
        path.unlink()
    (folder / "tokenizer").rmdir()
    with pytest.raises(FileNotFoundError, match="tokenizer"):
        load_tokenizer(load_checkpoint(folder))


def test_subset_tokenizer_decodes(tokenizer):
    sub = subset_tokenizer(tokenizer, corpus_piece_ids(tokenizer, TEXTS))
    ids = sub(TEXTS[0])["input_ids"]
    assert sub.decode(ids, skip_special_tokens=True) == TEXTS[0]
