"""Streaming readers and the writer for our own JSONL files (pairs, texts, images).

Each reader is a generator: it holds one line at a time. A malformed line (bad JSON, a
missing field, a wrong type) becomes a :class:`~unimo_kit.utils.RecordError`
(``FILE:LINE: what was wrong``) that goes to ``on_error`` (default: a warning on stderr) while
the rest still flows; ``strict=True`` raises the first one instead.

Readers for other sources (COCO, Karpathy splits, CSV, webdataset) live in
:mod:`unimo_kit.data.coco`, :mod:`unimo_kit.data.csv_pairs` and
:mod:`unimo_kit.data.webdataset_tar`; all yield :class:`~unimo_kit.data.records.PairRecord`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from unimo_kit.data.records import ImageRecord, PairRecord, PathLike, TextRecord
from unimo_kit.utils import ErrorReport, RecordError, atomic_write, iter_jsonl
from unimo_kit.utils.jsonl import dumps

R = TypeVar("R", PairRecord, TextRecord, ImageRecord)
OnError = Callable[[RecordError], None]


def _read(cls: type[R], path: PathLike, strict: bool, on_error: OnError | None) -> Iterator[R]:
    report = on_error if on_error is not None else ErrorReport(strict=strict)
    base_dir = Path(path).parent
    # A plain function, not ``report`` itself: an empty ErrorReport is falsy, and iter_jsonl
    # would replace a falsy ``on_error`` with its own default reporter.
    for line, d in iter_jsonl(path, strict=strict, on_error=lambda error: report(error)):
        try:
            yield cls.from_dict(d, base_dir=base_dir, path=path, line=line)
        except RecordError as error:
            if strict:
                raise
            report(error)


def read_pairs(
    path: PathLike, *, strict: bool = False, on_error: OnError | None = None
) -> Iterator[PairRecord]:
    """Stream the image-text pairs of a ``pairs.jsonl`` file.

    Args:
        path: the JSONL file; image paths in it are relative to its directory.
        strict: raise the first malformed line instead of skipping it.
        on_error: receives each skipped line's :class:`RecordError` (e.g. an
            :class:`~unimo_kit.utils.ErrorReport` to count them); default: warn on stderr.

    Yields:
        :class:`PairRecord` with resolved image paths, in file order.

    Example:
        >>> report = ErrorReport()
        >>> for pair in read_pairs("pairs.jsonl", on_error=report):  # doctest: +SKIP
        ...     print(pair.id, pair.image, pair.captions[0])
        >>> print(report.summary())  # doctest: +SKIP
    """
    return _read(PairRecord, path, strict, on_error)


def read_texts(
    path: PathLike, *, strict: bool = False, on_error: OnError | None = None
) -> Iterator[TextRecord]:
    """Stream the texts of a ``texts.jsonl`` corpus (arguments as :func:`read_pairs`)."""
    return _read(TextRecord, path, strict, on_error)


def read_images(
    path: PathLike, *, strict: bool = False, on_error: OnError | None = None
) -> Iterator[ImageRecord]:
    """Stream the images of an ``images.jsonl`` collection (arguments as :func:`read_pairs`)."""
    return _read(ImageRecord, path, strict, on_error)


def write_records(path: PathLike, records: Iterable[PairRecord | TextRecord | ImageRecord]) -> int:
    """Write records as JSONL, atomically (``PATH.tmp`` then ``os.replace``).

    Image paths are written relative to the directory of ``path``. If the iterable raises,
    ``path`` is left as it was.

    Returns:
        The number of records written.
    """
    base_dir = os.path.dirname(os.path.abspath(path))
    count = 0
    with atomic_write(path) as handle:
        for record in records:
            handle.write(dumps(record.to_dict(base_dir)) + "\n")
            count += 1
    return count
