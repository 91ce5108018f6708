"""Index at scale (issue 23): tuning on held-out vectors, the ``auto`` rule at its boundaries,
re-ranking against exact search, embedding stores reused across builds and invalidated by a
changed input or encoder; and bad lines of an input named and skipped (issue 20 item 7)."""

from __future__ import annotations

import json
from dataclasses import replace

import faiss
import numpy as np
import pytest

from unimo_kit.index.build import BuildConfig, build, embed
from unimo_kit.index.factory import (
    FLAT_MAX,
    BlockRows,
    RecallProbe,
    build_index,
    estimate_cost,
    exact_search,
    held_out_rows,
    plan_index,
    recall_at_k,
    refine,
    search,
)
from unimo_kit.index.store import IndexStore, IndexStoreError


def clustered(n: int, d: int, seed: int, centres: int = 40, noise: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = np.random.default_rng(99).standard_normal((centres, d)).astype(np.float32)
    x = c[rng.integers(0, centres, n)] + noise * rng.standard_normal((n, d)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


# --------------------------------------------------------------------------- held-out tuning


def test_held_out_tuning_predicts_the_recall_of_new_queries():
    xb = clustered(6000, 32, seed=0)
    fresh = clustered(400, 32, seed=5)  # queries never indexed
    target = 0.85
    index = build_index(xb, "hnsw", tune_recall=target, seed=2)
    ef = faiss.downcast_index(index.index).hnsw.efSearch
    _, I_ref = exact_search(fresh, xb, 10)
    measured = recall_at_k(search(index, fresh, 10)[1], I_ref)
    assert measured >= target - 0.04, f"efSearch {ef}: {measured:.3f} on new queries"
    # the held-out rows were added after tuning, under their own row numbers
    assert index.ntotal == len(xb)
    held = held_out_rows(len(xb), 2)
    assert len(held) == 256
    _, I = search(index, xb[held], 1)
    assert (I[:, 0] == held).mean() > 0.95


def test_queries_from_the_index_overstate_a_graph_and_held_out_ones_do_not():
    xb = clustered(5000, 32, seed=1, noise=0.8)
    fresh = clustered(300, 32, seed=6, noise=0.8)
    index = build_index(xb, "hnsw", tune_recall=None)
    faiss.ParameterSpace().set_index_parameters(index, "efSearch=10")

    def blocks():
        return iter([xb])

    inside = RecallProbe.draw(blocks, len(xb), k=10).measure(index)
    outside = RecallProbe.held_out(fresh, blocks, k=10).measure(index)
    assert not inside["held_out"] and outside["held_out"]
    truth = recall_at_k(search(index, fresh, 10)[1], exact_search(fresh, xb, 10)[1])
    assert outside["recall"] == pytest.approx(truth)
    assert inside["recall"] > outside["recall"]  # the bias held-out tuning removes


def test_tune_queries_are_used_instead_of_held_out_rows():
    xb = clustered(3000, 16, seed=3)
    xq = clustered(100, 16, seed=4)
    index = build_index(xb, "ivf", tune_recall=0.9, tune_queries=xq)
    assert index.ntotal == len(xb)
    assert recall_at_k(search(index, xq, 10)[1], exact_search(xq, xb, 10)[1]) >= 0.9


# --------------------------------------------------------------------------- the auto rule


def test_auto_rule_at_its_boundaries():
    d = 384
    assert plan_index(FLAT_MAX - 1, d).factory == "Flat"
    assert plan_index(FLAT_MAX, d).factory == "HNSW32"
    n = 1_000_000
    hnsw_memory, hnsw_seconds = estimate_cost("hnsw", n, d)
    assert plan_index(n, d, max_memory=hnsw_memory).factory == "HNSW32"  # fits exactly
    ivf = plan_index(n, d, max_memory=hnsw_memory - 1)  # one byte short: IVF-Flat
    assert ivf.factory.endswith(",Flat") and ivf.factory.startswith("IVF")
    assert plan_index(n, d, max_build_seconds=hnsw_seconds).factory == "HNSW32"
    slow = plan_index(n, d, max_build_seconds=hnsw_seconds * 0.99)
    assert slow.factory.startswith("IVF") and "graph build" in slow.reason
    ivf_memory = ivf.memory_bytes
    assert plan_index(n, d, max_memory=ivf_memory).factory == ivf.factory
    pq = plan_index(n, d, max_memory=ivf_memory - 1)
    assert ",PQ" in pq.factory and pq.refine > 0 and pq.memory_bytes <= ivf_memory - 1
    # a budget below the flat vectors sends even a small corpus to codes
    assert ",PQ" in plan_index(FLAT_MAX - 1, d, max_memory=(FLAT_MAX - 1) * d * 4 - 1).factory


# --------------------------------------------------------------------------- re-ranking


def test_block_rows_take_matches_the_concatenation():
    x = np.random.default_rng(0).standard_normal((250, 8)).astype(np.float32)
    rows = BlockRows([x[:100], x[100:101], x[101:]])
    pick = np.array([249, 0, 100, 101, 5, 5, 150])
    np.testing.assert_array_equal(rows.take(pick), x[pick])
    assert len(rows) == 250


def test_refine_over_all_candidates_is_exact_search():
    xb = clustered(2000, 16, seed=7)
    xq = clustered(50, 16, seed=8)
    D0, I0 = exact_search(xq, xb, 10)
    everything = np.tile(np.arange(len(xb)), (len(xq), 1))
    everything[:, :5] = -1  # missing candidates are skipped, not ranked
    D, I = refine(xq, everything[:, ::-1], BlockRows([xb[:700], xb[700:]]), 10)
    keep = I0 >= 5
    assert recall_at_k(I, np.where(keep, I0, -1)) >= 0.999 or np.all(I >= 5)
    full = np.tile(np.arange(len(xb)), (len(xq), 1))
    D, I = refine(xq, full, BlockRows([xb]), 10)
    np.testing.assert_array_equal(I, I0)
    np.testing.assert_allclose(D, D0, rtol=1e-5, atol=1e-5)


def test_ivfpq_reranked_from_disk_beats_its_codes(tmp_path):
    xb = clustered(4000, 32, seed=9, noise=0.6)
    xq = clustered(100, 32, seed=10, noise=0.6)
    _, I0 = exact_search(xq, xb, 10)
    path = tmp_path / "xb.npy"
    np.save(path, xb)
    stored = BlockRows([np.load(path, mmap_mode="r")])  # on disk
    index = build_index(xb, "ivfpq", tune_recall=None)  # IndexRefineFlat in memory
    base = index.base_index
    faiss.extract_index_ivf(base).nprobe = faiss.extract_index_ivf(base).nlist
    codes = recall_at_k(search(base, xq, 10)[1], I0)
    on_disk = recall_at_k(search(base, xq, 10, rerank=stored, k_factor=8)[1], I0)
    index.k_factor = 8
    in_memory = recall_at_k(search(index, xq, 10)[1], I0)
    assert on_disk == pytest.approx(in_memory)  # faiss IndexRefineFlat, the same ranking
    assert on_disk > codes + 0.1 and on_disk >= 0.95


# --------------------------------------------------------------------------- embedding stores


class CountingEncoder:
    """Wraps an encoder and counts the texts it embeds."""

    def __init__(self, inner):
        self.inner = inner
        self.spec, self.dim, self.modalities = inner.spec, inner.dim, inner.modalities
        self.texts = 0

    def encode_text(self, texts, **kw):
        self.texts += len(texts)
        return self.inner.encode_text(texts, **kw)


@pytest.fixture
def counting(tiny_spec):
    from unimo_kit.index.encoders import load_encoder

    return CountingEncoder(load_encoder(tiny_spec))


def cfg(texts_file, spec, **kw) -> BuildConfig:
    base = BuildConfig(
        input=str(texts_file), kind="texts", encoder=spec, block_size=64, batch_size=16
    )
    return replace(base, **kw)


def test_one_store_serves_builds_of_every_type(tmp_path, texts_file, tiny_spec, counting):
    store = tmp_path / "emb"
    embed(cfg(texts_file, tiny_spec), store, encoder=counting, progress=False)
    assert counting.texts == 300
    assert json.loads((store / "embeddings.json").read_text())["count"] == 300
    found = {}
    for index_type in ("flat", "hnsw", "ivf"):
        config = cfg(texts_file, tiny_spec, index_type=index_type, embeddings=str(store))
        out = build(config, tmp_path / index_type, encoder=counting, progress=False)
        assert not (out / "blocks").exists()  # the vectors stay in the store
        index = IndexStore.open(out)
        assert index.meta["embeddings"]["count"] == 300
        xq = np.concatenate(list(index.embedding_blocks()))[:20]
        found[index_type] = index.search(xq, 1)[1][:, 0]
        assert index.records[5]["id"] == "t0005"
    assert counting.texts == 300  # embedded once
    np.testing.assert_array_equal(found["flat"], np.arange(20))
    assert (found["hnsw"] == np.arange(20)).mean() >= 0.9


def test_a_store_of_the_previous_release_is_read_through_its_build_json_once(
    tmp_path, texts_file, tiny_spec, counting, capsys
):
    store = tmp_path / "emb"
    embed(cfg(texts_file, tiny_spec), store, encoder=counting, progress=False)
    manifest = json.loads((store / "manifest.json").read_text())
    assert manifest["stage"] == "index embed" and manifest["settings"]["block_size"] == 64
    fingerprint = manifest["inputs"]["texts"]
    (store / "manifest.json").unlink()  # the layout of the previous release
    old = {"format_version": 1, "input": str(texts_file), "kind": "texts"}
    old |= {"encoder": tiny_spec, "block_size": 64, "shard": "0/1"}
    old |= {"input_size": fingerprint["size"], "input_mtime_ns": fingerprint["mtime_ns"]}
    (store / "build.json").write_text(json.dumps({**old, "input_sha256": fingerprint["sha256"]}))
    capsys.readouterr()
    config = cfg(texts_file, tiny_spec, index_type="flat", embeddings=str(store))
    assert len(IndexStore.open(build(config, tmp_path / "a", encoder=counting))) == 300
    assert counting.texts == 300  # not embedded again
    assert "read the build.json of an older unimo_kit" in capsys.readouterr().err
    assert json.loads((store / "manifest.json").read_text()) == manifest
    assert not (store / "build.json").exists()  # read once, then replaced
    build(replace(config, index_type="hnsw"), tmp_path / "b", encoder=counting, progress=False)
    assert counting.texts == 300 and "older" not in capsys.readouterr().err  # once


def test_overwrite_with_other_index_settings_keeps_the_embeddings(
    tmp_path, texts_file, tiny_spec, counting
):
    out = tmp_path / "t"
    build(cfg(texts_file, tiny_spec, index_type="flat"), out, encoder=counting, progress=False)
    with pytest.raises(IndexStoreError, match="other settings"):
        build(cfg(texts_file, tiny_spec, index_type="hnsw"), out, encoder=counting)
    build(
        cfg(texts_file, tiny_spec, index_type="hnsw"),
        out,
        overwrite=True,
        encoder=counting,
        progress=False,
    )
    assert counting.texts == 300
    assert IndexStore.open(out).meta["factory"] == "HNSW32"
    # a second build can use that index folder as its store
    other = cfg(texts_file, tiny_spec, index_type="flat", embeddings=str(out))
    build(other, tmp_path / "again", encoder=counting, progress=False)
    assert counting.texts == 300


def test_a_changed_input_or_encoder_invalidates_the_store(
    tmp_path, texts_file, tiny_spec, counting, capsys
):
    store = tmp_path / "emb"
    first = cfg(texts_file, tiny_spec, index_type="flat", embeddings=str(store))
    built = build(first, tmp_path / "a", encoder=counting, progress=False)
    assert counting.texts == 300
    with open(texts_file, "a") as handle:
        handle.write(json.dumps({"id": "new", "text": "one more red star"}) + "\n")
    build(first, tmp_path / "b", encoder=counting, progress=False)
    assert counting.texts == 300 + 301  # embedded again
    assert "embedding again (it was embedded with other settings or input (input texts changed" in (
        capsys.readouterr().err
    )
    assert len(IndexStore.open(tmp_path / "b")) == 301
    # the index built from the old embeddings says so instead of reading the new ones
    with pytest.raises(IndexStoreError, match="embedded again"):
        list(IndexStore.open(built).embedding_blocks())
    other = replace(first, encoder="st:another-model")
    with pytest.raises(IndexStoreError):  # another encoder: refused by the index folder
        build(other, tmp_path / "b", encoder=counting, progress=False)
    from unimo_kit.index.build import stale_embeddings

    assert "encoder" in stale_embeddings(store, other)


def test_store_of_an_index_folder_is_never_emptied(tmp_path, texts_file, tiny_spec, counting):
    out = tmp_path / "t"
    build(cfg(texts_file, tiny_spec, index_type="flat"), out, encoder=counting, progress=False)
    other = cfg(texts_file, tiny_spec, block_size=32, embeddings=str(out))
    with pytest.raises(IndexStoreError, match="without emptying it"):
        build(other, tmp_path / "x", encoder=counting, progress=False)
    assert IndexStore.open(out).meta["count"] == 300


def test_index_folder_tuning_is_held_out(tmp_path, texts_file, tiny_spec, counting):
    config = cfg(texts_file, tiny_spec, index_type="ivf", tune_recall=0.9)
    out = build(config, tmp_path / "t", encoder=counting, progress=False)
    meta = IndexStore.open(out).meta
    assert meta["tuning"]["held_out"] is True and meta["tuning"]["queries"] == 30
    assert meta["tuning"]["queries_from"] == "30 held-out rows"
    index = IndexStore.open(out)
    assert len(index) == 300 and index.verify(k=5)["held_out"] is False
    xq = counting.encode_text(["red star", "blue circle left of a square"])
    assert index.verify(k=5, queries=xq)["held_out"] is True


def test_ivfpq_folder_reranks_from_its_store(tmp_path, texts_file, tiny_spec, counting):
    config = cfg(texts_file, tiny_spec, index_type="ivfpq", tune_recall=0.9)
    out = build(config, tmp_path / "pq", encoder=counting, progress=False)
    index = IndexStore.open(out)
    assert index.meta["refine"] > 0
    xq = counting.encode_text(["red star", "two green triangles", "a big blue cross"])
    _, I0 = exact_search(xq, np.concatenate(list(index.embedding_blocks())), 5)
    assert recall_at_k(index.search(xq, 5)[1], I0) >= 0.8


# --------------------------------------------------------------------------- bad input lines


def test_cli_build_names_and_skips_surrogates_and_duplicate_ids(tmp_path, tiny_spec):
    from click.testing import CliRunner

    from unimo_kit.cli.index import index

    texts = tmp_path / "texts.jsonl"
    lines = [
        '{"id": "a", "text": "a red circle"}',
        '{"id": "b", "text": "caf\\ud800 sign"}',  # valid JSON, a lone surrogate
        '{"id": "c", "text": "two blue stars"}',
        '{"id": "a", "text": "a second a"}',  # duplicate id
        '{"id": "d", "text": "a green square"}',
    ]
    texts.write_text("\n".join(lines) + "\n")
    root = str(tmp_path / "idx")
    args = ["build", "--texts", str(texts), "--name", "t", "--root", root, "--encoder", tiny_spec]
    res = CliRunner().invoke(index, args)
    assert res.exit_code == 0, res.output
    assert f"{texts}:2:" in res.output and "surrogate" in res.output
    assert f"{texts}:4: duplicate id 'a' (first at line 1)" in res.output
    store = IndexStore.open(tmp_path / "idx" / "t")
    assert [r["id"] for r in store.records] == ["a", "c", "d"]
    assert store.records[0]["text"] == "a red circle"  # the first copy is kept


def test_cli_search_refuses_a_query_argument_that_is_not_text(tmp_path, tiny_spec):
    from click.testing import CliRunner

    from unimo_kit.cli.index import index

    texts = tmp_path / "texts.jsonl"
    texts.write_text('{"id": "a", "text": "a red circle"}\n{"id": "b", "text": "a star"}\n')
    root = str(tmp_path / "idx")
    runner = CliRunner()
    build_args = ["build", "--texts", str(texts), "--name", "t", "--root", root]
    assert runner.invoke(index, [*build_args, "--encoder", tiny_spec]).exit_code == 0
    bad = b"caf\xe9".decode("utf-8", "surrogateescape")  # what Python makes of argv bytes
    res = runner.invoke(index, ["search", "t", "--root", root, "--text", bad])
    assert res.exit_code == 2 and "not valid UTF-8" in res.output
    assert "Traceback" not in res.output


def test_cli_builds_two_types_from_one_store_and_tunes_on_a_query_file(
    tmp_path, texts_file, tiny_spec
):
    from click.testing import CliRunner

    from unimo_kit.cli.index import index

    queries = tmp_path / "queries.txt"
    queries.write_text("a red star\ntwo blue circles\nthe big green square\n")
    root = str(tmp_path / "idx")
    runner = CliRunner()
    base = ["build", "--texts", str(texts_file), "--root", root, "--encoder", tiny_spec]
    res = runner.invoke(index, [*base, "--name", "a", "--type", "hnsw", "--embeddings", "emb"])
    assert res.exit_code == 0, res.output
    assert "held-out queries" in res.output
    emb = tmp_path / "idx" / "emb"
    stamp = (emb / "blocks" / "00000.npy").stat().st_mtime_ns
    args = [*base, "--name", "b", "--type", "ivf", "--embeddings", "emb"]
    res = runner.invoke(index, [*args, "--tune-queries", str(queries)])
    assert res.exit_code == 0, res.output
    assert (emb / "blocks" / "00000.npy").stat().st_mtime_ns == stamp  # read, not re-embedded
    meta = IndexStore.open(tmp_path / "idx" / "b").meta
    assert meta["tuning"]["queries_from"] == str(queries) and meta["tuning"]["queries"] == 3
    res = runner.invoke(
        index, ["search", "b", "--root", root, "--verify", "--queries", str(queries)]
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.output.splitlines()[0])["held_out"] is True
