"""Index types, the ``auto`` choice, and free functions over numpy in the faiss-contrib manner.

::

    index = build_index(xb, index_type="auto", max_memory="4G")   # (n, d) float32
    D, I = search(index, xq, k=10)                                # (nq, k) each
    D0, I0 = exact_search(xq, xb, k=10)                           # blockwise brute force
    recall_at_k(I, I0)                                            # fraction of true top-k found

``auto`` picks like autofaiss, by corpus size and memory budget:

=======================================  =============================================
n < 100k and the vectors fit             ``Flat`` (exact)
n < 300k and vectors + graph fit         ``HNSW32`` (efSearch tuned)
larger, vectors fit                      ``IVF{k}_HNSW32,Flat`` (k ≈ 4·√n, nprobe tuned)
larger, memory-bound                     ``IVF{k}_HNSW32,PQ{m}x8`` (m bytes per vector)
=======================================  =============================================

Search parameters are never left at faiss's defaults silently (``nprobe=1``): every plan
carries starting values, and :func:`tune_search_params` picks the cheapest setting (doubling
from a floor) whose recall against exact search on a sample meets a target; they are recorded
with the index. An HNSW coarse quantizer searches ``quantizer_efSearch = max(32, 2·nprobe)``:
enough to find the nprobe nearest lists, and no more (a fixed 128 made IVF search at nprobe 16
about 15 % slower on 1M vectors, for 0.6 points of recall@10).

Vectors are expected L2-normalised with ``metric="ip"`` (inner product = cosine).
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

logger = logging.getLogger("unimo_kit.index")

INDEX_TYPES = ("flat", "hnsw", "ivf", "ivfpq", "auto")
METRICS = ("ip", "l2")

FLAT_MAX = 100_000  # auto: exact search up to this many vectors
HNSW_MAX = 300_000  # auto: HNSW up to this many vectors (build time grows fast on few cores)
HNSW_M = 32  # neighbours per node in HNSW graphs
TRAIN_POINTS_PER_LIST = 40  # IVF training sample: this many vectors per inverted list
TUNE_FLOOR = {"nprobe": 4, "efSearch": 16}  # where tune_search_params starts doubling
PQ_MIN_VECTORS = 256  # PQ{m}x8 trains 256 centroids per code byte: it needs this many vectors


def quantizer_ef_search(nprobe: int) -> int:
    """efSearch of an HNSW coarse quantizer asked for the ``nprobe`` nearest lists."""
    return max(32, 2 * nprobe)


@dataclass
class IndexPlan:
    """What to build: a faiss factory string, how much to train on, how to search."""

    factory: str  # faiss.index_factory string, e.g. "IVF4096_HNSW32,Flat"
    search_params: dict[str, int] = field(default_factory=dict)  # e.g. {"nprobe": 64}
    train_size: int = 0  # vectors to train on (0: needs no training)
    reason: str = ""  # why auto chose it (shown by `unimo index info`)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_memory(value: str | int | float | None) -> int | None:
    """``"4G"``, ``"512M"``, ``"2.5GB"``, ``1e9`` -> bytes (``None`` stays ``None``)."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return int(value)
    match = re.fullmatch(r"\s*([0-9.]+)\s*([KMGT]?)I?B?\s*", str(value).upper())
    if not match:
        raise ValueError(f"invalid memory size {value!r}: expected e.g. 4G, 512M, 2.5GB")
    scale = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}[match.group(2)]
    return int(float(match.group(1)) * scale)


def metric_type(metric: str) -> int:
    """faiss metric constant for ``"ip"`` or ``"l2"``."""
    import faiss

    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}: expected one of {METRICS}")
    return faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2


