"""The ``unimo rewrite`` stage: ``pairs.jsonl`` → ``rewrites.jsonl`` (one line per caption).

Two streaming passes over the input, and one parse per caption:

1. **vocabulary** (skipped with ``vocab_path``): parse every caption of the WHOLE input (not just
   this shard) and count the replacement vocabulary; with ``sentence_negatives`` also keep the
   caption texts and fit the TF-IDF vectorizer. Counts add up, so the vocabulary is the same
   for any worker count, shard or resumed run. The graphs of this shard's captions are kept
   for pass 2 (:class:`GraphStore`: pickled, in memory up to ``graph_memory`` bytes, beyond
   that in ``OUT.graphs.tmp`` next to the output, deleted at the end; a run killed with
   ``kill -9`` leaves it behind and the next run overwrites it before reading it). A run
   given ``vocab_path`` parses in pass 2 instead, unless ``graphs_from`` names a graph file
   that another process's pass 1 kept for exactly this shard (:func:`write_graph_file`; the
   Ray engine's vocabulary units do).
2. **rewrite**: for this shard's records (``--shard i/n``, contiguous over the non-blank input
   lines), take each caption's graph from pass 1 (or parse it when pass 1 did not: with
   ``vocab_path``, or ``format="factual"``), make positives and typed hard negatives (seeded by
   the caption id, ``"<pair_id>#<caption_index>"``), add TF-IDF sentence negatives, and append
   the lines
   to the output through :class:`~unimo_kit.utils.ResumableJsonlWriter`: after a kill the same
   call skips finished captions and the file ends up identical to an uninterrupted run.
   ``OUT.manifest.json`` (:mod:`unimo_kit.utils.manifest`) records the options that shape
   the output and the input's fingerprint; a resume with other options or another input is
   refused (see :func:`output_manifest`).

Bad input never stops the run (unless ``strict``): a malformed line or a record without an id
or captions list is reported (``FILE:LINE: what``) and skipped — it has no id to write; a bad
caption (empty, over ``max_caption_chars``, control characters, mostly non-Latin letters, or
one the parser fails on) is reported AND written as a line with an ``error`` field and empty
rewrites, so every caption of a valid record has exactly one line.
"""

from __future__ import annotations

import collections
import functools
import multiprocessing
import os
import pickle
import struct
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from unimo_kit.data.records import caption_id, caption_key
from unimo_kit.rewrite.negatives import (
    CandidateFilter,
    Rewriter,
    check_negative_types,
    negative_types,
)
from unimo_kit.rewrite.vocab import Vocabulary
from unimo_kit.utils import (
    ErrorReport,
    RecordError,
    ResumableJsonlWriter,
    Shard,
    count_lines,
    file_sha256,
)
from unimo_kit.utils.jsonl import load_line
from unimo_kit.utils.manifest import Manifest, check_or_write, input_fingerprint, manifest_path

OUTPUT_FORMATS = ("rewrites", "factual")
REFERENCE_BUILTIN = "builtin"
"""``RewriteConfig.reference`` naming the table that ships in the package."""
_SCENE_SPARES = 4  # TF-IDF neighbours fetched per wanted sentence negative when checking scenes


@dataclass
class RewriteConfig:
    """Options of the rewrite stage (the CLI builds one from its flags)."""

    # hard-negative types to make (default: every registered one, see register_negative_type)
    types: tuple[str, ...] = field(default_factory=negative_types)
    per_type: int = 1  # at most this many negatives per type and caption
    seed: int = 0  # global seed; per-caption seeds derive from it and the caption id
    positives: bool = True  # make graph positives and same-image positives
    sentence_negatives: int = 0  # TF-IDF neighbours of other images per caption (0: none)
    output_format: str = "rewrites"  # "rewrites" or "factual" (parse only)
    spacy_model: str | None = None  # spaCy pipeline name or path (default: resources')
    workers: int = 1  # processes; the output does not depend on it
    shard: Shard = field(default_factory=Shard)  # contiguous slice of the input lines
    vocab_path: str | None = None  # load the vocabulary instead of building it
    save_vocab: str | None = None  # write the vocabulary used here (JSON)
    min_count: int = 1  # replacement words seen fewer times are not used
    max_caption_chars: int = 1000  # longer captions get an error line
    chunk_size: int = 256  # captions per unit of work (and per worker task)
    back_translation: tuple[str, str] | None = None  # (forward_dir, backward_dir) model folders
    scenes: str | None = None  # gold scenes.jsonl: drop (sentence) negatives true of the image
    reference: str | None = REFERENCE_BUILTIN  # evidence of what goes together (None: corpus only)
    roundtrip: bool = True  # keep only rewrites whose re-parse is the intended graph
    spares: int = 2  # candidates drawn per wanted negative (replacing those the checks drop)
    lm: str | None = None  # language model (name or folder) ranking the candidates
    strict: bool = False  # stop at the first bad record
    progress: bool = True  # tqdm bars on stderr
    resume: bool = True  # keep finished lines of an existing output
    graph_memory: int = 256 * 2**20  # bytes of pass-1 graphs kept in RAM; more go to a file
    # a graph file (write_graph_file) of this shard's captions: with vocab_path, pass 2 reads
    # their graphs instead of parsing. Not in the output manifest: the graphs a parse gives
    graphs_from: str | None = None

    def __post_init__(self) -> None:
        self.types = tuple(self.types)  # a snapshot (NEGATIVE_TYPES is a live view)
        check_negative_types(self.types)
        if self.output_format not in OUTPUT_FORMATS:
            raise ValueError(f"format must be one of {OUTPUT_FORMATS}, got {self.output_format!r}")
        if self.per_type < 0 or self.sentence_negatives < 0 or self.workers < 1:
            raise ValueError("per_type and sentence_negatives must be >= 0, workers >= 1")
        if self.spares < 1:
            raise ValueError(f"spares must be >= 1, got {self.spares}")


