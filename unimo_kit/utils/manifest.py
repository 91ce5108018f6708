"""Resume manifests: one record of what made an output, checked before a run resumes it.

Every resumable stage writes one manifest beside (or inside) its output: the *settings* that
shape the output (options, model names, shard) and a *fingerprint* of each input file (path,
size, modification time, sha256). A rerun that resumes compares its own manifest with the
saved one and refuses, in one line naming what differs and the flag that starts afresh, when
they disagree; otherwise the output is resumed. Writes are atomic (``.tmp`` + ``os.replace``).

Format (docs/formats.md, "Resume manifest")::

    {"manifest_version": 1, "stage": "index mine",
     "settings": {"k": 5, "shard": "0/1", ...},
     "inputs": {"pairs": {"path": "/abs/pairs.jsonl", "size": 812, "mtime_ns": 17...,
                          "sha256": "..."}}}

It lives at ``OUT.manifest.json`` next to a file output and at ``FOLDER/manifest.json`` inside
a folder output (:func:`manifest_path`). Inputs are compared by content (size and sha256), not
by path or time: a copied input resumes, an edited one does not. An input folder (a features
store read by an image index) is fingerprinted by :func:`folder_fingerprint`.

Example:
    >>> from unimo_kit.utils.manifest import (
    ...     Manifest, check_or_write, input_fingerprint, manifest_path)
    >>> wanted = Manifest(
    ...     stage="rewrite",
    ...     settings={"per_type": 2, "seed": 0},
    ...     inputs={"pairs": input_fingerprint("pairs.jsonl")},
    ... )
    >>> resuming = check_or_write(  # ManifestMismatch when OUT was made otherwise
    ...     manifest_path("rewrites.jsonl"), wanted, resume=True,
    ...     has_output=os.path.exists("rewrites.jsonl"),
    ... )
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unimo_kit.utils.hashing import file_sha256
from unimo_kit.utils.jsonl import atomic_write

MANIFEST_VERSION = 1
#: The flag that starts an output afresh, named in every refusal.
AFRESH_FLAG = "--no-resume"
#: The ``kind`` of a folder's fingerprint (:func:`folder_fingerprint`); a file's has none.
FOLDER = "folder"
#: How much of each file a folder's fingerprint reads (a safetensors chunk's header fits).
HEAD_BYTES = 1 << 16


class ManifestError(ValueError):
    """A manifest that cannot be read (not JSON, not a manifest, a newer version)."""


class ManifestMismatch(ValueError):
    """The output was made with other settings or inputs than this run's (resume refused)."""


def input_fingerprint(path: str | os.PathLike) -> dict[str, Any]:
    """``{"path", "size", "mtime_ns", "sha256"}`` of an input file (path made absolute)."""
    info = os.stat(path)
    return {
        "path": os.path.abspath(path),
        "size": info.st_size,
        "mtime_ns": info.st_mtime_ns,
        "sha256": file_sha256(path),
    }


def folder_fingerprint(path: str | os.PathLike) -> dict[str, Any]:
    """``{"path", "kind": "folder", "files", "size", "mtime_ns", "sha256"}`` of an input
    folder (path made absolute), such as a features store.

    ``sha256`` digests every file's path inside the folder, its size and its first
    :data:`HEAD_BYTES` bytes (the whole of a small file such as ``meta.json``; a safetensors
    chunk's header with its ids and shapes, and the start of its data), so that hashing a
    store of many gigabytes costs a read of its headers. Files named ``*.tmp`` (a write in
    progress) are left out. ``size`` is the total, ``mtime_ns`` the newest file's.

    Args:
        path: the folder.

    Returns:
        The fingerprint, compared as a file's is (size and sha256; see :func:`input_changed`).

    Raises:
        NotADirectoryError: ``path`` is not a folder.
    """
    root = Path(path)
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a folder")
    digest = hashlib.sha256()
    files, size, newest = 0, 0, 0
    for file in _folder_files(root):
        info = file.stat()
        name = file.relative_to(root).as_posix()
        with open(file, "rb") as handle:
            head = handle.read(HEAD_BYTES)
        digest.update(f"{name}\0{info.st_size}\0".encode())
        digest.update(hashlib.sha256(head).digest())
        files, size, newest = files + 1, size + info.st_size, max(newest, info.st_mtime_ns)
    return {
        "path": os.path.abspath(root),
        "kind": FOLDER,
        "files": files,
        "size": size,
        "mtime_ns": newest,
        "sha256": digest.hexdigest(),
    }


