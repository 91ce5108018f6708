"""Index types, the ``auto`` choice, and free functions over numpy in the faiss-contrib manner.

::

    index = build_index(xb, index_type="auto", max_memory="4G")   # (n, d) float32
    D, I = search(index, xq, k=10)                                # (nq, k) each
    D0, I0 = exact_search(xq, xb, k=10)                           # blockwise brute force
    recall_at_k(I, I0)                                            # fraction of true top-k found

``auto`` picks like autofaiss, by the estimated cost of each type for the corpus size, the
memory budget and the build time it implies (:func:`plan_index`):

=============================================  ==========================================
n < 20k and the vectors fit                    ``Flat`` (exact; faster than a graph's
                                               overhead is worth)
vectors + graph fit, graph builds in time      ``HNSW32`` (efSearch tuned)
the vectors fit                                ``IVF{k}_HNSW32,Flat`` (k ≈ 4·√n, nprobe tuned)
only codes fit                                 ``IVF{k}_HNSW32,PQ{m}x8`` + exact re-ranking of
                                               the ``refine``·k best from the stored vectors
                                               (memory-mapped, on disk)
=============================================  ==========================================

Search parameters are never left at faiss's defaults silently (``nprobe=1``): every plan
carries starting values, and :func:`tune_search_params` picks the cheapest setting (doubling
from a floor) whose recall against exact search meets a target, measured on **held-out**
queries: vectors that were not in the index when it was tuned (a seeded sample added after
tuning, or the user's own queries). Queries drawn from the indexed vectors overstate a graph
index's recall (the query is a node of the graph: 0.968 promised, 0.925 delivered on 215k real
sentence embeddings). An HNSW coarse quantizer searches ``quantizer_efSearch =
max(32, 2·nprobe)``: enough to find the nprobe nearest lists, and no more.

HNSW graphs number their rows in the order they were added, so they are wrapped in an
``IndexIDMap`` that keeps every row's own number: held-out rows can then be added last.

Vectors are expected L2-normalised with ``metric="ip"`` (inner product = cosine).
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from unimo_kit.resources import import_faiss

logger = logging.getLogger("unimo_kit.index")

INDEX_TYPES = ("flat", "hnsw", "ivf", "ivfpq", "auto")
METRICS = ("ip", "l2")

FLAT_MAX = 20_000  # auto: exact search below this many vectors (a graph buys little there)
HNSW_M = 32  # neighbours per node in HNSW graphs
HNSW_ADD_RATE = 2_500  # vectors/s/core HNSW32 adds (efConstruction 80, d=384; 2 cores measured)
MAX_BUILD_SECONDS = 3_600.0  # auto: no HNSW whose graph would take longer than this to build
REFINE_K_FACTOR = 8  # IVF-PQ: re-rank this many times k candidates with exact distances
TRAIN_POINTS_PER_LIST = 40  # IVF training sample: this many vectors per inverted list
TUNE_FLOOR = {"nprobe": 4, "efSearch": 16}  # where tune_search_params starts doubling
HELD_OUT = 256  # queries kept out of the index while it is tuned
DEFAULT_TARGET_RECALL = 0.95  # recall@10 that builds tune for unless told otherwise
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
    refine: int = 0  # re-rank refine·k candidates by exact distance (0: no re-ranking)
    memory_bytes: int = 0  # estimated resident size of the index (re-rank vectors on disk)
    build_seconds: float = 0.0  # estimated time to fill it (HNSW graph, IVF assignment)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndexPlan:
        """The inverse of :meth:`to_dict`, tolerating fields of older or newer versions."""
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in names})


def _cores() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


def estimate_cost(kind: str, n: int, dim: int, *, nlist: int = 1, pq_bytes: int = 0):
    """``(memory_bytes, build_seconds)`` of an index type over ``n`` vectors of ``dim``.

    Memory is the resident index: vectors (4·d bytes each) or PQ codes (m bytes), 8-byte ids
    for IVF and ID-mapped HNSW, 2·M 4-byte links per HNSW node (+10 % for upper levels),
    centroids. Build time counts only what dominates: inserting into the HNSW graph
    (:data:`HNSW_ADD_RATE` per core); IVF assignment and flat copies are seconds per million.
    """
    if kind == "flat":
        return n * dim * 4, 0.0
    if kind == "hnsw":
        memory = n * (dim * 4 + int(HNSW_M * 2 * 4 * 1.1) + 8)
        return memory, n / (HNSW_ADD_RATE * _cores())
    centroids = nlist * dim * 4 + (nlist * int(HNSW_M * 2 * 4 * 1.1) if nlist >= 1024 else 0)
    per_vector = (pq_bytes if kind == "ivfpq" else dim * 4) + 8
    return int(n * per_vector * 1.05) + centroids, n / (200_000 * _cores())


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
    faiss = import_faiss()

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
    n: int,
    dim: int,
    *,
    index_type: str = "auto",
    max_memory: int | str | None = None,
    max_build_seconds: float | None = MAX_BUILD_SECONDS,
) -> IndexPlan:
    """Choose a factory string, starting search parameters and re-ranking.

    ``auto`` takes the first type that fits, in this order: ``Flat`` below :data:`FLAT_MAX`
    vectors; ``HNSW32`` wherever vectors + graph fit ``max_memory`` and the graph builds
    within ``max_build_seconds`` (:func:`estimate_cost`); ``IVF-Flat`` wherever the vectors
    fit; else ``IVF-PQ`` with the largest code the budget allows and exact re-ranking of
    :data:`REFINE_K_FACTOR`·k candidates from the stored vectors, which stay on disk.

    Args:
        n: number of vectors to index.
        dim: their dimension.
        index_type: one of ``flat``, ``hnsw``, ``ivf``, ``ivfpq``, ``auto``.
        max_memory: budget for the built index (bytes or ``"4G"``); only ``auto`` and
            ``ivfpq`` use it.
        max_build_seconds: ``auto``: longest graph build accepted (``None``: any).

    Returns:
        :class:`IndexPlan`, with its estimated memory and build time.

    Raises:
        ValueError: an unknown type, a bad ``max_memory``, or PQ codes (``ivfpq``, or ``auto``
            under a tight ``max_memory``) for fewer than ``PQ_MIN_VECTORS`` vectors.
    """
    if index_type not in INDEX_TYPES:
        raise ValueError(f"unknown index type {index_type!r}: expected one of {INDEX_TYPES}")
    budget = parse_memory(max_memory)
    nlist = _nlist(n)
    quantizer = f"IVF{nlist}_HNSW{HNSW_M}" if nlist >= 1024 else f"IVF{nlist}"
    ivf_params = {"nprobe": max(1, min(nlist, max(16, nlist // 64)))}
    if nlist >= 1024:
        ivf_params["quantizer_efSearch"] = quantizer_ef_search(ivf_params["nprobe"])
    train = min(n, max(nlist * TRAIN_POINTS_PER_LIST, 10_000))

    def fits(memory: int) -> bool:
        return budget is None or memory <= budget

    def make(kind: str, reason: str) -> IndexPlan:
        if kind == "flat":
            memory, seconds = estimate_cost("flat", n, dim)
            return IndexPlan("Flat", {}, 0, reason, 0, memory, seconds)
        if kind == "hnsw":
            memory, seconds = estimate_cost("hnsw", n, dim)
            return IndexPlan(f"HNSW{HNSW_M}", {"efSearch": 128}, 0, reason, 0, memory, seconds)
        if kind == "ivf":
            memory, seconds = estimate_cost("ivf", n, dim, nlist=nlist)
            plan = IndexPlan(f"{quantizer},Flat", dict(ivf_params), train, reason)
            plan.memory_bytes, plan.build_seconds = memory, seconds
            return plan
        if n < PQ_MIN_VECTORS:
            why, fix = "ivfpq", "use index type flat or ivf"
            if index_type != "ivfpq":
                why, fix = f"auto under max_memory {max_memory}", "raise max_memory"
            raise ValueError(
                f"{why} needs PQ codes, which train on at least {PQ_MIN_VECTORS} vectors, but "
                f"there are {n}: {fix}"
            )
        centroids, _ = estimate_cost("ivfpq", 0, dim, nlist=nlist)
        per_vector = ((budget - centroids) / max(n, 1) / 1.05 - 8) if budget else dim / 4
        m = _pq_bytes(dim, min(per_vector, dim / 4))
        memory, seconds = estimate_cost("ivfpq", n, dim, nlist=nlist, pq_bytes=m)
        return IndexPlan(
            f"{quantizer},PQ{m}x8",
            dict(ivf_params),
            min(n, max(train, 256 * 40)),
            reason,
            REFINE_K_FACTOR,
            memory,
            seconds,
        )

    if index_type != "auto":
        return make(index_type, "requested")
    if n < FLAT_MAX and fits(estimate_cost("flat", n, dim)[0]):
        return make("flat", f"auto: {n} < {FLAT_MAX} vectors, exact search")
    memory, seconds = estimate_cost("hnsw", n, dim)
    slow = max_build_seconds is not None and seconds > max_build_seconds
    if fits(memory) and not slow:
        return make("hnsw", f"auto: vectors + graph fit ({_gib(memory)}), ~{seconds:.0f} s build")
    why = (
        f"graph build ~{seconds:.0f} s > {max_build_seconds:.0f} s"
        if slow
        else (f"vectors + graph {_gib(memory)} > max_memory {_gib(budget or 0)}")
    )
    if fits(estimate_cost("ivf", n, dim, nlist=nlist)[0]):
        return make("ivf", f"auto: {why}; {nlist} lists, exact codes")
    return make("ivfpq", f"auto: {why}, vectors do not fit; PQ codes, re-ranked from disk")


def _gib(nbytes: int) -> str:
    return f"{nbytes / 2**30:.2f} GiB"


# --------------------------------------------------------------------------- building


def create_index(plan: IndexPlan, dim: int, metric: str = "ip") -> Any:
    """An empty faiss index for ``plan`` (HNSW built with efConstruction 80, inside an
    ``IndexIDMap`` so rows keep their numbers whatever order they are added in)."""
    faiss = import_faiss()

    index = faiss.index_factory(dim, plan.factory, metric_type(metric))
    if plan.factory.startswith("HNSW"):
        faiss.downcast_index(index).hnsw.efConstruction = 80
        wrapped = faiss.IndexIDMap(index)
        wrapped.own_fields = True
        index.this.disown()  # the IDMap now owns (and frees) the graph
        index = wrapped
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


def add_rows(index: Any, x: np.ndarray, rows: np.ndarray) -> None:
    """Add vectors ``x`` ``(m, d)`` as rows ``rows`` ``(m,)`` of ``index``: by id where the
    index keeps ids (IVF, ID-mapped HNSW), else in order (then ``rows`` must continue it)."""
    faiss = import_faiss()

    x = np.ascontiguousarray(x, dtype=np.float32)
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    if not len(x):
        return
    if isinstance(index, faiss.IndexIDMap) or faiss.try_extract_index_ivf(index) is not None:
        index.add_with_ids(x, rows)
        return
    if rows[0] != index.ntotal or np.any(np.diff(rows) != 1):
        raise ValueError(f"{type(index).__name__} adds rows in order only; got rows {rows[:4]}…")
    index.add(x)


def add_blocks(
    index: Any,
    blocks: Iterable[np.ndarray],
    *,
    skip: np.ndarray | None = None,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Add the concatenation of ``blocks`` to ``index`` block by block, row numbers counted
    from 0, leaving out the sorted rows ``skip`` (held out, added later with :func:`add_rows`).
    ``progress(m)`` is called after each block."""
    offset = 0
    skip = np.zeros(0, dtype=np.int64) if skip is None else skip
    for block in blocks:
        rows = np.arange(offset, offset + len(block))
        keep = ~np.isin(rows, skip, assume_unique=True) if len(skip) else slice(None)
        add_rows(index, np.asarray(block)[keep], rows[keep])
        offset += len(block)
        if progress is not None:
            progress(len(block))


