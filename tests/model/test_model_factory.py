"""Presets, BERT weight loading (equivalence with transformers' BertModel), tokenizer and
safetensors checkpoints."""

from __future__ import annotations

import json

import pytest
import torch

from unimo_kit.model import (
    UnimoConfig,
    create_model,
    list_presets,
    load_checkpoint,
    save_checkpoint,
)

SENTENCES = [
    "a red circle to the left of a blue square",
    "hello",
    "two small green triangles are above the large yellow ellipse , and nothing else .",
]


def test_presets_listed_and_build():
    assert {"unimo-tiny", "unimo-minilm"} <= set(list_presets())
    model = create_model("unimo-tiny", visual_feat_dim=8)
    cfg = model.config
    assert (cfg.name, cfg.hidden_size, cfg.num_hidden_layers, cfg.visual_feat_dim) == (
        "unimo-tiny",
        64,
        2,
        8,
    )
    assert model.embeddings.word_embeddings.num_embeddings == 30522


def test_minilm_preset_matches_the_packaged_bert():
    from unimo_kit.model import get_config
    from unimo_kit.resources import minilm_path

    cfg = get_config("unimo-minilm")
    bert = json.loads((minilm_path() / "config.json").read_text())
    assert cfg.init_from == "minilm"
    for key in (
        "vocab_size",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "max_position_embeddings",
        "layer_norm_eps",
    ):
        assert getattr(cfg, key) == bert[key], key


def test_config_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown UnimoConfig fields"):
        create_model("unimo-tiny", hidden_sise=3)
    with pytest.raises(ValueError, match="not a preset"):
        create_model("unimo-huge")
    with pytest.raises(ValueError, match="multiple"):
        UnimoConfig(hidden_size=10, num_attention_heads=3)
    path = tmp_path / "my.json"
    path.write_text(json.dumps({"hidden_size": 32, "num_attention_heads": 4, "init_from": None}))
    model = create_model(path, num_hidden_layers=1)
    assert (model.config.hidden_size, len(model.encoder.layers)) == (32, 1)


def test_bad_visual_dim_is_explained(tiny_model):
    with pytest.raises(ValueError, match="visual_feat_dim"):
        tiny_model.encode_image(torch.randn(1, 3, 5))


@pytest.mark.slow
def test_minilm_reproduces_bert_exactly(minilm_model, tokenizer):
    from transformers import BertModel

    from unimo_kit.resources import minilm_path

    bert = BertModel.from_pretrained(str(minilm_path())).eval()
    enc = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        ref = bert(**enc).last_hidden_state  # (B, T, D)
        ours = minilm_model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
    valid = enc["attention_mask"].bool()
    torch.testing.assert_close(ours["text_hidden"][valid], ref[valid], rtol=0, atol=1e-5)
    torch.testing.assert_close(ours["cls"], ref[:, 0], rtol=0, atol=1e-5)
    assert "img" not in ours and "visual_hidden" not in ours


def test_tokenizer_shares_minilm_vocab(tokenizer, tiny_model):
    enc = tokenizer(["a red circle"])
    cfg = tiny_model.config
    assert enc["input_ids"][0][0] == cfg.cls_token_id
    assert enc["input_ids"][0][-1] == cfg.sep_token_id
    assert tokenizer.mask_token_id == cfg.mask_token_id
    assert tokenizer.pad_token_id == cfg.pad_token_id
    assert len(tokenizer) == cfg.vocab_size


def test_checkpoint_round_trip(tmp_path, tiny_model, text_factory, visual_factory):
    from safetensors import safe_open

    g = torch.Generator().manual_seed(0)
    ids, amask = text_factory(2, 9, g)
    feats, boxes, vmask = visual_factory(2, g)
    with torch.no_grad():  # make the checkpoint differ from any fresh init
        for p in tiny_model.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=g))
    folder = save_checkpoint(tiny_model, tmp_path / "ckpt", metadata={"step": "7"})
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    with safe_open(str(folder / "model.safetensors"), "pt") as f:  # plain safetensors, no pickle
        assert f.metadata() == {"step": "7"}
        assert set(f.keys()) == set(tiny_model.state_dict())
    loaded = load_checkpoint(folder)
    assert not loaded.training
    assert loaded.config == tiny_model.config
    for name, tensor in tiny_model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    kwargs = dict(
        input_ids=ids,
        attention_mask=amask,
        visual_feats=feats,
        visual_boxes=boxes,
        visual_mask=vmask,
    )
    torch.testing.assert_close(loaded(**kwargs)["hidden"], tiny_model(**kwargs)["hidden"])
    # the weights file alone also works, and a missing config is a clear error
    assert load_checkpoint(folder / "model.safetensors").config == tiny_model.config
    (folder / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        load_checkpoint(folder)


def test_projection_head_changes_embedding_size(text_factory):
    model = create_model("unimo-tiny", visual_feat_dim=4, embed_dim=24)
    ids, amask = text_factory(3, 6, torch.Generator().manual_seed(0))
    z = model.encode_text(ids, amask)
    assert z.shape == (3, 24)
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(3))
    z = model.encode_image(torch.randn(3, 2, 4))
    assert z.shape == (3, 24)
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(3))


def test_box_frequencies_add_sines_and_cosines_of_the_box(tmp_path, visual_factory):
    from unimo_kit.model.embeddings import VisualEmbeddings

    plain = create_model("unimo-tiny", visual_feat_dim=4).visual_embeddings
    boxes = torch.tensor([[0.5, 0.25, 1.0, 0.75, 0.25]])
    assert plain.box_proj.in_features == 5 and torch.equal(plain.box_features(boxes), boxes)
    config = UnimoConfig(
        hidden_size=32, num_attention_heads=4, visual_feat_dim=4, box_frequencies=2
    )
    fourier = VisualEmbeddings(config)
    assert fourier.box_proj.in_features == 25  # 5 values x (itself, 2 sines, 2 cosines)
    out = fourier.box_features(boxes)[0]
    torch.testing.assert_close(out[:5], boxes[0])
    # sines at pi * 1 and pi * 2 of [0.5, 0.25, 1, 0.75, 0.25] (value-major), then cosines
    torch.testing.assert_close(out[5:7], torch.tensor([1.0, 0.0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(out[7:9], torch.tensor([2**-0.5, 1.0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(out[15:17], torch.tensor([0.0, -1.0]), atol=1e-6, rtol=0)
    # a model with it trains, saves and loads; old configs (no such key) read as 0
    model = create_model("unimo-tiny", visual_feat_dim=16, box_frequencies=3)
    feats, vboxes, vmask = visual_factory(2, torch.Generator().manual_seed(0))
    folder = save_checkpoint(model, tmp_path / "ckpt")
    loaded = load_checkpoint(folder)
    assert loaded.config.box_frequencies == 3
    torch.testing.assert_close(
        loaded.encode_image(feats, vboxes, vmask), model.eval().encode_image(feats, vboxes, vmask)
    )
    saved = json.loads((folder / "config.json").read_text())
    del saved["box_frequencies"]
    assert UnimoConfig.from_dict(saved).box_frequencies == 0
    with pytest.raises(ValueError, match="box_frequencies must be in"):
        UnimoConfig(box_frequencies=-1)