def _folder_files(root: Path) -> list[Path]:
    """The regular files under ``root`` (recursively, sorted), ``*.tmp`` left out."""
    return sorted(
        file for file in root.rglob("*") if file.is_file() and not file.name.endswith(".tmp")
    )


def input_changed(fingerprint: dict[str, Any]) -> bool:
    """Whether the file a fingerprint was taken of now holds other bytes, or is gone.

    Size and modification time are the fast path; when only the time differs (a copy, a
    ``touch``) the sha256 decides. A fingerprint without ``sha256`` trusts the time. A
    folder's fingerprint (:func:`folder_fingerprint`) is taken again and compared by its
    size and sha256.
    """
    if fingerprint.get("kind") == FOLDER:
        try:
            now = folder_fingerprint(fingerprint["path"])
        except OSError:
            return True
        return _content(now) != _content(fingerprint)
    try:
        info = os.stat(fingerprint["path"])
    except OSError:
        return True
    if info.st_size != fingerprint.get("size"):
        return True
    if info.st_mtime_ns == fingerprint.get("mtime_ns"):
        return False
    digest = fingerprint.get("sha256")
    return digest is None or file_sha256(fingerprint["path"]) != digest


@dataclass
class Manifest:
    """What made an output: the stage, its shaping settings and its inputs' fingerprints."""

    stage: str  # the command that writes the output, e.g. "index mine"
    settings: dict[str, Any] = field(default_factory=dict)  # JSON values that shape the output
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> input_fingerprint

    def to_json(self) -> dict[str, Any]:
        """The manifest as the JSON object that is written."""
        return {
            "manifest_version": MANIFEST_VERSION,
            "stage": self.stage,
            "settings": self.settings,
            "inputs": self.inputs,
        }

    @classmethod
    def from_json(cls, data: Any, where: str = "manifest") -> Manifest:
        """Read :meth:`to_json`'s object back; :class:`ManifestError` names ``where``."""
        if not isinstance(data, dict) or "manifest_version" not in data:
            raise ManifestError(f"{where}: not a resume manifest")
        if data["manifest_version"] > MANIFEST_VERSION:
            raise ManifestError(
                f"{where}: manifest version {data['manifest_version']} is newer than this "
                f"unimo_kit reads ({MANIFEST_VERSION})"
            )
        settings, inputs = data.get("settings", {}), data.get("inputs", {})
        if not isinstance(settings, dict) or not isinstance(inputs, dict):
            raise ManifestError(f"{where}: settings and inputs must be JSON objects")
        return cls(stage=str(data.get("stage", "")), settings=settings, inputs=inputs)

    def differences(self, saved: Manifest, keys: Iterable[str] | None = None) -> list[str]:
        """What differs from ``saved``, one ``"key: old -> new"`` item per setting (only
        ``keys`` when given) and one ``"input NAME changed"`` per input of other content."""
        names = sorted(set(saved.settings) | set(self.settings)) if keys is None else list(keys)
        out = [
            f"{key}: {_short(saved.settings.get(key))} -> {_short(self.settings.get(key))}"
            for key in names
            if saved.settings.get(key) != self.settings.get(key)
        ]
        for name in sorted(set(saved.inputs) | set(self.inputs)):
            old, new = saved.inputs.get(name), self.inputs.get(name)
            if old is None or new is None:
                out.append(f"input {name}: {'added' if old is None else 'removed'}")
            elif _content(old) != _content(new):
                out.append(
                    f"input {name} changed ({_short(old.get('sha256'))} -> "
                    f"{_short(new.get('sha256'))})"
                )
        return out


def _content(fingerprint: dict[str, Any]) -> tuple[Any, Any]:
    return fingerprint.get("size"), fingerprint.get("sha256")


def _short(value: Any) -> str:
    """A value for a one-line diff (sha256 digests cut to 12 characters)."""
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:12]
    return json.dumps(value)


def manifest_path(output: str | os.PathLike, *, folder: bool = False) -> Path:
    """Where the manifest of ``output`` lives: ``OUT.manifest.json`` beside a file output,
    ``FOLDER/manifest.json`` inside a folder output (``folder=True``)."""
    out = Path(output)
    return out / "manifest.json" if folder else out.with_name(out.name + ".manifest.json")


