"""FeatureStore / FeatureStoreWriter: round trip, chunks, resume, shards, meta checks."""

from __future__ import annotations

import numpy as np
import pytest

from unimo_kit.features import FeatureStore, FeatureStoreWriter, list_chunks
from unimo_kit.utils import Shard


def _items(n: int, dim: int = 8, classes: int = 0, seed: int = 0):
    rng = np.random.default_rng(seed)
    for i in range(n):
        tokens = int(rng.integers(1, 6))  # variable N per image, as region features have
        feats = rng.normal(size=(tokens, dim)).astype(np.float32)
        boxes = rng.uniform(size=(tokens, 5)).astype(np.float32)
        probs = rng.dirichlet(np.ones(classes), size=tokens).astype(np.float32) if classes else None
        yield f"id-{i}", feats, boxes, probs


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_round_trip_variable_tokens_and_class_probs(tmp_path, dtype):
    items = list(_items(7, classes=3))
    with FeatureStoreWriter(
        tmp_path, {"extractor": "test", "dim": 8, "num_classes": 3}, chunk_size=3, dtype=dtype
    ) as writer:
        for item in items:
            writer.add(*item)
    assert len(list_chunks(tmp_path)) == 3  # 3 + 3 + 1
    store = FeatureStore(tmp_path)
    assert len(store) == 7 and store.dim == 8 and store.meta["dtype"] == dtype
    tol = 0 if dtype == "float32" else 2e-3
    for image_id, feats, boxes, probs in items:
        got = store[image_id]
        assert got["feats"].dtype == np.float32
        np.testing.assert_allclose(got["feats"], feats, atol=tol * 4, rtol=tol)
        np.testing.assert_array_equal(got["boxes"], boxes)
        np.testing.assert_array_equal(got["class_probs"], probs)
    with pytest.raises(KeyError, match="not in the features store"):
        store["nope"]


def test_resume_skips_whole_chunks_and_drops_torn_temp(tmp_path):
    items = list(_items(5))
    meta = {"extractor": "test", "dim": 8}
    writer = FeatureStoreWriter(tmp_path, meta, chunk_size=2, dtype="float32")
    for item in items[:3]:
        writer.add(*item)
    # "killed" here: ids 0-1 are in a chunk, id-2 only in memory; a torn temp file lies around.
    (tmp_path / "chunks" / "s0of1-000001.safetensors.tmp").write_bytes(b"torn")
    writer = FeatureStoreWriter(tmp_path, meta, chunk_size=2, dtype="float32")
    assert writer.done == {"id-0", "id-1"}
    with writer:
        for item in items:
            if item[0] not in writer.done:
                writer.add(*item)
    store = FeatureStore(tmp_path)
    assert sorted(store.ids()) == [f"id-{i}" for i in range(5)]
    np.testing.assert_array_equal(store["id-2"]["feats"], items[2][1])


def test_meta_mismatch_is_refused(tmp_path):
    FeatureStoreWriter(tmp_path, {"extractor": "a", "dim": 8}).close()
    with pytest.raises(ValueError, match="another kind"):
        FeatureStoreWriter(tmp_path, {"extractor": "b", "dim": 8})


def test_shards_write_into_one_folder(tmp_path):
    items = list(_items(6))
    meta = {"extractor": "test", "dim": 8}
    for index in range(3):
        with FeatureStoreWriter(tmp_path, meta, shard=Shard(index, 3)) as writer:
            for item in items[index * 2 : index * 2 + 2]:
                writer.add(*item)
    store = FeatureStore(tmp_path)
    assert sorted(store.ids()) == sorted(i[0] for i in items)


def test_store_pickles_without_open_handles(tmp_path):
    import pickle

    with FeatureStoreWriter(tmp_path, {"extractor": "t", "dim": 8}) as writer:
        for item in _items(2):
            writer.add(*item)
    store = FeatureStore(tmp_path)
    before = store["id-0"]["feats"]
    clone = pickle.loads(pickle.dumps(store))
    np.testing.assert_array_equal(clone["id-0"]["feats"], before)


def test_chunks_get_the_umask_permissions(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        with FeatureStoreWriter(tmp_path, {"extractor": "t", "dim": 8}) as writer:
            for item in _items(2):
                writer.add(*item)
    finally:
        os.umask(old)
    (chunk,) = list_chunks(tmp_path)
    # readable by group and others, like meta.json (safetensors' save_file makes 0600)
    assert stat.S_IMODE(chunk.stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "meta.json").stat().st_mode) == 0o644
    assert not list((tmp_path / "chunks").glob("*.tmp"))


def test_meta_mismatch_refusal_says_what_works(tmp_path):
    FeatureStoreWriter(tmp_path, {"extractor": "a", "dim": 8}).close()
    for resume in (True, False):  # --no-resume keeps meta.json: it is no way out
        with pytest.raises(ValueError) as info:
            FeatureStoreWriter(tmp_path, {"extractor": "b", "dim": 8}, resume=resume)
        message = str(info.value)
        assert "--no-resume" not in message
        assert f"use another output folder, or remove {tmp_path} to start it afresh" in message


