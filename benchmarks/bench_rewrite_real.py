"""Rewrite on real captions: per negative type, the share of captions that get one.

The FACTUAL CSVs (Visual Genome region captions; ``../shared/data/factual_{train,dev}.csv``,
paths given as arguments) are turned into one ``pairs.jsonl`` per split, one caption per
record (id ``<image_id>-<region_id>``; the image path is a placeholder, rewrite reads none; the
gold graphs are NOT passed, as a user's own captions have none). Then ``unimo rewrite`` runs on
each with its defaults, as a subprocess of the current interpreter (so ``PYTHONPATH`` picks the
code measured), and its output is counted.

Captions: all of dev (977) and a seeded random sample of 5,000 of train's 36,894 by default
(``--train-sample`` / ``--dev-sample``; 0 means all). The sample keeps file order.

Per split and over both: captions, caption lines with an ``error`` field (with the first of
them verbatim), the run's captions/s end to end (start-up included), and per type the number of
captions with >= 1 negative of that type, its share, and the number of negatives.

Results go to ``benchmarks/results/rewrite_real.json`` under ``--label`` (e.g. ``before`` /
``after``); entries of other labels are kept, so two runs sit side by side. The pairs and
rewrites files stay in ``--work-dir`` for ``bench_blind.py`` and ``sample_negatives.py``.

Usage::

    python benchmarks/bench_rewrite_real.py --train ../shared/data/factual_train.csv \\
        --dev ../shared/data/factual_dev.csv --label before --work-dir /tmp/me/before
    PYTHONPATH=/tmp/me-before python benchmarks/bench_rewrite_real.py ...  # another checkout
"""

from __future__ import annotations

import argparse
import csv
import datetime
import hashlib
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from unimo_kit.rewrite.negatives import NEGATIVE_TYPES  # the rewriter's types, in its order

RESULTS = Path(__file__).resolve().parent / "results" / "rewrite_real.json"
MAX_ERRORS_KEPT = 20  # error lines kept verbatim in the results


# ---------------------------------------------------------------------- shared helpers


def factual_rows(path: str | os.PathLike, sample: int = 0, seed: int = 0) -> list[dict[str, Any]]:
    """Rows of a FACTUAL CSV, optionally a seeded random sample in file order.

    Args:
        path: CSV with columns ``image_id``, ``region_id`` (optional), ``caption``.
        sample: keep this many rows drawn with ``random.Random(seed)`` (0 or more than the
            file holds: all).
        seed: seed of the sample.

    Returns:
        ``[{"id", "image_id", "caption", "scene_graph", "line"}]``; ids are
        ``<image_id>-<region_id>`` (``-L<line>`` appended to a repeated one). Rows without a
        caption are reported on stderr as ``FILE:LINE: ...`` and left out.

    Raises:
        ValueError: the file has no ``caption`` column.
    """
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        if "caption" not in (reader.fieldnames or []):
            raise ValueError(f"{path}:1: no 'caption' column (header: {reader.fieldnames})")
        for row in reader:
            line = reader.line_num
            caption = (row.get("caption") or "").strip()
            if not caption:
                print(f"{path}:{line}: empty caption, skipped", file=sys.stderr)
                continue
            image_id = (row.get("image_id") or "").strip() or f"L{line}"
            region = (row.get("region_id") or "").strip()
            key = f"{image_id}-{region}" if region else image_id
            if key in seen:
                key = f"{key}-L{line}"
            seen.add(key)
            rows.append(
                {
                    "id": key,
                    "image_id": image_id,
                    "caption": caption,
                    "scene_graph": row.get("scene_graph") or "",
                    "line": line,
                }
            )
    if 0 < sample < len(rows):
        keep = sorted(random.Random(seed).sample(range(len(rows)), sample))
        rows = [rows[i] for i in keep]
    return rows