def read_manifest(path: str | os.PathLike) -> Manifest | None:
    """The manifest at ``path``; ``None`` when there is none.

    Raises:
        ManifestError: the file is not JSON, not a manifest, or of a newer version.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path}: unreadable ({exc})") from None
    return Manifest.from_json(data, str(path))


def write_manifest(path: str | os.PathLike, manifest: Manifest) -> None:
    """Write ``manifest`` to ``path`` atomically (``PATH.tmp`` then ``os.replace``)."""
    with atomic_write(path) as handle:
        handle.write(json.dumps(manifest.to_json(), indent=2, ensure_ascii=False) + "\n")


def check_or_write(
    path: str | os.PathLike,
    manifest: Manifest,
    *,
    resume: bool,
    has_output: bool,
    output: str | os.PathLike | None = None,
    keys: Iterable[str] | None = None,
    legacy: tuple[str | os.PathLike, Callable[[dict[str, Any]], Manifest]] | None = None,
    flag: str = AFRESH_FLAG,
) -> bool:
    """Decide whether a run resumes its output, refusing one made otherwise; then write
    ``manifest`` to ``path``.

    Args:
        path: the manifest file (:func:`manifest_path`).
        manifest: this run's settings and input fingerprints.
        resume: the run asks to keep what the output holds (``False``: start afresh).
        has_output: the output already holds something worth resuming.
        output: the output, as the refusal names it (default: ``path`` without its suffix).
        keys: the settings a resume must match (default: all of them); the rest are taken
            from this run.
        legacy: ``(old_file, convert)``: where a stage kept its settings before manifests and
            how to turn that JSON object into a :class:`Manifest`; read when ``path`` is
            missing, and removed once the new manifest is written.
        flag: the option that starts afresh, named in the refusal.

    Returns:
        ``True`` when the run resumes the output, ``False`` when it starts it afresh (new,
        empty, or ``resume=False``; the caller clears the output). An output with no
        manifest at all (made before any record was kept) resumes unchecked.

    Raises:
        ManifestMismatch: one line naming every difference and ``flag``.
        ManifestError: the saved manifest (or legacy file) cannot be read.
    """
    path = Path(path)
    name = str(output) if output is not None else _output_of(path)
    resuming = resume and has_output
    if resuming:
        saved = read_saved(path, legacy, flag=flag)
        if saved is not None:
            diff = manifest.differences(saved, keys)
            if diff:
                raise mismatch(name, diff, flag)
    write_manifest(path, manifest)
    if legacy is not None:
        Path(legacy[0]).unlink(missing_ok=True)
    return resuming


def mismatch(
    output: str | os.PathLike, diff: list[str], flag: str = AFRESH_FLAG
) -> ManifestMismatch:
    """The one refusal of every stage: ``OUTPUT was made with other settings or inputs
    (DIFF; DIFF); rerun with the same ones, or pass FLAG to start afresh``.

    Args:
        output: the output, as the refusal names it.
        diff: :meth:`Manifest.differences` (not empty).
        flag: the option that starts afresh.

    Returns:
        The error, for the caller to raise (or to wrap in its own error type).
    """
    return ManifestMismatch(
        f"{output} was made with other settings or inputs ({'; '.join(diff)}); "
        f"rerun with the same ones, or pass {flag} to start afresh"
    )


def read_saved(
    path: str | os.PathLike,
    legacy: tuple[str | os.PathLike, Callable[[dict[str, Any]], Manifest]] | None = None,
    *,
    flag: str = AFRESH_FLAG,
) -> Manifest | None:
    """The saved record of an output: the manifest at ``path``, else the ``legacy`` file
    converted (see :func:`check_or_write`), else ``None``.

    Raises:
        ManifestError: the manifest or the legacy file cannot be read.
    """
    path = Path(path)
    return read_manifest(path) if path.is_file() else _read_legacy(legacy, flag)


def _read_legacy(
    legacy: tuple[str | os.PathLike, Callable[[dict[str, Any]], Manifest]] | None, flag: str
) -> Manifest | None:
    if legacy is None or not Path(legacy[0]).is_file():
        return None
    old = Path(legacy[0])
    try:
        data = json.loads(old.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return legacy[1](data)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ManifestError(f"{old}: unreadable ({exc}); pass {flag} to start afresh") from None


def _output_of(path: Path) -> str:
    if path.name == "manifest.json":
        return str(path.parent)
    return str(path.with_name(path.name.removesuffix(".manifest.json")))