def test_import_store_with_a_relative_name_is_resumed_by_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "butd").mkdir()
    # a store written when import names kept the path as typed
    FeatureStoreWriter(tmp_path / "f", {"extractor": "import:butd", "dim": 8}).close()
    FeatureStoreWriter(tmp_path / "f", {"extractor": f"import:{tmp_path / 'butd'}", "dim": 8})
    FeatureStoreWriter(tmp_path / "f", {"extractor": "import:./butd/", "dim": 8})
    with pytest.raises(ValueError, match="another kind"):
        FeatureStoreWriter(tmp_path / "f", {"extractor": f"import:{tmp_path / 'x'}", "dim": 8})
    with pytest.raises(ValueError, match="another kind"):
        FeatureStoreWriter(tmp_path / "f", {"extractor": "butd", "dim": 8})


@pytest.mark.parametrize("cut", ["empty", "half", "garbage"])
def test_a_broken_chunk_is_named_in_one_line(tmp_path, cut):
    meta = {"extractor": "t", "dim": 8}
    with FeatureStoreWriter(tmp_path, meta, chunk_size=2) as writer:
        for item in _items(5):
            writer.add(*item)
    chunk = list_chunks(tmp_path)[1]
    data = chunk.read_bytes()
    chunk.write_bytes({"empty": b"", "half": data[: len(data) // 2], "garbage": b"x" * 64}[cut])
    for opener in (lambda: FeatureStore(tmp_path), lambda: FeatureStoreWriter(tmp_path, meta)):
        with pytest.raises(ValueError) as info:
            opener()
        message = str(info.value)
        assert message.startswith(f"{chunk}: not a complete features chunk (")
        assert "delete it and rerun unimo features" in message and "\n" not in message
    chunk.unlink()  # what the message says to do: the rest of the store is read again
    assert len(FeatureStore(tmp_path)) == 3


def test_chunks_of_another_kind_are_refused_when_opening(tmp_path):
    def make(folder, dim, classes=0, shard=Shard()):
        with FeatureStoreWriter(
            folder, {"extractor": f"e{dim}", "dim": dim, "num_classes": classes}, shard=shard
        ) as writer:
            for item in _items(2, dim=dim, classes=classes, seed=dim + classes):
                writer.add(*item)
        return list_chunks(folder)[0]

    make(tmp_path / "a", 8, shard=Shard(0, 2))
    wide = make(tmp_path / "b", 12, shard=Shard(1, 2))
    probs = make(tmp_path / "c", 8, classes=3, shard=Shard(1, 2))
    target = tmp_path / "a" / "chunks" / wide.name  # shard folders "copied together"
    target.write_bytes(wide.read_bytes())
    with pytest.raises(ValueError, match=r"s1of2-000000\.safetensors: 12-d features, .* dim 8"):
        FeatureStore(tmp_path / "a")
    target.write_bytes(probs.read_bytes())
    with pytest.raises(ValueError, match=r"has class_probs, but .* has_class_probs False"):
        FeatureStore(tmp_path / "a")
    target.unlink()
    assert len(FeatureStore(tmp_path / "a")) == 2


def test_the_store_keeps_its_kind_in_the_resume_manifest(tmp_path):
    import json

    FeatureStoreWriter(tmp_path, {"extractor": "a", "dim": 8}, dtype="float32").close()
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["stage"] == "features" and manifest["inputs"] == {}
    assert manifest["settings"] == json.loads((tmp_path / "meta.json").read_text())
    # the manifest decides, not meta.json (which only describes the store to readers)
    (tmp_path / "meta.json").write_text(json.dumps({**manifest["settings"], "dim": 9}))
    FeatureStoreWriter(tmp_path, {"extractor": "a", "dim": 8}, dtype="float32").close()
    with pytest.raises(ValueError, match=r"another kind \(dtype: \"float32\" -> \"float16\"\)"):
        FeatureStoreWriter(tmp_path, {"extractor": "a", "dim": 8})


def test_a_store_from_before_the_manifest_is_read_once_from_its_meta(tmp_path):
    import json

    FeatureStoreWriter(tmp_path, {"extractor": "a", "dim": 8}).close()
    (tmp_path / "manifest.json").unlink()  # as an older unimo_kit left it: meta.json only
    meta = (tmp_path / "meta.json").read_bytes()
    with pytest.raises(ValueError, match=r"another kind \(dim: 8 -> 4\)"):
        FeatureStoreWriter(tmp_path, {"extractor": "a", "dim": 4})
    assert json.loads((tmp_path / "manifest.json").read_text())["settings"]["dim"] == 8
    FeatureStoreWriter(tmp_path, {"extractor": "a", "dim": 8}).close()
    assert (tmp_path / "meta.json").read_bytes() == meta  # kept: readers need it