def train_index(index: Any, sample: np.ndarray, *, seed: int = 1234, use_gpu: bool | None = None):
    """Train ``index`` (no-op when it needs none); k-means on the GPU when faiss has one.

    Args:
        index: from :func:`create_index`.
        sample: ``(m, d)`` float32 training vectors.
        seed: k-means seed (fixed, so equal samples give equal quantizers).
        use_gpu: default: when :func:`unimo_kit.resources.faiss_gpu_available`.
    """
    faiss = import_faiss()

    if index.is_trained:
        return index
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        ivf.cp.seed = seed
        if use_gpu is None:
            from unimo_kit.resources import faiss_gpu_available

            use_gpu = faiss_gpu_available()
        if use_gpu:
            # k-means assignment on the GPU; the trained index itself stays on the CPU. The
            # SWIG attribute holds no Python reference: keep the GPU index alive ourselves
            # until training is over, or it is freed before index.train uses it.
            gpu_kmeans = faiss.index_cpu_to_all_gpus(faiss.IndexFlatL2(ivf.d))
            ivf.clustering_index = gpu_kmeans
            try:
                index.train(np.ascontiguousarray(sample, dtype=np.float32))
            finally:
                ivf.clustering_index = None
                del gpu_kmeans
            return index
    index.train(np.ascontiguousarray(sample, dtype=np.float32))
    return index


