"""The hard-negative data generator (issue 25, item 1 and the export): collate shapes and
mask, seeded choice, rank/worker sharding with no sample twice and none lost, and the
export read back with plain ``tarfile``."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from PIL import Image  # noqa: E402

from unimo_kit.generators import HardNegativeDataset, ShardedIterable  # noqa: E402


def _tokenize(texts):  # any callable: texts -> token id lists
    return [[len(w) for w in t.split()] for t in texts]


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "img").mkdir()
    pairs, rewrites = [], []
    for i in range(10):
        Image.new("RGB", (8, 8), (i * 20, 0, 0)).save(tmp_path / f"img/p{i}.png")
        pairs.append({"id": f"p{i}", "image": f"img/p{i}.png", "captions": [f"a red circle {i}"]})
        negatives = [{"type": "swap-att", "text": f"a blue circle {i}"}]
        if i % 2 == 0:  # half of the pairs have fewer negatives than asked for
            negatives.append({"type": "replace-obj", "text": f"a red square {i}"})
        rewrites.append({"id": f"p{i}#0", "negatives": negatives, "positives": [],
                         "sentence_negatives": []})  # fmt: skip
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    (tmp_path / "rewrites.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rewrites))
    return tmp_path / "pairs.jsonl", tmp_path / "rewrites.jsonl"


def _dataset(files, **options):
    pairs, rewrites = files
    return HardNegativeDataset(
        pairs, rewrites, tokenizer=_tokenize, transform=lambda im: torch.zeros(3, 8, 8), **options
    )


def test_collate_stacks_negatives_with_a_mask(files):
    ds = _dataset(files, num_negatives=3)
    batch = ds.collate([ds[0], ds[1]])
    assert batch["negatives"].shape[:2] == (2, 3)
    assert batch["negatives_mask"].tolist() == [[True, True, False], [True, False, False]]


def test_choice_is_seeded(files):
    first = [_dataset(files, num_negatives=1, seed=3)[i] for i in range(10)]
    again = [_dataset(files, num_negatives=1, seed=3)[i] for i in range(10)]
    assert [str(x) for x in first] == [str(x) for x in again]


@pytest.mark.parametrize("world", [1, 2, 3])
def test_rank_sharding_loses_nothing_and_repeats_nothing(files, world):
    ds = _dataset(files)
    seen = [
        i
        for rank in range(world)
        for i in ShardedIterable(ds, rank=rank, world_size=world).indices()
    ]
    assert sorted(seen) == list(range(len(ds)))


def test_dataloader_workers_split_the_rank(files):
    ds = ShardedIterable(_dataset(files, num_negatives=2), rank=0, world_size=1)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
    ids = [item["id"] for item in loader]
    assert len(ids) == 10 and len(set(ids)) == 10  # each worker its own part, none twice


def test_export_round_trips_without_unimo_kit(files, tmp_path):
    from unimo_kit.generators.export import export_shards

    out = tmp_path / "shards"
    export_shards(_dataset(files), out, samples_per_shard=4, progress=False)
    shards = sorted(out.glob("*.tar"))
    assert len(shards) == 3
    samples: dict[str, dict] = {}
    for shard in shards:  # the reading side: tarfile and json only
        with tarfile.open(shard) as tar:
            for member in tar.getmembers():
                key, _, ext = member.name.partition(".")
                samples.setdefault(key, {})[ext] = tar.extractfile(member).read()
    assert len(samples) == 10
    records = [json.loads(s["json"]) for s in samples.values() if "json" in s]
    assert len(records) == 10
    texts = {json.dumps(r, sort_keys=True) for r in records}
    assert any("a red square 0" in t for t in texts) and any("a blue circle 9" in t for t in texts)


def _fixed_width(texts):  # open_clip-like: a (N, 6) tensor padded with 0
    ids = torch.zeros((len(texts), 6), dtype=torch.long)
    for i, t in enumerate(texts):
        row = [len(w) for w in t.split()][:6]
        ids[i, : len(row)] = torch.tensor(row)
    return ids


def test_collate_of_one_width_places_every_column(files):
    pairs, rewrites = files
    ds = HardNegativeDataset(pairs, rewrites, tokenizer=_fixed_width, load_images=False,
                             num_negatives=3, num_positives=2)  # fmt: skip
    items = [ds[i] for i in range(4)]
    batch = ds.collate(items)
    assert batch["negatives"].shape == (4, 3, 6) and batch["positives"].shape == (4, 2, 6)
    for i, item in enumerate(items):
        k = len(item["negatives"])
        assert batch["negatives_mask"][i].tolist() == [j < k for j in range(3)]
        assert torch.equal(batch["negatives"][i, :k], item["negative_ids"])
        assert torch.equal(batch["negative_token_mask"][i, :k], item["negative_mask"])
        assert not batch["negatives"][i, k:].any() and not batch["negative_token_mask"][i, k:].any()
        assert torch.equal(batch["texts"][i], item["text_ids"])
    assert not batch["positives_mask"].any()  # the fixture has no positives


@pytest.mark.parametrize("workers", [0, 2])
def test_exported_shards_read_back_as_the_same_items(files, tmp_path, workers):
    from unimo_kit.generators import WebDatasetHardNegatives
    from unimo_kit.generators.export import export_shards

    ds = _dataset(files, num_negatives=2)
    export_shards(_dataset(files), tmp_path / "shards", samples_per_shard=3, progress=False)
    stream = WebDatasetHardNegatives(tmp_path / "shards", tokenizer=_tokenize, num_negatives=2,
                                     transform=lambda im: torch.zeros(3, 8, 8), seed=0)  # fmt: skip
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=workers)
    read = {item["id"]: item for item in loader}
    assert sorted(read) == sorted(ds[i]["id"] for i in range(len(ds)))  # none lost, none twice
    for i in range(len(ds)):  # the same draw from (seed, epoch, id): the same negatives
        want = ds[i]
        got = read[want["id"]]
        assert got["caption"] == want["caption"] and got["negatives"] == want["negatives"]
        assert torch.equal(got["negative_ids"], want["negative_ids"])


def test_collate_of_full_columns_stacks_every_item(files):
    pairs, rewrites = files
    ds = HardNegativeDataset(pairs, rewrites, tokenizer=_fixed_width, load_images=False,
                             num_negatives=1, num_positives=0)  # fmt: skip
    items = [ds[i] for i in range(4)]  # every pair has at least one negative: no padding
    batch = ds.collate(items)
    assert batch["negatives"].shape == (4, 1, 6) and batch["negatives_mask"].all()
    for i, item in enumerate(items):
        assert torch.equal(batch["negatives"][i], item["negative_ids"])
        assert torch.equal(batch["negative_token_mask"][i], item["negative_mask"])
    assert batch["positives"].shape == (4, 0, 6) and batch["positives_mask"].shape == (4, 0)


@pytest.mark.parametrize("weights", [None, [1.0, 1.0, 1.0], [2.0, 0.5, 1.0], [3.7, 1.0]])
def test_type_draw_is_the_draw_of_random_choices(weights):
    import random

    from unimo_kit.generators.items import _draw_index

    n = len(weights) if weights is not None else 5
    alike = weights is None or all(w == 1.0 for w in weights)
    for seed in range(500):
        mine, reference = random.Random(seed), random.Random(seed)
        got = _draw_index(mine, n, None if alike else weights)
        assert got == reference.choices(range(n), weights=weights or [1.0] * n)[0]
        assert mine.random() == reference.random()  # the same state after the draw


def _storage(tensor):
    return tensor.untyped_storage().data_ptr()


def test_worker_batches_are_the_main_process_batches_in_one_storage(files):
    from unimo_kit.generators.items import _BATCH_TOKEN_KEYS

    pairs, rewrites = files
    ds = HardNegativeDataset(pairs, rewrites, tokenizer=_fixed_width, load_images=False,
                             num_negatives=3, num_positives=1)  # fmt: skip

    def batches(workers):
        loader = torch.utils.data.DataLoader(
            ds, batch_size=4, collate_fn=ds.collate, num_workers=workers
        )
        return list(loader)

    here, there = batches(0), batches(2)
    assert len(here) == len(there) == 3
    for mine, sent in zip(here, there, strict=True):
        assert list(mine) == list(sent)
        for key, value in mine.items():
            if torch.is_tensor(value):
                assert value.dtype == sent[key].dtype and torch.equal(value, sent[key]), key
                assert sent[key].is_contiguous(), key
            else:
                assert value == sent[key], key
        # packed in the worker: one storage crosses to the main process, not eight
        assert len({_storage(sent[key]) for key in _BATCH_TOKEN_KEYS}) == 1
        assert _storage(mine["texts"]) != _storage(mine["negatives"])  # main process: as made


def test_record_cache_gives_the_items_read_anew(files):
    pairs, rewrites = files
    lines = [json.loads(line) for line in pairs.read_text().splitlines()]
    for p in lines:  # two captions: the caption of an item is drawn per epoch
        p["captions"].append(p["captions"][0].replace("red", "dark red"))
    pairs.write_text("".join(json.dumps(p) + "\n" for p in lines))
    extra = [json.loads(line) for line in rewrites.read_text().splitlines()]
    for r in extra:
        r["id"] = r["id"].replace("#0", "#1")
        r["positives"] = [{"type": "there-is", "text": "there is " + r["negatives"][0]["text"]}]
    with rewrites.open("a") as f:
        f.write("".join(json.dumps(r) + "\n" for r in extra))
    cached = _dataset(files, num_negatives=2, type_mix={"swap-att": 2, "replace-obj": 1})
    anew = _dataset(files, num_negatives=2, type_mix={"swap-att": 2, "replace-obj": 1},
                    record_cache=0)  # fmt: skip
    seen, drawn = set(), set()
    for epoch in range(4):
        cached.set_epoch(epoch)
        anew.set_epoch(epoch)
        for i in range(len(cached)):
            want, got = anew[i], cached[i]
            assert str(got) == str(want)
            seen.add(got["caption_index"])
            drawn.add(got["id"])
    assert seen == {0, 1}
    assert set(cached._prepared) == drawn and not anew._prepared  # each caption kept once
    small = _dataset(files, record_cache=3)
    [small[i] for i in range(len(small))]
    assert len(small._prepared) == 3
    with pytest.raises(ValueError, match="record_cache"):
        _dataset(files, record_cache=-1)


def test_build_of_a_prepared_record_is_the_item_of_the_record():
    import random

    from unimo_kit.generators.items import ItemBuilder

    record = {
        "id": "p#0",
        "pair_id": "p",
        "caption_index": 0,
        "caption": "a red circle",
        "captions": ["a red circle", "A  Red circle"],
        "image": "img.png",
        "negatives": [
            {"text": "a blue circle", "type": "swap-att"},
            {"text": "a red  CIRCLE", "type": "swap-att"},  # the image's own caption
            {"text": "a red square", "type": "replace-obj"},
            {"text": "a red square", "type": "replace-att"},  # the same text twice
            {"text": "", "type": "swap-att"},
            {"text": "a green circle", "type": "replace-att"},
            {"text": "a small circle", "type": "sentence"},
        ],
        "positives": [{"text": "there is a red circle", "type": "there-is"}, {"text": None}],
        "positive_images": [{"id": "q", "image": "q.png"}, {"id": "r", "image": "r.png"}],
    }
    for mix in (None, {"swap-att": 1, "replace-att": 1}, {"swap-att": 3, "sentence": 0.5}):
        builder = ItemBuilder(type_mix=mix, num_negatives=3, positive_images=1, load_images=False)
        prepared = builder.prepare(record)
        for seed in range(30):
            want = builder(record, random.Random(seed))
            assert builder.build(prepared, random.Random(seed)) == want
            assert "a red  CIRCLE" not in want["negatives"]
