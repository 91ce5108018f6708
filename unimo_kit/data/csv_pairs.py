"""Reader for image-caption CSV/TSV files in open_clip's form (``filepath`` and ``title``
columns by default, names and separator configurable).

Streaming: consecutive rows with the same image path are merged into one pair with several
captions. Rows of one image that are *not* adjacent become separate pairs with the same id
(``unimo data convert`` reports the later ones as duplicates): sort the file by image path
first (``sort -t, -k1,1``, or pandas) to merge them all.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from unimo_kit.data.readers import OnError
from unimo_kit.data.records import PairRecord, PathLike, resolve_path
from unimo_kit.utils import ErrorReport, RecordError

_UNDECODED = re.compile("[\udc80-\udcff]")  # bytes kept by errors="surrogateescape"


def open_csv(path: PathLike) -> TextIO:
    """Open a CSV for :mod:`csv`: UTF-8 with or without a byte-order mark (Excel's "CSV
    UTF-8"). Bytes that are not UTF-8 are kept as surrogates (``errors="surrogateescape"``)
    so that :func:`not_utf8` can report the row holding them while the other rows are read."""
    return open(path, encoding="utf-8-sig", errors="surrogateescape", newline="")


def not_utf8(row: Mapping[str | None, Any]) -> str:
    """Why a row read through :func:`open_csv` holds bytes that are not UTF-8
    (``not UTF-8 (byte 0xe9 in column 'title')``), or ``''`` when it has none."""
    for key, value in row.items():
        for text in value if isinstance(value, list) else [value]:
            match = _UNDECODED.search(text) if isinstance(text, str) else None
            if match:
                where = f"column {key!r}" if key is not None else "a field beyond the header"
                return f"not UTF-8 (byte 0x{ord(match.group()) - 0xDC00:02x} in {where})"
    return ""


def not_utf8_header(path: PathLike, columns: Sequence[str]) -> None:
    """Raise a :class:`RecordError` for line 1 when the header holds bytes that are not
    UTF-8 (no column could be named reliably)."""
    match = _UNDECODED.search("".join(columns))
    if match:
        byte = ord(match.group()) - 0xDC00
        raise RecordError(path, 1, f"not UTF-8 (byte 0x{byte:02x} in the header)")


def default_separator(path: PathLike) -> str:
    """Tab for ``.tsv`` files, comma otherwise."""
    return "\t" if str(path).lower().endswith(".tsv") else ","


def read_csv(
    path: PathLike,
    *,
    images_root: PathLike | None = None,
    img_key: str = "filepath",
    caption_key: str = "title",
    id_key: str | None = None,
    sep: str | None = None,
    strict: bool = False,
    on_error: OnError | None = None,
) -> Iterator[PairRecord]:
    """Stream pairs from a CSV file with an image-path column and a caption column.

    Args:
        path: the CSV (or TSV) file, with a header row.
        images_root: directory relative image paths are resolved against; default: the CSV
            file's directory.
        img_key: column holding the image path (open_clip's ``--csv-img-key``).
        caption_key: column holding the caption (open_clip's ``--csv-caption-key``).
        id_key: column holding the image id; default: the image path as written, without its
            extension (``images/0001.jpg`` -> ``images/0001``).
        sep: field separator; default: tab for ``.tsv``, comma otherwise.
        strict: raise the first bad row instead of skipping it.
        on_error: receives each skipped row's error (default: warn on stderr).

    Yields:
        :class:`PairRecord` per run of consecutive rows with the same image path; the other
        columns of the first row of the run go to ``meta``.

    Raises:
        RecordError: a named column is not in the header (always: no row could be read).
    """
    report = on_error if on_error is not None else ErrorReport(strict=strict)
    root = Path(images_root) if images_root is not None else Path(path).parent
    with open_csv(path) as handle:
        reader = csv.DictReader(handle, delimiter=sep or default_separator(path))
        columns = reader.fieldnames or []
        not_utf8_header(path, columns)
        for key, option in ((img_key, "img"), (caption_key, "caption"), (id_key, "id")):
            if key is not None and key not in columns:
                raise RecordError(
                    path,
                    1,
                    f"no column {key!r} in the header (columns: {', '.join(columns) or 'none'}); "
                    f"name the {option} column with --csv-{option}-key or the separator with "
                    "--csv-sep",
                )
        current: PairRecord | None = None
        current_path = ""
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                row, problem = None, f"unreadable CSV row ({exc})"
            else:
                problem = _check_row(row, img_key, caption_key, id_key) or not_utf8(row)
            if problem:
                error = RecordError(path, reader.line_num, problem)
                if strict:
                    raise error
                report(error)
                continue
            image = row[img_key].strip()
            caption = row[caption_key].strip()
            if current is not None and image == current_path:
                current.captions.append(caption)
                continue
            if current is not None:
                yield current
            record_id = row[id_key].strip() if id_key else os.path.splitext(image)[0]
            others = {k: v for k, v in row.items() if k not in (img_key, caption_key, id_key)}
            current_path = image
            current = PairRecord(
                id=record_id,
                image=resolve_path(image, root),
                captions=[caption],
                meta={"source": "csv", **others},
                image_absolute=os.path.isabs(image),
            )
        if current is not None:
            yield current


def _check_row(row: dict, img_key: str, caption_key: str, id_key: str | None) -> str:
    """Why a row cannot be used ('' when it can)."""
    if None in row:
        return f"row has {len(row) - 1 + len(row[None])} fields, the header has {len(row) - 1}"
    missing = [k for k, v in row.items() if v is None]
    if missing:
        return f"row has no value for column {missing[0]!r} (too few fields)"
    for key, what in ((img_key, "image path"), (caption_key, "caption"), (id_key, "id")):
        if key is not None and not row[key].strip():
            return f"empty {what} (column {key!r})"
    return ""