def set_search_params(index: Any, params: dict[str, int]) -> None:
    """Apply ``{"nprobe": 64, "efSearch": 128, ...}`` (faiss ParameterSpace names)."""
    faiss = import_faiss()

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
    tune_recall: float | None = DEFAULT_TARGET_RECALL,
    k: int = 10,
    tune_queries: np.ndarray | None = None,
    use_gpu: bool | None = None,
) -> Any:
    """Build an index over ``xb`` in memory (for data larger than memory use
    :func:`unimo_kit.index.build.build`, which streams blocks from disk).

    Args:
        xb: ``(n, d)`` float32 database vectors (a memmap works).
        index_type: ``flat``, ``hnsw``, ``ivf``, ``ivfpq`` or ``auto``.
        metric: ``ip`` (normalised vectors) or ``l2``.
        max_memory: budget for ``auto`` / ``ivfpq``.
        seed: sample and k-means seed.
        block_size: vectors added per call.
        tune_recall: the cheapest search parameters whose recall@k on held-out queries
            reaches this (:func:`tune_search_params`; ``None``: keep the plan's values).
        k: the k of ``tune_recall``.
        tune_queries: ``(m, d)`` queries to tune on; default: :data:`HELD_OUT` rows of ``xb``
            kept out of the index until it is tuned.
        use_gpu: k-means on the GPU (default: when available).

    Returns:
        The faiss index, search parameters applied. A plan with re-ranking (``ivfpq``) comes
        back as a faiss ``IndexRefineFlat`` over the PQ index (``k_factor`` applied), which
        holds a copy of ``xb``: in memory, the faiss way; index folders re-rank from the
        stored vectors on disk instead.
    """
    faiss = import_faiss()

    n, dim = xb.shape
    plan = plan_index(n, dim, index_type=index_type, max_memory=max_memory)
    index = create_index(plan, dim, metric)
    if plan.train_size:
        rows = sample_rows(n, plan.train_size, seed)
        train_index(index, np.asarray(xb[rows], dtype=np.float32), seed=seed, use_gpu=use_gpu)
    tune = tune_recall is not None and bool(plan.search_params)
    held = held_out_rows(n, seed) if tune and tune_queries is None else np.zeros(0, np.int64)
    base = index
    if plan.refine:
        # built empty around the trained base; its flat store holds every row, in order
        index = faiss.IndexRefineFlat(base)
        index.k_factor = plan.refine
        for start in range(0, n, block_size):
            index.refine_index.add(np.ascontiguousarray(xb[start : start + block_size]))
    add_blocks(base, _blocks(xb, block_size), skip=held)
    index.ntotal = n
    params = dict(plan.search_params)
    if tune:
        probe = RecallProbe.held_out(
            tune_queries if tune_queries is not None else np.asarray(xb[held]),
            lambda: _blocks(xb, block_size),
            k=k,
            metric=metric,
            exclude=held,
        )
        params = tune_search_params(index, None, n, params, target=tune_recall, probe=probe)[
            "params"
        ]
    add_rows(base, np.asarray(xb[held]), held)
    set_search_params(index, params)
    return index


