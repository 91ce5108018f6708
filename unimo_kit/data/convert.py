"""Convert image-caption datasets to ``pairs.jsonl`` (``unimo data convert``).

Sources: ``coco`` (COCO captions JSON), ``karpathy`` (Karpathy-split JSON), ``csv``
(open_clip-style CSV/TSV), ``webdataset`` (tar shards; images are extracted) and ``jsonl``
(our own pairs files: merge, filter by split, check images, move paths to a new directory).

The output is streamed to ``OUT.tmp`` and moved onto ``OUT`` only when the conversion ends
(so a failed or interrupted run leaves no half file). Malformed source records are reported
and skipped (or stop the run with ``strict``); later records whose id was already written are
skipped as duplicates; with ``check_images`` every image is decoded and pairs whose image is
missing or corrupt are left out.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from unimo_kit.data.images import ImageLoader, ImageStats
from unimo_kit.data.records import MemberError, PairRecord, PathLike
from unimo_kit.utils import ErrorReport, RecordError, atomic_write
from unimo_kit.utils.jsonl import dumps

FORMATS = ("coco", "karpathy", "csv", "webdataset", "jsonl")


@dataclass
class ConvertSummary:
    """What a conversion did."""

    output: str  # the file written
    written: int = 0  # pairs written
    captions: int = 0  # captions in the pairs written
    malformed: int = 0  # source records skipped as malformed (see errors)
    duplicates: int = 0  # pairs skipped because their id was already written
    duplicate_ids: list[str] = field(default_factory=list)  # the first few duplicate ids
    other_split: int = 0  # pairs left out because their split differs from the one asked for
    bad_images: int = 0  # pairs left out because their image is missing or corrupt
    images: ImageStats | None = None  # image check counts (with check_images)
    errors: list[RecordError] = field(default_factory=list)  # the first malformed records

    @property
    def skipped(self) -> int:
        """Pairs not written for any reason except the split filter."""
        return self.malformed + self.duplicates + self.bad_images

    def lines(self) -> list[str]:
        """A human-readable report, one fact per line."""
        out = [f"wrote {self.written} pairs ({self.captions} captions) to {self.output}"]
        if self.malformed:
            more = (
                "" if self.malformed <= len(self.errors) else f" (first {len(self.errors)} listed)"
            )
            out.append(f"skipped {self.malformed} malformed source record(s){more}")
        if self.duplicates:
            shown = ", ".join(self.duplicate_ids)
            more = ", ..." if self.duplicates > len(self.duplicate_ids) else ""
            out.append(f"skipped {self.duplicates} duplicate id(s): {shown}{more}")
        if self.other_split:
            out.append(f"left out {self.other_split} pair(s) of other splits")
        if self.images is not None:
            out.append(self.images.summary())
            if self.bad_images:
                out.append(f"skipped {self.bad_images} pair(s) with missing or corrupt images")
        return out


def iter_source(
    fmt: str,
    inputs: Sequence[PathLike],
    *,
    images_root: PathLike | None = None,
    images_dir: PathLike | None = None,
    restval_to_train: bool = False,
    csv_img_key: str = "filepath",
    csv_caption_key: str = "title",
    csv_id_key: str | None = None,
    csv_sep: str | None = None,
    strict: bool = False,
    on_error: Callable[[RecordError], None] | None = None,
) -> Iterator[PairRecord]:
    """Stream the pairs of one or more source files of format ``fmt`` (see :func:`convert`
    for the arguments)."""
    from unimo_kit.data.coco import read_coco, read_karpathy
    from unimo_kit.data.csv_pairs import read_csv
    from unimo_kit.data.readers import read_pairs
    from unimo_kit.data.webdataset_tar import read_webdataset

    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if images_root is not None and fmt in ("webdataset", "jsonl"):
        raise ValueError(f"images_root does not apply to {fmt} inputs")
    if fmt == "webdataset":
        if images_dir is None:
            raise ValueError("webdataset inputs need images_dir (where images are extracted)")
        yield from read_webdataset(inputs, images_dir=images_dir, strict=strict, on_error=on_error)
        return
    common = {"strict": strict, "on_error": on_error}
    for path in inputs:
        if fmt == "coco":
            yield from read_coco(path, images_root=images_root, **common)
        elif fmt == "karpathy":
            yield from read_karpathy(
                path, images_root=images_root, restval_to_train=restval_to_train, **common
            )
        elif fmt == "csv":
            yield from read_csv(
                path,
                images_root=images_root,
                img_key=csv_img_key,
                caption_key=csv_caption_key,
                id_key=csv_id_key,
                sep=csv_sep,
                **common,
            )
        else:
            yield from read_pairs(path, **common)


def convert(
    fmt: str,
    inputs: PathLike | Sequence[PathLike],
    out: PathLike,
    *,
    images_root: PathLike | None = None,
    images_dir: PathLike | None = None,
    split: str | None = None,
    restval_to_train: bool = False,
    csv_img_key: str = "filepath",
    csv_caption_key: str = "title",
    csv_id_key: str | None = None,
    csv_sep: str | None = None,
    strict: bool = False,
    check_images: bool = False,
    on_error: Callable[[RecordError], None] | None = None,
    progress: bool = True,
) -> ConvertSummary:
    """Convert a dataset to ``pairs.jsonl``, streaming.

    Args:
        fmt: ``coco``, ``karpathy``, ``csv``, ``webdataset`` or ``jsonl``.
        inputs: source file(s), read in order into one output.
        out: the ``pairs.jsonl`` to write; image paths in it are relative to its directory.
        images_root: directory the source's image paths are relative to (coco, karpathy,
            csv); default: each source file's directory.
        images_dir: where webdataset images are extracted; default ``OUT_DIR/images``.
        split: keep only pairs of this split; pairs whose source has no split (COCO, CSV,
            webdataset, or a JSONL line without one) are labelled with it.
        restval_to_train: Karpathy COCO ``restval`` images count as ``train``.
        csv_img_key, csv_caption_key, csv_id_key, csv_sep: CSV columns and separator (see
            :func:`~unimo_kit.data.csv_pairs.read_csv`).
        strict: stop at the first malformed record, duplicate id or bad image (raising
            :class:`~unimo_kit.utils.RecordError` or
            :class:`~unimo_kit.data.images.ImageError`); ``out`` is then left untouched.
        check_images: decode every image; pairs with a missing or corrupt image are left
            out and counted.
        on_error: receives each malformed record's error (default: an
            :class:`~unimo_kit.utils.ErrorReport` warning on stderr).
        progress: show a tqdm progress bar on stderr (when stderr is a terminal).

    Returns:
        A :class:`ConvertSummary` (``.lines()`` for the report).
    """
    from tqdm import tqdm

    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    out = Path(out)
    base_dir = Path(os.path.abspath(out)).parent
    if fmt == "webdataset" and images_dir is None:
        images_dir = base_dir / "images"
    summary = ConvertSummary(output=str(out))
    report = ErrorReport(strict=strict)

    def record_error(error: RecordError) -> None:
        summary.malformed += 1
        if len(summary.errors) < report.max_logged:
            summary.errors.append(error)
        (on_error if on_error is not None else report)(error)

    loader = ImageLoader(strict=strict) if check_images else None
    seen: set[str] = set()
    records = iter_source(
        fmt,
        inputs,
        images_root=images_root,
        images_dir=images_dir,
        restval_to_train=restval_to_train,
        csv_img_key=csv_img_key,
        csv_caption_key=csv_caption_key,
        csv_id_key=csv_id_key,
        csv_sep=csv_sep,
        strict=strict,
        on_error=record_error,
    )
    bar = tqdm(records, desc=f"convert {fmt}", unit=" pairs", disable=None if progress else True)
    with bar, atomic_write(out) as handle:
        for record in bar:
            if split is not None:
                if record.split is None:
                    record.split = split
                elif record.split != split:
                    summary.other_split += 1
                    continue
            if record.id in seen:
                if strict:
                    source = inputs[0] if len(inputs) == 1 else "inputs"
                    raise MemberError(source, f"id {record.id!r}", "duplicate id (seen earlier)")
                summary.duplicates += 1
                if len(summary.duplicate_ids) < 5:
                    summary.duplicate_ids.append(record.id)
                continue
            if loader is not None and not loader.check(record.image):
                summary.bad_images += 1
                continue
            seen.add(record.id)
            handle.write(dumps(record.to_dict(base_dir)) + "\n")
            summary.written += 1
            summary.captions += len(record.captions)
    if loader is not None:
        summary.images = loader.stats
    return summary