@dataclass
class RewriteSummary:
    """What a run did."""

    output: str  # the output file
    written: int = 0  # caption lines written by this call
    skipped_done: int = 0  # captions already in the output (resume)
    caption_errors: int = 0  # caption lines written with an ``error`` field
    record_errors: int = 0  # input lines skipped (no usable id / captions)
    vocab: Vocabulary | None = None  # the vocabulary used
    # rewrites the round-trip check dropped, by (type, reason); see unimo_kit.rewrite.roundtrip
    dropped: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)

    def dropped_table(self) -> str:
        """``dropped`` as lines ``TYPE: N (reason N, ...)``, for the run's summary."""
        by_type: dict[str, collections.Counter[str]] = {}
        for (kind, reason), n in sorted(self.dropped.items()):
            by_type.setdefault(kind, collections.Counter())[reason] += n
        return "\n".join(
            f"  {kind}: {sum(c.values())} ("
            + ", ".join(f"{reason} {n}" for reason, n in sorted(c.items()))
            + ")"
            for kind, c in by_type.items()
        )

    def print_dropped(self) -> None:
        """Tell stderr what the round-trip check dropped, if anything (the run's summary)."""
        if self.dropped:
            import sys

            print(
                f"round-trip check dropped {sum(self.dropped.values())} candidate rewrites "
                f"(spares replaced what they could):\n{self.dropped_table()}",
                file=sys.stderr,
            )


@dataclass
class _Item:
    """One caption to rewrite."""

    id: str
    pair_id: str
    caption_index: int
    caption: Any
    line: int
    others: list[str]
    row: int = -1  # global caption row for TF-IDF (-1: not a TF-IDF caption)
    error: str | None = None
    graph: Any = None  # its graph from pass 1 (None: pass 2 parses it)


@dataclass(frozen=True)
class _ParseFailure:
    """A caption the parser failed on, as pass 1 keeps it (exceptions may not unpickle)."""

    message: str  # "ExceptionType: text", as pass 2 reports it


def _storable(graph: Any) -> Any:
    return (
        _ParseFailure(f"{type(graph).__name__}: {graph}") if isinstance(graph, Exception) else graph
    )


class GraphStore:
    """Pass 1's graphs of this shard's captions, in input order, until pass 2 reads them.

    Chunks arrive pickled (a worker pickles them, so a pool sends bytes, not objects). They
    stay in memory while they total at most ``memory_bytes``; past that every chunk goes to
    ``path`` (length-prefixed pickles, opened with ``"wb"``, so a stale file left by a killed
    run is overwritten, never read). :meth:`close` deletes the file.

    Args:
        path: the spill file (``OUT.graphs.tmp``).
        memory_bytes: pickled bytes kept in memory before spilling.
    """

    def __init__(self, path: str, memory_bytes: int):
        self.path = path
        self.memory_bytes = memory_bytes
        self._blobs: list[bytes] = []
        self._held = 0
        self._file: Any = None
        self.spilled = False  # whether the file was used

    def add(self, blob: bytes) -> None:
        """Append one pickled list of graphs."""
        if self._file is None and self._held + len(blob) <= self.memory_bytes:
            self._blobs.append(blob)
            self._held += len(blob)
            return
        if self._file is None:
            self._file = open(self.path, "wb")  # noqa: SIM115 (closed in close/graphs)
            self.spilled = True
            for held in self._blobs:
                self._write(held)
            self._blobs, self._held = [], 0
        self._write(blob)

    def _write(self, blob: bytes) -> None:
        _write_blob(self._file, blob)

    def graphs(self) -> Iterator[Any]:
        """Every graph added, in order (call once, after the last :meth:`add`)."""
        yield from (graph for blob in self._blobs for graph in pickle.loads(blob))
        if self._file is None:
            return
        self._file.close()
        with open(self.path, "rb") as handle:
            for blob in _read_blobs(handle):
                yield from pickle.loads(blob)

    def close(self) -> None:
        """Drop what is held and delete the spill file."""
        self._blobs = []
        if self._file is not None:
            self._file.close()
        if self.spilled and os.path.exists(self.path):
            os.remove(self.path)


