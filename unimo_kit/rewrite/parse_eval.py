"""Scene-graph parser evaluation: tuple precision / recall / F1 against FACTUAL-style gold graphs.

Tuples (the definition used by ``unimo eval parse``):

- objects ``(obj,)``: every lone object and every node of an attribute or a relation;
- attributes ``(obj, attr)``: one per ``( obj , is , attr )`` triple;
- relations ``(subj, pred, obj)``: every other triple.

Words are lower-cased and whitespace-normalised; object words (``obj``, ``subj``) are lemmatised
with WordNet as nouns, word by word (``tennis balls`` → ``tennis ball``); predicates and
attributes are only lower-cased. Tuples match exactly, as sets (duplicates count once).

Scores: micro precision / recall / F1 per kind and over all tuples; the mean over captions of
the per-caption tuple F1 (the headline number; a caption whose gold and predicted sets are both
empty scores 1.0, one with exactly one of them empty scores 0.0); and the rate of captions whose
predicted set equals the gold set.
"""

from __future__ import annotations

import csv
import heapq
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from unimo_kit.data.csv_pairs import not_utf8, not_utf8_header, open_csv
from unimo_kit.data.scene_graph import SceneGraph, parse_factual_tuples
from unimo_kit.rewrite.parse_lexicon import noun_lemma
from unimo_kit.utils import RecordError

KINDS = ("objects", "attributes", "relations")
"""Tuple kinds, by length: 1, 2 and 3."""

Tuple = tuple[str, ...]


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _obj(text: str) -> str:
    return noun_lemma(_norm(text))


def check_factual(text: str) -> list[Tuple]:
    """Parse a FACTUAL string strictly.

    Raises:
        ValueError: when a tuple has 2 or more than 3 parts, a part is empty, or the string
            holds text but no tuple.
    """
    tuples = parse_factual_tuples(text)
    if not tuples and text.strip():
        raise ValueError(f"no ( ... ) tuple in scene graph {text!r}")
    for parts in tuples:
        if len(parts) not in (1, 3) or not all(parts):
            raise ValueError(f"malformed tuple ( {' , '.join(parts)} ) in {text!r}")
    return tuples


def tuple_set(graph: SceneGraph | str) -> set[Tuple]:
    """The metric's tuple set of a graph or a FACTUAL string (see the module docstring).

    >>> sorted(tuple_set("( circles , is , red ) , ( circles , left of , star )"))
    [('circle',), ('circle', 'left of', 'star'), ('circle', 'red'), ('star',)]
    """
    triples = check_factual(graph) if isinstance(graph, str) else graph.triples()
    out: set[Tuple] = set()
    for parts in triples:
        if len(parts) == 1:
            out.add((_obj(parts[0]),))
        elif len(parts) == 3 and _norm(parts[1]) == "is":
            subject = _obj(parts[0])
            out.add((subject,))
            out.add((subject, _norm(parts[2])))
        elif len(parts) == 3:
            subject, obj = _obj(parts[0]), _obj(parts[2])
            out.update(((subject,), (obj,), (subject, _norm(parts[1]), obj)))
    return out


def _f1(tp: int, n_pred: int, n_gold: int) -> float:
    if n_pred == 0 and n_gold == 0:
        return 1.0
    return 2.0 * tp / (n_pred + n_gold)


@dataclass
class KindScores:
    """Micro-averaged counts and scores for one tuple kind (or all)."""

    tp: int = 0  # matched tuples
    n_pred: int = 0  # predicted tuples
    n_gold: int = 0  # gold tuples

    @property
    def precision(self) -> float:
        return self.tp / self.n_pred if self.n_pred else 0.0

    @property
    def recall(self) -> float:
        return self.tp / self.n_gold if self.n_gold else 0.0

    @property
    def f1(self) -> float:
        return 2 * self.tp / (self.n_pred + self.n_gold) if self.n_pred + self.n_gold else 0.0

    def add(self, pred: set[Tuple], gold: set[Tuple]) -> None:
        self.tp += len(pred & gold)
        self.n_pred += len(pred)
        self.n_gold += len(gold)

    def as_dict(self) -> dict[str, float | int]:
        return {**asdict(self), "precision": self.precision, "recall": self.recall, "f1": self.f1}


@dataclass
class CaptionResult:
    """One evaluated caption (kept for the worst-captions report)."""

    caption: str
    gold: str  # gold FACTUAL string
    predicted: str  # predicted FACTUAL string
    f1: float  # per-caption tuple F1
    line: int = 0  # source line, when known


