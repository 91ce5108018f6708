"""Index folders: build, resume after a kill, shards + merge, corruption and mismatch errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from index_texts import make_texts

from unimo_kit.index.build import BuildConfig, build, merge_indexes, train_quantizer
from unimo_kit.index.store import IndexStore, IndexStoreError
from unimo_kit.utils import file_sha256

QUERIES = ["red circle left of a square", "two green stars", "a big blue triangle", "the of"]


def config(texts_file, spec, **kw) -> BuildConfig:
    base = BuildConfig(
        input=str(texts_file), kind="texts", encoder=spec, block_size=64, batch_size=16
    )
    return replace(base, **kw)


def results(folder, k=10) -> tuple[np.ndarray, np.ndarray, list]:
    store = IndexStore.open(folder)
    xq = store.encoder().encode_text(QUERIES)
    D, I = store.search(xq, k)
    ids = [[store.records[i]["id"] for i in row] for row in I]
    return D, I, ids


def test_build_writes_a_consistent_folder(tmp_path, texts_file, tiny_spec):
    out = build(config(texts_file, tiny_spec, index_type="flat"), tmp_path / "t", progress=False)
    names = {p.name for p in out.iterdir()}
    assert {"meta.json", "index.faiss", "records.jsonl", "blocks", "manifest.json"} <= names
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "index build" and manifest["settings"]["index_type"] == "flat"
    assert manifest["inputs"]["texts"]["sha256"] == file_sha256(texts_file)
    assert manifest["settings"]["input"] == str(texts_file)  # image paths are relative to it
    meta = json.loads((out / "meta.json").read_text())
    assert meta["count"] == 300 and meta["dim"] == 32 and meta["encoder"] == tiny_spec
    assert meta["metric"] == "ip" and meta["factory"] == "Flat" and meta["blocks"] == 5
    store = IndexStore.open(out)
    hits = store.search_texts(QUERIES[0], k=3)[0]
    assert [h["rank"] for h in hits] == [0, 1, 2]
    assert hits[0]["score"] >= hits[1]["score"] >= hits[2]["score"]
    assert set(hits[0]) >= {"id", "text", "score"}
    # stored embeddings are the encoder's, row for row
    emb = np.concatenate(list(store.embedding_blocks()))
    texts = [r["text"] for r in store.records]
    np.testing.assert_allclose(emb, store.encoder().encode_text(texts), atol=1e-5)
    assert store.verify(k=5)["recall"] == 1.0


def test_resume_after_simulated_kill_equals_uninterrupted(tmp_path, texts_file, tiny_spec):
    cfg = config(texts_file, tiny_spec, index_type="ivf", tune_recall=None)
    full = build(cfg, tmp_path / "full", progress=False)
    part = tmp_path / "part"
    build(cfg, part, progress=False)
    # Simulate a kill after the second block: later blocks and all final files are gone,
    # plus a torn temporary file.
    for name in ("meta.json", "index.faiss", "records.jsonl", "failed.jsonl"):
        (part / name).unlink()
    for block in sorted((part / "blocks").glob("*.npy"))[2:]:
        block.unlink()
        block.with_suffix(".jsonl").unlink()
    (part / "blocks" / "00002.npy.tmp").write_bytes(b"torn")
    with pytest.raises(IndexStoreError, match="did not finish"):
        IndexStore.open(part)
    kept = (part / "blocks" / "00000.npy").stat().st_mtime_ns
    build(cfg, part, progress=False)
    assert (part / "blocks" / "00000.npy").stat().st_mtime_ns == kept  # not recomputed
    for a, b in zip(results(full), results(part), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


KILL_SCRIPT = """
import sys, time
from unimo_kit.index.build import BuildConfig, build
from unimo_kit.index.encoders import load_encoder, register_encoder

inner = load_encoder(sys.argv[3])

class Slow:
    spec = "slow:x"
    dim = inner.dim
    modalities = inner.modalities
    def encode_text(self, texts, **kw):
        time.sleep(0.4)
        return inner.encode_text(texts, **kw)

cfg = BuildConfig(input=sys.argv[1], kind="texts", encoder=sys.argv[3], index_type="flat",
                  block_size=32, batch_size=16)