def graphs_path(output_path: str | os.PathLike) -> str:
    """``OUT.graphs.tmp``: where pass 1 spills the graphs it keeps for pass 2."""
    return os.fspath(output_path) + ".graphs.tmp"


def _write_blob(handle: Any, blob: bytes) -> None:
    handle.write(struct.pack("<Q", len(blob)))
    handle.write(blob)


def _read_blobs(handle: Any) -> Iterator[bytes]:
    while header := handle.read(8):
        (size,) = struct.unpack("<Q", header)
        yield handle.read(size)


def write_graph_file(
    path: str | os.PathLike, input_sha256: str, bounds: tuple[int, int], blobs: Iterator[bytes]
) -> None:
    """Keep pass-1 graphs in a file for a later ``rewrite_file(..., graphs_from=path)``.

    The file is a header (the input's sha256 and the records ``[start, stop)``) and then the
    chunks as :class:`GraphStore` spills them (length-prefixed pickles of lists of graphs, one
    per valid caption of those records, in order), written atomically.

    Args:
        path: the graph file.
        input_sha256: the sha256 of the input the graphs were parsed from.
        bounds: the records ``(start, stop)`` (non-blank line positions) they cover.
        blobs: the pickled chunks, in caption order (``_vocab_chunk``'s kept graphs).
    """
    from unimo_kit.utils import atomic_write

    header = {"input_sha256": input_sha256, "records": list(bounds)}
    with atomic_write(path, "wb") as handle:
        _write_blob(handle, pickle.dumps(header, protocol=pickle.HIGHEST_PROTOCOL))
        for blob in blobs:
            _write_blob(handle, blob)


def read_graph_file(path: str, input_sha256: str, bounds: tuple[int, int]) -> Iterator[Any]:
    """The graphs of :func:`write_graph_file`, in caption order.

    Raises:
        ValueError: the file was kept for another input or other records, or it holds fewer
            graphs than are asked of it (each message names the file).
    """
    with open(path, "rb") as handle:
        blobs = _read_blobs(handle)
        header = pickle.loads(next(blobs, pickle.dumps(None)))
        want = {"input_sha256": input_sha256, "records": list(bounds)}
        if header != want:
            raise ValueError(f"{path}:1: graphs of {header}, not of {want}")
        read = 0
        for blob in blobs:
            graphs = pickle.loads(blob)
            read += len(graphs)
            yield from graphs
    raise ValueError(f"{path}: holds {read} graphs, fewer than the captions of records {bounds}")


# ---------------------------------------------------------------------- input


def caption_problem(caption: Any, max_chars: int = 1000) -> str | None:
    """Why a caption cannot be rewritten, or ``None`` when it can."""
    if not isinstance(caption, str):
        return f"caption must be a string, got {type(caption).__name__}"
    if not caption.strip():
        return "empty caption"
    if len(caption) > max_chars:
        return f"caption has {len(caption)} characters (limit {max_chars}, see --max-caption-chars)"
    for position, ch in enumerate(caption):
        if unicodedata.category(ch) in ("Cc", "Cs") and ch not in "\t\n\r":
            return f"caption contains control character U+{ord(ch):04X} at position {position}"
    letters = [ch for ch in caption if ch.isalpha()]
    if not letters:
        return "caption has no letters"
    foreign = sum(not ("a" <= ch.lower() <= "z") for ch in letters) / len(letters)
    if foreign > 0.5:
        return f"caption does not look like English ({foreign:.0%} non-Latin letters)"
    return None


def _records(
    path: str, report: ErrorReport, *, start: int = 0, stop: int | None = None
) -> Iterator[tuple[int, int, str, list[Any]]]:
    """``(position, line, pair_id, captions)`` for non-blank lines ``start <= position < stop``;
    bad lines go to ``report``.

    A pair id seen on an earlier line is reported as ``duplicate id`` and skipped: output ids
    (``ID#INDEX``) and resume depend on ids being unique. Lines before ``start`` are read for
    their ids too, so every shard skips the same lines as the whole run.
    """
    position = -1
    first_lines: dict[str, int] = {}  # pair id -> the line it was first seen on
    with open(path, "rb") as handle:
        for line_number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            position += 1
            if stop is not None and position >= stop:
                break
            before = position < start  # another shard's line: only its id matters
            try:
                record = load_line(path, line_number, raw)
            except RecordError as exc:
                error = exc
            else:
                message = _record_problem(record)
                if not message:
                    pair_id = str(record["id"])
                    first = first_lines.setdefault(pair_id, line_number)
                    if first == line_number:
                        if not before:
                            yield position, line_number, pair_id, list(record["captions"])
                        continue
                    message = f"duplicate id {pair_id!r} (first at line {first})"
                error = RecordError(path, line_number, message)
            if not before:
                report.add(error)


