"""Mining CMCL positives and hard negatives for every image-text pair (``retrieved.jsonl``).

Per pair (UNIMO §2.2 "image/text retrieval" and sentence-level hard negatives):

- **texts** (positives for the image): the pair's captions are encoded with the text index's
  encoder, their embeddings averaged and re-normalised (the mean direction of the captions),
  and searched in the text index; when the caption index below was built by that encoder,
  its stored embeddings of the pair's captions are used instead of a second encode
  (:class:`StoredCaptions`);
- **images** (positives for the text): the pair's image, encoded with the image index's
  encoder, searched in the image index (an index built with ``features:DIR`` reads the
  query's vector from that features store: no image is decoded);
- **negatives**: captions of the nearest *other* images, found by caption similarity: the same
  mean-caption query searched in a caption-level index of the pairs themselves (one row per
  caption, built with ``unimo index build --captions pairs.jsonl``, or automatically next to
  the output); the best-scoring caption of each neighbouring image, nearest images first, each
  text once (neighbours often share a caption).

Candidates are dropped when their score is below ``min_score`` (unrelated), above
``max_score`` (near-duplicates: the same text or picture again, not new evidence), or when
they belong to the pair itself: the same id, the same image file, or a text equal (case and
space folded) to one of the pair's captions. Same-image captions are therefore never
negatives. Output lines follow docs/formats.md; image paths are relative to the output file.

A run's settings and the pairs' fingerprint (:func:`run_manifest`) are the output's resume
manifest, ``OUTPUT.manifest.json`` (:mod:`unimo_kit.utils.manifest`; an older
``OUTPUT.settings.json`` is read once in its place); resuming an output under other settings
or pairs is refused (:class:`MineSettingsError`), since the file would mix two
configurations. The automatic caption
index (:func:`caption_cache`) is a cache of the pairs file: it is rebuilt whenever the pairs
file (path or content) or the encoder changed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np

from unimo_kit.data.records import caption_key
from unimo_kit.index.encoders import l2_normalize
from unimo_kit.index.store import IndexStore, IndexStoreError
from unimo_kit.utils import ErrorReport, ResumableJsonlWriter, Shard, first_per_group
from unimo_kit.utils.manifest import (
    Manifest,
    ManifestMismatch,
    check_or_write,
    input_fingerprint,
    manifest_path,
    write_manifest,
)

if TYPE_CHECKING:
    from typing import Unpack

    from unimo_kit.index.build import BuildConfig


@dataclass
class MineConfig:
    """How many neighbours to keep and which to drop."""

    k: int = 5  # related texts and related images per pair
    negatives: int = 5  # neighbour-caption hard negatives per pair (0: none)
    min_score: float = 0.3  # similarity floor for positives (cosine)
    max_score: float = 0.98  # near-duplicate ceiling for positives (cosine)
    negative_max_score: float = 0.98  # ceiling for negatives (paraphrases of our captions)
    chunk_size: int = 256  # pairs encoded and searched together
    batch_size: int = 64  # encoder batch size
    fetch_factor: int = 4  # candidates fetched per kept result (filters drop some)


# MineConfig fields that change no record (left out of the settings a resume must match)
_NOT_SHAPING = ("chunk_size", "batch_size")


class MineSettingsError(ManifestMismatch):
    """The output was made with other settings or pairs than this run's (resume refused)."""


class MineRun(TypedDict, total=False):
    """What a mining run mines: the keywords of :func:`mine`, :func:`mine_with_captions` and
    :func:`run_manifest` that shape the records (a resume must match them). Each may be left
    out of a call; :func:`mine_run` fills in the default in brackets."""

    text_index: str | os.PathLike | None  # text index folder: related texts per pair [None]
    image_index: str | os.PathLike | None  # image index folder: related images per pair [None]
    # caption index of the pairs (:func:`build_caption_index`): neighbour-caption negatives;
    # None: no negatives from mine(), an automatic one from mine_with_captions() [None]
    negative_index: str | os.PathLike | None
    config: MineConfig  # how many to keep and which to drop [MineConfig()]
    shard: Shard  # mine only this contiguous slice of the pairs [the whole file]
    # gold scenes.jsonl (synthetic world): drop negatives true of the pair's image [None]
    scenes: str | os.PathLike | None


