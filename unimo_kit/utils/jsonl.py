"""JSONL reading and writing shared by every stage.

- :func:`iter_jsonl` streams ``(line_number, record)`` pairs; a malformed line (not UTF-8,
  not JSON, a string holding a lone surrogate, not an object) becomes a :class:`RecordError`
  naming the file and line, reported to an :class:`ErrorReport` (the rest still flows) or
  raised at once with ``strict=True``. :func:`load_line` is the same check for one line, for
  readers that index or seek on their own.
- :func:`find_lone_surrogate` tells where a decoded value holds a string that cannot be
  encoded as UTF-8 (``"\\ud800"`` is valid JSON but decodes to half a UTF-16 pair, which no
  writer, tokenizer or ``str.encode`` accepts).
- :class:`ResumableJsonlWriter` appends whole lines and, when reopened after a kill, drops a
  torn last line and tells which record ids are already finished.
- :func:`atomic_write` writes through ``PATH.tmp`` and ``os.replace``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

logger = logging.getLogger("unimo_kit")

# A JSON escape of a UTF-16 surrogate (\uD800-\uDFFF), the only way a lone surrogate gets into
# a record decoded from valid UTF-8; lines without one skip the walk over the record.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")


class RecordError(ValueError):
    """A bad input record: which file, which line (1-based), what was wrong."""

    def __init__(self, path: str | os.PathLike, line: int, message: str):
        self.path = str(path)
        self.line = line
        self.message = message
        super().__init__(f"{self.path}:{line}: {message}")

    def __reduce__(self):  # rebuildable in another process (workers report errors back)
        return (type(self), (self.path, self.line, self.message))


class ErrorReport:
    """Collects per-record errors so a run can finish and then say what it skipped.

    Args:
        strict: raise the first error instead of collecting it.
        max_logged: errors beyond this many are counted but not logged one by one.
        stream: where :meth:`summary` lines and per-error lines go (default: stderr).
    """

    def __init__(self, strict: bool = False, max_logged: int = 20, stream: IO[str] | None = None):
        self.strict = strict
        self.max_logged = max_logged
        self.stream = stream
        self.errors: list[RecordError] = []
        self.count = 0

    def __call__(self, error: RecordError) -> None:
        self.add(error)

    def add(self, error: RecordError) -> None:
        """Record ``error``; raise it when strict."""
        if self.strict:
            raise error
        self.count += 1
        if len(self.errors) < self.max_logged:
            self.errors.append(error)
            print(f"warning: skipped {error}", file=self.stream or sys.stderr)

    def summary(self) -> str:
        """One line: how many records were skipped (empty string when none)."""
        if not self.count:
            return ""
        more = "" if self.count <= self.max_logged else f" (first {self.max_logged} shown above)"
        return f"{self.count} malformed record(s) skipped{more}"


def iter_jsonl(
    path: str | os.PathLike,
    *,
    strict: bool = False,
    on_error: Callable[[RecordError], None] | None = None,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Stream the JSON objects of a JSONL file as ``(line_number, record)``.

    Blank lines are skipped. A line that is not UTF-8, not JSON, holds a lone surrogate (see
    :func:`load_line`) or is not a JSON object raises :class:`RecordError` when ``strict``;
    otherwise it goes to ``on_error`` (default: a warning on stderr) and reading goes on.

    Args:
        path: the JSONL file.
        strict: raise the first bad line instead of reporting it.
        on_error: receives each bad line's :class:`RecordError` (default: an
            :class:`ErrorReport` warning on stderr).

    Yields:
        ``(line_number, record)``, line numbers 1-based, in file order.
    """
    report = on_error if on_error is not None else ErrorReport(strict=strict)
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                record = load_line(path, number, raw)
            except RecordError as exc:
                error = exc
            else:
                if isinstance(record, dict):
                    yield number, record
                    continue
                error = RecordError(
                    path, number, f"expected a JSON object, got {type(record).__name__}"
                )
            if strict:
                raise error
            report(error)


