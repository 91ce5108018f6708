"""A seeded random sample of hard negatives from a ``rewrites.jsonl``, for hand judging.

Draws ``-n`` negatives (default 100) spread evenly over the seven SugarCrepe types
(``replace-obj``, ``replace-att``, ``replace-rel``, ``swap-obj``, ``swap-att``, ``add-obj``,
``add-att``); ``count`` is left out unless named in ``--types``. Each type gets ``n // k``
rows; the ``n % k`` left over go to types drawn with the seed; a type with too few negatives
gives its shortfall to the others in turn. At most one negative per caption, so every row shows
a different caption. Rows are shuffled (types interleaved) and numbered.

Printed as a markdown table — ``#``, caption, type, negative, the edit (``old → new``; ``+ new``
for an insertion), and empty ``fluent`` / ``sensible`` / ``false`` columns for the verdicts —
and written to ``--out`` when given. Same files and seed, same table.

Usage::

    python benchmarks/sample_negatives.py /tmp/me/before/rewrites.dev.jsonl \\
        /tmp/me/before/rewrites.train.jsonl -n 100 --seed 0 --out /tmp/me/sample.md
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_rewrite_real import NEGATIVE_TYPES, read_rewrites

from unimo_kit.rewrite.negatives import negative_type

# the SugarCrepe families (replace/swap/add) of the registry; count and others off by default
SUGARCREPE_TYPES = tuple(t for t in NEGATIVE_TYPES if negative_type(t).category != "other")


def quotas(available: dict[str, int], n: int, rng: random.Random) -> dict[str, int]:
    """How many rows each type gets (see module doc).

    Args:
        available: negatives (on distinct captions) per type, in the table's type order.
        n: rows wanted.
        rng: draws which types get the remainder.

    Returns:
        ``{type: rows}``; the total is ``min(n, sum(available))``.
    """
    types = list(available)
    share = {t: n // len(types) for t in types}
    for t in rng.sample(types, n % len(types)):
        share[t] += 1
    take = {t: min(share[t], available[t]) for t in types}
    short = n - sum(take.values())
    while short > 0 and any(take[t] < available[t] for t in types):
        for t in types:
            if short and take[t] < available[t]:
                take[t] += 1
                short -= 1
    return take


def sample(
    lines: list[dict[str, Any]], n: int, types: tuple[str, ...], seed: int
) -> list[dict[str, Any]]:
    """The sampled rows: ``{"caption", "type", "negative", "edit", "id"}``, shuffled.

    Args:
        lines: rewrites lines (error lines are ignored).
        n: rows wanted.
        types: negative types to sample, evenly.
        seed: seed of every draw.

    Returns:
        Up to ``n`` rows, at most one per caption.
    """
    rng = random.Random(seed)
    pools: dict[str, list[tuple[int, int]]] = {t: [] for t in types}
    for i, line in enumerate(lines):
        if "error" in line:
            continue
        for j, negative in enumerate(line.get("negatives", [])):
            if negative.get("type") in pools:
                pools[negative["type"]].append((i, j))
    for pool in pools.values():
        rng.shuffle(pool)
    available = {t: len({i for i, _ in pools[t]}) for t in types}
    take = quotas(available, n, rng)
    used: set[int] = set()
    rows: list[dict[str, Any]] = []
    for kind in types:  # fixed order: a caption goes to the first type that draws it
        picked = 0
        for i, j in pools[kind]:
            if picked == take[kind]:
                break
            if i in used:
                continue
            used.add(i)
            picked += 1
            line, negative = lines[i], lines[i]["negatives"][j]
            rows.append(
                {
                    "id": line.get("id"),
                    "caption": line["caption"],
                    "type": kind,
                    "negative": negative["text"],
                    "edit": describe_edits(negative.get("edits", [])),
                }
            )
    rng.shuffle(rows)
    return rows


def describe_edits(edits: list[dict[str, Any]]) -> str:
    """``old → new`` per edit (``+ new`` for an insertion), joined by ``; ``."""
    parts = []
    for edit in edits:
        old, new = edit.get("old", ""), edit.get("new", "")
        parts.append(f"+ {new.strip()}" if not old else f"{old} → {new}")
    return "; ".join(parts)


def cell(text: str) -> str:
    """A markdown table cell: pipes escaped, line breaks folded."""
    return " ".join(str(text).split()).replace("|", "\\|")


def to_markdown(rows: list[dict[str, Any]], header: list[str]) -> str:
    """The numbered table with empty verdict columns, after ``header`` lines."""
    out = [*header, ""]
    out.append("| # | caption | type | negative | edit | fluent | sensible | false |")
    out.append("|---|---|---|---|---|---|---|---|")
    for number, row in enumerate(rows, start=1):
        fields = (row["caption"], row["type"], row["negative"], row["edit"])
        out.append(f"| {number} | " + " | ".join(cell(f) for f in fields) + " |  |  |  |")
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("rewrites", nargs="+", help="rewrites.jsonl file(s), read as one set")
    ap.add_argument("-n", type=int, default=100, help="negatives to sample [100]")
    ap.add_argument("--seed", type=int, default=0, help="seed of the sample")
    ap.add_argument(
        "--types",
        default=",".join(SUGARCREPE_TYPES),
        help="comma list of types, sampled evenly [the seven SugarCrepe types; add count]",
    )
    ap.add_argument("--out", help="write the markdown table here too")
    args = ap.parse_args()
    types = tuple(t.strip() for t in args.types.split(",") if t.strip())
    if unknown := set(types) - set(NEGATIVE_TYPES):
        ap.error(f"unknown type(s) {sorted(unknown)}; use {','.join(NEGATIVE_TYPES)}")
    if args.n < 1:
        ap.error("-n must be >= 1")

    lines = read_rewrites(args.rewrites)
    rows = sample(lines, args.n, types, args.seed)
    per_type = {t: sum(r["type"] == t for r in rows) for t in types}
    header = [
        f"Sample of {len(rows)} negatives (seed {args.seed}) from "
        + ", ".join(Path(p).name for p in args.rewrites)
        + f" ({len(lines)} caption lines); per type: "
        + ", ".join(f"{t} {k}" for t, k in per_type.items())
        + ".",
        "Verdicts (y/n): fluent = natural, grammatical English; sensible = describes a "
        "plausible scene; false = false for a typical image of the caption.",
    ]
    if len(rows) < args.n:
        header.append(f"Only {len(rows)} of the {args.n} asked for exist on distinct captions.")
    text = to_markdown(rows, header)
    print(text, end="")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
