"""Sampling, the batch contract of the collator, and checkpoint serialisation helpers."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from unimo_kit.train import load_config
from unimo_kit.train.checkpoint import (
    load_optimizer_state,
    optimizer_state_tensors,
    rng_state_tensors,
    set_rng_state_tensors,
)
from unimo_kit.train.data import EpochSampler, UnimoTrainData, pad_visual


def test_epoch_sampler_partitions_ranks_and_resumes():
    ranks = [EpochSampler(10, 2, seed=3, kind="pairs", rank=r, world_size=2) for r in range(2)]
    epoch0 = [ranks[r].next_batch() + ranks[r].next_batch() for r in range(2)]
    seen = [i for batches in epoch0 for i, _, _ in batches]
    assert len(seen) == len(set(seen)) == 8  # 5 per rank, batches of 2: 4 used, disjoint
    single = EpochSampler(10, 4, seed=3, kind="pairs")
    assert sorted(seen) == sorted(i for i, _, _ in single.next_batch() + single.next_batch())
    # state round trip: a fresh sampler with the state continues identically
    a = EpochSampler(10, 3, seed=1, kind="texts")
    for _ in range(4):
        a.next_batch()
    b = EpochSampler(10, 3, seed=1, kind="texts")
    b.load_state_dict(a.state_dict())
    assert [a.next_batch() for _ in range(5)] == [b.next_batch() for _ in range(5)]
    with pytest.raises(ValueError, match="cannot fill batches"):
        EpochSampler(3, 4, seed=0, kind="pairs")


def test_collated_batch_follows_the_contract(tiny_overrides, tokenizer):
    config = load_config("tiny", {**tiny_overrides, "neg_texts_per_pair": 2})
    data = UnimoTrainData(config.resolved(), tokenizer)
    assert data.sizes() == {"pairs": 18, "texts": 12, "images": 8}
    batch = data[data.make_sampler().next_spec()]
    bp, bt, bi = config.batch_pairs, config.batch_texts, config.batch_images
    assert batch["pair_image_ids"].shape == (bp,) and batch["pair_image_ids"].dtype == torch.long
    t = batch["text_input_ids"].shape[1]
    assert batch["text_attention_mask"].shape == (bp, t)
    assert (batch["text_input_ids"][:, 0] == 101).all()  # [CLS]
    n = batch["visual_feats"].shape[1]
    assert batch["visual_feats"].shape == (bp, n, 16) and batch["visual_boxes"].shape == (bp, n, 5)
    assert batch["visual_mask"].shape == (bp, n) and 3 <= n <= 5
    assert (batch["visual_feats"][batch["visual_mask"] == 0] == 0).all()
    for group in ("pos_text", "neg_text"):
        owner = batch[f"{group}_owner"]
        assert batch[f"{group}_input_ids"].shape[0] == len(owner) > 0
        assert owner.min() >= 0 and owner.max() < bp
    assert batch["pos_visual_feats"].shape[0] == len(batch["pos_visual_owner"]) == bp
    assert batch["textonly_input_ids"].shape[0] == bt
    assert batch["imageonly_visual_feats"].shape[:1] == (bi,)
    # the hard negatives are the rewrites' (another colour), decoded back to text
    text = tokenizer.decode(batch["neg_text_input_ids"][0], skip_special_tokens=True)
    assert text.split()[-1] in {"circle", "square", "star", "heart"}


def test_switches_leave_out_extras(tiny_overrides, tokenizer):
    config = load_config(
        "tiny",
        {
            **tiny_overrides,
            "rewrite_negatives": False,
            "rewrite_positives": False,
            "retrieval_positives": False,
            "batch_texts": 0,
            "batch_images": 0,
        },
    )
    data = UnimoTrainData(config.resolved(), tokenizer)
    batch = data[data.make_sampler().next_spec()]
    assert not any(k.startswith(("pos_", "neg_", "textonly", "imageonly")) for k in batch)


def test_paraphrases_are_graph_rewrites_of_the_caption_itself(tiny_overrides, tokenizer, tmp_path):
    """With ``paraphrase`` each pair carries one meaning-preserving rewrite of the caption
    it drew (never another caption of its image, a ``same-image`` positive), mirrored with it;
    without it the batch has no paraphrase group, and the draws of the rest are unchanged."""
    import json
    from pathlib import Path

    source = Path(tiny_overrides["data_dir"]) / "rewrites.jsonl"
    records = [json.loads(line) for line in source.read_text().splitlines()]
    for r in records:
        r["positives"] = [
            {"type": "same-image", "text": "another caption of the image"},
            {"type": "inverse-rel", "text": f"paraphrase of {r['id']}"},
        ]
    rewrites = tmp_path / "rewrites.jsonl"
    rewrites.write_text("".join(json.dumps(r) + "\n" for r in records))
    base = {**tiny_overrides, "rewrites": str(rewrites)}
    on = UnimoTrainData(load_config("tiny", {**base, "paraphrase": True}).resolved(), tokenizer)
    off = UnimoTrainData(load_config("tiny", base).resolved(), tokenizer)
    spec = on.make_sampler().next_spec()
    items = [on._pair_item(*x) for x in spec["pairs"]]
    plain = [off._pair_item(*x) for x in spec["pairs"]]
    for item, other in zip(items, plain, strict=True):
        (text,) = item["para_texts"]
        assert text.startswith(f"paraphrase of {item['image_id']}#")
        assert [item[k] for k in ("text", "pos_texts", "neg_texts")] == [
            other[k] for k in ("text", "pos_texts", "neg_texts")
        ]
    batch = on[spec]
    assert torch.equal(batch["para_text_owner"], torch.arange(len(items)))
    assert batch["para_text_input_ids"].shape[0] == len(items)
    assert "para_text_input_ids" not in off[spec]
    with pytest.raises(ValueError, match=r"paraphrase .* needs cmcl=true and rewrite_neg"):
        load_config("tiny", {**base, "paraphrase": True, "rewrite_negatives": False})


def test_negative_types_keep_only_those_rewritten_negatives(tiny_overrides, tokenizer):
    """The world's rewritten negatives are all replace-att: kept when that type is asked
    for, none left when only swap-att is."""
    batches = {}
    for types in (["replace-att"], ["swap-att"]):
        config = load_config("tiny", {**tiny_overrides, "negative_types": types})
        data = UnimoTrainData(config.resolved(), tokenizer)
        batches[types[0]] = data[data.make_sampler().next_spec()]
    assert len(batches["replace-att"]["neg_text_owner"]) == config.batch_pairs
    assert "neg_text_input_ids" not in batches["swap-att"]
    with pytest.raises(ValueError, match="negative_types must be a non-empty list"):
        load_config("tiny", {**tiny_overrides, "negative_types": ["swap-colour"]})


def test_sentence_negative_length_gap_keeps_negatives_of_the_captions_length(
    tiny_overrides, tokenizer, world, tmp_path
):
    """Each caption gets one sentence negative of its own length and one five words longer;
    with a gap of 1 word only the first kind reaches the batch."""
    import json

    records = []
    for line in (world / "rewrites.jsonl").read_text().splitlines():
        record = json.loads(line)
        pair = next(
            p
            for p in map(json.loads, (world / "pairs.jsonl").read_text().splitlines())
            if p["id"] == record["pair_id"]
        )
        words = len(pair["captions"][record["caption_index"]].split())
        record["sentence_negatives"] = [
            {"text": " ".join(["same"] * words)},
            {"text": " ".join(["longer"] * (words + 5))},
        ]
        records.append(json.dumps(record))
    rewrites = tmp_path / "rewrites.jsonl"
    rewrites.write_text("\n".join(records) + "\n")
    base = {
        **tiny_overrides,
        "rewrites": str(rewrites),
        "rewrite_negatives": False,
        "sentence_negatives": True,
        "neg_texts_per_pair": 4,
    }
    kept = {}
    for gap in (None, 1):
        config = load_config("tiny", {**base, "sentence_negative_length_gap": gap})
        data = UnimoTrainData(config.resolved(), tokenizer)
        batch = data[data.make_sampler().next_spec()]
        texts = tokenizer.batch_decode(batch["neg_text_input_ids"], skip_special_tokens=True)
        kept[gap] = {t.split()[0] for t in texts}
    assert kept[None] == {"same", "longer"}
    assert kept[1] == {"same"}
    with pytest.raises(ValueError, match="sentence_negative_length_gap"):
        load_config("tiny", {**base, "sentence_negative_length_gap": -1})


def test_pad_visual_keeps_class_probs_when_every_item_has_them():
    items = [
        {
            "feats": np.ones((2, 3), np.float32),
            "boxes": np.zeros((2, 5), np.float32),
            "class_probs": np.full((2, 4), 0.25, np.float32),
        },
        {
            "feats": np.ones((1, 3), np.float32),
            "boxes": np.zeros((1, 5), np.float32),
            "class_probs": np.full((1, 4), 0.25, np.float32),
        },
    ]
    out = pad_visual(items, "v")
    assert out["v_class_probs"].shape == (2, 2, 4)
    assert out["v_mask"].tolist() == [[1, 1], [1, 0]]


def test_optimizer_and_rng_states_round_trip():
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    tensors, rest = optimizer_state_tensors(opt)
    assert all(isinstance(v, torch.Tensor) for v in tensors.values())
    clone = torch.optim.AdamW(model.parameters(), lr=0.5)
    load_optimizer_state(clone, tensors, rest)
    a, b = opt.state_dict(), clone.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for k in a["state"]:
        for name in a["state"][k]:
            assert torch.equal(
                torch.as_tensor(a["state"][k][name]), torch.as_tensor(b["state"][k][name])
            )

    random.gauss(0, 1)  # leave a cached gaussian in the state
    saved = rng_state_tensors()
    want = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state_tensors(saved)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == want


@pytest.mark.slow
def test_negatives_made_on_the_fly_without_a_rewrites_file(tiny_overrides, tokenizer):
    config = load_config(
        "tiny",
        {
            **tiny_overrides,
            "rewrites": None,
            "retrieval_positives": False,
            "rewrite_positives": False,
            "batch_texts": 0,
            "batch_images": 0,
        },
    )
    data = UnimoTrainData(config.resolved(), tokenizer)
    assert data.on_the_fly is not None
    spec = data.make_sampler().next_spec()
    batch = data[spec]
    assert len(batch["neg_text_owner"]) > 0
    captions = [tokenizer.decode(ids, skip_special_tokens=True) for ids in batch["text_input_ids"]]
    for ids, owner in zip(batch["neg_text_input_ids"], batch["neg_text_owner"], strict=True):
        negative = tokenizer.decode(ids, skip_special_tokens=True)
        assert negative != captions[owner]
    again = data[spec]  # deterministic per (seed, caption, epoch)
    assert torch.equal(again["neg_text_input_ids"], batch["neg_text_input_ids"])
    # on-the-fly negatives carry their types, so negative_types can filter them
    from unimo_kit.rewrite.negatives import NEGATIVE_TYPES

    record = data.on_the_fly.get(next(iter(data.on_the_fly.index)), 0)
    assert record["negatives"] and {n["type"] for n in record["negatives"]} <= set(NEGATIVE_TYPES)
    # ... and so do their positives, so paraphrase finds the caption's own rewrites
    from unimo_kit.rewrite.positives import GRAPH_POSITIVE_TYPES

    assert record["positives"]
    assert {p["type"] for p in record["positives"]} <= set(GRAPH_POSITIVE_TYPES)


def test_missing_inputs_are_named(tiny_overrides, tokenizer):
    config = load_config("tiny", {**tiny_overrides, "retrieved": "nowhere.jsonl"})
    with pytest.raises(FileNotFoundError, match=r"retrieved=.*nowhere\.jsonl"):
        UnimoTrainData(config.resolved(), tokenizer)
    config = load_config("tiny", {**tiny_overrides, "split": "test"})  # no such split
    data = UnimoTrainData(config.resolved(), tokenizer)
    with pytest.raises(ValueError, match="check `split`"):
        data.make_sampler()


def test_a_negative_that_is_the_caption_up_to_case_and_spaces_is_dropped(
    tiny_overrides, tokenizer, tmp_path
):
    """ "The same caption" is :func:`caption_key` here as in retrieval and mining: a rewritten
    negative that differs from the caption only by case and whitespace is not a negative."""
    import json
    from pathlib import Path

    source = Path(tiny_overrides["data_dir"]) / "rewrites.jsonl"
    records = [json.loads(line) for line in source.read_text().splitlines()]
    for r in records:
        echo = "  " + r["caption"].upper().replace(" ", "   ") + " "
        r["negatives"] = [
            {"type": "replace-att", "text": echo},
            {"type": "replace-att", "text": f"a real negative of {r['id']}"},
        ]
    rewrites = tmp_path / "rewrites.jsonl"
    rewrites.write_text("".join(json.dumps(r) + "\n" for r in records))
    config = load_config(
        "tiny", {**tiny_overrides, "rewrites": str(rewrites), "neg_texts_per_pair": 4}
    )
    data = UnimoTrainData(config.resolved(), tokenizer)
    items = [data._pair_item(*x) for x in data.make_sampler().next_spec()["pairs"]]
    for item in items:
        assert [t for t in item["neg_texts"] if t.startswith("a real negative")]
        assert all(" ".join(t.split()).lower() != item["text"].lower() for t in item["neg_texts"])


def test_jsonl_lines_opens_its_own_handle_in_each_process(tmp_path, monkeypatch):
    """A handle inherited through a DataLoader fork shares its file offset with the parent and
    the other workers; each process reads through one of its own."""
    import json
    import os

    from unimo_kit.train.data import JsonlLines

    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps({"id": f"r{i}"}) + "\n" for i in range(3)))
    lines = JsonlLines(path, lambda record, line: record["id"])
    assert lines.read(0)[0] == {"id": "r0"}
    parent = lines._handle
    monkeypatch.setattr(os, "getpid", lambda: -1)  # as in a forked worker
    assert lines.read(2) == ({"id": "r2"}, 3)
    assert lines._handle is not parent
    parent.close()


@pytest.mark.parametrize(
    ("sources", "expected"),
    [(None, {"tfidf", "mined"}), (["rewrites"], {"tfidf"}), (["retrieved"], {"mined"})],
)
def test_sentence_negative_sources_tell_tfidf_and_mined_negatives_apart(
    tiny_overrides, tokenizer, world, tmp_path, sources, expected
):
    """rewrite's TF-IDF neighbours (rewrites.jsonl) and mined neighbours (retrieved.jsonl) are
    two sources of sentence negatives that an ablation can switch separately."""
    import json

    def rewritten(path, key, text):
        records = [json.loads(line) for line in path.read_text().splitlines()]
        for r in records:
            r[key] = [{"text": f"{text} sentence negative"}]
        out = tmp_path / path.name
        out.write_text("".join(json.dumps(r) + "\n" for r in records))
        return str(out)

    overrides = {
        **tiny_overrides,
        "rewrites": rewritten(world / "rewrites.jsonl", "sentence_negatives", "tfidf"),
        "retrieved": rewritten(world / "retrieved.jsonl", "negatives", "mined"),
        "rewrite_negatives": False,
        "sentence_negatives": True,
        "sentence_negative_sources": sources,
        "neg_texts_per_pair": 4,
    }
    data = UnimoTrainData(load_config("tiny", overrides).resolved(), tokenizer)
    batch = data[data.make_sampler().next_spec()]
    texts = tokenizer.batch_decode(batch["neg_text_input_ids"], skip_special_tokens=True)
    assert {t.split()[0] for t in texts} == expected
    with pytest.raises(ValueError, match="sentence_negative_sources must be"):
        load_config("tiny", {**overrides, "sentence_negative_sources": ["tf-idf"]})
