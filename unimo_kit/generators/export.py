"""``unimo export``: pairs with their hard negatives and positives as webdataset tar shards
(or parquet files), for trainers that do not import unimo_kit.

Each sample is the image file, its caption (``txt``) and a ``json`` member with every negative
and positive and its type; the layout is documented in docs/formats.md, "Exported webdataset
shards". Shard ``i`` holds the items ``[i * S, (i + 1) * S)`` of the dataset (``S`` samples per
shard, fewer where an image could not be read), so a shard is either complete or redone:
it is written as ``NAME.tmp``, renamed when complete, and then listed in ``export.json`` (the
export's description for readers: settings, inputs, finished shards, sample counts).

Whether a rerun may resume is decided by the resume manifest every stage keeps
(:mod:`unimo_kit.utils.manifest`, ``OUT/manifest.json``: the settings and the inputs'
fingerprints): with the same ones it keeps the shards ``export.json`` lists and writes the
rest; with other settings or changed inputs it is refused (``resume=False`` starts afresh). An
export made before the manifest has only ``export.json``, which is read once in its place.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tarfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from unimo_kit.utils import ErrorReport, RecordError, atomic_write, file_sha256
from unimo_kit.utils.manifest import Manifest, check_or_write, input_fingerprint, manifest_path

FORMAT = "unimo-export/1"
#: The export's description (``OUT/export.json``), read by trainers and by a resuming run.
INDEX = "export.json"
MANIFEST = INDEX  # the name before the resume manifest; kept for callers
#: The stage named in the resume manifest (``OUT/manifest.json``).
MANIFEST_STAGE = "export"
#: What ``export.json`` records beside the settings, and the resume manifest checks.
SHAPE_KEYS = ("layout", "prefix", "samples_per_shard", "items")
LAYOUTS = ("webdataset", "parquet")
#: Image extensions a webdataset trainer looks for (open_clip_train: ``jpg;png;jpeg;webp``);
#: other images are re-encoded as PNG.
IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
PARQUET_EXTRA = "pyarrow"


@dataclass
class ExportConfig:
    """Options of :func:`export_pairs` (``unimo export``)."""

    rewrites: str | None = None  # rewrites.jsonl (unimo rewrite); None: see on_the_fly
    retrieved: str | None = None  # retrieved.jsonl (unimo index mine)
    layout: str = "webdataset"  # "webdataset" (tar shards) or "parquet"
    samples_per_shard: int = 1000  # items per shard file
    prefix: str = "shard"  # shard file names: PREFIX-000000.tar
    each_caption: bool = True  # one sample per caption; False: one per image, caption drawn
    split: str | None = None  # keep only pairs of this split
    sentence_negatives: bool = True  # include the rewrite stage's TF-IDF negatives
    retrieved_negatives: bool = True  # include retrieved.jsonl neighbour-caption negatives
    on_the_fly: bool = False  # rewrite while exporting when rewrites is None (spaCy)
    vocab: str | None = None  # vocabulary of on-the-fly rewrites (unimo rewrite --save-vocab)
    spacy_model: str | None = None  # spaCy pipeline of on-the-fly rewrites
    seed: int = 0  # seed of on-the-fly rewrites and of captions drawn per image
    strict: bool = False  # raise the first bad record instead of skipping it
    resume: bool = True  # skip shards a same-settings earlier run completed
    progress: bool = True  # progress bar (total and ETA) on stderr


@dataclass
class ExportSummary:
    """What :func:`export_shards` wrote."""

    out_dir: Path  # the output folder
    shards: list[str] = field(default_factory=list)  # shard file names, in order
    samples: int = 0  # samples in all shards
    skipped: int = 0  # items left out (image missing or unreadable)
    resumed: int = 0  # shards an earlier run had completed
    seconds: float = 0.0  # wall time of this run


def _tar_add(tar: tarfile.TarFile, name: str, data: bytes, mtime: float) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(mtime), 0o644
    tar.addfile(info, io.BytesIO(data))


def _image_bytes(path: Path) -> tuple[str, bytes]:
    """``(extension, bytes)`` of an image file; formats trainers do not look for become PNG."""
    data = path.read_bytes()
    ext = path.suffix.lower().lstrip(".")
    if ext in IMAGE_EXTS:
        return ext, data
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        out = io.BytesIO()
        image.save(out, format="PNG")
    return "png", out.getvalue()


def sample_meta(record: Mapping[str, Any]) -> dict[str, Any]:
    """The ``json`` member of an exported sample, from a candidate record
    (:meth:`~unimo_kit.generators.HardNegativeDataset.candidates`)."""
    meta = {
        "id": record["id"],
        "pair_id": record["pair_id"],
        "caption_index": record["caption_index"],
        "captions": record["captions"],
        "negatives": record["negatives"],
        "positives": record["positives"],
        "positive_image_ids": [p["id"] for p in record["positive_images"]],
    }
    if record.get("split") is not None:
        meta["split"] = record["split"]
    return meta


class _TarShard:
    """One webdataset tar shard being written: ``KEY.EXT``, ``KEY.txt``, ``KEY.json``."""

    suffix = ".tar"

    def __init__(self, tmp: Path):
        self.tar = tarfile.open(tmp, "w")  # noqa: SIM115 (closed by close())

    def add(self, key: str, ext: str, image: bytes, caption: str, meta: dict[str, Any]) -> None:
        now = time.time()
        _tar_add(self.tar, f"{key}.{ext}", image, now)
        _tar_add(self.tar, f"{key}.txt", caption.encode("utf-8"), now)
        _tar_add(self.tar, f"{key}.json", json.dumps(meta, ensure_ascii=False).encode(), now)

    def close(self) -> None:
        self.tar.close()


class _ParquetShard:
    """One parquet file: a row per sample (columns in docs/formats.md)."""

    suffix = ".parquet"

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.rows: dict[str, list[Any]] = {
            k: []
            for k in ("key", "image", "image_ext", "caption", "negatives", "positives", "json")
        }

    def add(self, key: str, ext: str, image: bytes, caption: str, meta: dict[str, Any]) -> None:
        values = (key, image, ext, caption, meta["negatives"], meta["positives"])
        for name, value in zip(self.rows, values, strict=False):
            self.rows[name].append(value)
        self.rows["json"].append(json.dumps(meta, ensure_ascii=False))

    def close(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        texts = pa.list_(pa.struct([("text", pa.string()), ("type", pa.string())]))
        schema = pa.schema(
            [("key", pa.string()), ("image", pa.binary()), ("image_ext", pa.string()),
             ("caption", pa.string()), ("negatives", texts), ("positives", texts),
             ("json", pa.string())]
        )  # fmt: skip
        pq.write_table(pa.table(self.rows, schema=schema), self.tmp)


def require_layout(layout: str) -> None:
    """Raise unless ``layout`` can be written here (parquet needs ``pyarrow``)."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    if layout == "parquet":
        try:
            import pyarrow.parquet  # noqa: F401
        except ImportError:
            raise ValueError(
                f"--format parquet needs the {PARQUET_EXTRA!r} package (pip install "
                f"{PARQUET_EXTRA}); --format webdataset needs nothing extra"
            ) from None