def _record_problem(record: Any) -> str | None:
    if not isinstance(record, dict):
        return f"expected a JSON object, got {type(record).__name__}"
    pair_id = record.get("id")
    if isinstance(pair_id, bool) or not isinstance(pair_id, (str, int)) or not str(pair_id).strip():
        return "missing or invalid id (need a non-empty string)"
    captions = record.get("captions")
    if not isinstance(captions, list) or not captions:
        return f"record {pair_id}: captions must be a non-empty list"
    return None


# ---------------------------------------------------------------------- worker side

_STATE: dict[str, Any] = {}


def _init_worker(config: RewriteConfig, vocab: Vocabulary | None) -> None:
    from unimo_kit.rewrite.parser import SceneGraphParser

    parser = _STATE.get("parser")  # pass 1 in this process loaded it: spaCy loads once
    _STATE.clear()
    _STATE["config"] = config
    if parser is None or parser._name != config.spacy_model:
        parser = SceneGraphParser(config.spacy_model, batch_size=config.chunk_size)
    _STATE["parser"] = parser
    if vocab is not None:
        _STATE["rewriter"] = Rewriter(
            vocab,
            types=config.types,
            per_type=config.per_type,
            seed=config.seed,
            reference=load_reference_option(config.reference),
            spares=config.spares,
        )
        scorer = None
        if config.lm:
            from unimo_kit.rewrite.lm import LanguageModelScorer

            scorer = LanguageModelScorer(config.lm)
        parse = _STATE["parser"].parse_each if config.roundtrip else None
        _STATE["filter"] = CandidateFilter(parse, scorer)
    if config.scenes:
        from unimo_kit.rewrite.verify import load_verifier

        _STATE["verifier"] = load_verifier(config.scenes)
    if config.back_translation:
        from unimo_kit.rewrite.backtranslate import BackTranslator

        _STATE["backtranslator"] = BackTranslator(*config.back_translation)


def _parse(captions: Sequence[str]) -> list[Any]:
    """Graphs for ``captions`` (an exception object where the parser fails on one)."""
    return _STATE["parser"].parse_each(captions)


def _vocab_chunk(task: tuple[list[str], int, int]) -> tuple[Vocabulary, bytes | None]:
    """The vocabulary counts of a chunk's captions and, pickled, the graphs of
    ``captions[keep_from:keep_to]`` (this shard's) for pass 2."""
    captions, keep_from, keep_to = task
    vocab = Vocabulary(min_count=_STATE["config"].min_count)
    graphs = _parse(captions)
    kept = None
    if keep_to > keep_from:  # pickled before counting: pass 2 gets the graphs as parsed
        kept = [_storable(g) for g in graphs[keep_from:keep_to]]
        kept = pickle.dumps(kept, protocol=pickle.HIGHEST_PROTOCOL)
    for graph in graphs:
        if not isinstance(graph, Exception):
            vocab.add(graph)
    return vocab, kept


def _rewrite_chunk(items: list[_Item]) -> tuple[list[dict[str, Any]], collections.Counter]:
    """Lines for ``items`` and the round-trip drops they cost (``(type, reason) -> n``)."""
    config: RewriteConfig = _STATE["config"]
    good = [it for it in items if it.error is None]
    todo = [it for it in good if it.graph is None]  # not parsed in pass 1
    graphs = {it.id: it.graph for it in good if it.graph is not None}
    graphs.update(zip((it.id for it in todo), _parse([it.caption for it in todo]), strict=True))
    translations: dict[str, str] = {}
    if "backtranslator" in _STATE and config.positives and good:
        texts = _STATE["backtranslator"]([it.caption for it in good])
        translations = dict(zip((it.id for it in good), texts, strict=True))
    lines: list[dict[str, Any]] = []
    drafts: list[tuple[dict[str, Any], list[Any], list[Any]]] = []  # line, negatives, positives
    for item in items:
        graph = graphs.get(item.id)
        if isinstance(graph, Exception):
            graph = _storable(graph)
        if isinstance(graph, _ParseFailure):
            item.error = f"parser failed: {graph.message}"
        if item.error is not None:
            lines.append(_error_line(item, config))
            continue
        try:
            line, negatives, positives = _caption_draft(
                item, graph, config, translations.get(item.id)
            )
        except Exception as exc:
            if config.strict:
                raise
            item.error = f"rewrite failed: {type(exc).__name__}: {exc}"
            lines.append(_error_line(item, config))
            continue
        drafts.append((line, negatives, positives))
        lines.append(line)
    dropped: collections.Counter = collections.Counter()
    if drafts and config.output_format == "rewrites":
        check: CandidateFilter = _STATE["filter"]
        before = collections.Counter(check.dropped)
        negatives = check([d[1] for d in drafts], config.per_type)
        every = max(1, sum(len(d[2]) for d in drafts))  # positives are not limited per type
        positives = check([d[2] for d in drafts], every, rank=False)
        for (line, _, _), kept_neg, kept_pos in zip(drafts, negatives, positives, strict=True):
            line["positives"] = [p.to_dict() for p in kept_pos]
            line["negatives"] = [n.to_dict() for n in kept_neg]
        dropped = check.dropped - before
    return lines, dropped