def held_out_rows(n: int, seed: int, size: int = HELD_OUT) -> np.ndarray:
    """The sorted rows kept out of an index of ``n`` vectors while it is tuned: ``size`` of
    them, at most a tenth of ``n`` (none below 20 vectors)."""
    size = min(size, n // 10)
    return sample_rows(n, size, seed + 7) if size else np.zeros(0, dtype=np.int64)


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
    rerank: BlockRows | None = None,
    k_factor: int = 1,
    metric: str = "ip",
) -> tuple[np.ndarray, np.ndarray]:
    """k nearest neighbours: ``(D, I)``, each ``(nq, k)``; ``I == -1`` where fewer exist.

    With ``rerank`` (the indexed vectors, e.g. memory-mapped from disk), the index proposes
    ``k_factor``·k candidates and :func:`refine` re-ranks them by exact distance.
    """
    if params:
        set_search_params(index, params)
    xq = np.ascontiguousarray(xq, dtype=np.float32)
    if xq.ndim == 1:
        xq = xq[None]
    nq = xq.shape[0]
    D = np.empty((nq, k), dtype=np.float32)
    I = np.empty((nq, k), dtype=np.int64)
    fetch = k * max(1, k_factor) if rerank is not None else k
    for start in range(0, nq, batch_size):
        part = xq[start : start + batch_size]
        Dp, Ip = index.search(part, fetch)
        if rerank is not None:
            Dp, Ip = refine(part, Ip, rerank, k, metric)
        D[start : start + batch_size], I[start : start + batch_size] = Dp, Ip
    return D, I


