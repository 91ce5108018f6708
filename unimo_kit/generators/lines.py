"""A lazy JSONL reader that is safe in forked DataLoader workers.

:class:`JsonlIndex` scans a JSONL file once, keeps the byte range of each selected line and
decodes a line when it is asked for. Reads go through ``os.pread`` on a file descriptor opened
per process (keyed by ``os.getpid()``): a descriptor opened before ``DataLoader`` forks its
workers shares one file offset with them, so a ``seek`` + ``readline`` in one worker could read
from the position another worker had just set, and the line came back cut
(``JSONDecodeError``). ``pread`` does not use the file offset at all, and each process opens its
own descriptor on first use after a fork or an unpickle.
"""

from __future__ import annotations

import contextlib
import json
import os
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

from unimo_kit.utils import ErrorReport, RecordError
from unimo_kit.utils.jsonl import load_line


class JsonlIndex:
    """Byte ranges of selected lines of a JSONL file, read back on demand in any process.

    Args:
        path: the JSONL file.
        keep: called with each decoded record and its line number; returns the key to keep
            the line under, or ``None`` to drop it. Raise :class:`RecordError` to report it.
        on_error: receives malformed lines (default: warnings on stderr).

    The interface of the trainer's ``JsonlLines`` (``read``, ``get``, ``keys``, ``index``,
    ``lines``), plus :meth:`raw` for callers that parse only part of a line.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        keep: Callable[[dict[str, Any], int], str | None],
        on_error: ErrorReport | None = None,
    ):
        self.path = Path(path)
        self.offsets = array("q")  # start byte of each kept line
        self.sizes = array("q")  # its length in bytes (newline included)
        self.lines = array("q")  # its 1-based line number
        self.keys: list[str] = []
        report = on_error if on_error is not None else ErrorReport()
        offset = 0
        with open(self.path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                start, offset = offset, offset + len(raw)
                if not raw.strip():
                    continue
                try:
                    record = load_line(self.path, number, raw)
                    if not isinstance(record, dict):
                        raise RecordError(self.path, number, "expected a JSON object")
                    key = keep(record, number)
                except RecordError as exc:
                    report(exc)
                    continue
                if key is not None:
                    self.offsets.append(start)
                    self.sizes.append(len(raw))
                    self.lines.append(number)
                    self.keys.append(key)
        self.index = {key: i for i, key in enumerate(self.keys)}
        self._fd: int | None = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return len(self.offsets)

    def _descriptor(self) -> int:
        """This process's descriptor of the file (opened on first use in each process)."""
        pid = os.getpid()
        if self._pid != pid:
            # inherited through fork: that descriptor stays the parent's; open our own
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), pid
        assert self._fd is not None
        return self._fd

    def raw(self, i: int) -> bytes:
        """The bytes of the ``i``-th kept line (newline included)."""
        start, size = self.offsets[i], self.sizes[i]
        data = os.pread(self._descriptor(), size, start)
        if len(data) != size:
            raise RecordError(
                self.path,
                self.lines[i],
                f"file changed since it was indexed (read {len(data)} "
                f"of {size} bytes at byte {start})",
            )
        return data

    def read(self, i: int) -> tuple[dict[str, Any], int]:
        """The ``i``-th kept record and its line number."""
        try:
            return json.loads(self.raw(i)), self.lines[i]
        except json.JSONDecodeError as exc:
            raise RecordError(
                self.path, self.lines[i], f"not JSON any more ({exc}); file changed?"
            ) from exc

    def get(self, key: str) -> dict[str, Any] | None:
        """The record kept under ``key``, or ``None``."""
        i = self.index.get(key)
        return None if i is None else self.read(i)[0]

    def close(self) -> None:
        """Close this process's descriptor (reopened on the next read)."""
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = self._pid = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at interpreter shutdown
            self.close()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fd": None, "_pid": None}
