"""Mining without repeated work: caption queries from the caption index's stored embeddings
(no second encode of the pairs' captions) and image queries from a features store."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from unimo_kit.data.readers import read_pairs
from unimo_kit.index.build import BuildConfig, build
from unimo_kit.index.mine import MineConfig, StoredCaptions, build_caption_index, caption_queries
from unimo_kit.index.mine import mine as mine_pairs
from unimo_kit.index.store import IndexStore


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    from unimo_kit.data.synth import generate_world

    out = tmp_path_factory.mktemp("world")
    generate_world(out, n_images=30, image_size=96, n_texts=60, n_image_only=10, progress=False)
    return out


@pytest.fixture(scope="module")
def indexes(world, tiny_spec, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("indexes")
    train = world / "pairs.train.jsonl"
    texts = BuildConfig(input=str(world / "texts.jsonl"), kind="texts", encoder=tiny_spec)
    return {
        "texts": build(texts, root / "texts", progress=False),
        "captions": build_caption_index(
            train, root / "captions", encoder=tiny_spec, progress=False
        ),
    }


def _pairs(world: Path) -> list:
    return list(read_pairs(world / "pairs.train.jsonl"))


def test_stored_queries_equal_encoded_ones_without_encoding(world, indexes, monkeypatch):
    captions = IndexStore.open(indexes["captions"])
    texts = IndexStore.open(indexes["texts"])
    pairs = _pairs(world)
    encoded = caption_queries(texts, pairs)
    stored = StoredCaptions(captions)
    encoder = texts.encoder()

    def refuse(*args, **kwargs):
        raise AssertionError("a stored caption was encoded again")

    monkeypatch.setattr(encoder, "encode_text", refuse)
    from_index = stored.queries(texts, pairs, batch_size=8)
    assert stored.hits == len(pairs) and stored.misses == 0
    assert np.abs(from_index - encoded).max() < 1e-5
    assert np.allclose(np.linalg.norm(from_index, axis=1), 1.0, atol=1e-5)


def test_a_pair_whose_captions_the_index_lacks_is_encoded(world, indexes):
    captions = IndexStore.open(indexes["captions"])
    texts = IndexStore.open(indexes["texts"])
    pairs = _pairs(world)[:3]
    edited = dataclasses.replace(pairs[1], captions=["a lone green star"])
    stored = StoredCaptions(captions)
    assert stored.rows_of(edited) is None and stored.rows_of(pairs[0]) is not None
    mixed = stored.queries(texts, [pairs[0], edited, pairs[2]], batch_size=8)
    assert stored.hits == 2 and stored.misses == 1
    expected = caption_queries(texts, [pairs[0], edited, pairs[2]])
    assert np.abs(mixed - expected).max() < 1e-5


def test_a_caption_index_without_stored_embeddings_falls_back_to_encoding(
    world, indexes, tiny_spec, tmp_path
):
    bare = build(
        BuildConfig(
            input=str(world / "pairs.train.jsonl"),
            kind="captions",
            encoder=tiny_spec,
            keep_embeddings=False,
        ),
        tmp_path / "bare",
        progress=False,
    )
    texts = IndexStore.open(indexes["texts"])
    stored = StoredCaptions(IndexStore.open(bare))
    pairs = _pairs(world)
    out = stored.queries(texts, pairs, batch_size=8)
    assert stored.hits == 0 and stored.misses == len(pairs)
    assert np.abs(out - caption_queries(texts, pairs)).max() < 1e-6


def test_mining_reads_the_stored_captions_and_gives_the_encoded_records(
    world, indexes, tmp_path, monkeypatch
):
    """The same retrieved.jsonl as queries encoded afresh (scores to their 5 decimals)."""
    config = MineConfig(k=3, negatives=2, min_score=-1.0, max_score=0.999, chunk_size=5)
    run = {"text_index": indexes["texts"], "negative_index": indexes["captions"]}
    fast = tmp_path / "fast.jsonl"
    encoder = IndexStore.open(indexes["texts"]).encoder()  # the one mining loads (cached)

    def refuse(*args, **kwargs):
        raise AssertionError("mining encoded a caption the caption index stores")

    with monkeypatch.context() as patch:  # the stored path taken, or this run fails
        patch.setattr(encoder, "encode_text", refuse)
        patch.setattr(encoder, "encode_texts", refuse)
        mine_pairs(world / "pairs.train.jsonl", fast, config=config, progress=False, **run)
    monkeypatch.setattr(StoredCaptions, "rows_of", lambda self, pair: None)
    slow = tmp_path / "slow.jsonl"
    mine_pairs(world / "pairs.train.jsonl", slow, config=config, progress=False, **run)
    fast_records = [json.loads(line) for line in fast.read_text().splitlines()]
    slow_records = [json.loads(line) for line in slow.read_text().splitlines()]
    assert len(fast_records) == len(_pairs(world))
    for a, b in zip(fast_records, slow_records, strict=True):
        for key in ("texts", "negatives"):
            assert [h["text"] for h in a[key]] == [h["text"] for h in b[key]]
            assert np.allclose(
                [h["score"] for h in a[key]], [h["score"] for h in b[key]], atol=2e-5
            )


def _pooled_store(world: Path, out: Path) -> Path:
    """A features store of random tokens (4 per image, 8-d) for every image of the world,
    keyed by file stem (= the record ids of images.jsonl and pairs.jsonl)."""
    from unimo_kit.features.extractors import grid_boxes
    from unimo_kit.features.store import FeatureStoreWriter

    rng = np.random.default_rng(0)
    meta = {"extractor": "import:regions", "dim": 8, "tokens": 4}
    with FeatureStoreWriter(out, meta, dtype="float32") as writer:
        for image in sorted((world / "images").glob("*.png")):
            writer.add(image.stem, rng.normal(size=(4, 8)), grid_boxes(2, 2))
    return out


def test_mining_queries_a_features_image_index_from_another_directory(world, tmp_path, monkeypatch):
    """Image positives from an index built with ``features:DIR`` (DIR typed relative): each
    pair's query is its stored image pooled, its positives the nearest indexed images."""
    from unimo_kit.features.store import FeatureStore

    store = _pooled_store(world, tmp_path / "features")
    monkeypatch.chdir(tmp_path)
    images = BuildConfig(
        input=str(world / "images.jsonl"), kind="images", encoder="features:features"
    )
    index = build(images, tmp_path / "images-index", progress=False)
    monkeypatch.chdir(world)  # mining runs elsewhere: the index names its store absolute
    from unimo_kit.encoders.registry import _load_cached

    _load_cached.cache_clear()  # a fresh process, as a later command is
    config = MineConfig(k=3, negatives=0, min_score=-1.0, max_score=0.999, chunk_size=7)
    out = tmp_path / "retrieved.jsonl"
    mine_pairs(world / "pairs.train.jsonl", out, config=config, progress=False, image_index=index)

    def pooled(image_id: str) -> np.ndarray:
        mean = FeatureStore(store).feats(image_id).mean(axis=0)
        return mean / np.linalg.norm(mean)

    rows = IndexStore.open(index).records
    vectors = np.stack([pooled(row["id"]) for row in rows])  # (n, 8)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in records] == [p.id for p in _pairs(world)]
    for record in records:
        scores = vectors @ pooled(record["id"])  # (n,)
        nearest = [rows[i]["id"] for i in np.argsort(-scores, kind="stable")[:3]]
        assert [hit["id"] for hit in record["images"]] == nearest
        assert np.allclose(
            [h["score"] for h in record["images"]], np.sort(scores)[::-1][:3], atol=1e-4
        )