def _caption_draft(
    item: _Item, graph: Any, config: RewriteConfig, translation: str | None
) -> tuple[dict[str, Any], list[Any], list[Any]]:
    """The caption's line without its rewrites, its candidate negatives and its positives
    (the round-trip check and the language model then choose among them per chunk)."""
    from unimo_kit.rewrite.positives import Positive, make_positives

    line: dict[str, Any] = {
        "id": item.id,
        "pair_id": item.pair_id,
        "caption_index": item.caption_index,
        "caption": item.caption,
        "scene_graph": graph.to_factual(),
    }
    if config.output_format == "factual":
        return line, [], []
    positives: list[Any] = []
    if config.positives:
        positives = list(make_positives(item.caption, graph))
        seen = {caption_key(item.caption)} | {caption_key(p.text) for p in positives}
        for other in item.others:
            if caption_key(other) not in seen:
                seen.add(caption_key(other))
                positives.append(Positive("same-image", other))
        if translation and caption_key(translation) not in seen:
            positives.append(Positive("back-translation", translation))
    verify = None
    verifier = _STATE.get("verifier")  # gold knowledge of the images (--scenes), if any
    if verifier is not None and item.pair_id in verifier:
        verify = functools.partial(verifier.holds, item.pair_id)
    negatives = _STATE["rewriter"].candidates(item.caption, graph, item.id, verify=verify)
    line.update(positives=[], negatives=[], sentence_negatives=[])
    return line, negatives, positives


def load_reference_option(reference: str | None) -> Vocabulary | None:
    """The reference statistics ``RewriteConfig.reference`` names (see
    :mod:`unimo_kit.rewrite.reference`)."""
    if reference is None:
        return None
    from unimo_kit.rewrite.reference import load_reference

    return load_reference(None if reference == REFERENCE_BUILTIN else reference)


def _error_line(item: _Item, config: RewriteConfig) -> dict[str, Any]:
    line: dict[str, Any] = {
        "id": item.id,
        "pair_id": item.pair_id,
        "caption_index": item.caption_index,
        "caption": item.caption if isinstance(item.caption, str) else "",
        "scene_graph": "",
    }
    if config.output_format == "rewrites":
        line.update(positives=[], negatives=[], sentence_negatives=[])
    line["error"] = item.error
    return line


# ---------------------------------------------------------------------- driver


def rewrite_file(
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    config: RewriteConfig | None = None,
    **overrides: Any,
) -> RewriteSummary:
    """Run the rewrite stage on a ``pairs.jsonl`` file (see module doc).

    Args:
        input_path: ``pairs.jsonl`` (``id`` and ``captions`` are read; other fields ignored).
        output_path: ``rewrites.jsonl`` (appended to and resumed when it exists).
        config: options (default :class:`RewriteConfig`); ``overrides`` replace fields.

    Returns:
        A :class:`RewriteSummary`.

    Example:
        >>> rewrite_file("pairs.jsonl", "rewrites.jsonl", per_type=2, sentence_negatives=3)
    """
    from dataclasses import replace

    config = replace(config or RewriteConfig(), **overrides)
    input_path, output_path = os.fspath(input_path), os.fspath(output_path)
    manifest = output_manifest(input_path, config)
    _check_or_write_manifest(output_path, manifest, config.resume)
    report = ErrorReport(strict=config.strict)
    total = count_lines(input_path)
    start, stop = config.shard.bounds(total)
    need_vocab = config.output_format == "rewrites"

    vocab: Vocabulary | None = None
    texts: list[str] = []
    groups: list[str] = []
    if need_vocab and config.vocab_path:
        vocab = Vocabulary.load(config.vocab_path)
    first_pass = need_vocab and (vocab is None or config.sentence_negatives > 0)
    build = first_pass and vocab is None  # pass 1 parses: its graphs are kept for pass 2
    store = GraphStore(graphs_path(output_path), config.graph_memory) if build else None
    try:
        pool = _make_pool(config, None) if build else None
        try:
            if first_pass:
                shard = (start, stop)
                built = _first_pass(input_path, config, pool, texts, groups, store, shard)
                vocab = vocab or built
            if need_vocab and config.save_vocab and vocab is not None:
                vocab.save(config.save_vocab)
        finally:
            if pool is not None:
                pool.terminate()
        rows = _tfidf_setup(config, texts, groups)
        summary = RewriteSummary(output=output_path, vocab=vocab)
        graphs = store.graphs() if store is not None else None
        if graphs is None and config.graphs_from:  # pass 1 of another process kept them
            sha256 = manifest.inputs["pairs"]["sha256"]
            graphs = read_graph_file(config.graphs_from, sha256, (start, stop))
        _rewrite_pass(input_path, output_path, config, vocab, rows, texts, groups, graphs,
                      (start, stop), summary, report)  # fmt: skip
    finally:
        if store is not None:
            store.close()
    summary.record_errors = report.count - summary.caption_errors
    import sys

    if report.count:
        print(report.summary(), file=sys.stderr)
    summary.print_dropped()
    return summary


