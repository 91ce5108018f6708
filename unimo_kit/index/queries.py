"""Query files for ``unimo index search --queries`` and ``unimo index build --tune-queries``.

One rule for both: a file is JSONL when its name ends in ``.jsonl`` or its first non-blank line
starts with ``{``; then each line is ``{"id", "text"}`` or ``{"id", "image"}`` (image paths
relative to the file). Otherwise it is plain text, one query per non-blank line. A line that
cannot be used (not UTF-8, not JSON, a lone surrogate, neither field, an empty or null value)
is reported as ``FILE:LINE`` and skipped; a file with no usable query is an error.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from unimo_kit.utils import ErrorReport, RecordError, iter_jsonl
from unimo_kit.utils.jsonl import decode_line, find_lone_surrogate


class QueryFileError(ValueError):
    """A query file with no usable query."""


def read_queries(
    path: str | os.PathLike, report: ErrorReport | None = None
) -> tuple[list[dict[str, Any]], ErrorReport]:
    """The queries of a query file, and the report of its skipped lines.

    Args:
        path: the file (rule in the module docstring).
        report: where skipped lines go (default: a new :class:`ErrorReport`).

    Returns:
        ``(queries, report)``: ``[{"id", "text"} | {"id", "image"}]`` in file order.

    Raises:
        QueryFileError: no line of the file is a usable query.
    """
    path = str(path)
    report = report if report is not None else ErrorReport()
    out: list[dict[str, Any]] = []
    if not is_jsonl(path):
        with open(path, "rb") as handle:
            for number, raw in enumerate(handle, 1):
                try:
                    text = decode_line(path, number, raw).strip()
                except RecordError as exc:  # not UTF-8: reported, not searched as U+FFFD
                    report.add(exc)
                    continue
                if text:
                    out.append({"id": f"line{number}", "text": text})
        if not out:
            raise QueryFileError(f"no usable queries in {path} (no non-blank line)")
        return out, report
    base = Path(path).resolve().parent
    for line, record in iter_jsonl(path, on_error=report.add):
        field = "text" if "text" in record else "image" if "image" in record else None
        value = record.get(field) if field else None
        if field is None:
            report.add(RecordError(path, line, 'no "text" or "image" field'))
        elif not isinstance(value, str) or not value.strip():
            got = "null" if value is None else repr(value)
            report.add(RecordError(path, line, f'"{field}" must be a non-empty string, got {got}'))
        else:
            query_id = record.get("id")
            query = {"id": str(query_id) if query_id is not None else f"line{line}"}
            query[field] = value if field == "text" else str(base / value)
            out.append(query)
    if not out:
        raise QueryFileError(f"no usable queries in {path} ({report.count} lines skipped)")
    return out, report


def is_jsonl(path: str | os.PathLike) -> bool:
    """A ``.jsonl`` name, or a first non-blank line that starts with ``{``."""
    if str(path).endswith(".jsonl"):
        return True
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.strip():
                return line.lstrip().startswith("{")
    return False


def text_problem(text: str) -> str | None:
    """Why a query given as an argument is not text (``None``: it is): a lone surrogate,
    which is what Python makes of command-line bytes that are not UTF-8."""
    where = find_lone_surrogate(text)
    if where is None:
        return None
    shown = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return f"{shown!r} is not valid UTF-8 text ({where})"
