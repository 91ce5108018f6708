"""Reference statistics for plausible rewrites: which attributes, relations and objects go
together in real captions.

A negative must be false, but it must also describe a sensible scene — otherwise a text-only
model tells it from the caption and a model trained on it learns a language prior, not
grounding (Hsieh et al. 2023, SugarCrepe). The corpus being rewritten is often too small to
say that ``cake`` is something one cuts or that ``sky`` is something birds fly in, so the
rewriter also counts a *reference* corpus: by default a table that ships in the package,
built by :func:`main` from the gold scene graphs of FACTUAL's training captions (Li et al.,
2023; 36,894 Visual Genome region captions, MIT / CC BY 4.0 — see ``data/NOTICE.md``).
``unimo rewrite --reference-corpus FILE`` takes one's own (a FACTUAL-style CSV with a
``scene_graph`` column, or a vocabulary JSON written by ``--save-vocab``).

Rebuild the shipped table::

    python -m unimo_kit.rewrite.reference ../shared/data/factual_train.csv \\
        -o unimo_kit/rewrite/data/reference_vocab.json.gz
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path

from unimo_kit.rewrite.vocab import Vocabulary
from unimo_kit.utils import RecordError

REFERENCE_FILE = Path(__file__).with_name("data") / "reference_vocab.json.gz"
"""The shipped table (a :class:`Vocabulary` of FACTUAL's gold training graphs)."""


def vocabulary_from_factual(
    path: str | os.PathLike, on_error: Callable[[RecordError], None] | None = None
) -> Vocabulary:
    """Count the gold scene graphs of a FACTUAL-style CSV (columns ``caption`` and
    ``scene_graph``).

    Args:
        path: the CSV file.
        on_error: called with each bad row (``FILE:LINE: what``); default: raise.

    Returns:
        The vocabulary of the gold graphs.
    """
    from unimo_kit.data.scene_graph import SceneGraph
    from unimo_kit.rewrite.parse_eval import check_factual, read_factual_csv

    vocab = Vocabulary()
    for _, graph_text, line in read_factual_csv(path, on_error):
        try:
            check_factual(graph_text)
        except ValueError as exc:
            error = RecordError(os.fspath(path), line, str(exc))
            if on_error is None:
                raise error from None
            on_error(error)
            continue
        vocab.add(SceneGraph.from_factual(graph_text))
    return vocab


def load_reference(path: str | os.PathLike | None = None) -> Vocabulary:
    """The reference statistics: the shipped table (``path=None``), a FACTUAL-style CSV (bad
    rows are named on stderr and skipped), or a vocabulary JSON (``.json`` / ``.json.gz``).

    Raises:
        FileNotFoundError: when ``path`` (or the shipped table) does not exist.
    """
    if path is None:
        return _shipped()
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"reference corpus {path} not found")
    if path.lower().endswith(".csv"):
        errors: list[RecordError] = []
        vocab = vocabulary_from_factual(path, errors.append)
        for error in errors[:10]:
            print(f"skipped: {error}", file=sys.stderr)
        if len(errors) > 10:
            print(f"skipped {len(errors) - 10} more bad rows of {path}", file=sys.stderr)
        return vocab
    return Vocabulary.load(path)


@functools.cache
def _shipped() -> Vocabulary:
    if not REFERENCE_FILE.exists():
        raise FileNotFoundError(
            f"the shipped reference table {REFERENCE_FILE} is missing (reinstall unimo_kit, or "
            "pass --reference-corpus FILE / --no-reference)"
        )
    return Vocabulary.load(REFERENCE_FILE)


def main(argv: list[str] | None = None) -> int:
    """Build a reference table from a FACTUAL-style CSV (see the module doc)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csv", help="FACTUAL-style CSV with caption and scene_graph columns")
    parser.add_argument("-o", "--output", default=str(REFERENCE_FILE), help="table to write")
    args = parser.parse_args(argv)
    errors: list[RecordError] = []
    vocab = vocabulary_from_factual(args.csv, errors.append)
    vocab.save(args.output)
    for error in errors[:10]:
        print(error, file=sys.stderr)
    print(
        f"{len(vocab.objects)} objects, {sum(len(v) for v in vocab.noun_attributes.values())} "
        f"noun-attribute pairs, {sum(len(v) for v in vocab.triples.values())} triples "
        f"({len(errors)} bad rows) -> {args.output}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