def decode_line(path: str | os.PathLike, number: int, raw: bytes) -> str:
    """``raw`` (line ``number`` of ``path``) decoded as UTF-8; a byte-order mark opening the
    file is dropped.

    Raises:
        RecordError: ``not UTF-8 (byte 0xe9 at column 4)`` for the first undecodable byte,
            instead of letting it through as U+FFFD.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        column = len(raw[: exc.start].decode("utf-8")) + 1
        message = f"not UTF-8 (byte 0x{raw[exc.start]:02x} at column {column})"
        raise RecordError(path, number, message) from None
    return text.removeprefix("\ufeff") if number == 1 else text


def load_line(path: str | os.PathLike, number: int, raw: bytes) -> Any:
    """Line ``number`` of ``path`` (``raw``, as read in binary) decoded and parsed as JSON.

    The one check every reader of our JSONL files shares: the bytes must be UTF-8
    (:func:`decode_line`), the text must be JSON, and no string in the value (keys included)
    may hold a lone surrogate (:func:`find_lone_surrogate`), so that what is read can be
    written back as UTF-8 and tokenized.

    Args:
        path: the file, for the error message.
        number: the 1-based line number, for the error message.
        raw: the line's bytes (a trailing newline is fine).

    Returns:
        The decoded JSON value (any type: callers check that it is an object).

    Raises:
        RecordError: ``PATH:LINE: not UTF-8 (...)``, ``invalid JSON (...)`` or
            ``lone surrogate U+D800 in captions[0] (...)``.
    """
    text = decode_line(path, number, raw)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecordError(path, number, f"invalid JSON ({exc.msg} at column {exc.colno})") from None
    if _SURROGATE_ESCAPE.search(text):
        problem = find_lone_surrogate(value)
        if problem:
            raise RecordError(path, number, problem)
    return value


def find_lone_surrogate(value: Any) -> str | None:
    """Where ``value`` holds a string that cannot be encoded as UTF-8, or ``None``.

    Such a string holds a lone surrogate (U+D800-U+DFFF): a JSON ``"\\ud800"`` escape, or a
    byte that was not UTF-8 kept by ``errors="surrogateescape"`` (command-line arguments, file
    names). Writing it with ``json.dumps(ensure_ascii=False)`` to a UTF-8 file, or tokenizing
    it, raises; a reader should report the record and skip it.

    Args:
        value: a decoded JSON value (``dict``, ``list``, ``str``, numbers, ...), nested freely.

    Returns:
        ``None`` when every string (dict keys included) encodes as UTF-8; otherwise what is
        wrong and where, for a :class:`RecordError` message, e.g.
        ``lone surrogate U+D800 in captions[1] (character 5): not encodable as UTF-8``.

    Example:
        >>> find_lone_surrogate({"id": "a", "captions": ["ok", "bad \\ud800"]})
        'lone surrogate U+D800 in captions[1] (character 5): not encodable as UTF-8'
        >>> find_lone_surrogate({"id": "a"}) is None
        True
    """
    return _find_surrogate(value, "")


def _find_surrogate(value: Any, where: str) -> str | None:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            place = f" in {where}" if where else ""
            return (
                f"lone surrogate U+{ord(value[exc.start]):04X}{place} "
                f"(character {exc.start + 1}): not encodable as UTF-8"
            )
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            name = f"{where}.{key}" if where else str(key)
            if isinstance(key, str):
                problem = _find_surrogate(key, f"a key of {where or 'the record'}")
                if problem:
                    return problem
            problem = _find_surrogate(item, name)
            if problem:
                return problem
        return None
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            problem = _find_surrogate(item, f"{where}[{i}]")
            if problem:
                return problem
    return None


def count_lines(path: str | os.PathLike) -> int:
    """Number of non-blank lines, read in binary blocks (fast enough for sharding big files)."""
    count = 0
    with open(path, "rb") as handle:
        for line in handle:
            if line.strip():
                count += 1
    return count


def dumps(record: dict[str, Any]) -> str:
    """Compact, key-order-preserving, UTF-8 JSON for one line."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8"):
    """Open ``PATH.tmp`` for writing and move it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    kwargs = {} if "b" in mode else {"encoding": encoding}
    try:
        with open(tmp, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


class ResumableJsonlWriter:
    """Append-only JSONL output that survives ``kill -9``.

    On open, an existing file is scanned: a torn last line (no trailing newline, or not valid
    JSON) is cut off and the values of ``id_key`` in the complete lines are collected in
    :attr:`done`, so the caller can skip finished work. Each :meth:`write` appends whole lines
    and flushes, so at most the line being written is lost.

    Args:
        path: output file.
        id_key: record field that identifies a unit of work (several lines may share one id;
            the id counts as done once any line with it is complete, so write all lines for an
            id in a single :meth:`write_many` call).
        resume: keep what is there (default); ``False`` starts the file afresh.
    """

    def __init__(self, path: str | os.PathLike, id_key: str = "id", resume: bool = True):
        self.path = Path(path)
        self.id_key = id_key
        self.done: set[str] = set()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume and self.path.exists():
            self._recover()
        elif self.path.exists():
            self.path.unlink()
        self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())

    def _recover(self) -> None:
        keep = 0
        with open(self.path, "rb") as handle:
            offset = 0
            for raw in handle:
                end = offset + len(raw)
                if not raw.endswith(b"\n"):
                    break
                try:
                    record = json.loads(raw)
                except json.JSONDecodeError:
                    break
                if isinstance(record, dict) and self.id_key in record:
                    self.done.add(str(record[self.id_key]))
                keep = offset = end
        if keep != self.path.stat().st_size:
            logger.info("truncating torn tail of %s at byte %d", self.path, keep)
            with open(self.path, "r+b") as handle:
                handle.truncate(keep)

    def write(self, record: dict[str, Any]) -> None:
        """Append one record as a line and flush."""
        self.write_many([record])

    def write_many(self, records: list[dict[str, Any]]) -> None:
        """Append several records in one write and flush."""
        if not records:
            return
        self._handle.write("".join(dumps(r) + "\n" for r in records))
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> ResumableJsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