def _rewrite_pass(
    input_path: str,
    output_path: str,
    config: RewriteConfig,
    vocab: Vocabulary | None,
    rows: Any,
    texts: list[str],
    groups: list[str],
    graphs: Iterator[Any] | None,
    bounds: tuple[int, int],
    summary: RewriteSummary,
    report: ErrorReport,
) -> None:
    """Pass 2: rewrite this shard's captions (graphs from pass 1 when given) and append the
    lines of the captions not yet in the output."""
    start, stop = bounds
    writer = ResumableJsonlWriter(output_path, resume=config.resume)
    pool = _make_pool(config, vocab)
    if pool is None:
        _init_worker(config, vocab)
    try:
        bar = _bar(config, stop - start, "rewriting", "rec")
        chunks = _chunks(input_path, config, start, stop, writer.done, summary, report, bar, graphs)
        rows_iter = (
            _with_sentence_negatives(chunk, rows, texts, groups, config) for chunk in chunks
        )
        results = _ordered_map(pool, _rewrite_chunk_with_rows, rows_iter, config.workers)
        for lines, items, dropped in results:
            summary.dropped.update(dropped)
            for line, item in zip(lines, items, strict=True):
                if "error" in line:
                    summary.caption_errors += 1
                    report.add(
                        RecordError(
                            input_path,
                            item.line,
                            f"caption {item.caption_index} of {item.pair_id}: {line['error']}",
                        )
                    )
            writer.write_many(lines)
            summary.written += len(lines)
        bar.close()
    except BaseException:
        if pool is not None:
            pool.terminate()
            pool = None
        raise
    finally:
        writer.close()
        if pool is not None:
            pool.close()
            pool.join()


def output_meta(input_path: str | os.PathLike, config: RewriteConfig) -> dict[str, Any]:
    """The settings that shape the output, as the resume manifest records them (see
    :func:`output_manifest`). ``workers``, ``chunk_size``, ``strict``, ``graph_memory``,
    ``graphs_from`` and progress bars do not, so they are left out; the vocabulary and
    scenes files count by content, model folders by absolute path. A ``factual`` output
    (parses only) records ``null`` for the rewriting options."""

    def where(path: str | None) -> str | None:
        return os.path.abspath(path) if path and os.path.exists(path) else path  # or a name

    rewriting = config.output_format != "factual"
    options = {
        "types": list(config.types),
        "per_type": config.per_type,
        "seed": config.seed,
        "positives": config.positives,
        "sentence_negatives": config.sentence_negatives,
        "vocab_sha256": file_sha256(config.vocab_path) if config.vocab_path else None,
        "min_count": config.min_count,
        "back_translation": [where(p) for p in config.back_translation]
        if config.back_translation
        else None,
        "scenes_sha256": file_sha256(config.scenes) if config.scenes else None,
        "reference_sha256": _reference_sha256(config.reference),
        "roundtrip": config.roundtrip,
        "spares": config.spares,
        "lm": where(config.lm),
    }
    return {
        "format": config.output_format,
        "spacy_model": where(config.spacy_model),
        "shard": f"{config.shard.index}/{config.shard.count}",
        "max_caption_chars": config.max_caption_chars,
        **{key: value if rewriting else None for key, value in options.items()},
    }


def output_manifest(input_path: str | os.PathLike, config: RewriteConfig) -> Manifest:
    """The resume manifest of a run (:mod:`unimo_kit.utils.manifest`): stage ``rewrite``,
    :func:`output_meta` as settings, the input's fingerprint as input ``pairs``."""
    return Manifest(
        "rewrite", output_meta(input_path, config), {"pairs": input_fingerprint(input_path)}
    )