def _read_index(out: Path) -> dict[str, Any] | None:
    """``OUT/export.json`` of an earlier run (``None`` when there is none or it is unreadable:
    its shards are then written again)."""
    try:
        index = json.loads((out / INDEX).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return index if isinstance(index, dict) and index.get("format") == FORMAT else None


def _legacy_manifest(current: Manifest) -> Any:
    """How an ``export.json`` of before the resume manifest becomes one: its settings as they
    are, its inputs (kept by name and sha256 only) taken as this run's where the sha256 agrees."""

    def convert(old: dict[str, Any]) -> Manifest:
        if old.get("format") != FORMAT:
            raise ValueError(f"not an {FORMAT} description")
        settings = {**(old.get("settings") or {}), **{k: old.get(k) for k in SHAPE_KEYS}}
        inputs = {}
        for role, seen in (old.get("inputs") or {}).items():
            now = current.inputs.get(role)
            same = now is not None and seen.get("sha256") == now.get("sha256")
            inputs[role] = dict(now) if same else {"sha256": seen.get("sha256"), "size": None}
        return Manifest(MANIFEST_STAGE, settings, inputs)

    return convert


def _resume_or_clear(
    out: Path, prefix: str, identity: Mapping[str, Any], inputs: Mapping[str, Any], resume: bool
) -> dict[str, dict[str, Any]]:
    """Check this run against the export in ``out`` (:func:`check_or_write` on
    ``OUT/manifest.json``) and return the finished shards it keeps, by name; an export made
    otherwise is refused, and ``resume=False`` (or nothing there) clears the folder."""
    settings = {**identity["settings"], **{k: identity[k] for k in SHAPE_KEYS}}
    wanted = Manifest(
        MANIFEST_STAGE, settings, {role: input_fingerprint(p) for role, p in inputs.items()}
    )
    path = manifest_path(out, folder=True)
    earlier = _read_index(out)
    has_output = earlier is not None or any(out.glob(f"{prefix}-*"))
    legacy = None
    if not path.is_file() and (out / INDEX).is_file():  # an export of before the manifest
        legacy = (out / INDEX, _legacy_manifest(wanted))
    resuming = check_or_write(
        path, wanted, resume=resume, has_output=has_output, output=out, legacy=legacy
    )
    if not resuming:
        _clear(out, prefix)
        return {}
    listed = (earlier or {}).get("shards", [])
    return {s["name"]: s for s in listed if (out / str(s.get("name"))).is_file()}


def _clear(out: Path, prefix: str) -> None:
    """Remove what an earlier export wrote in ``out`` (its shards, temporaries and
    ``export.json``; the resume manifest is this run's by now)."""
    for path in out.glob(f"{prefix}-*"):
        kind = path.name.split(".", 1)[-1]
        if path.is_file() and kind in ("tar", "parquet", "tar.tmp", "parquet.tmp"):
            path.unlink()
    (out / INDEX).unlink(missing_ok=True)


def export_shards(
    dataset: Any,
    out_dir: str | os.PathLike,
    *,
    samples_per_shard: int = 1000,
    prefix: str = "shard",
    layout: str = "webdataset",
    settings: Mapping[str, Any] | None = None,
    inputs: Mapping[str, str | os.PathLike] | None = None,
    resume: bool = True,
    progress: bool = True,
    on_error: ErrorReport | None = None,
) -> ExportSummary:
    """Write every item of ``dataset`` with all its candidates into shard files.

    Args:
        dataset: a :class:`~unimo_kit.generators.HardNegativeDataset` (its ``candidates``);
            every negative and positive is written, not a sample of K.
        out_dir: the output folder (``PREFIX-000000.tar``, ..., ``export.json`` and the
            resume manifest ``manifest.json``).
        samples_per_shard: items per shard file.
        prefix: shard file name prefix.
        layout: ``"webdataset"`` (tar) or ``"parquet"`` (needs pyarrow).
        settings: what made the items (recorded; a resume under other settings is refused).
        inputs: input files by role, fingerprinted (sha256) for the same check.
        resume: keep the shards an earlier run with the same settings and inputs completed
            (refused, :class:`~unimo_kit.utils.manifest.ManifestMismatch`, when they differ).
        progress: a progress bar with total and ETA on stderr.
        on_error: receives a :class:`RecordError` (``pairs.jsonl:LINE``) per item whose image
            is missing or unreadable; the item is left out (default: warn on stderr).

    Returns:
        An :class:`ExportSummary`.
    """
    from tqdm import tqdm

    require_layout(layout)
    if samples_per_shard < 1:
        raise ValueError(f"samples_per_shard must be >= 1, got {samples_per_shard}")
    if not prefix or "/" in prefix or "." in prefix:
        raise ValueError(f"prefix must be a plain name without '/' or '.', got {prefix!r}")
    report = on_error if on_error is not None else ErrorReport()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    total = len(dataset)
    n_shards = (total + samples_per_shard - 1) // samples_per_shard
    pairs_path = getattr(dataset, "pairs_path", "pairs.jsonl")
    writer = _TarShard if layout == "webdataset" else _ParquetShard
    identity = {
        "format": FORMAT,
        "layout": layout,
        "prefix": prefix,
        "samples_per_shard": samples_per_shard,
        "items": total,
        "settings": dict(settings or {}),
        "inputs": {
            role: {"name": Path(p).name, "sha256": file_sha256(p)}
            for role, p in (inputs or {}).items()
        },
    }
    done = _resume_or_clear(out, prefix, identity, inputs or {}, resume)
    summary = ExportSummary(out)
    shards: list[dict[str, Any]] = []

    def save(complete: bool) -> None:
        manifest = {
            **identity,
            "complete": complete,
            "shards": shards,
            "samples": sum(s["samples"] for s in shards),
            "skipped": sum(s["skipped"] for s in shards),
        }
        with atomic_write(out / INDEX) as handle:
            handle.write(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")

    if done:  # listed again at once: an export.json read as the legacy manifest is gone
        shards.extend(sorted(done.values(), key=lambda s: s["first"]))
        save(complete=False)
        shards.clear()
    bar = tqdm(total=total, desc="export", unit="sample", file=sys.stderr,
               disable=not progress, dynamic_ncols=True)  # fmt: skip
    try:
        for shard in range(n_shards):
            name = f"{prefix}-{shard:06d}{writer.suffix}"
            lo, hi = shard * samples_per_shard, min(total, (shard + 1) * samples_per_shard)
            if name in done:
                shards.append(done[name])
                summary.resumed += 1
                bar.update(hi - lo)
                continue
            tmp = out / f"{name}.tmp"
            entry = {"name": name, "first": lo, "samples": 0, "skipped": 0}
            handle = writer(tmp)
            try:
                for index in range(lo, hi):
                    record = dataset.candidates(index)
                    bar.update(1)
                    try:
                        ext, image = _image_bytes(Path(record["image"]))
                    except OSError as exc:
                        message = f"pair {record['pair_id']}: image: {exc}"
                        report(RecordError(pairs_path, record.get("_line", 0), message))
                        entry["skipped"] += 1
                        continue
                    handle.add(f"{index:09d}", ext, image, record["caption"], sample_meta(record))
                    entry["samples"] += 1
                handle.close()
                os.replace(tmp, out / name)
            finally:
                tmp.unlink(missing_ok=True)
            shards.append(entry)
            save(complete=False)
    finally:
        bar.close()
    save(complete=True)
    summary.shards = [s["name"] for s in shards]
    summary.samples = sum(s["samples"] for s in shards)
    summary.skipped = sum(s["skipped"] for s in shards)
    summary.seconds = time.time() - start
    return summary


def export_pairs(
    pairs: str | os.PathLike, out_dir: str | os.PathLike, config: ExportConfig
) -> ExportSummary:
    """``unimo export``: build the dataset of ``pairs`` and write it with :func:`export_shards`.

    Args:
        pairs: ``pairs.jsonl``.
        out_dir: the output folder.
        config: the options (:class:`ExportConfig`).

    Returns:
        An :class:`ExportSummary`; bad input lines and unreadable images are reported as
        ``FILE:LINE`` on stderr and skipped (raised with ``config.strict``).
    """
    from unimo_kit.generators.dataset import HardNegativeDataset

    require_layout(config.layout)
    report = ErrorReport(strict=config.strict)
    dataset = HardNegativeDataset(
        pairs,
        config.rewrites,
        config.retrieved,
        each_caption=config.each_caption,
        split=config.split,
        seed=config.seed,
        sentence_negatives=config.sentence_negatives,
        retrieved_negatives=config.retrieved_negatives,
        on_the_fly=config.on_the_fly,
        vocab=config.vocab,
        spacy_model=config.spacy_model,
        load_images=False,
        on_error=report,
    )
    recorded = {
        k: v
        for k, v in asdict(config).items()
        if k not in ("layout", "samples_per_shard", "prefix", "strict", "resume", "progress")
    }
    for key in ("rewrites", "retrieved", "vocab"):  # by fingerprint below, not by path
        recorded[key] = recorded[key] is not None
    inputs: dict[str, str | os.PathLike] = {"pairs": pairs}
    for role in ("rewrites", "retrieved", "vocab"):
        if getattr(config, role) is not None:
            inputs[role] = getattr(config, role)
    summary = export_shards(
        dataset,
        out_dir,
        samples_per_shard=config.samples_per_shard,
        prefix=config.prefix,
        layout=config.layout,
        settings=recorded,
        inputs=inputs,
        resume=config.resume,
        progress=config.progress,
        on_error=report,
    )
    if report.count:
        print(report.summary(), file=sys.stderr)
    return summary
