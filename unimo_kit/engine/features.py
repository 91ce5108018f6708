"""``unimo features`` on the engine: the images checked as CPU units, then encoded by an actor
pool that holds the extractor once per worker (``num_gpus=1`` each where the cluster has
GPUs), then joined in input order into the store the local stage writes.

The local stage forms its batches from the images that load, in order, and an extractor's
output for one image may depend in its last bits on its batch neighbours (EfficientNet on a
CPU does). So the engine first learns which images load (``check`` units over slices of the
input: the decode :class:`~unimo_kit.data.images.ImageLoader` does, nothing kept), then cuts
the loadable images into ``encode`` units of a multiple of ``batch_size``: every unit's
batches are batches of the local run, and the store comes out byte-identical (chunks, ids,
arrays), at the price of decoding each image twice. A CPU extractor also runs with the
driver's torch thread count, which changes the last bits too (so a cluster of other CPUs may
differ from a local run in them: other kernels).

Work folder ``FEATURES/.engine/<input>-<digest>-s<i>of<n>/`` (deleted at the end):
``engine.json`` (what the units depend on; a rerun with other options or input is refused),
``check-NNNNN.json`` (positions of the slice's records to do and whether each loads, the
image counts) and ``encode-NNNNN.safetensors`` (the unit's images in the chunk format, feats
in the store's dtype). A killed driver rerun with the same command keeps the finished units;
the join skips ids already in the store, so a join cut short also resumes to the same store.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from unimo_kit.engine.core import (
    EngineOptions,
    Unit,
    as_options,
    claim_work,
    map_units,
    remove_tree,
    session,
)

UNIT_IMAGES = 256  # images per unit (rounded up to a multiple of batch_size)


def run_features(
    input_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    extractor: Any = "effnet",
    engine: str | EngineOptions = "local",
    batch_size: int = 32,
    shard: Any = None,
    resume: bool = True,
    dtype: str = "float16",
    chunk_size: int = 256,
    device: str | None = None,
    strict: bool = False,
    progress: bool = True,
    unit_images: int = UNIT_IMAGES,
) -> Any:
    """The features stage with ``engine="local"`` (exactly
    :func:`~unimo_kit.features.extract.extract_features`) or ``engine="ray"``.

    Args:
        input_path: ``images.jsonl`` or ``pairs.jsonl``; image paths must be visible to
            every worker (a shared file system).
        out: the store folder (likewise shared).
        extractor: a spec (``effnet``, ``open_clip:...``; built once per worker of the
            stage's actor pool, on the worker's GPU when it has one; the driver asks a worker
            for its meta and never builds one) or an extractor object (pickled to the
            workers).
            ``import:PATH`` looks features up and runs on the driver with either engine.
        engine: ``"local"``, ``"ray"`` or :class:`EngineOptions`.
        unit_images: images per Ray unit (the unit of retry and resume), rounded up to a
            multiple of ``batch_size``.
        batch_size, shard, resume, dtype, chunk_size, device, strict, progress: as for
            :func:`~unimo_kit.features.extract.extract_features`.

    Returns:
        An :class:`~unimo_kit.features.extract.ExtractionReport` with the local run's counts.

    Raises:
        ValueError: ``FEATURES/.engine/`` holds units of other options or input (rerun with
            the same ones, or ``resume=False``), or the store is of another kind.
        EngineError: a unit kept failing (named in the message; with ``strict``, the first
            bad image).
    """
    from unimo_kit.features.extract import extract_features
    from unimo_kit.features.extractors import RegionImport, build_extractor
    from unimo_kit.utils import Shard

    options = as_options(engine)
    shard = shard or Shard()
    common = {
        "batch_size": batch_size,
        "shard": shard,
        "resume": resume,
        "dtype": dtype,
        "chunk_size": chunk_size,
        "device": device,
        "strict": strict,
        "progress": progress,
    }
    is_import = isinstance(extractor, RegionImport) or (
        isinstance(extractor, str) and extractor.startswith("import:")
    )
    if options.engine == "local" or is_import:
        if options.engine == "ray":
            print("features: import: is a look-up; it runs on the driver", file=sys.stderr)
        return extract_features(input_path, out, extractor=extractor, **common)
    if unit_images < 1 or batch_size < 1:
        raise ValueError(f"unit_images and batch_size must be >= 1: {unit_images}, {batch_size}")
    import torch

    if isinstance(extractor, str):
        build = functools.partial(build_extractor, extractor, device=device)
    else:
        build = functools.partial(_given, extractor)
    setup = functools.partial(_worker_extractor, build, torch.get_num_threads())
    if not progress:
        options = replace(options, progress=False)
    with session(options):  # the pool that answers the meta encodes the images too
        meta = extractor.meta() if not isinstance(extractor, str) else _meta(setup, out, options)
        return _plan(input_path, out, meta, shard, batch_size, unit_images, common).run(
            setup, options
        )


def _meta(setup: Any, out: str | os.PathLike, options: EngineOptions) -> dict[str, Any]:
    """The extractor's meta, asked of the first actor of the encode pool: the driver never
    builds the extractor (weights loaded once more, on a machine that may have no GPU)."""
    done = Path(out) / ".engine" / f"extractor-meta-{os.getpid()}.json"
    unit = Unit(0, str(done), done, 0, "features: the extractor's meta")
    quiet = replace(options, progress=False)
    try:
        (meta,) = map_units(_meta_unit, [unit], quiet, setup=setup, gpu=True, pool=POOL)
    finally:
        done.unlink(missing_ok=True)
    return meta


def _plan(
    input_path: str | os.PathLike,
    out: str | os.PathLike,
    meta: dict[str, Any],
    shard: Any,
    batch_size: int,
    unit_images: int,
    common: dict[str, Any],
) -> _Plan:
    return _Plan(
        input_path=os.path.abspath(input_path),
        out=Path(out),
        meta=meta,
        shard=shard,
        batch_size=batch_size,
        unit=batch_size * math.ceil(unit_images / batch_size),
        dtype=common["dtype"],
        chunk_size=common["chunk_size"],
        strict=common["strict"],
        resume=common["resume"],
    )


POOL = "features"  # the encode pool, kept for the stage's session


def _meta_unit(extractor: Any, out: str) -> dict[str, Any]:
    """The extractor's meta, written to ``out`` (the unit's done file) and returned."""
    from unimo_kit.utils import atomic_write

    meta = extractor.meta()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as handle:
        handle.write(json.dumps(meta) + "\n")
    return meta


def _given(extractor: Any) -> Any:
    """The setup of an extractor object handed in (it arrives pickled)."""
    return extractor


def _worker_extractor(build: Any, threads: int) -> Any:
    """An actor's extractor, run with the driver's intra-op thread count when on the CPU:
    the number of threads changes the last bits of a CPU convolution, and Ray starts its
    workers with one thread (``OMP_NUM_THREADS=1``) where a local run uses the machine's."""
    import torch

    extractor = build()
    if str(getattr(extractor, "device", "cpu")).startswith("cpu"):
        torch.set_num_threads(threads)
    return extractor