class BlockRows:
    """Row access to vectors stored as consecutive blocks (``.npy`` files memory-mapped, or
    arrays): ``take(rows)`` reads only the rows asked for, so re-ranking works on stores
    larger than memory (the page cache keeps the hot rows)."""

    def __init__(self, blocks: Iterable[np.ndarray]):
        self.blocks = list(blocks)
        sizes = [len(b) for b in self.blocks]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)  # (B+1,)
        self.dim = int(self.blocks[0].shape[1]) if self.blocks else 0

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def take(self, rows: np.ndarray) -> np.ndarray:
        """``(len(rows), d)`` float32: the vectors of ``rows`` (any order, repeats allowed)."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self.dim), dtype=np.float32)
        which = np.searchsorted(self.offsets, rows, side="right") - 1  # block of each row
        for b in np.unique(which):
            sel = np.flatnonzero(which == b)
            local = rows[sel] - self.offsets[b]
            order = np.argsort(local, kind="stable")  # sorted reads from a memmap
            out[sel[order]] = self.blocks[b][local[order]]
        return out


def refine(
    xq: np.ndarray, I: np.ndarray, xb: BlockRows, k: int, metric: str = "ip", block: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """Re-rank candidate rows ``I`` ``(nq, k')`` of queries ``xq`` by exact distance to the
    stored vectors ``xb``; ``(D, I)`` of the best ``k`` (``I == -1`` past the candidates).

    The same result as faiss ``IndexRefineFlat``, with the vectors read from ``xb`` (which
    may be on disk) instead of a second in-memory copy.
    """
    nq = I.shape[0]
    D_out = np.full((nq, k), -np.inf if metric == "ip" else np.inf, dtype=np.float32)
    I_out = np.full((nq, k), -1, dtype=np.int64)
    for start in range(0, nq, block):
        cand = I[start : start + block]  # (b, k')
        valid = cand >= 0
        vectors = xb.take(np.where(valid, cand, 0).ravel()).reshape(*cand.shape, -1)
        q = xq[start : start + block, None, :]  # (b, 1, d)
        if metric == "ip":
            scores = np.einsum("bkd,bkd->bk", vectors, np.broadcast_to(q, vectors.shape))
            scores = np.where(valid, scores, -np.inf)
            order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        else:
            scores = ((vectors - q) ** 2).sum(-1)
            scores = np.where(valid, scores, np.inf)
            order = np.argsort(scores, axis=1, kind="stable")[:, :k]
        width = order.shape[1]
        D_out[start : start + block, :width] = np.take_along_axis(scores, order, 1)
        picked = np.take_along_axis(np.where(valid, cand, -1), order, 1)
        I_out[start : start + block, :width] = picked
    return D_out, I_out


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
    faiss = import_faiss()

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
    """Queries and their exact neighbours, to measure an index's recall@k.

    :meth:`held_out` is the honest probe: queries that are not in the index (held-out rows,
    or the user's queries), their neighbours found by exact search over the indexed vectors.
    :meth:`draw` samples queries from the indexed vectors themselves (own row left out), which
    overstates a graph index's recall; it remains for indexes that hold every row already."""

    rows: np.ndarray | None  # (m,) rows of the queries when they are indexed, else None
    xq: np.ndarray  # (m, d) the queries
    I_ref: np.ndarray  # (m, k) exact neighbours
    k: int
    outside: bool = True  # whether the queries were outside the index when measured

    @classmethod
    def held_out(
        cls,
        xq: np.ndarray,
        blocks: Callable[[], Iterator[np.ndarray]],
        *,
        k: int = 10,
        metric: str = "ip",
        exclude: np.ndarray | None = None,
    ) -> RecallProbe:
        """Exact neighbours of ``xq`` among the rows yielded by ``blocks()``, leaving out the
        sorted rows ``exclude`` (the held-out queries themselves, when they are stored rows)."""
        xq = np.ascontiguousarray(xq, dtype=np.float32)
        extra = 0 if exclude is None else len(exclude)
        _, I_ref = exact_search(xq, blocks(), k + extra, metric)
        if extra:
            I_ref = np.stack([row[~np.isin(row, exclude)][:k] for row in I_ref])
        return cls(None, xq, I_ref[:, :k], k, True)

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
        """Sample ``n_queries`` of the ``n`` indexed vectors yielded by ``blocks()`` (called
        twice) as queries; each one's own row is left out of both lists."""
        k = max(1, min(k, n - 1))
        rows = sample_rows(n, min(n_queries, n), seed + 1)
        xq = _gather_rows(blocks(), rows)
        _, I_ref = exact_search(xq, blocks(), k + 1, metric)
        return cls(rows, xq, _drop_self(I_ref, rows, k), k, False)

    def measure(
        self, index: Any, *, rerank: BlockRows | None = None, k_factor: int = 1, metric: str = "ip"
    ) -> dict[str, Any]:
        """Recall@k and queries/s of ``index`` with its current search parameters (and
        re-ranking from ``rerank`` when given)."""
        extra = 0 if self.rows is None else 1
        began = time.perf_counter()
        _, I = search(
            index, self.xq, self.k + extra, rerank=rerank, k_factor=k_factor, metric=metric
        )
        qps = len(self.xq) / max(time.perf_counter() - began, 1e-9)
        if self.rows is not None:
            I = _drop_self(I, self.rows, self.k)
        recall = recall_at_k(I, self.I_ref, self.k)
        return {
            "recall": recall,
            "k": self.k,
            "queries": len(self.xq),
            "qps": qps,
            "held_out": self.outside,
        }


def tune_search_params(
    index: Any,
    blocks: Callable[[], Iterator[np.ndarray]] | None,
    n: int,
    start: dict[str, int],
    *,
    k: int = 10,
    target: float = 0.9,
    metric: str = "ip",
    n_queries: int = 256,
    seed: int = 1234,
    probe: RecallProbe | None = None,
    rerank: BlockRows | None = None,
    k_factor: int = 1,
) -> dict[str, Any]:
    """The smallest ``nprobe`` / ``efSearch`` in a doubling series whose recall@k against
    exact search reaches ``target``: starting from :data:`TUNE_FLOOR` (``efSearch`` at least
    k, ``nprobe`` at most nlist), doubling, but not past ``nprobe = nlist / 4`` or
    ``efSearch = 2048`` (beyond, exact search is as fast; a warning names the limit) unless
    the plan's start is higher: a small IVF plan that searches all its lists can still be
    reached. With ``nprobe``, an HNSW coarse quantizer's ``quantizer_efSearch`` follows
    :func:`quantizer_ef_search`.

    Args:
        index: a built index.
        blocks: returns a fresh iterator over the indexed vectors, in row order (used only
            without ``probe``, to draw one from the indexed vectors: optimistic).
        n: how many vectors it holds.
        start: the plan's parameters (from :class:`IndexPlan`), which name what to tune;
            empty for exact indexes.
        k, target: the recall to reach.
        metric: of the index.
        n_queries, seed: sample of the probe drawn without ``probe``.
        probe: the queries to tune on (:meth:`RecallProbe.held_out`: queries outside the
            index, so the recall reached is the recall users get).
        rerank, k_factor: re-rank ``k_factor``·k candidates from these stored vectors.

    Returns:
        ``{"params", "recall", "k", "queries", "qps", "held_out"}`` for the first parameters
        that reach ``target`` (or the largest tried).
    """
    if probe is None:
        if n < 2 or blocks is None:
            return {"params": dict(start), "recall": 1.0, "k": k, "queries": 0, "qps": None}
        probe = RecallProbe.draw(blocks, n, k=k, metric=metric, n_queries=n_queries, seed=seed)

    def measure() -> dict[str, Any]:
        return probe.measure(index, rerank=rerank, k_factor=k_factor, metric=metric)

    params = dict(start)
    if not params:
        return {"params": {}, **measure()}
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
        result = {"params": dict(params), **measure()}
        if result["recall"] >= target:
            return result
        if params[key] >= limit:
            logger.warning("%s", _missed_target(index, probe.k, result, key, params[key], target))
            return result
        params[key] = min(limit, params[key] * 2)
        if key == "nprobe" and "quantizer_efSearch" in params:
            params["quantizer_efSearch"] = quantizer_ef_search(params[key])


def tune_on_held_out(
    index: Any,
    blocks: Callable[[], Iterator[np.ndarray]],
    start: dict[str, int],
    held: np.ndarray,
    *,
    target: float,
    metric: str = "ip",
    rerank: BlockRows | None = None,
    k_factor: int = 1,
) -> dict[str, Any]:
    """Tune ``index`` on rows kept out of it, then add them: what builds and merges do, so
    that the recall in ``meta.json`` is what queries outside the corpus get.

    Args:
        index: holds every row of ``blocks()`` except the sorted rows ``held``
            (:func:`held_out_rows`).
        blocks: returns a fresh iterator over all the rows, in row order.
        start: the plan's search parameters (what to tune).
        held: the held-out rows; they are the queries, left out of the exact neighbours too.
        target, metric, rerank, k_factor: as :func:`tune_search_params`.

    Returns:
        :func:`tune_search_params`'s result with ``queries_from`` (``"N held-out rows"``);
        ``index`` then holds every row, the tuned parameters applied.
    """
    n = int(index.ntotal) + len(held)
    xq = _gather_rows(blocks(), held)
    probe = RecallProbe.held_out(xq, blocks, metric=metric, exclude=held)
    tuned = tune_search_params(
        index,
        None,
        n,
        start,
        target=target,
        metric=metric,
        probe=probe,
        rerank=rerank,
        k_factor=k_factor,
    )
    tuned["queries_from"] = f"{len(held)} held-out rows"
    add_rows(index, xq, held)
    set_search_params(index, tuned["params"])
    return tuned


def _missed_target(index: Any, k: int, result: dict, key: str, value: int, target: float) -> str:
    """The warning of a tuning that stopped short: it names the limit that binds."""
    faiss = import_faiss()

    head = f"recall@{k} reaches only {result['recall']:.3f} at {key}={value} (target {target:.2f})"
    ivf = faiss.try_extract_index_ivf(index)
    pq = getattr(faiss.downcast_index(ivf), "pq", None) if ivf is not None else None
    if pq is not None:
        return (
            f"{head}: PQ{pq.M}x{pq.nbits} codes ({pq.M} bytes a vector) cannot rank the top {k} "
            "finer than this; re-rank from the stored vectors (--type ivfpq builds do), give "
            "more bytes per vector (--max-memory), or use --type ivf / hnsw"
        )
    return (
        f"{head}: searching more {key} costs as much as exact search; use --type flat, "
        "--type hnsw, or a lower --target-recall"
    )


def _ivf_nlist(index: Any) -> int:
    faiss = import_faiss()

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
