"""Index types and the free functions against exact search, with fixed seeds."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from unimo_kit.index.factory import (
    TUNE_FLOOR,
    IndexPlan,
    RecallProbe,
    build_index,
    create_index,
    exact_search,
    parse_memory,
    plan_index,
    quantizer_ef_search,
    recall_at_k,
    search,
    set_search_params,
    train_index,
    tune_search_params,
)


def clustered(n: int, d: int, seed: int, centres: int = 50) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = np.random.default_rng(99).standard_normal((centres, d)).astype(np.float32)
    x = c[rng.integers(0, centres, n)] + 0.3 * rng.standard_normal((n, d)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data():
    xb = clustered(3000, 32, seed=0)
    xq = clustered(200, 32, seed=1)
    scores = xq @ xb.T  # (200, 3000) dense reference
    I_ref = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    return xb, xq, scores, I_ref


def test_exact_search_blocks_match_dense(data):
    xb, xq, scores, I_ref = data
    D, I = exact_search(xq, xb, 10, block_size=700)  # 9 blocks, uneven last
    assert recall_at_k(I, I_ref) == 1.0
    np.testing.assert_allclose(D, np.take_along_axis(scores, I_ref, 1), rtol=1e-5, atol=1e-5)
    blocks = [xb[:1000], xb[1000:1001], xb[1001:]]
    _, I2 = exact_search(xq, iter(blocks), 10)
    np.testing.assert_array_equal(I2, I)


def test_exact_search_l2(data):
    xb, xq, _, _ = data
    dist = ((xq[:, None, :] - xb[None, :, :]) ** 2).sum(-1)
    _, I = exact_search(xq, xb, 5, metric="l2", block_size=1000)
    assert recall_at_k(I, np.argsort(dist, axis=1)[:, :5]) == 1.0


@pytest.mark.parametrize(
    ("index_type", "floor"),
    [("flat", 1.0), ("hnsw", 0.95), ("ivf", 0.9), ("ivfpq", 0.3)],
)
def test_index_types_against_exact(data, index_type, floor):
    xb, xq, _, I_ref = data
    index = build_index(xb, index_type, tune_recall=0.9, seed=3)
    _, I = search(index, xq, 10)
    recall = recall_at_k(I, I_ref)
    assert recall >= floor, f"{index_type}: recall@10 {recall:.3f} < {floor}"


def test_ivf_is_deterministic_for_a_seed(data):
    xb, xq, _, _ = data
    a = search(build_index(xb, "ivf", seed=5, tune_recall=None), xq, 10)[1]
    b = search(build_index(xb, "ivf", seed=5, tune_recall=None), xq, 10)[1]
    np.testing.assert_array_equal(a, b)


def unstructured(n: int, d: int = 16, seed: int = 0) -> np.ndarray:
    """Random unit vectors: recall grows slowly with nprobe, so targets separate settings."""
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize(("target", "expected"), [(0.3, 4), (0.7, 8), (0.9, 16)])
def test_tuning_takes_the_cheapest_nprobe_that_reaches_the_target(target, expected):
    # IVF76 on 3,000 random 16-d vectors: recall@10 0.43 at nprobe 2, 0.59 at 4, 0.77 at 8,
    # 0.92 at 16 on the tuner's sample
    xb = unstructured(3000)
    n = len(xb)
    plan = plan_index(n, xb.shape[1], index_type="ivf")
    assert plan.search_params["nprobe"] > 1  # untuned plans never search one list
    index = build_index(xb, "ivf", tune_recall=None)
    tuned = tune_search_params(index, lambda: iter([xb]), n, plan.search_params, target=target)
    nprobe = tuned["params"]["nprobe"]
    assert tuned["recall"] >= target
    assert nprobe == expected  # the doubling series from TUNE_FLOOR["nprobe"] == 4
    probe = RecallProbe.draw(lambda: iter([xb]), n, k=10, metric="ip")
    assert probe.measure(index)["recall"] >= target  # what the tuner left applied
    set_search_params(index, {"nprobe": nprobe // 2})
    below = probe.measure(index)["recall"]
    assert (below < target) == (nprobe > TUNE_FLOOR["nprobe"])  # the step below falls short


def test_tuning_a_small_ivf_can_still_search_all_its_lists():
    xb = unstructured(300)  # IVF7: nlist / 4 = 1, below the floor
    plan = plan_index(len(xb), xb.shape[1], index_type="ivf")
    nlist = plan.search_params["nprobe"]
    assert plan.factory == f"IVF{nlist},Flat" and nlist < 2 * TUNE_FLOOR["nprobe"]
    index = build_index(xb, "ivf", tune_recall=0.999)
    assert faiss.extract_index_ivf(index).nprobe == nlist  # exact, as untuned
    assert recall_at_k(search(index, xb[:50], 10)[1], exact_search(xb[:50], xb, 10)[1]) == 1.0


def test_hnsw_quantizer_search_follows_nprobe():
    assert quantizer_ef_search(4) == 32 and quantizer_ef_search(64) == 128
    big = plan_index(5_000_000, 384, index_type="ivf")
    assert big.search_params["quantizer_efSearch"] == 2 * big.search_params["nprobe"]
    xb = unstructured(3000)
    index = create_index(IndexPlan("IVF256_HNSW32,Flat", {"nprobe": 16}), xb.shape[1])
    train_index(index, xb)
    index.add(xb)
    start = {"nprobe": 16, "quantizer_efSearch": 128}
    tuned = tune_search_params(index, lambda: iter([xb]), len(xb), start, target=0.9)
    params = tuned["params"]
    assert params["nprobe"] >= 32  # IVF256 needs 32 lists here (0.83 at 16)
    assert params["quantizer_efSearch"] == 2 * params["nprobe"]
    quantizer = faiss.downcast_index(faiss.extract_index_ivf(index).quantizer)
    assert quantizer.hnsw.efSearch == params["quantizer_efSearch"]  # applied, not only returned


def test_hnsw_tuning_starts_at_ef_search_16():
    xb = unstructured(3000)
    wrapper = build_index(xb, "hnsw", tune_recall=0.3)  # an IndexIDMap: rows keep their numbers
    index = faiss.downcast_index(wrapper.index)
    assert index.hnsw.efSearch == max(10, TUNE_FLOOR["efSearch"]) == 16


def test_auto_plan_by_size_and_memory():
    assert plan_index(10_000, 384).factory == "Flat"
    assert plan_index(200_000, 384).factory.startswith("HNSW")
    assert plan_index(5_000_000, 384).factory.startswith("HNSW")  # wherever it fits
    big = plan_index(5_000_000, 384, max_build_seconds=60)  # a graph would take too long
    assert big.factory.startswith("IVF") and big.factory.endswith(",Flat")
    assert big.search_params["nprobe"] > 1 and big.train_size > 0
    tight = plan_index(5_000_000, 384, max_memory="1G")
    assert ",PQ" in tight.factory and tight.refine > 0  # codes in memory, re-ranked from disk
    m = int(tight.factory.split(",PQ")[1].split("x")[0])
    assert tight.memory_bytes <= 2**30 and 384 % m == 0
    # a small corpus that does not fit the budget is compressed too
    assert ",PQ" in plan_index(50_000, 384, max_memory="4M").factory
    with pytest.raises(ValueError, match="unknown index type"):
        plan_index(10, 4, index_type="lsh")


def test_parse_memory():
    assert parse_memory("4G") == 4 * 2**30
    assert parse_memory("512M") == 512 * 2**20
    assert parse_memory("2.5GB") == int(2.5 * 2**30)
    assert parse_memory(1000) == 1000
    assert parse_memory(None) is None
    with pytest.raises(ValueError):
        parse_memory("lots")


def test_recall_at_k_counts_overlap():
    I_ref = np.array([[1, 2, 3], [4, 5, 6]])
    assert recall_at_k(np.array([[3, 2, 1], [7, 8, 9]]), I_ref) == 0.5
    assert recall_at_k(np.array([[1, 9, 9], [4, 9, 9]]), I_ref, k=1) == 1.0


def test_train_then_add_in_blocks_equals_one_add(data):
    xb, xq, _, _ = data
    plan = IndexPlan("IVF32,Flat", {"nprobe": 8}, 2000)
    a, b = create_index(plan, 32), create_index(plan, 32)
    train_index(a, xb[:2000], seed=1)
    train_index(b, xb[:2000], seed=1)
    a.add(xb)
    for start in range(0, len(xb), 999):
        b.add(xb[start : start + 999])
    np.testing.assert_array_equal(
        search(a, xq, 10, {"nprobe": 8})[1], search(b, xq, 10, {"nprobe": 8})[1]
    )
