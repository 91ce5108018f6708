"""Reader for webdataset tar shards, with the standard library's :mod:`tarfile` (no
webdataset package).

A shard is a tar file whose members are grouped into samples by key: the member path up to
the first dot of its file name (``dir/000123.jpg`` and ``dir/000123.txt`` form sample
``dir/000123``). Members of one sample must be adjacent, as webdataset writes them. A sample
needs one image (``jpg``/``jpeg``/``png``/``webp``) and a caption (``txt``); a ``json`` member
becomes ``meta``; other members (``cls``, ...) are ignored. The shard is read as a stream
(``tarfile`` mode ``r|*``, gzip too), one sample in memory at a time.

Images are written out as files under ``images_dir/<shard name>/<key>.<ext>`` (the shard name
keeps the keys of different shards apart); a file already there with the same size is not
written again, so an interrupted conversion can be rerun cheaply.
"""

from __future__ import annotations

import json
import os
import tarfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from unimo_kit.data.readers import OnError
from unimo_kit.data.records import MemberError, PairRecord, PathLike
from unimo_kit.utils import ErrorReport, find_lone_surrogate

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
CAPTION_EXT = "txt"
META_EXT = "json"


def split_key(name: str) -> tuple[str, str]:
    """``("dir/000123", "jpg")`` for ``"dir/000123.jpg"``: the key is the path up to the first
    dot of the file name, the extension is the rest, lower-cased (``"seg.png"`` stays whole)."""
    head, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{head}/{stem}" if head else stem), ext.lower()


def shard_name(path: PathLike) -> str:
    """The shard file name without its tar extensions (``shard-0001.tar.gz`` -> ``shard-0001``)."""
    name = Path(path).name
    for suffix in (".tar.gz", ".tgz", ".tar"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


@dataclass
class ShardSample:
    """The members of one sample of a shard, raw (see :func:`iter_shard_samples`)."""

    key: str
    image: tuple[str, bytes] | None = None  # (extension, bytes) of the first image member
    caption: bytes | None = None
    meta: bytes | None = None
    members: list[str] = field(default_factory=list)


def read_webdataset(
    shards: PathLike | Iterable[PathLike],
    *,
    images_dir: PathLike,
    strict: bool = False,
    on_error: OnError | None = None,
) -> Iterator[PairRecord]:
    """Stream pairs from webdataset tar shards, extracting their images.

    Args:
        shards: one tar file or several, read in order.
        images_dir: where images are written (``images_dir/<shard name>/<key>.<ext>``).
        strict: raise the first bad sample instead of skipping it.
        on_error: receives each skipped sample's error (default: warn on stderr).

    Yields:
        :class:`PairRecord` per sample with an image and a caption: ``id`` is the key,
        ``captions`` the stripped ``txt`` text (one caption), ``meta`` the ``json`` member's
        object (if any) plus ``{"shard": ..., "key": ...}``.
        A sample without image or caption, an empty caption, bad JSON metadata, a key that
        would escape ``images_dir`` and a truncated tar are reported by shard and key
        (``shard-0001.tar:000123: no caption (.txt member)``).
    """
    if isinstance(shards, (str, os.PathLike)):
        shards = [shards]
    report = on_error if on_error is not None else ErrorReport(strict=strict)
    for shard in shards:
        yield from _read_shard(shard, Path(images_dir), strict, report)


def _read_shard(
    shard: PathLike, images_dir: Path, strict: bool, report: OnError
) -> Iterator[PairRecord]:
    out_dir = images_dir / shard_name(shard)

    def bad(where: str, message: str) -> None:
        error = MemberError(shard, where, message)
        if strict:
            raise error
        report(error)

    for sample in iter_shard_samples(shard, bad):
        try:
            record = _to_record(sample, shard, out_dir)
        except ValueError as exc:
            bad(sample.key, str(exc))
            continue
        yield record


def iter_shard_samples(shard: PathLike, bad: Callable[[str, str], None]) -> Iterator[ShardSample]:
    """Group the members of a shard into samples, one sample in memory at a time.

    Args:
        shard: a tar file (gzip too), read as a stream.
        bad: called as ``bad(member name, message)`` when the tar is cut short or unreadable;
            the samples read before the damage have been yielded.

    Yields:
        :class:`ShardSample` per key, with the first image, caption and ``json`` member's bytes
        (``None`` where missing) and every member name; nothing is decoded or checked.
    """
    sample: ShardSample | None = None
    last = "(start)"
    try:
        with tarfile.open(shard, mode="r|*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                last = member.name
                key, ext = split_key(member.name)
                if sample is not None and key != sample.key:
                    yield sample
                    sample = None
                if sample is None:
                    sample = ShardSample(key)
                sample.members.append(member.name)
                wanted = (
                    (ext in IMAGE_EXTS and sample.image is None)
                    or (ext == CAPTION_EXT and sample.caption is None)
                    or (ext == META_EXT and sample.meta is None)
                )
                if not wanted:
                    continue
                handle = tar.extractfile(member)
                data = handle.read() if handle is not None else b""
                if ext in IMAGE_EXTS:
                    sample.image = (ext, data)
                elif ext == CAPTION_EXT:
                    sample.caption = data
                else:
                    sample.meta = data
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        # A shard cut short (or not a tar at all): what was read before the damage has been
        # yielded; the sample being read when it happened is dropped.
        bad(last, f"unreadable or truncated tar ({type(exc).__name__}: {exc})")
        return
    if sample is not None:
        yield sample


def _to_record(sample: ShardSample, shard: PathLike, out_dir: Path) -> PairRecord:
    if sample.image is None:
        raise ValueError(
            f"no image member (.{'/.'.join(IMAGE_EXTS)}) among {', '.join(sample.members)}"
        )
    if sample.caption is None:
        raise ValueError(f"no caption (.{CAPTION_EXT} member) among {', '.join(sample.members)}")
    try:
        caption = sample.caption.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise ValueError(f"caption is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    if not caption:
        raise ValueError("empty caption")
    meta: dict[str, Any] = {}
    if sample.meta is not None:
        try:
            meta = json.loads(sample.meta)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"invalid JSON in .{META_EXT} member ({exc})") from None
        if not isinstance(meta, dict):
            raise ValueError(f".{META_EXT} member is not a JSON object")
        if problem := find_lone_surrogate(meta):
            raise ValueError(f".{META_EXT} member: {problem}")
    parts = PurePosixPath(sample.key).parts
    if not parts or sample.key.startswith("/") or ".." in parts:
        raise ValueError(f"key {sample.key!r} is not a safe relative path")
    ext, data = sample.image
    target = out_dir.joinpath(*parts).with_name(f"{parts[-1]}.{ext}")
    if not (target.exists() and target.stat().st_size == len(data)):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    return PairRecord(
        id=sample.key,
        image=os.path.abspath(target),
        captions=[caption],
        meta={**meta, "shard": Path(shard).name, "key": sample.key},
    )
