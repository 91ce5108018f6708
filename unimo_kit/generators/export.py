"""``unimo export``: pairs with their hard negatives and positives as webdataset tar shards.

A trainer that reads webdataset (open_clip_train, img2dataset outputs) consumes the shards
without importing unimo_kit: each sample is the image file, its caption (``txt``) and a
``json`` member with every negative and positive and its type (docs/formats.md, "Exported
shards"). Shards are written as ``NAME.tmp`` and renamed when complete; ``export.json`` is
written last.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unimo_kit.utils import atomic_write

FORMAT = "unimo-export/1"
MANIFEST = "export.json"


@dataclass
class ExportSummary:
    """What :func:`export_shards` wrote."""

    out_dir: Path  # the output folder
    shards: list[str] = field(default_factory=list)  # shard file names, in order
    samples: int = 0  # samples written
    skipped: int = 0  # items whose image could not be read
    seconds: float = 0.0  # wall time


def _add(tar: tarfile.TarFile, name: str, data: bytes, mtime: float) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(mtime), 0o644
    tar.addfile(info, io.BytesIO(data))


def export_shards(
    dataset: Any,
    out_dir: str | os.PathLike,
    *,
    samples_per_shard: int = 1000,
    prefix: str = "shard",
    progress: bool = True,
) -> ExportSummary:
    """Write every item of ``dataset`` with all its candidates into tar shards.

    Args:
        dataset: a :class:`~unimo_kit.generators.HardNegativeDataset` (its ``candidates``);
            every negative and positive is written, not a sample of K.
        out_dir: the output folder (``shard-000000.tar``, ... and ``export.json``).
        samples_per_shard: samples per tar file.
        prefix: shard file name prefix.
        progress: a tqdm bar on stderr.

    Returns:
        An :class:`ExportSummary`.
    """
    import sys

    from tqdm import tqdm

    if samples_per_shard < 1:
        raise ValueError(f"samples_per_shard must be >= 1, got {samples_per_shard}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = ExportSummary(out)
    start = time.time()
    tar: tarfile.TarFile | None = None
    tmp: Path | None = None

    def close() -> None:
        nonlocal tar, tmp
        if tar is not None and tmp is not None:
            tar.close()
            os.replace(tmp, tmp.with_suffix(""))
        tar, tmp = None, None

    bar = tqdm(total=len(dataset), desc="export", unit="sample", file=sys.stderr,
               disable=not progress, dynamic_ncols=True)  # fmt: skip
    try:
        for index in range(len(dataset)):
            bar.update(1)
            record = dataset.candidates(index)
            image = Path(record["image"])
            try:
                data = image.read_bytes()
            except OSError as exc:
                bar.write(f"warning: skipped {record['id']}: {exc}")
                summary.skipped += 1
                continue
            if tar is None:
                name = f"{prefix}-{len(summary.shards):06d}.tar"
                tmp = out / f"{name}.tmp"
                tar = tarfile.open(tmp, "w")  # noqa: SIM115 (closed by close())
                summary.shards.append(name)
            key = f"{summary.samples:09d}"
            ext = image.suffix.lower().lstrip(".") or "jpg"
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
            mtime = time.time()
            _add(tar, f"{key}.{ext}", data, mtime)
            _add(tar, f"{key}.txt", record["caption"].encode("utf-8"), mtime)
            _add(tar, f"{key}.json", json.dumps(meta, ensure_ascii=False).encode("utf-8"), mtime)
            summary.samples += 1
            if summary.samples % samples_per_shard == 0:
                close()
        close()
    finally:
        bar.close()
        if tar is not None:  # an exception mid-shard: drop the partial file
            tar.close()
            if tmp is not None:
                tmp.unlink(missing_ok=True)
    summary.seconds = time.time() - start
    with atomic_write(out / MANIFEST) as handle:
        manifest = {
            "format": FORMAT,
            "shards": summary.shards,
            "samples": summary.samples,
            "skipped": summary.skipped,
            "samples_per_shard": samples_per_shard,
        }
        handle.write(json.dumps(manifest, indent=2) + "\n")
    return summary