def mine_run(**what: Unpack[MineRun]) -> MineRun:
    """``what`` with every :class:`MineRun` key, the defaults filled in.

    Raises:
        TypeError: a keyword that is not a :class:`MineRun` key.
    """
    unknown = sorted(set(what) - set(MineRun.__annotations__))
    if unknown:
        raise TypeError(
            f"unknown mining keyword(s) {unknown}; known: {list(MineRun.__annotations__)}"
        )
    return MineRun(
        text_index=what.get("text_index"),
        image_index=what.get("image_index"),
        negative_index=what.get("negative_index"),
        config=what.get("config") or MineConfig(),
        shard=what.get("shard") or Shard(),
        scenes=what.get("scenes"),
    )


def _distinct_texts(hits: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The hits in order, without a second hit of the same (case/space-folded) text: two
    neighbouring images often share a caption, which is one negative, not two."""
    seen: set[str] = set()
    out = []
    for hit in hits:
        key = caption_key(hit["text"])
        if key not in seen:
            seen.add(key)
            out.append(hit)
    return out


def chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive lists of ``size`` items (the last one shorter): mining's search batches."""
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def caption_queries(store: IndexStore, pairs: list[Any], batch_size: int = 64) -> np.ndarray:
    """Mean of each pair's L2-normalised caption embeddings, re-normalised: ``(P, d)``."""
    captions = [c for pair in pairs for c in pair.captions]
    vectors = store.encoder().encode_text(captions, batch_size=batch_size)  # (C, d)
    return _mean_per_pair(vectors, [len(p.captions) for p in pairs])


def _mean_per_pair(vectors: np.ndarray, counts: list[int]) -> np.ndarray:
    """``(P, d)``: the re-normalised sum of each pair's ``counts[j]`` consecutive rows."""
    owners = np.repeat(np.arange(len(counts)), counts)  # (C,)
    sums = np.zeros((len(counts), vectors.shape[1]), dtype=np.float32)
    np.add.at(sums, owners, vectors)
    return l2_normalize(sums)


class StoredCaptions:
    """The caption index's stored embeddings as mining's caption queries (no second encode).

    The caption index of the pairs (``unimo index build --captions``, or the automatic
    ``OUTPUT.captions/``) holds one embedding per caption, made by the encoder that the
    queries need; a pair's query is the mean of its rows, exactly :func:`caption_queries`
    up to the last bits that batching changes. A pair is taken from the index only when it
    holds every caption of the pair, with the same text at the same position; the others
    (an index of other pairs, or built without stored embeddings) are encoded.

    Args:
        captions: the opened caption index.
    """

    def __init__(self, captions: IndexStore):
        self.store = captions
        self.spec = captions.encoder_spec
        self._rows: dict[str, dict[int, tuple[int, str]]] = {}  # pair -> caption -> (row, text)
        for row, record in enumerate(captions.records):
            self._rows.setdefault(record["pair_id"], {})[record["caption_index"]] = (
                row,
                record["text"],
            )
        self._vectors: Any = None  # BlockRows, opened on first use
        self.hits = 0  # pairs answered from the index
        self.misses = 0  # pairs encoded

    def rows_of(self, pair: Any) -> list[int] | None:
        """The index rows of the pair's captions, in caption order; ``None`` unless the index
        holds each of them with the same text."""
        stored = self._rows.get(pair.id)
        if stored is None or len(stored) != len(pair.captions):
            return None
        rows = []
        for i, caption in enumerate(pair.captions):
            row, text = stored.get(i, (None, None))
            if row is None or text != caption:
                return None
            rows.append(row)
        return rows

    def queries(self, store: IndexStore, pairs: list[Any], batch_size: int) -> np.ndarray:
        """:func:`caption_queries` of ``store``'s encoder: from the stored rows when that
        encoder is the caption index's and the pair's rows are there, else encoded."""
        rows = [self.rows_of(p) for p in pairs] if store.encoder_spec == self.spec else None
        if rows is not None and self._open() is None:
            rows = None
        if rows is None:
            self.misses += len(pairs)
            return caption_queries(store, pairs, batch_size)
        out = np.zeros((len(pairs), self.store.dim), dtype=np.float32)
        found = [j for j, r in enumerate(rows) if r is not None]
        missing = [j for j, r in enumerate(rows) if r is None]
        if found:
            vectors = self._vectors.take(np.concatenate([rows[j] for j in found]))  # (C, d)
            out[found] = _mean_per_pair(vectors, [len(rows[j]) for j in found])
        if missing:
            out[missing] = caption_queries(store, [pairs[j] for j in missing], batch_size)
        self.hits += len(found)
        self.misses += len(missing)
        return out

    def _open(self) -> Any:
        """The stored embeddings (memory-mapped), or ``None`` when the index kept none."""
        if self._vectors is None:
            try:
                self._vectors = self.store.stored_rows()
            except IndexStoreError:
                self._vectors = False
        return self._vectors or None


class Miner:
    """Holds the opened indexes and mines one chunk of pairs at a time.

    Args:
        text_index: folder of a text index (or ``None``: no text positives).
        image_index: folder of an image index (or ``None``: no image positives).
        negative_index: caption-level index of the pairs (or ``None``: no negatives).
        config: :class:`MineConfig`.
        out_dir: where ``retrieved.jsonl`` lives (image paths are written relative to it).
        checker: a :class:`~unimo_kit.rewrite.verify.CaptionVerifier` (e.g. over the gold
            scenes of ``--scenes``): negatives true of the pair's image are dropped; ``None``:
            no check.
    """

    def __init__(
        self,
        text_index: str | os.PathLike | None,
        image_index: str | os.PathLike | None,
        negative_index: str | os.PathLike | None,
        config: MineConfig,
        out_dir: str | os.PathLike,
        checker: Any = None,
    ):
        self.config = config
        self.checker = checker
        self.out_dir = Path(out_dir).resolve()
        self.texts = IndexStore.open(text_index) if text_index else None
        self.images = IndexStore.open(image_index) if image_index else None
        self.captions = IndexStore.open(negative_index) if negative_index else None
        if self.texts and not _takes(self.texts, "text"):
            raise IndexStoreError(f"{text_index}: its encoder takes no text queries")
        if self.images and not _takes(self.images, "image"):
            raise IndexStoreError(f"{image_index}: its encoder takes no image queries")
        if self.captions and self.captions.meta.get("kind") != "captions":
            raise IndexStoreError(
                f"{negative_index}: not a caption index of pairs (build it with "
                "`unimo index build --captions pairs.jsonl`)"
            )
        self.stored = StoredCaptions(self.captions) if self.captions else None
        self.failed_images = 0

    def _caption_queries(self, store: IndexStore, pairs: list[Any]) -> np.ndarray:
        """The pairs' mean-caption queries in ``store``'s space (stored ones where possible)."""
        if self.stored is None:
            return caption_queries(store, pairs, self.config.batch_size)
        return self.stored.queries(store, pairs, self.config.batch_size)

    def mine(self, pairs: list[Any]) -> list[dict[str, Any]]:
        """``retrieved.jsonl`` records for a chunk of :class:`PairRecord`."""
        cfg = self.config
        out = [{"id": p.id, "texts": [], "images": [], "negatives": []} for p in pairs]
        own_texts = [{caption_key(c) for c in p.captions} for p in pairs]
        own_images = [os.path.abspath(p.image) for p in pairs]
        text_q = None
        if self.texts is not None:
            text_q = self._caption_queries(self.texts, pairs)
            hits = self.texts.results(*self.texts.search(text_q, self._fetch(cfg.k)))
            for j, pair in enumerate(pairs):
                for hit in hits[j]:
                    if len(out[j]["texts"]) == cfg.k:
                        break
                    if not cfg.min_score <= hit["score"] <= cfg.max_score:
                        continue
                    if self._is_own(hit, pair.id, own_texts[j], own_images[j]):
                        continue
                    out[j]["texts"].append(
                        {"id": hit["id"], "text": hit["text"], "score": _round(hit["score"])}
                    )
        if self.images is not None:
            encoded = self.images.encoder().encode_image_files(
                own_images, batch_size=cfg.batch_size, ids=[pair.id for pair in pairs]
            )
            self.failed_images += int((~encoded.ok).sum())
            hits = self.images.results(*self.images.search(encoded.vectors, self._fetch(cfg.k)))
            for j, pair in enumerate(pairs):
                if not encoded.ok[j]:
                    continue
                for hit in hits[j]:
                    if len(out[j]["images"]) == cfg.k:
                        break
                    if not cfg.min_score <= hit["score"] <= cfg.max_score:
                        continue
                    if self._is_own(hit, pair.id, own_texts[j], own_images[j]):
                        continue
                    image = os.path.relpath(hit["image"], self.out_dir)
                    out[j]["images"].append(
                        {"id": hit["id"], "image": image, "score": _round(hit["score"])}
                    )
        if self.captions is not None and cfg.negatives > 0:
            same_encoder = self.texts is not None and (
                self.texts.encoder_spec == self.captions.encoder_spec
            )
            query = text_q if same_encoder else self._caption_queries(self.captions, pairs)
            per_pair = max(len(p.captions) for p in pairs)
            fetch = (cfg.negatives + 1) * per_pair * cfg.fetch_factor
            hits = self.captions.results(*self.captions.search(query, fetch))
            candidates = [
                _distinct_texts(
                    hit
                    for hit in hits[j]
                    if hit["score"] <= cfg.negative_max_score
                    and not self._is_own(hit, pair.id, own_texts[j], own_images[j])
                )
                for j, pair in enumerate(pairs)
            ]
            if self.checker is not None:  # parse the likely candidates in one batch
                self.checker.true_of(
                    [
                        (p.id, h["text"])
                        for p, c in zip(pairs, candidates, strict=True)
                        for h in c[: 2 * cfg.negatives]
                    ]
                )
            for j, pair in enumerate(pairs):
                kept = self._keep(pair.id, candidates[j], cfg.negatives)
                out[j]["negatives"] = [
                    {
                        "pair_id": hit["pair_id"],
                        "caption_index": hit["caption_index"],
                        "text": hit["text"],
                        "score": _round(hit["score"]),
                    }
                    for hit in kept
                ]
        return out

    def _keep(self, pair_id: str, candidates: list[dict[str, Any]], k: int) -> list[dict]:
        """The first ``k`` candidate negatives, one per neighbouring image; with a checker,
        only those false of the pair's gold scene (checked lazily, in order)."""
        if self.checker is not None and pair_id in self.checker:
            return self.checker.keep_false(
                pair_id, candidates, k, text=lambda h: h["text"], group=lambda h: h["pair_id"]
            )
        return first_per_group(candidates, k, group=lambda h: h["pair_id"])

    def _fetch(self, keep: int) -> int:
        return keep * self.config.fetch_factor + 8

    @staticmethod
    def _is_own(hit: dict[str, Any], pair_id: str, texts: set[str], image: str) -> bool:
        if hit["id"] == pair_id or hit.get("pair_id") == pair_id:
            return True
        if hit.get("image") and os.path.abspath(hit["image"]) == image:
            return True
        return bool(hit.get("text")) and caption_key(hit["text"]) in texts


def _takes(store: IndexStore, modality: str) -> bool:
    """Whether ``store``'s encoder embeds ``modality`` queries; an index of that modality's
    rows was built by such an encoder, so only other indexes load theirs to check."""
    return store.modality == modality or modality in store.encoder().modalities


def mine(
    pairs_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    resume: bool = True,
    progress: bool = True,
    strict: bool = False,
    **what: Unpack[MineRun],
) -> dict[str, Any]:
    """Mine ``retrieved.jsonl`` for the pairs of ``pairs_path`` (streaming, resumable).

    Args:
        pairs_path: ``pairs.jsonl``.
        out_path: output; finished pairs already in it are skipped (``resume``).
        resume: keep and skip what ``out_path`` already holds; refused when it was started
            with other settings or pairs (see :func:`run_manifest`). ``False``: start afresh.
        progress: tqdm bar on stderr.
        strict: stop at the first malformed pair.
        **what: what is mined, the :class:`MineRun` keys: ``text_index``, ``image_index``,
            ``negative_index`` (index folders, any may be ``None``; without
            ``negative_index`` no negatives are mined: build one with
            :func:`build_caption_index`, as ``unimo index mine`` does by itself),
            ``config``, ``shard``, ``scenes``.

    Returns:
        Counts: ``{"pairs", "skipped_done", "written", "malformed", "failed_images",
        "mean_texts", "mean_images", "mean_negatives"}``; the means are over the pairs written
        by this call (``None`` when it wrote none: everything was done already).

    Raises:
        MineSettingsError: ``resume`` and ``out_path`` was started with other settings.
    """
    run = mine_run(**what)
    config, shard = run["config"], run["shard"]
    out_path = Path(out_path)
    manifest = start_run(pairs_path, out_path, run, resume=resume)
    miner = make_miner(run, out_path)
    report = ErrorReport(strict=strict)
    tally = MineTally()
    total = count_pairs(pairs_path)  # the shard's slice, and the bar's total (hence its ETA)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        start, stop = shard.bounds(total)
        bar = tqdm(total=stop - start, desc="mine", unit="pair", file=sys.stderr)
    with ResumableJsonlWriter(out_path, id_key="id", resume=resume) as writer:
        if not resume:  # the output is empty now
            record_run(out_path, manifest, resume=False)

        def todo() -> Iterator[Any]:
            for pair in shard_pairs(pairs_path, shard, total, strict=strict, report=report):
                tally.pairs += 1
                if pair.id in writer.done:
                    tally.skipped_done += 1
                    if bar is not None:
                        bar.update(1)
                    continue
                yield pair

        for chunk in chunks(todo(), config.chunk_size):
            records = miner.mine(chunk)
            writer.write_many(records)
            tally.add(records)
            if bar is not None:
                bar.update(len(chunk))
    if bar is not None:
        bar.close()
    if report.count:
        print(report.summary(), file=sys.stderr)
    tally.failed_images = miner.failed_images
    return tally.counts(report.count)


@dataclass
class MineTally:
    """The counts a mining run reports (:meth:`counts`), added up record by record."""

    pairs: int = 0  # pairs of the shard read
    skipped_done: int = 0  # of them already in the output
    written: int = 0  # records written by this run
    texts: int = 0  # related texts in them
    images: int = 0  # related images in them
    negatives: int = 0  # hard negatives in them
    failed_images: int = 0  # pair images that could not be loaded

    def add(self, records: Iterable[dict[str, Any]]) -> None:
        """Count written ``retrieved.jsonl`` records."""
        for record in records:
            self.written += 1
            self.texts += len(record["texts"])
            self.images += len(record["images"])
            self.negatives += len(record["negatives"])

    def counts(self, malformed: int) -> dict[str, Any]:
        """:func:`mine`'s returned counts (``malformed``: pair lines skipped)."""

        def mean(total: int) -> float | None:
            return total / self.written if self.written else None

        return {
            "pairs": self.pairs,
            "skipped_done": self.skipped_done,
            "written": self.written,
            "malformed": malformed,
            "failed_images": self.failed_images,
            "mean_texts": mean(self.texts),
            "mean_images": mean(self.images),
            "mean_negatives": mean(self.negatives),
        }


def start_run(
    pairs_path: str | os.PathLike, out_path: str | os.PathLike, run: MineRun, *, resume: bool
) -> Manifest:
    """What every mining run does before it mines: a warning when negatives are asked for
    without a caption index, and (``resume``) the output's manifest checked and written.

    Args:
        pairs_path: ``pairs.jsonl``.
        out_path: the output.
        run: what is mined (:func:`mine_run`).
        resume: the run keeps what ``out_path`` holds (without it, write the manifest with
            :func:`record_run` once the output is emptied).

    Returns:
        The run's manifest (:func:`run_manifest`).

    Raises:
        MineSettingsError: ``resume`` and the output was made with other settings or pairs.
    """
    if run["config"].negatives and run["negative_index"] is None:
        print(
            "warning: no negative_index, so no hard negatives are mined "
            "(build_caption_index makes one)",
            file=sys.stderr,
        )
    manifest = run_manifest(pairs_path, **run)
    if resume:
        record_run(out_path, manifest, resume=True)
    return manifest


def make_miner(run: MineRun, out_path: str | os.PathLike) -> Miner:
    """The :class:`Miner` of a run (the indexes opened once; the gold-scene checker when
    ``run["scenes"]``) writing image paths relative to ``out_path``'s folder."""
    checker = None
    if run["scenes"] is not None:
        from unimo_kit.rewrite.parser import SceneGraphParser
        from unimo_kit.rewrite.verify import CaptionVerifier, load_verifier

        checker = CaptionVerifier(load_verifier(run["scenes"]), SceneGraphParser().parse_each)
    return Miner(
        run["text_index"],
        run["image_index"],
        run["negative_index"],
        run["config"],
        Path(out_path).parent,
        checker,
    )


def count_pairs(pairs_path: str | os.PathLike) -> int:
    """How many pairs :func:`~unimo_kit.data.readers.read_pairs` yields (a quiet pass)."""
    from unimo_kit.data.readers import read_pairs

    with open(os.devnull, "w") as devnull:
        return sum(1 for _ in read_pairs(pairs_path, on_error=ErrorReport(stream=devnull)))


def shard_pairs(
    pairs_path: str | os.PathLike, shard: Shard, total: int, *, strict: bool, report: ErrorReport
) -> Iterator[Any]:
    """The pairs of ``shard``'s slice of ``total`` (:func:`count_pairs`), in file order;
    malformed lines go to ``report`` (or raise with ``strict``)."""
    from unimo_kit.data.readers import read_pairs

    start, stop = shard.bounds(total)
    for i, pair in enumerate(read_pairs(pairs_path, strict=strict, on_error=report)):
        if i >= stop:
            return
        if i >= start:
            yield pair


def mine_with_captions(
    pairs_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    resume: bool = True,
    progress: bool = True,
    strict: bool = False,
    **what: Unpack[MineRun],
) -> dict[str, Any]:
    """What ``unimo index mine`` runs: :func:`mine`, with the caption index of the pairs built
    (or reused) next to the output when negatives are asked for and ``negative_index`` is
    ``None`` (``OUTPUT.captions/``, see :func:`caption_cache`), and a resume under other
    settings refused before anything is built.

    Args:
        pairs_path, out_path, resume, progress, strict, **what: as :func:`mine`.

    Returns:
        :func:`mine`'s counts.

    Raises:
        MineSettingsError: ``resume`` and the output was started with other settings.
        ValueError: nothing to mine; or an automatic caption index with ``shard`` (build it
            once first and pass ``negative_index``).
    """
    run = prepare_run(pairs_path, out_path, resume=resume, progress=progress, **what)
    return mine(pairs_path, out_path, resume=resume, progress=progress, strict=strict, **run)


def prepare_run(
    pairs_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    resume: bool,
    progress: bool,
    engine: Any = None,
    **what: Unpack[MineRun],
) -> MineRun:
    """Check a run and build (or reuse) its automatic caption index.

    Without ``negative_index`` and with negatives asked for, the caption index of the pairs
    is ``OUTPUT.captions/`` (:func:`caption_cache`, built on ``engine`` when given); a resume
    under other settings is refused before anything is built.

    Args:
        pairs_path, out_path, resume, progress, **what: as :func:`mine`.
        engine: where the automatic caption index is built (``None``: here).

    Returns:
        What is mined (:func:`mine_run`), ``negative_index`` the automatic one where it
        applies and ``None`` without negatives: the keywords of :func:`mine`.

    Raises:
        MineSettingsError: ``resume`` and the output was started with other settings.
        ValueError: nothing to mine; or an automatic caption index with ``shard``.
    """
    from unimo_kit.index.encoders import DEFAULT_TEXT_ENCODER

    run = mine_run(**what)
    text_index, negatives = run["text_index"], run["config"].negatives
    if not (text_index or run["image_index"] or negatives):
        raise ValueError("nothing to mine: give a text index, an image index or negatives")
    automatic = bool(negatives) and run["negative_index"] is None
    if automatic:
        if run["shard"].count > 1:
            raise ValueError(
                "with --shard, build the caption index once first "
                "(unimo index build --captions PAIRS --name NAME) and pass --negative-index"
            )
        run["negative_index"] = Path(out_path).with_name(Path(out_path).name + ".captions")
    if not negatives:
        run["negative_index"] = None
    if resume:  # refuse before building anything
        check_resume(out_path, run_manifest(pairs_path, **run))
    if automatic:  # a cache of the pairs: rebuilt when stale
        from unimo_kit.index.store import read_meta

        spec = read_meta(Path(text_index))["encoder"] if text_index else DEFAULT_TEXT_ENCODER
        captions = run["negative_index"]
        caption_cache(pairs_path, captions, encoder=spec, progress=progress, engine=engine)
    return run


def _round(score: float) -> float:
    return round(float(score), 5)


def settings_path(out_path: str | os.PathLike) -> Path:
    """``OUTPUT.settings.json``: where runs before the resume manifest kept their settings
    (read once as the manifest's legacy file, then removed)."""
    out = Path(out_path)
    return out.with_name(out.name + ".settings.json")


def run_manifest(pairs_path: str | os.PathLike, **what: Unpack[MineRun]) -> Manifest:
    """The resume manifest of a run (:mod:`unimo_kit.utils.manifest`, stage ``index mine``):
    as settings what shapes the records (the index and scenes paths, absolute; the shard; the
    :class:`MineConfig` fields but ``chunk_size``/``batch_size``, which change none), as input
    ``pairs`` the pairs file's fingerprint (a resume must read the same pairs) and, with
    ``scenes``, the scenes file's (the gold scenes decide which negatives are kept).

    Args:
        pairs_path: ``pairs.jsonl``.
        **what: what is mined (the :class:`MineRun` keys, as :func:`mine`).

    Returns:
        The manifest.
    """
    run = mine_run(**what)
    scenes = run["scenes"]

    def where(path: str | os.PathLike | None) -> str | None:
        return os.path.abspath(path) if path else None

    fields = {k: v for k, v in asdict(run["config"]).items() if k not in _NOT_SHAPING}
    settings = {
        "text_index": where(run["text_index"]),
        "image_index": where(run["image_index"]),
        "negative_index": where(run["negative_index"]),
        "scenes": where(scenes),
        "shard": str(run["shard"]),
        **fields,
    }
    inputs = {"pairs": input_fingerprint(pairs_path)}
    if scenes:
        inputs["scenes"] = input_fingerprint(scenes)
    return Manifest("index mine", settings, inputs)


def check_resume(out_path: str | os.PathLike, manifest: Manifest) -> None:
    """Refuse to resume ``out_path`` when it was made with other settings or pairs than
    ``manifest``'s; else record ``manifest`` as ``OUTPUT.manifest.json``.

    Nothing to check for a new or empty output, or one with no record at all (made before
    settings were saved). An ``OUTPUT.settings.json`` of an older run is read in its place
    and removed.

    Raises:
        MineSettingsError: one line naming each difference and ``--no-resume``.
    """
    out = Path(out_path)
    try:
        check_or_write(
            manifest_path(out),
            manifest,
            resume=True,
            has_output=out.is_file() and out.stat().st_size > 0,
            output=out,
            legacy=(settings_path(out), _legacy_converter(manifest)),
        )
    except ManifestMismatch as exc:
        raise MineSettingsError(str(exc)) from None


def record_run(out_path: str | os.PathLike, manifest: Manifest, *, resume: bool) -> None:
    """Check (``resume``) and write the output's manifest: what every mining run does before
    it writes a record. Without ``resume`` call it once the output was emptied."""
    if resume:
        check_resume(out_path, manifest)
    else:
        write_manifest(manifest_path(out_path), manifest)
        settings_path(out_path).unlink(missing_ok=True)


def _legacy_converter(manifest: Manifest) -> Any:
    """Read an ``OUTPUT.settings.json`` as a :class:`Manifest` (it kept the pairs' path and
    sha256 among the settings, not their size)."""
    pairs = manifest.inputs["pairs"]

    def convert(old: dict[str, Any]) -> Manifest:
        settings = {k: v for k, v in old.items() if k not in ("pairs", "pairs_sha256")}
        same = old.get("pairs_sha256") == pairs["sha256"]
        fingerprint = {"path": old.get("pairs"), "sha256": old.get("pairs_sha256"),
                       "size": pairs["size"] if same else None}  # fmt: skip
        inputs = {"pairs": fingerprint}
        if "scenes" in manifest.inputs and old.get("scenes") == manifest.settings["scenes"]:
            inputs["scenes"] = manifest.inputs["scenes"]  # such a run trusted the scenes path
        return Manifest("index mine", settings, inputs)

    return convert


def caption_cache(
    pairs_path: str | os.PathLike,
    folder: str | os.PathLike,
    *,
    encoder: str,
    rebuild: bool = False,
    progress: bool = True,
    engine: Any = None,
) -> Path:
    """The caption index that ``unimo index mine`` builds by itself (``OUTPUT.captions/``).

    It is a cache of ``pairs_path``, rebuilt from scratch (``build(..., overwrite=True)``)
    when ``rebuild``, or when the folder holds a build of another file, with another encoder
    or other settings, or the pairs file changed since it was read
    (:func:`unimo_kit.index.build.stale_build`). Otherwise an unfinished build resumes and
    a finished one is reused. ``engine`` (an :class:`~unimo_kit.engine.EngineOptions`):
    built there, with the same result.
    """
    from unimo_kit.engine.index import run_index_build

    folder = Path(folder)
    config = _caption_config(pairs_path, encoder)
    from unimo_kit.index.build import stale_build

    why = stale_build(folder, config) if folder.exists() else None
    if rebuild and folder.exists():
        why = "asked to"
    if why:
        print(f"{folder}: rebuilding the caption index ({why})", file=sys.stderr)
    return run_index_build(
        config, folder, progress=progress, overwrite=why is not None, engine=engine or "local"
    )


def _caption_config(pairs_path: str | os.PathLike, encoder: str) -> BuildConfig:
    from unimo_kit.index.build import BuildConfig

    return BuildConfig(
        input=os.path.abspath(pairs_path), kind="captions", encoder=encoder, index_type="auto"
    )


def build_caption_index(
    pairs_path: str | os.PathLike,
    folder: str | os.PathLike,
    *,
    encoder: str,
    progress: bool = True,
) -> Path:
    """Build (or resume) the caption-level index of a pairs file that negatives come from:
    one row per caption, ``{"id": "PAIR#i", "pair_id", "caption_index", "text", "image"}``."""
    from unimo_kit.index.build import build

    return build(_caption_config(pairs_path, encoder), folder, progress=progress)