def write_pairs(rows: list[dict[str, Any]], path: str | os.PathLike, split: str) -> None:
    """Write ``rows`` (from :func:`factual_rows`) as a ``pairs.jsonl``, one caption a record."""
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            record = {
                "id": row["id"],
                "image": f"vg/{row['image_id']}.jpg",  # placeholder: rewrite reads no image
                "captions": [row["caption"]],
                "split": split,
            }
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def code_version(python: str = sys.executable) -> dict[str, Any]:
    """Which checkout of ``unimo_kit`` a subprocess of ``python`` imports (with this
    environment): ``{"commit", "dirty"}`` (dirty: uncommitted changes to tracked files under
    ``unimo_kit/`` or ``cli/``), or ``{"commit": None}`` outside git. No path is returned."""
    probe = "import os, unimo_kit; print(os.path.dirname(os.path.dirname(unimo_kit.__file__)))"
    try:
        root = subprocess.run(  # outside the checkout, so that PYTHONPATH decides
            [python, "-c", probe], capture_output=True, text=True, check=True,
            cwd=tempfile.gettempdir(),
        ).stdout.strip()  # fmt: skip
        commit = subprocess.run(
            ["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", root, "status", "--porcelain", "-uno", "--", "unimo_kit", "cli"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (subprocess.CalledProcessError, OSError):
        return {"commit": None}
    return {"commit": commit, "dirty": bool(status.strip())}


def save_labelled(path: str | os.PathLike, label: str, entry: dict[str, Any], about: str) -> None:
    """Put ``entry`` under ``runs[label]`` of the results JSON at ``path``, keeping the other
    labels' entries (written atomically). A file in an older layout (no ``runs``) is replaced."""
    path = Path(path)
    runs: dict[str, Any] = {}
    if path.exists():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{exc.lineno}: not JSON ({exc.msg}); move it away") from None
        runs = old.get("runs", {}) if isinstance(old, dict) else {}  # an older layout: dropped
    runs[label] = entry
    data = {"about": about, "runs": dict(sorted(runs.items()))}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def file_digest(path: str | os.PathLike) -> str:
    """The first 12 hex digits of a file's sha256 (ties a results entry to its input)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


def read_rewrites(paths: list[str]) -> list[dict[str, Any]]:
    """All lines of one or more ``rewrites.jsonl`` files; a line that is not a JSON object is
    reported on stderr as ``FILE:LINE: ...`` and skipped."""
    lines: list[dict[str, Any]] = []
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            for number, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                try:
                    line = json.loads(raw)
                except json.JSONDecodeError as exc:
                    print(f"{path}:{number}: invalid JSON ({exc.msg}), skipped", file=sys.stderr)
                    continue
                if not isinstance(line, dict) or not isinstance(line.get("caption"), str):
                    print(f"{path}:{number}: not a rewrites line, skipped", file=sys.stderr)
                    continue
                lines.append(line)
    return lines


# ---------------------------------------------------------------------- this benchmark


def run_cli_rewrite(pairs: Path, output: Path, extra: list[str]) -> tuple[float, int, str]:
    """``unimo rewrite PAIRS -o OUTPUT --no-resume`` (defaults otherwise) in a subprocess.

    Its stderr (progress bar, error report) is shown as it comes and also returned.

    Returns:
        ``(seconds end to end, exit code, stderr text)``.
    """
    command = [sys.executable, "-m", "unimo_kit.cli.main", "rewrite", str(Path(pairs).resolve())]
    command += ["-o", str(Path(output).resolve()), "--no-resume", *extra]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    start = time.perf_counter()
    # run outside the checkout: "python -m" puts the working directory first on sys.path,
    # which would import this checkout's unimo_kit whatever PYTHONPATH names
    process = subprocess.Popen(
        command, stderr=subprocess.PIPE, env=env, cwd=Path(output).resolve().parent
    )
    assert process.stderr is not None
    chunks = []
    for chunk in iter(lambda: process.stderr.read1(4096), b""):  # type: ignore[union-attr]
        sys.stderr.buffer.write(chunk)
        sys.stderr.flush()
        chunks.append(chunk)
    code = process.wait()
    seconds = time.perf_counter() - start
    return seconds, code, b"".join(chunks).decode("utf-8", "replace")


def count_rewrites(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-type figures of rewrites lines (see module doc)."""
    n = len(lines)
    with_type: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    positives: Counter[str] = Counter()
    errors = [line for line in lines if "error" in line]
    for line in lines:
        types = [neg.get("type") for neg in line.get("negatives", [])]
        counts.update(types)
        with_type.update(set(types))
        positives.update(pos.get("type") for pos in line.get("positives", []))
    by_message = Counter(str(line["error"]).split(":")[0] for line in errors)
    return {
        "captions": n,
        "error_lines": len(errors),
        "errors_by_kind": dict(by_message.most_common()),
        "errors": [
            f"{line.get('id')}: {line['error']} (caption {line.get('caption')!r})"
            for line in errors[:MAX_ERRORS_KEPT]
        ],
        "captions_with_any_negative": sum(bool(line.get("negatives")) for line in lines),
        "negatives_per_caption": round(sum(counts.values()) / max(n, 1), 3),
        "negatives": {
            t: {
                "captions_with": with_type[t],
                "share_pct": round(100 * with_type[t] / max(n, 1), 2),
                "count": counts[t],
            }
            for t in NEGATIVE_TYPES
        },
        "positives": dict(sorted(positives.items())),
    }


def report_lines(stderr: str) -> list[str]:
    """The report lines of a rewrite run's stderr (``FILE:LINE: ...`` and summaries), without
    progress-bar frames."""
    out = []
    for piece in stderr.replace("\r", "\n").splitlines():
        piece = piece.strip()
        frame = any(mark in piece for mark in ("it/s", "rec/s", "s/rec", "%|"))
        if piece and not frame:
            out.append(piece)
    return out


def print_table(splits: dict[str, dict[str, Any]]) -> None:
    names = list(splits)
    print("\n| type | " + " | ".join(f"{s} share (count)" for s in names) + " |")
    print("|---|" + "---|" * len(names))
    for t in NEGATIVE_TYPES:
        cells = [
            f"{splits[s]['negatives'][t]['share_pct']:.1f} % ({splits[s]['negatives'][t]['count']})"
            for s in names
        ]
        print(f"| {t} | " + " | ".join(cells) + " |")
    for key in ("captions", "error_lines", "captions_per_s"):
        print(f"| {key} | " + " | ".join(str(splits[s].get(key)) for s in names) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", help="FACTUAL train CSV (e.g. ../shared/data/factual_train.csv)")
    ap.add_argument("--dev", help="FACTUAL dev CSV (e.g. ../shared/data/factual_dev.csv)")
    ap.add_argument("--train-sample", type=int, default=5000, help="train captions [5000; 0=all]")
    ap.add_argument("--dev-sample", type=int, default=0, help="dev captions [0 = all]")
    ap.add_argument("--seed", type=int, default=0, help="seed of the samples")
    ap.add_argument("--label", required=True, help="name of this run in the results, e.g. before")
    ap.add_argument("--work-dir", help="where pairs/rewrites files go [a new temp dir]")
    ap.add_argument("--output", default=str(RESULTS), help="results JSON")
    ap.add_argument(
        "--rewrite-arg",
        action="append",
        default=[],
        help="extra option passed to unimo rewrite (repeat; e.g. --rewrite-arg=--workers=2)",
    )
    args = ap.parse_args()
    inputs = {name: path for name, path in (("train", args.train), ("dev", args.dev)) if path}
    if not inputs:
        ap.error("give --train and/or --dev")
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="bench_rewrite_real_"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"work dir: {work}", file=sys.stderr)

    splits: dict[str, dict[str, Any]] = {}
    all_lines: list[dict[str, Any]] = []
    sources: dict[str, Any] = {}
    total_seconds = 0.0
    for split, path in inputs.items():
        sample = args.train_sample if split == "train" else args.dev_sample
        rows = factual_rows(path, sample=sample, seed=args.seed)
        pairs, output = work / f"pairs.{split}.jsonl", work / f"rewrites.{split}.jsonl"
        write_pairs(rows, pairs, split)
        sources[split] = {
            "file": Path(path).name,
            "captions": len(rows),
            "sample": sample or "all",
            "seed": args.seed,
        }
        print(f"{split}: {len(rows)} captions from {Path(path).name} -> {output}", file=sys.stderr)
        seconds, code, stderr = run_cli_rewrite(pairs, output, args.rewrite_arg)
        if code != 0:
            raise SystemExit(f"unimo rewrite failed on {pairs} (exit {code})")
        lines = read_rewrites([str(output)])
        figures = count_rewrites(lines)
        figures["rewrites_sha256"] = file_digest(output)
        figures["seconds"] = round(seconds, 2)
        figures["captions_per_s"] = round(len(lines) / seconds, 1)
        relative = stderr.replace(str(work) + os.sep, "")  # no machine path in the results
        figures["report_lines"] = report_lines(relative)[:MAX_ERRORS_KEPT]
        splits[split] = figures
        all_lines += lines
        total_seconds += seconds
    if len(splits) > 1:
        both = count_rewrites(all_lines)
        both["seconds"] = round(total_seconds, 2)
        both["captions_per_s"] = round(len(all_lines) / total_seconds, 1)
        splits["all"] = both

    entry = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "code": code_version(),
        "rewrite_command": "unimo rewrite PAIRS -o OUT --no-resume " + " ".join(args.rewrite_arg),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "inputs": sources,
        "splits": splits,
    }
    about = (
        "unimo rewrite with its defaults on real FACTUAL (Visual Genome) captions, one caption "
        "per record, no gold graphs: per negative type the share of captions with >= 1 "
        "negative of that type; one entry per label (benchmarks/bench_rewrite_real.py)"
    )
    save_labelled(args.output, args.label, entry, about)
    print_table(splits)
    print(f"\nwrote {args.output} (label {args.label!r})")


if __name__ == "__main__":
    main()
