"""RewriteDataset: negatives on the fly, picklable, deterministic per (seed, id, epoch), the
same inside DataLoader workers and equal to the offline stage at epoch 0."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from unimo_kit.rewrite.dataset import RewriteDataset  # noqa: E402
from unimo_kit.rewrite.pipeline import rewrite_file  # noqa: E402


@pytest.fixture(scope="module")
def dataset(world, parser):
    return RewriteDataset(str(world.pairs["val"]), per_type=1, seed=4)


def test_items_and_determinism(dataset):
    assert len(dataset) > 5
    item = dataset[0]
    assert set(item) == {"id", "caption", "negatives", "negative_types", "positives",
                         "positive_types"}  # fmt: skip
    assert item["id"].endswith("#0") and item["negatives"]
    assert dataset[0] == item
    clone = pickle.loads(pickle.dumps(dataset))
    assert clone._parser is None and clone[0] == item


def test_epochs_draw_fresh_negatives(dataset):
    first = [dataset[i]["negatives"] for i in range(len(dataset))]
    dataset.set_epoch(1)
    try:
        second = [dataset[i]["negatives"] for i in range(len(dataset))]
    finally:
        dataset.set_epoch(0)
    assert first != second
    assert [dataset[i]["negatives"] for i in range(len(dataset))] == first


def test_dataloader_workers_match_and_epoch0_matches_the_stage(dataset, world, tmp_path):
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=4, num_workers=2, collate_fn=lambda batch: batch
    )
    from_workers = [item for batch in loader for item in batch]
    assert from_workers == [dataset[i] for i in range(len(dataset))]
    out = tmp_path / "rewrites.jsonl"
    dataset.rewriter.vocab.save(tmp_path / "vocab.json")  # the corpus and the reference
    rewrite_file(
        world.pairs["val"], out, seed=4, per_type=1, progress=False,
        vocab_path=str(tmp_path / "vocab.json"), reference=None,
    )  # fmt: skip
    offline = [json.loads(x) for x in Path(out).read_text().splitlines()]
    assert [x["id"] for x in offline] == [x["id"] for x in from_workers]
    assert [[n["text"] for n in x["negatives"]] for x in offline] == [
        x["negatives"] for x in from_workers
    ]


def test_tuple_and_dict_sources(parser):
    from collections import Counter

    from unimo_kit.rewrite.vocab import Vocabulary

    vocab = Vocabulary(
        objects=Counter({"dog": 2, "cat": 2}),
        attributes={"color": Counter({"red": 1, "blue": 1, "green": 1})},
    )
    ds = RewriteDataset([("t1", "a red dog"), {"id": "t2", "text": "a cat"}], vocab)
    assert [ds[i]["id"] for i in range(2)] == ["t1", "t2"]
    assert ds[0]["negatives"]
    with pytest.raises(TypeError):
        RewriteDataset([42], vocab)


def test_wraps_any_map_style_dataset_lazily(parser):
    from collections import Counter

    from unimo_kit.rewrite.vocab import Vocabulary

    class Images(torch.utils.data.Dataset):
        def __init__(self):
            self.fetched = []

        def __len__(self):
            return 2

        def __getitem__(self, i):
            self.fetched.append(i)
            return {"id": f"im{i}", "caption": ["a red dog", "a blue cat"][i], "pixels": i}

    base = Images()
    vocab = Vocabulary(
        objects=Counter({"dog": 2, "cat": 2}),
        attributes={"color": Counter({"red": 1, "blue": 1, "green": 1})},
    )
    ds = RewriteDataset(base, vocab)
    assert base.fetched == [] and len(ds) == 2  # nothing read up front
    item = ds[1]
    assert item["pixels"] == 1 and item["id"] == "im1" and item["negatives"]