def _reference_sha256(reference: str | None) -> str | None:
    if reference is None:
        return None
    if reference == REFERENCE_BUILTIN:
        from unimo_kit.rewrite.reference import REFERENCE_FILE

        return file_sha256(REFERENCE_FILE) if REFERENCE_FILE.exists() else REFERENCE_BUILTIN
    return file_sha256(reference)


def meta_path(output_path: str | os.PathLike) -> str:
    """``OUT.meta.json``: where runs before the resume manifest kept their options (read once
    as the manifest's legacy file, then removed)."""
    return os.fspath(output_path) + ".meta.json"


def _check_or_write_manifest(output_path: str, manifest: Manifest, resume: bool) -> None:
    """Refuse to resume ``output_path`` when its lines were made with other options or from
    another input (one line naming what differs and ``--no-resume``); otherwise write
    ``OUT.manifest.json``. An ``OUT.meta.json`` of an older run is read in its place.
    An output with neither (made before either existed) is resumed unchecked."""
    pairs = manifest.inputs["pairs"]

    def legacy(old: dict[str, Any]) -> Manifest:
        settings = {k: v for k, v in old.items() if k not in ("input", "input_sha256")}
        same = old.get("input_sha256") == pairs["sha256"]  # the old file kept content only
        fingerprint = {"path": old.get("input"), "sha256": old.get("input_sha256"),
                       "size": pairs["size"] if same else None}  # fmt: skip
        return Manifest("rewrite", settings, {"pairs": fingerprint})

    has_lines = os.path.exists(output_path) and os.path.getsize(output_path) > 0
    check_or_write(
        manifest_path(output_path),
        manifest,
        resume=resume,
        has_output=has_lines,
        output=output_path,
        legacy=(meta_path(output_path), legacy),
    )


def _ordered_map(pool: Any, fn: Any, items: Iterator[Any], workers: int) -> Iterator[Any]:
    """``map(fn, items)`` in order, in ``pool`` when given, with at most ``4 * workers`` tasks
    in flight (``Pool.imap`` would read the whole input ahead into memory)."""
    if pool is None:
        yield from map(fn, items)
        return
    pending: collections.deque[Any] = collections.deque()
    for item in items:
        pending.append(pool.apply_async(fn, (item,)))
        if len(pending) >= 4 * workers:
            yield pending.popleft().get()
    while pending:
        yield pending.popleft().get()


def _make_pool(config: RewriteConfig, vocab: Vocabulary | None) -> Any:
    if config.workers <= 1:
        return None
    context = multiprocessing.get_context("spawn" if os.name == "nt" else "fork")
    return context.Pool(config.workers, initializer=_init_worker, initargs=(config, vocab))


def _bar(config: RewriteConfig, total: int, desc: str, unit: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not config.progress, leave=False)


def _first_pass(
    path: str,
    config: RewriteConfig,
    pool: Any,
    texts: list[str],
    groups: list[str],
    store: GraphStore | None,
    shard: tuple[int, int],
) -> Vocabulary | None:
    """Parse the whole input for the vocabulary, keeping the graphs of the shard's captions
    (positions ``shard[0] <= p < shard[1]``) in ``store``; collect TF-IDF texts when asked.
    Without ``store`` nothing is parsed (the vocabulary was given) and ``None`` is returned."""
    quiet = ErrorReport(strict=config.strict, max_logged=0)  # reported in the second pass
    keep_texts = config.sentence_negatives > 0
    bar = _bar(config, count_lines(path), "vocabulary", "rec")
    if pool is None and store is not None:
        _init_worker(config, None)

    def chunks() -> Iterator[tuple[list[str], int, int]]:
        batch: list[str] = []
        keep = [0, 0]  # the batch's captions [keep[0], keep[1]) are in the shard
        for position, _, pair_id, captions in _records(path, quiet):
            bar.update(1)
            inside = shard[0] <= position < shard[1]
            if inside and keep[1] == 0:
                keep = [len(batch), len(batch)]
            for caption in captions:
                if caption_problem(caption, config.max_caption_chars) is None:
                    batch.append(caption)
                    if inside:
                        keep[1] = len(batch)
                    if keep_texts:
                        texts.append(caption)
                        groups.append(pair_id)
            if len(batch) >= config.chunk_size:
                yield batch, keep[0], keep[1]
                batch, keep = [], [0, 0]
        if batch:
            yield batch, keep[0], keep[1]

    if store is None:
        for _ in chunks():
            pass
        bar.close()
        return None
    vocab = Vocabulary(min_count=config.min_count)
    for part, kept in _ordered_map(pool, _vocab_chunk, chunks(), config.workers):
        vocab.merge(part)
        if kept is not None:
            store.add(kept)
    bar.close()
    return vocab