def _nlist(n: int) -> int:
    """Inverted lists: the power of two nearest 4·√n, at least 1, at most n / 39."""
    target = 4 * math.sqrt(max(n, 1))
    nlist = 2 ** round(math.log2(max(target, 1)))
    return int(max(1, min(nlist, n // 39 if n >= 39 else 1)))


def _pq_bytes(dim: int, budget_per_vector: float) -> int:
    """Largest PQ code size m (bytes) that divides ``dim``, with m <= budget and m <= dim / 2."""
    best = 0
    for m in range(1, dim // 2 + 1):
        if dim % m == 0 and m <= budget_per_vector:
            best = m
    if best == 0:
        raise ValueError(
            f"max_memory leaves {budget_per_vector:.1f} bytes per vector: too little for any "
            f"PQ code of a {dim}-d vector"
        )
    return best


def plan_index(
    n: int, dim: int, *, index_type: str = "auto", max_memory: int | str | None = None
) -> IndexPlan:
    """Choose a factory string and starting search parameters.

    Args:
        n: number of vectors to index.
        dim: their dimension.
        index_type: one of ``flat``, ``hnsw``, ``ivf``, ``ivfpq``, ``auto``.
        max_memory: budget for the built index (bytes or ``"4G"``); only ``auto`` and
            ``ivfpq`` use it.

    Returns:
        :class:`IndexPlan`.

    Raises:
        ValueError: an unknown type, a bad ``max_memory``, or PQ codes (``ivfpq``, or ``auto``
            under a tight ``max_memory``) for fewer than ``PQ_MIN_VECTORS`` vectors.
    """
    if index_type not in INDEX_TYPES:
        raise ValueError(f"unknown index type {index_type!r}: expected one of {INDEX_TYPES}")
    budget = parse_memory(max_memory)
    vectors = n * dim * 4
    graph = n * HNSW_M * 2 * 4
    nlist = _nlist(n)
    quantizer = f"IVF{nlist}_HNSW{HNSW_M}" if nlist >= 1024 else f"IVF{nlist}"
    ivf_params = {"nprobe": max(1, min(nlist, max(16, nlist // 64)))}
    if nlist >= 1024:
        ivf_params["quantizer_efSearch"] = quantizer_ef_search(ivf_params["nprobe"])
    train = min(n, max(nlist * TRAIN_POINTS_PER_LIST, 10_000))

    def ivfpq(reason: str) -> IndexPlan:
        if n < PQ_MIN_VECTORS:
            why, fix = "ivfpq", "use index type flat or ivf"
            if index_type != "ivfpq":
                why, fix = f"auto under max_memory {max_memory}", "raise max_memory"
            raise ValueError(
                f"{why} needs PQ codes, which train on at least {PQ_MIN_VECTORS} vectors, but "
                f"there are {n}: {fix}"
            )
        per_vector = (budget / max(n, 1) - 8) if budget else dim / 4
        m = _pq_bytes(dim, min(per_vector, dim / 4))
        return IndexPlan(f"{quantizer},PQ{m}x8", ivf_params, min(n, max(train, 256 * 40)), reason)

    if index_type == "flat":
        return IndexPlan("Flat", {}, 0, "requested")
    if index_type == "hnsw":
        return IndexPlan(f"HNSW{HNSW_M}", {"efSearch": 128}, 0, "requested")
    if index_type == "ivf":
        return IndexPlan(f"{quantizer},Flat", ivf_params, train, "requested")
    if index_type == "ivfpq":
        return ivfpq("requested")
    fits = budget is None or vectors <= budget
    if n < FLAT_MAX and fits:
        return IndexPlan("Flat", {}, 0, f"auto: {n} < {FLAT_MAX} vectors, exact search")
    if n < HNSW_MAX and (budget is None or vectors + graph <= budget):
        return IndexPlan(
            f"HNSW{HNSW_M}", {"efSearch": 128}, 0, f"auto: {n} < {HNSW_MAX} vectors, graph fits"
        )
    if budget is None or vectors * 1.05 <= budget:
        return IndexPlan(
            f"{quantizer},Flat", ivf_params, train, f"auto: {n} vectors, {nlist} lists, exact codes"
        )
    return ivfpq(f"auto: {vectors / 2**30:.2f} GiB of vectors exceed max_memory; PQ codes")


# --------------------------------------------------------------------------- building


def create_index(plan: IndexPlan, dim: int, metric: str = "ip") -> Any:
    """An empty faiss index for ``plan`` (HNSW built with efConstruction 80)."""
    import faiss

    index = faiss.index_factory(dim, plan.factory, metric_type(metric))
    hnsw = getattr(faiss.try_extract_index_ivf(index) or index, "hnsw", None)
    if hnsw is not None:
        hnsw.efConstruction = 80
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        ivf.cp.niter = 10  # k-means iterations; more buys little on embeddings
        ivf.cp.seed = 1234
        ivfpq = faiss.downcast_index(ivf)
        if hasattr(ivfpq, "do_polysemous_training"):
            ivfpq.do_polysemous_training = False  # minutes of annealing; we never use it
    return index


def train_index(index: Any, sample: np.ndarray, *, seed: int = 1234, use_gpu: bool | None = None):
    """Train ``index`` (no-op when it needs none); k-means on the GPU when faiss has one.

    Args:
        index: from :func:`create_index`.
        sample: ``(m, d)`` float32 training vectors.
        seed: k-means seed (fixed, so equal samples give equal quantizers).
        use_gpu: default: when :func:`unimo_kit.resources.faiss_gpu_available`.
    """
    import faiss

    if index.is_trained:
        return index
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        ivf.cp.seed = seed
        if use_gpu is None:
            from unimo_kit.resources import faiss_gpu_available

            use_gpu = faiss_gpu_available()
        if use_gpu:
            # k-means assignment on the GPU; the trained index itself stays on the CPU.
            ivf.clustering_index = faiss.index_cpu_to_all_gpus(faiss.IndexFlatL2(ivf.d))
    index.train(np.ascontiguousarray(sample, dtype=np.float32))
    return index


def set_search_params(index: Any, params: dict[str, int]) -> None:
    """Apply ``{"nprobe": 64, "efSearch": 128, ...}`` (faiss ParameterSpace names)."""
    import faiss

    if params:
        text = ",".join(f"{key}={value}" for key, value in params.items())
        faiss.ParameterSpace().set_index_parameters(index, text)


def build_index(
    xb: np.ndarray,
    index_type: str = "auto",
    metric: str = "ip",
    max_memory: int | str | None = None,
    *,
    seed: int = 1234,
    block_size: int = 65_536,
    tune_recall: float | None = 0.9,
    k: int = 10,
    use_gpu: bool | None = None,
) -> Any:
    """Build an index over ``xb`` in memory (for data larger than memory use
    :class:`unimo_kit.index.store.IndexStore` builds, which stream blocks from disk).

    Args:
        xb: ``(n, d)`` float32 database vectors (a memmap works).
        index_type: ``flat``, ``hnsw``, ``ivf``, ``ivfpq`` or ``auto``.
        metric: ``ip`` (normalised vectors) or ``l2``.
        max_memory: budget for ``auto`` / ``ivfpq``.
        seed: sample and k-means seed.
        block_size: vectors added per call.
        tune_recall: the cheapest search parameters whose recall@k on a sample reaches this
            (:func:`tune_search_params`; ``None``: keep the plan's starting values).
        k: the k of ``tune_recall``.
        use_gpu: k-means on the GPU (default: when available).

    Returns:
        The faiss index, search parameters applied; ``index.unimo_plan`` is not set (faiss
        objects take no attributes), so use :func:`plan_index` to see the choice.
    """
    n, dim = xb.shape
    plan = plan_index(n, dim, index_type=index_type, max_memory=max_memory)
    index = create_index(plan, dim, metric)
    if plan.train_size:
        rows = sample_rows(n, plan.train_size, seed)
        train_index(index, np.asarray(xb[rows], dtype=np.float32), seed=seed, use_gpu=use_gpu)
    for start in range(0, n, block_size):
        index.add(np.ascontiguousarray(xb[start : start + block_size], dtype=np.float32))
    params = dict(plan.search_params)
    if tune_recall is not None and params:
        params = tune_search_params(
            index,
            lambda: _blocks(xb, block_size),
            n,
            params,
            k=k,
            target=tune_recall,
            metric=metric,
            seed=seed,
        )["params"]
    set_search_params(index, params)
    return index


def sample_rows(n: int, size: int, seed: int) -> np.ndarray:
    """Sorted distinct row numbers: ``size`` of ``range(n)`` drawn with ``seed``."""
    if size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


# --------------------------------------------------------------------------- searching


def search(
    index: Any,
    xq: np.ndarray,
    k: int,
    params: dict[str, int] | None = None,
    *,
    batch_size: int = 16_384,
) -> tuple[np.ndarray, np.ndarray]:
    """k nearest neighbours: ``(D, I)``, each ``(nq, k)``; ``I == -1`` where fewer exist."""
    if params:
        set_search_params(index, params)
    xq = np.ascontiguousarray(xq, dtype=np.float32)
    if xq.ndim == 1:
        xq = xq[None]
    nq = xq.shape[0]
    D = np.empty((nq, k), dtype=np.float32)
    I = np.empty((nq, k), dtype=np.int64)
    for start in range(0, nq, batch_size):
        D[start : start + batch_size], I[start : start + batch_size] = index.search(
            xq[start : start + batch_size], k
        )
    return D, I


def exact_search(
    xq: np.ndarray,
    xb: np.ndarray | Iterable[np.ndarray],
    k: int,
    metric: str = "ip",
    *,
    block_size: int = 262_144,
) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force k-NN over ``xb`` in blocks (an array, or an iterable of ``(b, d)`` blocks
    whose rows are numbered consecutively), merged with a faiss ``ResultHeap``.

    Returns:
        ``(D, I)``, each ``(nq, k)``, best first.
    """
    import faiss

    xq = np.ascontiguousarray(xq, dtype=np.float32)
    if xq.ndim == 1:
        xq = xq[None]
    keep_max = metric == "ip"
    heap = faiss.ResultHeap(xq.shape[0], k, keep_max=keep_max)
    blocks = _blocks(xb, block_size) if isinstance(xb, np.ndarray) else xb
    offset = 0
    for block in blocks:
        block = np.ascontiguousarray(block, dtype=np.float32)
        if len(block):
            D, I = faiss.knn(xq, block, min(k, len(block)), metric=metric_type(metric))
            heap.add_result(D, np.where(I >= 0, I + offset, -1))
        offset += len(block)
    heap.finalize()
    return heap.D, heap.I


def recall_at_k(I: np.ndarray, I_ref: np.ndarray, k: int | None = None) -> float:
    """Mean fraction of the true top-k (``I_ref[:, :k]``) found in ``I[:, :k]``."""
    k = k or I_ref.shape[1]
    hits = 0
    total = 0
    for found, truth in zip(I[:, :k], I_ref[:, :k], strict=True):
        truth = truth[truth >= 0]
        hits += len(np.intersect1d(found, truth))
        total += len(truth)
    return hits / max(total, 1)


@dataclass
class RecallProbe:
    """Sample queries drawn from the indexed vectors and their exact neighbours (own row left
    out), to measure an index's recall@k without separate query data."""

    rows: np.ndarray  # (m,) row numbers of the sampled vectors
    xq: np.ndarray  # (m, d) the vectors themselves
    I_ref: np.ndarray  # (m, k) exact neighbours, own row removed
    k: int

    @classmethod
    def draw(
        cls,
        blocks: Callable[[], Iterator[np.ndarray]],
        n: int,
        *,
        k: int = 10,
        metric: str = "ip",
        n_queries: int = 256,
        seed: int = 1234,
    ) -> RecallProbe:
        """Sample ``n_queries`` of the ``n`` vectors yielded by ``blocks()`` (called twice)."""
        k = max(1, min(k, n - 1))
        rows = sample_rows(n, min(n_queries, n), seed + 1)
        xq = _gather_rows(blocks(), rows)
        _, I_ref = exact_search(xq, blocks(), k + 1, metric)
        return cls(rows, xq, _drop_self(I_ref, rows, k), k)

    def measure(self, index: Any) -> dict[str, Any]:
        """Recall@k and queries/s of ``index`` with its current search parameters."""
        began = time.perf_counter()
        _, I = search(index, self.xq, self.k + 1)
        qps = len(self.xq) / max(time.perf_counter() - began, 1e-9)
        recall = recall_at_k(_drop_self(I, self.rows, self.k), self.I_ref, self.k)
        return {"recall": recall, "k": self.k, "queries": len(self.xq), "qps": qps}


def tune_search_params(
    index: Any,
    blocks: Callable[[], Iterator[np.ndarray]],
    n: int,
    start: dict[str, int],
    *,
    k: int = 10,
    target: float = 0.9,
    metric: str = "ip",
    n_queries: int = 256,
    seed: int = 1234,
) -> dict[str, Any]:
    """The smallest ``nprobe`` / ``efSearch`` in a doubling series whose recall@k against
    exact search on a sample of the indexed vectors reaches ``target`` (see
    :class:`RecallProbe`): starting from :data:`TUNE_FLOOR` (``efSearch`` at least k, ``nprobe``
    at most nlist), doubling, but not past ``nprobe = nlist / 4`` or ``efSearch = 2048``
    (beyond, exact search is as fast; a warning says the target was missed) unless the plan's
    start is higher: a small IVF plan that searches all its lists can still be reached. With
    ``nprobe``, an HNSW coarse quantizer's ``quantizer_efSearch`` follows
    :func:`quantizer_ef_search`.

    Args:
        index: a built index.
        blocks: returns a fresh iterator over the indexed vectors, in row order.
        n: how many vectors it holds.
        start: the plan's parameters (from :class:`IndexPlan`), which name what to tune;
            empty for exact indexes.
        k, target: the recall to reach.
        metric: of the index.
        n_queries: sample size.
        seed: sample seed.

    Returns:
        ``{"params": {...}, "recall": r, "k": k, "queries": m, "qps": queries per second}``
        for the first parameters that reach ``target`` (or the largest tried).
    """
    if n < 2:
        return {"params": dict(start), "recall": 1.0, "k": k, "queries": 0, "qps": None}
    probe = RecallProbe.draw(blocks, n, k=k, metric=metric, n_queries=n_queries, seed=seed)
    params = dict(start)
    if not params:
        return {"params": {}, **probe.measure(index)}
    key = "efSearch" if "efSearch" in params else "nprobe"
    floor = max(k, TUNE_FLOOR[key]) if key == "efSearch" else TUNE_FLOOR[key]
    # Past a quarter of the lists (or efSearch 2048) exact search is as fast: stop there,
    # unless the plan's own start is higher (a small index searches all of its lists).
    if key == "efSearch":
        limit = max(2048, params[key])
    else:
        nlist = _ivf_nlist(index)
        floor = min(floor, nlist)
        limit = max(floor, min(params[key], nlist), nlist // 4)
    params[key] = floor
    if key == "nprobe" and "quantizer_efSearch" in params:
        params["quantizer_efSearch"] = quantizer_ef_search(params[key])
    while True:
        set_search_params(index, params)
        result = {"params": dict(params), **probe.measure(index)}
        if result["recall"] >= target:
            return result
        if params[key] >= limit:
            logger.warning(
                "recall@%d reaches only %.3f at %s=%d (target %.2f): the vectors have little "
                "cluster structure for this index; consider --type flat or a lower target",
                probe.k,
                result["recall"],
                key,
                params[key],
                target,
            )
            return result
        params[key] = min(limit, params[key] * 2)
        if key == "nprobe" and "quantizer_efSearch" in params:
            params["quantizer_efSearch"] = quantizer_ef_search(params[key])


def _ivf_nlist(index: Any) -> int:
    import faiss

    ivf = faiss.try_extract_index_ivf(index)
    return int(ivf.nlist) if ivf is not None else 1


def _drop_self(I: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """Remove each query's own row from its (k+1)-list, leaving k columns."""
    out = np.empty((len(I), k), dtype=np.int64)
    for j, (found, own) in enumerate(zip(I, rows, strict=True)):
        kept = found[found != own]
        out[j] = kept[:k]
    return out


def _gather_rows(blocks: Iterator[np.ndarray], rows: np.ndarray) -> np.ndarray:
    """Rows (sorted) of the concatenation of ``blocks``, without concatenating."""
    out = []
    offset = 0
    for block in blocks:
        lo, hi = np.searchsorted(rows, [offset, offset + len(block)])
        if hi > lo:
            out.append(np.asarray(block[rows[lo:hi] - offset], dtype=np.float32))
        offset += len(block)
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def _blocks(x: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(x), size):
        yield x[start : start + size]