build(cfg, sys.argv[2], progress=False, encoder=Slow() if sys.argv[4] == "slow" else None)
"""


@pytest.mark.slow
def test_sigkill_mid_build_then_rerun_equals_uninterrupted(tmp_path, texts_file, tiny_spec):
    script = tmp_path / "run_build.py"
    script.write_text(KILL_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    target = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(texts_file), str(target), tiny_spec, "slow"], env=env
    )
    deadline = time.time() + 120
    while not (target / "blocks" / "00000.npy").exists():
        assert time.time() < deadline and proc.poll() is None, "build never wrote a block"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (target / "meta.json").exists(), "the build finished before the kill"
    done_before = len(list((target / "blocks").glob("*.npy")))
    assert 1 <= done_before < 10
    subprocess.run(
        [sys.executable, str(script), str(texts_file), str(target), tiny_spec, "fast"],
        env=env,
        check=True,
    )
    reference = build(
        BuildConfig(
            input=str(texts_file),
            kind="texts",
            encoder=tiny_spec,
            index_type="flat",
            block_size=32,
            batch_size=16,
        ),
        tmp_path / "reference",
        progress=False,
    )
    for a, b in zip(results(reference), results(target), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_other_settings_refused_then_overwritten(tmp_path, texts_file, tiny_spec):
    out = build(config(texts_file, tiny_spec, index_type="flat"), tmp_path / "t", progress=False)
    with pytest.raises(IndexStoreError, match="index_type"):
        build(config(texts_file, tiny_spec, index_type="hnsw"), out, progress=False)
    build(config(texts_file, tiny_spec, index_type="hnsw"), out, overwrite=True, progress=False)
    assert IndexStore.open(out).meta["factory"].startswith("HNSW")


def test_flat_shards_merge_equal_single_build(tmp_path, texts_file, tiny_spec):
    cfg = config(texts_file, tiny_spec, index_type="flat")
    single = build(cfg, tmp_path / "single", progress=False)
    shards = [
        build(replace(cfg, shard=f"{i}/3"), tmp_path / f"s{i}", progress=False) for i in range(3)
    ]
    assert sum(IndexStore.open(s).meta["count"] for s in shards) == 300
    merged = merge_indexes(shards, tmp_path / "merged")
    for a, b in zip(results(single), results(merged), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert IndexStore.open(merged).verify(k=5)["recall"] == 1.0  # embeddings via the shards


def test_ivf_shards_with_shared_quantizer_merge_equal_single(tmp_path, texts_file, tiny_spec):
    cfg = config(texts_file, tiny_spec, index_type="ivf", tune_recall=None)
    trained = train_quantizer(cfg, tmp_path / "q", progress=False)
    cfg = replace(cfg, trained=str(trained))
    single = build(cfg, tmp_path / "single", progress=False)
    shards = [
        build(replace(cfg, shard=f"{i}/2"), tmp_path / f"s{i}", progress=False) for i in range(2)
    ]
    merged = merge_indexes(shards, tmp_path / "merged", tune_recall=None)
    assert IndexStore.open(merged).meta["factory"].startswith("IVF")
    for a, b in zip(results(single), results(merged), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_merges_tune_on_rows_held_out_like_a_build(tmp_path, texts_file, tiny_spec):
    """A merge tunes on seeded rows kept out of the index until it is tuned, as a build
    does: the recall in meta.json is that of the index without them, and then every row is
    in it (issue #23)."""
    import faiss

    from unimo_kit.index.factory import RecallProbe, held_out_rows, set_search_params

    cfg = config(texts_file, tiny_spec, index_type="ivf", tune_recall=0.99)
    cfg = replace(cfg, trained=str(train_quantizer(cfg, tmp_path / "q", progress=False)))
    shards = [
        build(replace(cfg, shard=f"{i}/2"), tmp_path / f"s{i}", progress=False) for i in range(2)
    ]
    merged = IndexStore.open(merge_indexes(shards, tmp_path / "m", tune_recall=0.99))
    tuning = merged.meta["tuning"]
    assert tuning["held_out"] is True and tuning["queries_from"] == "30 held-out rows"
    held = held_out_rows(300, 1234)
    xq = np.concatenate(list(merged.embedding_blocks()))[held]
    without = faiss.clone_index(merged.index)
    faiss.extract_index_ivf(without).remove_ids(held)
    set_search_params(without, merged.meta["search_params"])
    probe = RecallProbe.held_out(xq, merged.embedding_blocks, exclude=held)
    assert probe.measure(without)["recall"] == tuning["recall"]
    assert merged.index.ntotal == 300 and without.ntotal == 270  # the rows are back

    cfg = config(texts_file, tiny_spec, index_type="hnsw")
    shards = [
        build(replace(cfg, shard=f"{i}/2"), tmp_path / f"h{i}", progress=False) for i in range(2)
    ]
    graph = IndexStore.open(merge_indexes(shards, tmp_path / "hm"))
    assert graph.meta["tuning"]["held_out"] is True
    assert graph.meta["tuning"]["queries_from"] == "30 held-out rows"
    ids = faiss.vector_to_array(faiss.downcast_index(graph.index).id_map)
    assert sorted(ids.tolist()) == list(range(300))


def test_ivf_shards_trained_apart_are_refused(tmp_path, texts_file, tiny_spec):
    cfg = config(texts_file, tiny_spec, index_type="ivf", tune_recall=None)
    shards = [
        build(replace(cfg, shard=f"{i}/2"), tmp_path / f"s{i}", progress=False) for i in range(2)
    ]
    with pytest.raises(IndexStoreError, match="quantizers differ"):
        merge_indexes(shards, tmp_path / "merged")


@pytest.fixture
def flat_index(tmp_path, texts_file, tiny_spec) -> Path:
    return build(config(texts_file, tiny_spec, index_type="flat"), tmp_path / "t", progress=False)


def test_missing_files_are_named(flat_index):
    (flat_index / "records.jsonl").unlink()
    with pytest.raises(IndexStoreError, match=r"records\.jsonl is missing"):
        IndexStore.open(flat_index)


def test_count_mismatch_is_refused(flat_index):
    lines = (flat_index / "records.jsonl").read_text().splitlines()
    (flat_index / "records.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(IndexStoreError, match="row counts disagree"):
        IndexStore.open(flat_index)


def test_dimension_mismatch_is_refused(flat_index):
    meta = json.loads((flat_index / "meta.json").read_text())
    meta["dim"] = 384
    (flat_index / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(IndexStoreError, match=r"dimension 32 but meta\.json says 384"):
        IndexStore.open(flat_index)


def test_corrupt_faiss_file_is_refused(flat_index):
    (flat_index / "index.faiss").write_bytes(b"not an index")
    with pytest.raises(IndexStoreError, match="not a readable faiss index"):
        IndexStore.open(flat_index)


def test_not_an_index_folder(tmp_path):
    with pytest.raises(IndexStoreError, match="no such index folder"):
        IndexStore.open(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(IndexStoreError, match=r"meta\.json is missing"):
        IndexStore.open(tmp_path / "empty")


def test_query_encoder_and_dimension_mismatch_refused(flat_index):
    store = IndexStore.open(flat_index)
    with pytest.raises(IndexStoreError, match="another vector space"):
        store.check_query_encoder("st:all-MiniLM-L6-v2")
    store.check_query_encoder(store.encoder_spec)  # its own is fine
    with pytest.raises(IndexStoreError, match="dimension 384"):
        store.search(np.zeros((1, 384), dtype=np.float32), 3)
    with pytest.raises(IndexStoreError, match="no image queries"):
        store.search_images(["x.png"])


def test_cli_build_search_info(tmp_path, texts_file, tiny_spec):
    from click.testing import CliRunner

    from unimo_kit.cli.index import index

    runner = CliRunner()
    root = str(tmp_path / "idx")
    args = ["build", "--texts", str(texts_file), "--name", "t", "--root", root]
    res = runner.invoke(index, [*args, "--encoder", tiny_spec, "--block-size", "100"])
    assert res.exit_code == 0, res.output
    assert "300 vectors" in res.output
    res = runner.invoke(index, ["search", "t", "--root", root, "--text", "red star", "-k", "2"])
    assert res.exit_code == 0, res.output
    line = json.loads(res.output.strip().splitlines()[-1])
    assert line["query"]["text"] == "red star" and len(line["results"]) == 2
    res = runner.invoke(
        index, ["search", "t", "--root", root, "--text", "x", "--encoder", "st:other"]
    )
    assert res.exit_code != 0 and "another vector space" in res.output
    res = runner.invoke(index, ["search", "t", "--root", root, "--verify", "-k", "5"])
    assert res.exit_code == 0 and json.loads(res.output)["recall"] == 1.0
    res = runner.invoke(index, ["info", "t", "--root", root])
    assert res.exit_code == 0 and json.loads(res.output)["count"] == 300
    res = runner.invoke(index, ["search", "missing", "--root", root, "--text", "x"])
    assert res.exit_code != 0 and "no such index folder" in res.output


def test_make_texts_is_varied():
    assert len(set(make_texts(50))) > 40
