"""Readers for COCO captions JSON and Karpathy-split JSON.

Both sources are single JSON documents, so the file is parsed whole (``json.load``; the
Karpathy COCO file is about 150 MB and needs about 1.5 GB of memory); records are then
yielded one at a time. A bad entry is reported by its position in the JSON arrays
(``captions_train2017.json:annotations[12]: caption must be a non-empty string``) and skipped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from unimo_kit.data.readers import OnError
from unimo_kit.data.records import MemberError, PairRecord, PathLike, resolve_path
from unimo_kit.utils import ErrorReport, RecordError, find_lone_surrogate


def _load_json(path: PathLike) -> Any:
    """The parsed document; a file that is not UTF-8 (a byte-order mark is fine) or not JSON
    raises a one-line :class:`RecordError` naming the line."""
    data = Path(path).read_bytes()
    try:
        return json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise RecordError(path, line, f"not UTF-8 (byte 0x{data[exc.start]:02x})") from None
    except json.JSONDecodeError as exc:
        raise RecordError(
            path, exc.lineno, f"invalid JSON ({exc.msg} at column {exc.colno})"
        ) from None


def _require_list(doc: Any, key: str, path: PathLike, hint: str) -> list[Any]:
    if not isinstance(doc, dict) or not isinstance(doc.get(key), list):
        raise RecordError(path, 1, f"not {hint}: no top-level {key!r} list")
    return doc[key]


def read_coco(
    path: PathLike,
    *,
    images_root: PathLike | None = None,
    strict: bool = False,
    on_error: OnError | None = None,
) -> Iterator[PairRecord]:
    """Stream pairs from a COCO captions file (``captions_train2017.json`` and alike).

    Captions in ``annotations`` are grouped by ``image_id``; each entry of ``images`` becomes
    one pair, in file order, with its captions in annotation order. Images without captions
    and annotations of unknown images are reported and skipped.

    Args:
        path: the COCO captions JSON.
        images_root: directory that ``file_name`` is relative to (e.g. ``coco/train2017``);
            default: the JSON file's directory.
        strict: raise the first bad entry instead of skipping it.
        on_error: receives each skipped entry's error (default: warn on stderr).

    Yields:
        :class:`PairRecord` with ``id = str(image id)`` and ``meta = {"source": "coco",
        "coco_id": ..., "annotation_ids": [...]}``.

    Raises:
        RecordError: the file is not JSON or has no ``images`` / ``annotations`` lists
            (always, whatever ``strict``: nothing in it could be read).
    """
    report = on_error if on_error is not None else ErrorReport(strict=strict)
    doc = _load_json(path)
    hint = "a COCO captions file"
    images = _require_list(doc, "images", path, hint)
    annotations = _require_list(doc, "annotations", path, hint)
    root = Path(images_root) if images_root is not None else Path(path).parent

    def bad(where: str, message: str, index: int) -> None:
        error = MemberError(path, where, message, index)
        if strict:
            raise error
        report(error)

    known: set[Any] = set()
    for image in images:
        if isinstance(image, dict) and "id" in image:
            known.add(image["id"])
    captions: dict[Any, list[tuple[str, Any]]] = {}
    for i, ann in enumerate(annotations):
        where = f"annotations[{i}]"
        if not isinstance(ann, dict):
            bad(where, f"expected an object, got {type(ann).__name__}", i)
            continue
        caption = ann.get("caption")
        if "image_id" not in ann:
            bad(where, "missing field 'image_id'", i)
        elif problem := find_lone_surrogate(ann):
            bad(where, problem, i)
        elif not isinstance(caption, str) or not caption.strip():
            bad(where, f"caption must be a non-empty string, got {caption!r}", i)
        elif ann["image_id"] not in known:
            bad(where, f"image_id {ann['image_id']!r} is not in 'images'", i)
        else:
            captions.setdefault(ann["image_id"], []).append((caption.strip(), ann.get("id")))

    for i, image in enumerate(images):
        where = f"images[{i}]"
        if not isinstance(image, dict):
            bad(where, f"expected an object, got {type(image).__name__}", i)
            continue
        file_name = image.get("file_name")
        if "id" not in image:
            bad(where, "missing field 'id'", i)
        elif problem := find_lone_surrogate(image):
            bad(where, problem, i)
        elif not isinstance(file_name, str) or not file_name:
            bad(where, f"file_name must be a non-empty string, got {file_name!r}", i)
        elif image["id"] not in captions:
            bad(where, f"image {image['id']!r} ({file_name}) has no captions", i)
        else:
            entries = captions.pop(image["id"])
            yield PairRecord(
                id=str(image["id"]),
                image=resolve_path(file_name, root),
                image_absolute=os.path.isabs(file_name),
                captions=[text for text, _ in entries],
                meta={
                    "source": "coco",
                    "coco_id": image["id"],
                    "annotation_ids": [ann_id for _, ann_id in entries],
                },
            )


def read_karpathy(
    path: PathLike,
    *,
    images_root: PathLike | None = None,
    split: str | None = None,
    restval_to_train: bool = False,
    strict: bool = False,
    on_error: OnError | None = None,
) -> Iterator[PairRecord]:
    """Stream pairs from a Karpathy-split file (``dataset_coco.json``,
    ``dataset_flickr30k.json``, ``dataset_flickr8k.json``).

    Each entry of ``images`` becomes one pair: the image at ``images_root/filepath/filename``
    (``filepath`` is absent in the Flickr files), the ``raw`` text of each of its
    ``sentences``, and its ``split``.

    Args:
        path: the Karpathy JSON.
        images_root: directory the image paths are relative to (e.g. the COCO root holding
            ``train2014/`` and ``val2014/``); default: the JSON file's directory.
        split: keep only images of this split (after the restval mapping); ``None`` keeps all.
        restval_to_train: label COCO's ``restval`` images ``train`` (the usual 113k-image
            training set); otherwise they keep the split ``restval``.
        strict: raise the first bad entry instead of skipping it.
        on_error: receives each skipped entry's error (default: warn on stderr).

    Yields:
        :class:`PairRecord`; ``id`` is ``str(cocoid)`` when present (so it matches the COCO
        reader), else the file name without extension (Flickr image ids); ``meta`` keeps
        ``imgid``, ``sentids`` and the dataset name.
    """
    report = on_error if on_error is not None else ErrorReport(strict=strict)
    doc = _load_json(path)
    images = _require_list(doc, "images", path, "a Karpathy split file")
    dataset = doc.get("dataset")
    root = Path(images_root) if images_root is not None else Path(path).parent

    def bad(where: str, message: str, index: int) -> None:
        error = MemberError(path, where, message, index)
        if strict:
            raise error
        report(error)

    for i, image in enumerate(images):
        where = f"images[{i}]"
        skipped: list[tuple[int, str]] = []  # (sentence index, what was wrong)
        try:
            record = _karpathy_record(image, root, dataset, restval_to_train, skipped)
        except ValueError as exc:
            record, problem = None, str(exc)
        for j, message in skipped:
            bad(f"{where}.sentences[{j}]", message, i)
        if record is None:
            bad(where, problem, i)
            continue
        if split is None or record.split == split:
            yield record


def _karpathy_record(
    image: Any, root: Path, dataset: Any, restval_to_train: bool, skipped: list[tuple[int, str]]
) -> PairRecord:
    """The pair of one ``images`` entry; a bad sentence is appended to ``skipped`` and left
    out (the image goes only when no sentence is left)."""
    if not isinstance(image, dict):
        raise ValueError(f"expected an object, got {type(image).__name__}")
    filename = image.get("filename")
    if not isinstance(filename, str) or not filename:
        raise ValueError(f"filename must be a non-empty string, got {filename!r}")
    problem = find_lone_surrogate({k: v for k, v in image.items() if k != "sentences"})
    if problem:
        raise ValueError(problem)
    sentences = image.get("sentences")
    if not isinstance(sentences, list) or not sentences:
        raise ValueError(f"image {filename} has no sentences")
    captions, kept = [], []
    for j, sentence in enumerate(sentences):
        raw = sentence.get("raw") if isinstance(sentence, dict) else None
        if not isinstance(raw, str) or not raw.strip():
            skipped.append((j, f"raw must be a non-empty string, got {raw!r}"))
            continue
        if problem := find_lone_surrogate(raw):
            skipped.append((j, problem))
            continue
        captions.append(raw.strip())
        kept.append(j)
    if not captions:
        raise ValueError(f"image {filename} has no usable sentences")
    split = image.get("split")
    if split is not None and not isinstance(split, str):
        raise ValueError(f"split must be a string, got {split!r}")
    if split == "restval" and restval_to_train:
        split = "train"
    filepath = image.get("filepath") or ""
    if "cocoid" in image:
        record_id = str(image["cocoid"])
    else:
        # Flickr image ids are the file names without extension ("1000092795.jpg").
        record_id = os.path.splitext(filename)[0] or filename
    meta = {"source": "karpathy", "dataset": dataset, "imgid": image.get("imgid")}
    if "cocoid" in image:
        meta["cocoid"] = image["cocoid"]
    sentids = image.get("sentids")
    if isinstance(sentids, list) and len(sentids) == len(sentences):
        sentids = [sentids[j] for j in kept]  # still one per caption
    if sentids is not None:
        meta["sentids"] = sentids
    image_path = str(Path(filepath) / filename)
    return PairRecord(
        id=record_id,
        image=resolve_path(image_path, root),
        image_absolute=os.path.isabs(image_path),
        captions=captions,
        split=split,
        meta={k: v for k, v in meta.items() if v is not None},
    )
