"""A table of noun compounds read off gold scene graphs: does ``stop sign`` name one object?

For each caption of a FACTUAL-style CSV, a multi-word object name of the gold graph that the
caption writes as consecutive words (``stop sign``) is a vote to *keep* the words together;
an attribute written right before its object (``( clouds , is , storm )`` for ``storm
clouds``) is a vote to *split* them. Words are lemmatised as nouns (``train tracks`` →
``train track``). The parser keeps a compound in the object name when its keep votes
outnumber its split votes, and falls back on WordNet for pairs the table has not seen.

The shipped table (``data/compounds.json.gz``, from FACTUAL's training captions, see
``data/NOTICE.md``) is rebuilt with::

    python -m unimo_kit.rewrite.parse_compounds ../shared/data/factual_train.csv \\
        -o unimo_kit/rewrite/data/compounds.json.gz
"""

from __future__ import annotations

import argparse
import functools
import gzip
import json
import os
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

from unimo_kit.utils import RecordError

COMPOUND_FILE = Path(__file__).with_name("data") / "compounds.json.gz"
"""The shipped table: ``{"keep": {compound: votes}, "split": {compound: votes}}``."""

MIN_VOTES = 2
"""Compounds seen fewer times than this (keep + split) are left out of the table."""

_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")


def compound_key(words: Iterable[str]) -> str:
    """The table's key for a run of words: lower-cased, each word's WordNet noun lemma."""
    from unimo_kit.rewrite.parse_lexicon import noun_lemma

    return " ".join(noun_lemma(w.lower()) for w in words)


def count_compounds(pairs: Iterable[tuple[str, str]]) -> tuple[Counter, Counter]:
    """Keep and split votes per compound key from ``(caption, gold FACTUAL string)`` pairs."""
    from unimo_kit.data.scene_graph import parse_factual_tuples

    keep: Counter = Counter()
    split: Counter = Counter()
    for caption, graph in pairs:
        words = _WORD.findall(caption.lower())
        text = f" {' '.join(words)} "
        for parts in parse_factual_tuples(graph):
            names = [parts[0]] if len(parts) == 1 else [parts[0], parts[2]]
            if len(parts) == 3 and parts[1] == "is":
                names = [parts[0]]
                phrase = f"{parts[2]} {parts[0]}"
                if len(parts[2].split()) == 1 and f" {phrase} " in text:
                    split[compound_key(phrase.split())] += 1
            for name in names:
                if len(name.split()) > 1 and f" {name} " in text:
                    keep[compound_key(name.split())] += 1
    return keep, split


def build_table(pairs: Iterable[tuple[str, str]], min_votes: int = MIN_VOTES) -> dict:
    """The JSON-ready table of :func:`count_compounds`, without rare compounds."""
    keep, split = count_compounds(pairs)
    seen = {k for k in keep.keys() | split.keys() if keep[k] + split[k] >= min_votes}
    return {
        "keep": {k: keep[k] for k in sorted(seen) if keep[k]},
        "split": {k: split[k] for k in sorted(seen) if split[k]},
    }


def load_table(path: str | os.PathLike) -> dict[str, tuple[int, int]]:
    """``compound key -> (keep votes, split votes)`` from a table file (gzipped JSON).

    Raises:
        RecordError: naming the file when it is not such a table.
    """
    try:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            data = json.load(handle)
        keep, split = data["keep"], data["split"]
        table = {k: (int(keep.get(k, 0)), int(split.get(k, 0))) for k in keep.keys() | split}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RecordError(os.fspath(path), 1, f"not a compound table: {exc}") from None
    return table


@functools.lru_cache(maxsize=1)
def shipped_table() -> dict[str, tuple[int, int]]:
    """The table that ships in the package (loaded once)."""
    return load_table(COMPOUND_FILE)


def compound_vote(words: tuple[str, ...]) -> bool | None:
    """``True`` to keep ``words`` as one name, ``False`` to split them, ``None`` when the
    shipped table has no (or a tied) verdict."""
    keep, split = shipped_table().get(compound_key(words), (0, 0))
    return None if keep == split else keep > split


def main(argv: list[str] | None = None, on_error: Callable[[RecordError], None] | None = None):
    """Build the table from a FACTUAL CSV (``-h`` for options)."""
    from unimo_kit.rewrite.parse_eval import read_factual_csv

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("csv", help="FACTUAL-style CSV (columns caption, scene_graph)")
    ap.add_argument("-o", "--output", default=str(COMPOUND_FILE))
    ap.add_argument("--min-votes", type=int, default=MIN_VOTES)
    ap.add_argument("--exclude", help="CSV whose captions are left out (held-out checks)")
    args = ap.parse_args(argv)

    def report(error: RecordError) -> None:
        print(error, file=sys.stderr)

    excluded = set()
    if args.exclude:
        excluded = {c for c, _, _ in read_factual_csv(args.exclude, on_error or report)}
    rows = (
        (c, g) for c, g, _ in read_factual_csv(args.csv, on_error or report) if c not in excluded
    )
    table = build_table(rows, args.min_votes)
    tmp = f"{args.output}.tmp"
    with gzip.GzipFile(tmp, "wb", mtime=0) as raw:
        raw.write(json.dumps(table, sort_keys=True, separators=(",", ":")).encode())
    os.replace(tmp, args.output)
    print(f"{len(table['keep'])} keep, {len(table['split'])} split -> {args.output}")


if __name__ == "__main__":
    main()