def _tfidf_setup(config: RewriteConfig, texts: list[str], groups: list[str]) -> Any:
    if not config.sentence_negatives or not texts:
        return None
    from unimo_kit.rewrite.tfidf import TfidfNeighbours

    return TfidfNeighbours(texts, groups)


def _chunks(
    path: str,
    config: RewriteConfig,
    start: int,
    stop: int,
    done: set[str],
    summary: RewriteSummary,
    report: ErrorReport,
    bar: Any,
    graphs: Iterator[Any] | None = None,
) -> Iterator[list[_Item]]:
    """Caption work items of this shard in chunks, finished ones left out; ``graphs`` (pass
    1's, one per valid caption of the shard in order) are attached to the items.

    Each caption gets its global TF-IDF row (its index among the valid captions of the whole
    input), counted over the records before ``start`` too so shards agree with the whole run.
    """
    row = _rows_before(path, start, config) if config.sentence_negatives else 0
    batch: list[_Item] = []
    for _, line, pair_id, captions in _records(path, report, start=start, stop=stop):
        bar.update(1)
        valid = [c for c in captions if isinstance(c, str) and c.strip()]
        for index, caption in enumerate(captions):
            problem = caption_problem(caption, config.max_caption_chars)
            item_row, graph = -1, None
            if problem is None:
                item_row, row = row, row + 1
                graph = next(graphs) if graphs is not None else None
            key = caption_id(pair_id, index)
            if key in done:
                summary.skipped_done += 1
                continue
            others = [c for c in valid if c != caption]
            batch.append(
                _Item(key, pair_id, index, caption, line, others, item_row, problem, graph)
            )
        if len(batch) >= config.chunk_size:
            yield batch
            batch = []
    if batch:
        yield batch


def _rows_before(path: str, start: int, config: RewriteConfig) -> int:
    quiet = ErrorReport(strict=False, max_logged=0)
    return sum(
        caption_problem(c, config.max_caption_chars) is None
        for _, _, _, captions in _records(path, quiet, stop=start)
        for c in captions
    )


def _with_sentence_negatives(
    chunk: list[_Item], index: Any, texts: list[str], groups: list[str], config: RewriteConfig
) -> tuple[list[_Item], dict[str, list[dict[str, Any]]]]:
    """Attach TF-IDF neighbours (computed in the main process, which holds the matrix)."""
    extra: dict[str, list[dict[str, Any]]] = {}
    if index is None or config.output_format != "rewrites":
        return chunk, extra
    rows = [it.row for it in chunk if it.row >= 0]
    # With gold scenes some neighbours are true of the image and get dropped in the worker
    # (see _keep_false_sentence_negatives): fetch spares so k false ones usually remain.
    fetch = config.sentence_negatives * (_SCENE_SPARES if config.scenes else 1)
    found = index.query(rows, fetch)
    for item, neighbours in zip((it for it in chunk if it.row >= 0), found, strict=True):
        extra[item.id] = [
            {"text": texts[j], "pair_id": groups[j], "score": round(score, 5)}
            for j, score in neighbours
        ]
    return chunk, extra


def _rewrite_chunk_with_rows(
    payload: tuple[list[_Item], dict[str, list[dict[str, Any]]]],
) -> tuple[list[dict[str, Any]], list[_Item], collections.Counter]:
    items, extra = payload
    lines, dropped = _rewrite_chunk(items)
    for item in items:
        item.graph = None  # not sent back to the main process
    for line in lines:
        if line["id"] in extra and "error" not in line:
            line["sentence_negatives"] = extra[line["id"]]
    _keep_false_sentence_negatives(lines, _STATE["config"].sentence_negatives)
    return lines, items, dropped


def _keep_false_sentence_negatives(lines: list[dict[str, Any]], k: int) -> None:
    """With gold scenes: keep the first ``k`` sentence negatives whose parsed graph is false of
    the line's scene (4 × ``k`` neighbours were fetched). A neighbour caption of another image
    is often true of this one too (in the synthetic world "there is a pink heart" describes
    many images); training would push a true caption away from its image. Lines of images
    without a gold scene keep their first ``k``. Without scenes nothing is done."""
    verifier = _STATE.get("verifier")
    if verifier is None:
        return
    from unimo_kit.rewrite.verify import CaptionVerifier

    if "checker" not in _STATE:
        _STATE["checker"] = CaptionVerifier(verifier, _STATE["parser"].parse_each)
    checker = _STATE["checker"]
    lines = [line for line in lines if line.get("sentence_negatives")]
    # parse the likely candidates of the whole chunk in one batch; keep_false looks them up
    checker.true_of(
        [(ln["pair_id"], n["text"]) for ln in lines for n in ln["sentence_negatives"][: 2 * k]]
    )
    for line in lines:
        line["sentence_negatives"] = checker.keep_false(
            line["pair_id"], line["sentence_negatives"], k, text=lambda n: n["text"]
        )