@dataclass
class _Plan:
    """One ray run of the stage on one input: the driver's side."""

    input_path: str  # absolute
    out: Path  # the store
    meta: dict[str, Any]  # the extractor's (the store's meta.json)
    shard: Any  # the run's --shard
    batch_size: int  # images per forward pass
    unit: int  # images per unit, a multiple of batch_size
    dtype: str  # storage type of feats
    chunk_size: int  # images per store chunk
    strict: bool  # stop at the first bad record or image
    resume: bool  # False: this shard's chunks and the work folder start afresh

    def __post_init__(self) -> None:
        digest = hashlib.sha256(self.input_path.encode()).hexdigest()[:8]
        name = f"{Path(self.input_path).stem}-{digest}-s{self.shard.index}of{self.shard.count}"
        self.work = self.out / ".engine" / name
        self.has_probs = bool(self.meta.get("num_classes"))
        self.skipped: set[str] = set()  # ids found stored when the records were read

    def run(self, setup: Any, options: EngineOptions) -> Any:
        from unimo_kit.features.extract import ExtractionReport
        from unimo_kit.features.store import FeatureStoreWriter

        if not self.resume:
            remove_tree(self.work)
        report = ExtractionReport()
        writer = FeatureStoreWriter(
            self.out,
            self.meta,
            shard=self.shard,
            chunk_size=self.chunk_size,
            dtype=self.dtype,
            resume=self.resume,
        )
        self._claim()
        with session(options):  # one Ray for the check and the encode units
            self._map(writer, report, setup, options)
        remove_tree(self.work)
        if self.work.parent.is_dir() and not any(self.work.parent.iterdir()):
            self.work.parent.rmdir()
        return report

    def _map(self, writer: Any, report: Any, setup: Any, options: EngineOptions) -> None:
        """Check the images, encode the loadable ones, add them to the store in order."""
        checks = self._check_units(writer.done, report, options)
        todo = []  # (position, id, path) of the images to encode, in input order
        for unit in checks:
            done = json.loads(unit.done.read_text())
            report.images.ok += done["ok"]
            report.images.missing += done["missing"]
            report.images.corrupt += done["corrupt"]
            _keep_examples(report.images, done)
            loads = zip(done["records"], done["loads"], strict=True)
            todo += [tuple(record) for record, ok in loads if ok]
        encodes = self._encode_units(todo)
        map_units(_encode_unit, encodes, options, setup=setup, gpu=True, desc="features", pool=POOL)
        self._join(encodes, writer, report)

    def _claim(self) -> None:
        """Create the work folder for these settings, or check that it holds units of the
        same ones (:func:`~unimo_kit.engine.core.claim_work`)."""
        from unimo_kit.utils import file_sha256

        settings = {
            "input_sha256": file_sha256(self.input_path),
            "meta": {k: self.meta.get(k) for k in sorted(self.meta)},
            "shard": f"{self.shard.index}/{self.shard.count}",
            "batch_size": self.batch_size,
            "unit": self.unit,
            "dtype": self.dtype,
            "strict": self.strict,
        }
        claim_work(self.work, settings)

    def _check_units(self, done: set[str], report: Any, options: EngineOptions) -> list[Unit]:
        """Read the records (as the local stage does: shard slice, duplicate ids skipped,
        ids already stored skipped) and check in units whether each image loads."""
        from unimo_kit.features.extract import iter_image_records
        from unimo_kit.utils import ErrorReport, count_lines

        errors = ErrorReport(strict=self.strict)
        start, stop = self.shard.bounds(count_lines(self.input_path))
        slices: list[list[tuple[int, str, str]]] = [
            [] for _ in range(max(1, math.ceil((stop - start) / self.unit)))
        ]
        seen: set[str] = set()
        records = iter_image_records(self.input_path, strict=self.strict, on_error=errors)
        for position, (image_id, image_path) in enumerate(records):
            if position < start:
                continue
            if position >= stop:
                break
            if image_id in seen:
                if not report.duplicates:
                    print(
                        f"warning: {self.input_path}: image id {image_id!r} appears more than "
                        "once (ids must be unique); later copies of an id are skipped",
                        file=sys.stderr,
                    )
                report.duplicates += 1
                continue
            seen.add(image_id)
            if image_id in done:
                report.skipped_done += 1
                self.skipped.add(image_id)
                continue
            slices[(position - start) // self.unit].append((position, image_id, image_path))
        report.records_skipped = errors.count
        units = []
        for j, records_j in enumerate(slices):
            lo = start + j * self.unit
            hi = min(stop, lo + self.unit)
            units.append(
                Unit(
                    j,
                    (records_j, str(self.work / f"check-{j:05d}.json"), self.strict),
                    self.work / f"check-{j:05d}.json",
                    hi - lo,
                    f"features check unit {j} (records {lo}-{hi - 1} of {self.input_path})",
                )
            )
        map_units(_check_unit, units, options, desc="features check")
        return units

    def _encode_units(self, todo: list[tuple[int, str, str]]) -> list[Unit]:
        """The loadable images in slices of ``unit`` (a multiple of ``batch_size``)."""
        units = []
        for j in range(math.ceil(len(todo) / self.unit)):
            part = todo[j * self.unit : (j + 1) * self.unit]
            target = self.work / f"encode-{j:05d}.safetensors"
            units.append(
                Unit(
                    j,
                    (part, str(target), self.batch_size, self.dtype, self.has_probs),
                    target,
                    len(part),
                    f"features unit {j} (records {part[0][0]}-{part[-1][0]} of {self.input_path})",
                )
            )
        return units

    def _join(self, units: list[Unit], writer: Any, report: Any) -> None:
        """The units' images added to the store in input order (ids stored by a join cut
        short are skipped), so its chunks are the local run's."""
        from unimo_kit.features.store import read_chunk

        with writer:
            for unit in units:
                for image_id, item in read_chunk(unit.done):
                    if image_id in writer.done:  # stored by a join cut short
                        report.skipped_done += image_id not in self.skipped
                        continue
                    writer.add(image_id, item.feats, item.boxes, item.class_probs)
                    report.written += 1


def _keep_examples(stats: Any, done: dict[str, Any]) -> None:
    for key in ("missing_paths", "corrupt_paths"):
        kept = getattr(stats, key)
        kept += done[key][: max(0, stats.max_examples - len(kept))]


def _check_unit(payload: tuple[list[tuple[int, str, str]], str, bool]) -> None:
    """Whether each image of one slice loads (decoded and dropped), into ``out``."""
    from unimo_kit.data.images import ImageLoader
    from unimo_kit.utils import atomic_write

    records, out, strict = payload
    loader = ImageLoader(strict=strict)
    loads = [loader.check(path) for _, _, path in records]
    stats = loader.stats
    result = {
        "records": [list(record) for record in records],
        "loads": loads,
        "ok": stats.ok,
        "missing": stats.missing,
        "corrupt": stats.corrupt,
        "missing_paths": stats.missing_paths,
        "corrupt_paths": stats.corrupt_paths,
    }
    with atomic_write(out) as handle:
        handle.write(json.dumps(result) + "\n")


def _encode_unit(
    extractor: Any, payload: tuple[list[tuple[int, str, str]], str, int, str, bool]
) -> int:
    """The features of one unit's images, in batches of ``batch_size`` as the local stage
    forms them, written as one chunk-format file. Returns the number of images."""
    import torch

    from unimo_kit.data.images import ImageLoader
    from unimo_kit.features.store import write_chunk

    records, out, batch_size, dtype, has_probs = payload
    loader = ImageLoader(strict=True)  # the check unit found every one of them loadable
    items = []
    for lo in range(0, len(records), batch_size):
        batch = records[lo : lo + batch_size]
        pixels = [extractor.preprocess(loader.load(path)) for _, _, path in batch]
        for (_, image_id, _), item in zip(batch, extractor(torch.stack(pixels)), strict=True):
            items.append((image_id, item))
    write_chunk(out, items, dtype, has_probs)
    return len(items)
