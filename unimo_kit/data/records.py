"""The three record types every stage exchanges, and their JSONL form (docs/formats.md).

- :class:`PairRecord`: one image with one or more captions (``pairs.jsonl``);
- :class:`TextRecord`: one text of a text-only corpus (``texts.jsonl``);
- :class:`ImageRecord`: one image of an image-only collection (``images.jsonl``).

Image paths in a JSONL file are relative to that file's directory; in memory they are
resolved (absolute, or as given when no base directory is known). :meth:`from_dict` checks a
decoded line and raises :class:`~unimo_kit.utils.RecordError` naming the file, the line and
the problem; :meth:`to_dict` writes paths relative to the output file's directory (a path
the source wrote absolute, and a URL, is written as it is). Fields a
record does not know are kept in ``extra`` and written back, so a pass-through loses nothing.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from unimo_kit.utils import RecordError

PathLike = str | os.PathLike
R = TypeVar("R", bound="_JsonlRecord")


class MemberError(RecordError):
    """A bad record inside a container that has no useful line numbers: an entry of a JSON
    array (``captions.json:annotations[12]: ...``) or a member of a tar shard
    (``shard-0001.tar:000123: ...``).

    Args:
        path: the container file.
        where: the position inside it, written where a line number would stand.
        message: what was wrong.
        index: a numeric position if there is one (stored as :attr:`line`), else 0.
    """

    def __init__(self, path: PathLike, where: str, message: str, index: int = 0):
        super().__init__(path, index, message)
        self.where = where
        self.args = (f"{self.path}:{where}: {message}",)

    def __reduce__(self):  # picklable across worker processes
        return type(self), (self.path, self.where, self.message, self.line)


def caption_id(pair_id: str, index: int) -> str:
    """The id of caption ``index`` of pair ``pair_id``: ``"<pair_id>#<index>"``, as rewrites,
    text indexes, training batches and exported samples spell it."""
    return f"{pair_id}#{index}"


@functools.lru_cache(maxsize=256)
def caption_key(text: str) -> str:
    """What two captions must share to be "the same caption": the text casefolded, whitespace
    collapsed (retrieval's shared captions, mining's own-caption filter, compositional items
    whose negative is the positive)."""
    return " ".join(text.casefold().split())


def _real_dir(base_dir: str) -> str:
    # Symlinks resolved, so that ".." in a relative path means the same lexically (as
    # os.path.abspath and os.path.relpath compute it) as for the file system.
    return os.path.realpath(base_dir)


def resolve_path(image: str, base_dir: PathLike | None) -> str:
    """The in-memory form of a path read from a file in ``base_dir``.

    Relative paths are joined to ``base_dir`` (its symlinks resolved) and made absolute;
    absolute paths and URLs (``scheme://...``) are kept; with ``base_dir=None`` the path is
    returned as given.
    """
    if base_dir is None or "://" in image:
        return image
    return os.path.normpath(os.path.join(_real_dir(os.fspath(base_dir)), image))


def relative_path(image: str, base_dir: PathLike | None) -> str:
    """The on-disk form of ``image`` in a file written to ``base_dir`` (POSIX separators).

    The inverse of :func:`resolve_path`. URLs and ``base_dir=None`` keep the path as it is; a
    path that cannot be made relative (another drive on Windows) stays absolute.
    """
    if base_dir is None or "://" in image:
        return image
    image = os.path.abspath(image)
    base = _real_dir(os.fspath(base_dir))
    prefix = base if base.endswith(os.sep) else base + os.sep
    if image.startswith(prefix):  # the common case, without relpath's cost
        return image[len(prefix) :].replace(os.sep, "/")
    try:
        rel = os.path.relpath(image, base)
    except ValueError:
        return image
    return rel.replace(os.sep, "/")


def written_path(image: str, base_dir: PathLike | None, absolute: bool) -> str:
    """How a record writes its image path to a file in ``base_dir``: as it is when the source
    gave an absolute path (``absolute``; a shared ``/data/coco`` mount stays valid wherever the
    file moves) or a URL, else relative to ``base_dir`` (:func:`relative_path`)."""
    return image if absolute else relative_path(image, base_dir)


class _Checker:
    """Field checks that raise :class:`RecordError` at one file and line."""

    def __init__(self, d: Any, path: PathLike, line: int):
        self.path, self.line = path, line
        if not isinstance(d, dict):
            raise self.error(f"expected a JSON object, got {type(d).__name__}")
        self.d = d

    def error(self, message: str) -> RecordError:
        return RecordError(self.path, self.line, message)

    def id(self) -> str:
        value = self.required("id")
        # Integer ids (as in COCO) are accepted and stored as strings; bool is not an int here.
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str) or not value.strip():
            raise self.error(f"id must be a non-empty string, got {_show(value)}")
        return value

    def required(self, key: str) -> Any:
        if key not in self.d:
            raise self.error(f"missing field {key!r}")
        return self.d[key]

    def string(self, key: str) -> str:
        value = self.required(key)
        if not isinstance(value, str) or not value.strip():
            raise self.error(f"{key} must be a non-empty string, got {_show(value)}")
        return value

    def optional_string(self, key: str) -> str | None:
        value = self.d.get(key)
        if value is not None and not isinstance(value, str):
            raise self.error(f"{key} must be a string or null, got {_show(value)}")
        return value

    def string_list(self, key: str, *, required: bool) -> list[str] | None:
        value = self.required(key) if required else self.d.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, list) or not value:
            raise self.error(f"{key} must be a non-empty list of strings, got {_show(value)}")
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise self.error(f"{key}[{i}] must be a string, got {_show(item)}")
            if not item.strip():
                raise self.error(f"{key}[{i}] is empty")
        return list(value)

    def meta(self) -> dict[str, Any]:
        value = self.d.get("meta")
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.error(f"meta must be a JSON object, got {_show(value)}")
        return value

    def extra(self, known: tuple[str, ...]) -> dict[str, Any]:
        return {k: v for k, v in self.d.items() if k not in known}

    def image(self, base_dir: PathLike | None) -> tuple[str, bool]:
        """The ``image`` field resolved against ``base_dir`` (:func:`resolve_path`), and
        whether the source wrote it absolute (:func:`written_path` keeps it so)."""
        image = self.string("image")
        return resolve_path(image, base_dir), os.path.isabs(image)


def _show(value: Any) -> str:
    """A short description of a bad value for an error message."""
    kind = "null" if value is None else type(value).__name__
    text = repr(value)
    return f"{kind} {text[:40] + '...' if len(text) > 40 else text}"


def _compact(d: dict[str, Any]) -> dict[str, Any]:
    """Drop optional fields that carry nothing (None, empty meta)."""
    return {k: v for k, v in d.items() if v is not None and not (k == "meta" and not v)}


class _JsonlRecord:
    """What the three record types share: :meth:`from_dict` checks a decoded line at one file
    and line, :meth:`to_dict` writes the known fields and then the unknown ones kept in
    ``extra``. A type says only how it reads (:meth:`_read`) and writes (:meth:`_fields`)."""

    FIELDS: ClassVar[tuple[str, ...]]  # the top-level fields the type knows
    extra: dict[str, Any]

    @classmethod
    def from_dict(
        cls: type[R],
        d: dict[str, Any],
        *,
        base_dir: PathLike | None = None,
        path: PathLike = "<memory>",
        line: int = 0,
    ) -> R:
        """Check and build a record from a decoded JSONL line.

        Args:
            d: the decoded JSON object.
            base_dir: directory the image path is relative to (the JSONL file's); ``None``
                keeps the path as written (a record without an image ignores it).
            path, line: where ``d`` came from, for error messages.

        Returns:
            The record, with its image path resolved.

        Raises:
            RecordError: ``PATH:LINE: what was wrong`` for a missing field or a wrong type.
        """
        checker = _Checker(d, path, line)
        return cls._read(checker, base_dir, extra=checker.extra(cls.FIELDS))

    @classmethod
    def _read(cls: type[R], c: _Checker, base_dir: PathLike | None, *, extra: dict[str, Any]) -> R:
        """The record of checked line ``c`` (``extra``: its unknown fields)."""
        raise NotImplementedError

    def _fields(self, base_dir: PathLike | None) -> dict[str, Any]:
        """The known fields in their JSONL form, before :func:`_compact`."""
        raise NotImplementedError

    def to_dict(self, base_dir: PathLike | None = None) -> dict[str, Any]:
        """The JSONL form, with an image path relative to ``base_dir`` (the output file's
        directory; ``None`` writes it as held). Empty optional fields are left out; unknown
        fields read in follow the known ones."""
        d = _compact(self._fields(base_dir))
        return {**d, **{k: v for k, v in self.extra.items() if k not in d}}


@dataclass
class PairRecord(_JsonlRecord):
    """One image and its captions: a line of ``pairs.jsonl``.

    ``scene_graphs``, when present, has one FACTUAL string per caption.
    """

    id: str  # unique image id
    image: str  # image path (resolved in memory; relative to the file's directory on disk)
    captions: list[str]  # one or more captions of this image
    split: str | None = None  # "train" / "val" / "test" where the source says
    scene_graphs: list[str] | None = None  # gold scene graph per caption, FACTUAL strings
    meta: dict[str, Any] = field(default_factory=dict)  # source ids and anything else
    extra: dict[str, Any] = field(default_factory=dict)  # unknown top-level fields, kept
    # the source wrote an absolute path: write it absolute too (see :func:`written_path`)
    image_absolute: bool = field(default=False, compare=False, repr=False)

    FIELDS: ClassVar[tuple[str, ...]] = ("id", "image", "captions", "split", "scene_graphs", "meta")

    @classmethod
    def _read(cls, c: _Checker, base_dir: PathLike | None, *, extra: dict[str, Any]) -> PairRecord:
        record_id = c.id()
        image, absolute = c.image(base_dir)
        captions = c.string_list("captions", required=True)
        split = c.optional_string("split")
        graphs = c.string_list("scene_graphs", required=False)
        if graphs is not None and len(graphs) != len(captions):
            raise c.error(f"scene_graphs has {len(graphs)} entries for {len(captions)} captions")
        return cls(
            id=record_id,
            image=image,
            captions=captions,
            split=split,
            scene_graphs=graphs,
            meta=c.meta(),
            extra=extra,
            image_absolute=absolute,
        )

    def _fields(self, base_dir: PathLike | None) -> dict[str, Any]:
        return {
            "id": self.id,
            "image": written_path(self.image, base_dir, self.image_absolute),
            "captions": list(self.captions),
            "split": self.split,
            "scene_graphs": None if self.scene_graphs is None else list(self.scene_graphs),
            "meta": self.meta,
        }


@dataclass
class TextRecord(_JsonlRecord):
    """One text of a text-only corpus: a line of ``texts.jsonl``."""

    id: str  # unique text id
    text: str  # the text
    meta: dict[str, Any] = field(default_factory=dict)  # anything else
    extra: dict[str, Any] = field(default_factory=dict)  # unknown top-level fields, kept

    FIELDS: ClassVar[tuple[str, ...]] = ("id", "text", "meta")

    @classmethod
    def _read(cls, c: _Checker, base_dir: PathLike | None, *, extra: dict[str, Any]) -> TextRecord:
        return cls(id=c.id(), text=c.string("text"), meta=c.meta(), extra=extra)

    def _fields(self, base_dir: PathLike | None) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "meta": self.meta}


@dataclass
class ImageRecord(_JsonlRecord):
    """One image of an image-only collection: a line of ``images.jsonl``."""

    id: str  # unique image id
    image: str  # image path (resolved in memory; relative to the file's directory on disk)
    meta: dict[str, Any] = field(default_factory=dict)  # anything else
    extra: dict[str, Any] = field(default_factory=dict)  # unknown top-level fields, kept
    # the source wrote an absolute path: write it absolute too (see :func:`written_path`)
    image_absolute: bool = field(default=False, compare=False, repr=False)

    FIELDS: ClassVar[tuple[str, ...]] = ("id", "image", "meta")

    @classmethod
    def _read(cls, c: _Checker, base_dir: PathLike | None, *, extra: dict[str, Any]) -> ImageRecord:
        record_id = c.id()
        image, absolute = c.image(base_dir)
        return cls(id=record_id, image=image, meta=c.meta(), extra=extra, image_absolute=absolute)

    def _fields(self, base_dir: PathLike | None) -> dict[str, Any]:
        return {
            "id": self.id,
            "image": written_path(self.image, base_dir, self.image_absolute),
            "meta": self.meta,
        }


Record = PairRecord | TextRecord | ImageRecord
