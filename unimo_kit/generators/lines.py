"""A lazy JSONL reader that is safe in forked DataLoader workers.

:class:`JsonlIndex` scans a JSONL file once (as the trainer's ``JsonlLines``), keeps the byte
offset of each selected line and decodes a line when it is asked for. Reads go through
``os.pread`` on a file descriptor opened per process (keyed by ``os.getpid()``): a descriptor
opened before ``DataLoader`` forks its workers shares one file offset with them, so a ``seek`` +
``readline`` in one worker could read from the position another worker had just set, and the
line came back cut (``JSONDecodeError``). ``pread`` does not use the file offset at all, and
each process opens its own descriptor on first use after a fork or an unpickle.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from typing import Any

from unimo_kit.train.data import JsonlLines
from unimo_kit.utils import ErrorReport, RecordError


class JsonlIndex(JsonlLines):
    """Byte offsets of selected lines of a JSONL file, read back on demand in any process.

    Args:
        path: the JSONL file.
        keep: called with each decoded record and its line number; returns the key to keep
            the line under, or ``None`` to drop it. Raise :class:`RecordError` to report it.
        on_error: receives malformed lines (default: warnings on stderr).

    The trainer's :class:`~unimo_kit.train.data.JsonlLines` (the same scan, ``get``, ``keys``,
    ``index``, ``lines``) with reads that are safe after a fork, plus :meth:`raw`.
    """

    #: Bytes asked for per ``pread``; a longer line takes more reads.
    CHUNK = 4096

    def __init__(
        self,
        path: str | os.PathLike,
        keep: Callable[[dict[str, Any], int], str | None],
        on_error: ErrorReport | None = None,
    ):
        super().__init__(path, keep, on_error)
        self._fd: int | None = None
        self._pid: int | None = None

    def _descriptor(self) -> int:
        """This process's descriptor of the file (opened on first use in each process)."""
        pid = os.getpid()
        if self._pid != pid:
            # inherited through fork: that descriptor stays the parent's; open our own
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), pid
        assert self._fd is not None
        return self._fd

    def raw(self, i: int) -> bytes:
        """The bytes of the ``i``-th kept line, without its newline."""
        fd, start = self._descriptor(), self.offsets[i]
        parts: list[bytes] = []
        while True:
            chunk = os.pread(fd, self.CHUNK, start)
            end = chunk.find(b"\n")
            if end >= 0 or len(chunk) < self.CHUNK:  # the line's end, or the file's
                parts.append(chunk[:end] if end >= 0 else chunk)
                return b"".join(parts)
            parts.append(chunk)
            start += len(chunk)

    def read(self, i: int) -> tuple[dict[str, Any], int]:
        """The ``i``-th kept record and its line number."""
        try:
            return json.loads(self.raw(i)), self.lines[i]
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RecordError(
                self.path, self.lines[i], f"not JSON any more ({exc}); file changed?"
            ) from exc

    def close(self) -> None:
        """Close this process's descriptor (reopened on the next read)."""
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = self._pid = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at interpreter shutdown
            self.close()

    def __getstate__(self) -> dict[str, Any]:
        return {**super().__getstate__(), "_fd": None, "_pid": None}
