"""``unimo features``: images.jsonl or pairs.jsonl -> features store, streaming and resumable."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from unimo_kit.data.images import ImageLoader, ImageStats
from unimo_kit.data.readers import read_images, read_pairs
from unimo_kit.features.extractors import ImageExtractor, RegionImport, build_extractor
from unimo_kit.features.store import FeatureStoreWriter
from unimo_kit.utils import ErrorReport, Shard, count_lines


@dataclass
class ExtractionReport:
    """What a run did."""

    written: int = 0  # images stored by this run
    skipped_done: int = 0  # images already in the store (resume)
    missing_features: int = 0  # import: ids without precomputed features
    duplicates: int = 0  # records whose id came earlier in the same input (skipped)
    images: ImageStats = field(default_factory=ImageStats)  # decoded / missing / corrupt images
    records_skipped: int = 0  # malformed JSONL lines

    def summary(self) -> str:
        parts = [f"features: {self.written} written, {self.skipped_done} already stored"]
        if self.missing_features:
            parts.append(f"{self.missing_features} without precomputed features")
        if self.duplicates:
            parts.append(f"{self.duplicates} duplicate id(s) skipped")
        parts.append(self.images.summary())
        if self.records_skipped:
            parts.append(f"{self.records_skipped} malformed record(s) skipped")
        return "; ".join(parts)


def iter_image_records(
    path: str | os.PathLike, *, strict: bool = False, on_error: ErrorReport | None = None
) -> Iterator[tuple[str, str]]:
    """``(image id, image path)`` of an ``images.jsonl`` or a ``pairs.jsonl`` (told apart by
    whether the first record has ``captions``)."""
    kind = "images"
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.strip():
                try:
                    first = json.loads(line)
                except json.JSONDecodeError:
                    first = {}
                kind = "pairs" if isinstance(first, dict) and "captions" in first else "images"
                break
    reader = read_pairs if kind == "pairs" else read_images
    for record in reader(path, strict=strict, on_error=on_error):
        yield record.id, record.image


def extract_features(
    input_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    extractor: str | ImageExtractor | RegionImport = "effnet",
    batch_size: int = 32,
    shard: Shard | None = None,
    resume: bool = True,
    dtype: str = "float16",
    chunk_size: int = 256,
    device: str | None = None,
    strict: bool = False,
    progress: bool = True,
) -> ExtractionReport:
    """Extract visual tokens for every image of ``input_path`` into the store at ``out``.

    Args:
        input_path: ``images.jsonl`` or ``pairs.jsonl`` (ids and image paths).
        out: the store folder; an existing store of the same extractor is resumed.
        extractor: a spec (``effnet``, ``effnet-ms``, ``open_clip:MODEL[:TAG]``,
            ``import:PATH``) or an extractor object.
        batch_size: images per forward pass.
        shard: process only this contiguous slice of the records (``--shard i/n``).
        resume: skip ids already stored (``False``: redo this shard from scratch).
        dtype: storage type of features, ``float16`` or ``float32``.
        chunk_size: images per chunk file (the unit of resume).
        device: torch device for image extractors.
        strict: stop at the first malformed record or bad image instead of counting it.
        progress: show a tqdm bar on stderr.

    Returns:
        An :class:`ExtractionReport`; missing and corrupt images are counted, not fatal.
    """
    from tqdm import tqdm

    shard = shard or Shard()
    ext = build_extractor(extractor, device=device) if isinstance(extractor, str) else extractor
    report = ExtractionReport()
    errors = ErrorReport(strict=strict)
    loader = ImageLoader(strict=strict)
    report.images = loader.stats
    start, stop = shard.bounds(count_lines(input_path))
    writer = FeatureStoreWriter(
        out, ext.meta(), shard=shard, chunk_size=chunk_size, dtype=dtype, resume=resume
    )
    bar = tqdm(
        total=stop - start,
        desc="features" if shard.count == 1 else f"features [shard {shard}]",
        disable=not progress,
        file=sys.stderr,
    )
    batch_ids: list[str] = []
    batch_pixels: list = []
    seen: set[str] = set()  # ids met in this input so far (a batch is stored only when full)

    def run_batch() -> None:
        if not batch_ids:
            return
        import torch

        for image_id, item in zip(batch_ids, ext(torch.stack(batch_pixels)), strict=True):
            writer.add(image_id, item.feats, item.boxes, item.class_probs)
            report.written += 1
        batch_ids.clear()
        batch_pixels.clear()

    with writer:
        for position, (image_id, image_path) in enumerate(
            iter_image_records(input_path, strict=strict, on_error=errors)
        ):
            if position < start:
                continue
            if position >= stop:
                break
            bar.update(1)
            if image_id in seen:
                if not report.duplicates:
                    print(
                        f"warning: {input_path}: image id {image_id!r} appears more than once "
                        "(ids must be unique); later copies of an id are skipped",
                        file=sys.stderr,
                    )
                report.duplicates += 1
                continue
            seen.add(image_id)
            if image_id in writer.done:
                report.skipped_done += 1
                continue
            if isinstance(ext, RegionImport):
                item = ext.lookup(image_id, image_path)
                if item is None:
                    report.missing_features += 1
                    continue
                writer.add(image_id, item.feats, item.boxes, item.class_probs)
                report.written += 1
                continue
            image = loader.load(image_path)
            if image is None:
                continue
            batch_ids.append(image_id)
            batch_pixels.append(ext.preprocess(image))
            if len(batch_ids) >= batch_size:
                run_batch()
        run_batch()
    bar.close()
    report.records_skipped = errors.count
    return report


def default_output(input_path: str | os.PathLike) -> Path:
    """``features/`` next to the input file."""
    return Path(input_path).parent / "features"