@dataclass
class ParseScores:
    """Result of :func:`evaluate_parser`."""

    n_captions: int = 0  # captions evaluated
    mean_f1: float = 0.0  # mean per-caption tuple F1 (headline)
    exact_match: float = 0.0  # fraction of captions whose tuple set equals the gold set
    overall: KindScores = field(default_factory=KindScores)  # micro scores over all tuples
    kinds: dict[str, KindScores] = field(
        default_factory=lambda: {k: KindScores() for k in KINDS}
    )  # micro scores per kind
    worst: list[CaptionResult] = field(default_factory=list)  # lowest-F1 captions, worst first
    n_errors: int = 0  # malformed gold rows skipped

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "n_captions": self.n_captions,
            "mean_f1": self.mean_f1,
            "exact_match": self.exact_match,
            "overall": self.overall.as_dict(),
            **{kind: scores.as_dict() for kind, scores in self.kinds.items()},
            "n_errors": self.n_errors,
            "worst": [asdict(r) for r in self.worst],
        }


def evaluate_parser(
    pairs: Iterable[tuple[str, str]] | Iterable[tuple[str, str, int]],
    parser: Any,
    *,
    worst: int = 0,
    on_error: Callable[[RecordError], None] | None = None,
    source: str = "<pairs>",
) -> ParseScores:
    """Score a parser against gold graphs.

    Args:
        pairs: ``(caption, gold FACTUAL string)`` items, or ``(caption, gold, line)`` with the
            source line for error messages; streamed.
        parser: anything with ``parse_many(texts) -> Iterator[SceneGraph]`` (e.g.
            :class:`~unimo_kit.rewrite.parser.SceneGraphParser`).
        worst: keep this many lowest-F1 captions in :attr:`ParseScores.worst`.
        on_error: called with a :class:`RecordError` for each malformed gold graph (which is
            skipped); by default the error is raised.
        source: file name used in error messages.

    Returns:
        :class:`ParseScores`.
    """
    scores = ParseScores()
    golds: list[tuple[str, set[Tuple], int]] = []
    f1_sum = 0.0
    exact = 0
    heap: list[tuple[float, int, CaptionResult]] = []

    def captions() -> Iterator[str]:
        for number, item in enumerate(pairs, 1):
            caption, gold = item[0], item[1]
            line = item[2] if len(item) > 2 else number
            try:
                gold_set = tuple_set(gold)
            except ValueError as exc:
                error = RecordError(source, line, str(exc))
                if on_error is None:
                    raise error from None
                on_error(error)
                scores.n_errors += 1
                continue
            golds.append((gold, gold_set, line))
            yield caption

    for index, graph in enumerate(parser.parse_many(captions())):
        gold, gold_set, line = golds[index]
        golds[index] = ("", set(), 0)  # streaming: drop what was used
        pred_set = tuple_set(graph)
        overlap = len(pred_set & gold_set)
        f1 = _f1(overlap, len(pred_set), len(gold_set))
        f1_sum += f1
        exact += pred_set == gold_set
        scores.n_captions += 1
        scores.overall.add(pred_set, gold_set)
        for size, kind in enumerate(KINDS, 1):
            scores.kinds[kind].add(
                {t for t in pred_set if len(t) == size}, {t for t in gold_set if len(t) == size}
            )
        if worst:
            result = CaptionResult(graph.text, gold, graph.to_factual(), f1, line)
            item = (-f1, -index, result)
            if len(heap) < worst:
                heapq.heappush(heap, item)
            elif item > heap[0]:
                heapq.heapreplace(heap, item)
    if scores.n_captions:
        scores.mean_f1 = f1_sum / scores.n_captions
        scores.exact_match = exact / scores.n_captions
    scores.worst = [r for _, _, r in sorted(heap, key=lambda x: (x[0], x[1]), reverse=True)]
    return scores


def read_factual_csv(
    path: str | os.PathLike, on_error: Callable[[RecordError], None] | None = None
) -> Iterator[tuple[str, str, int]]:
    """Stream ``(caption, scene_graph, line)`` from a FACTUAL CSV (columns ``caption`` and
    ``scene_graph``; others ignored; a byte-order mark is fine). Rows lacking either field or
    holding bytes that are not UTF-8 are reported to ``on_error`` (default: raised) as
    ``file:line: message`` and skipped. ``line`` is the physical line where
    the row starts (1 = header)."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with open_csv(path) as handle:
        reader = csv.DictReader(handle)
        not_utf8_header(path, reader.fieldnames or [])
        missing = {"caption", "scene_graph"} - set(reader.fieldnames or [])
        if missing:
            raise RecordError(path, 1, f"missing column(s) {sorted(missing)} in header")
        line = reader.line_num + 1
        for row in reader:
            start, line = line, reader.line_num + 1
            caption, graph = row.get("caption"), row.get("scene_graph")
            if caption is None or graph is None or None in row:
                fields = sum(v is not None for k, v in row.items() if k is not None)
                fields += len(row.get(None) or [])
                message = f"row has {fields} field(s), header has {len(reader.fieldnames)}"
            else:
                message = not_utf8(row)
            if message:
                error = RecordError(path, start, message)
                if on_error is None:
                    raise error
                on_error(error)
                continue
            yield caption, graph, start
