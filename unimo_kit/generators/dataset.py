"""A map-style dataset of image-text pairs with hard negatives and positives, for any model.

:class:`HardNegativeDataset` reads ``pairs.jsonl`` with the ``rewrites.jsonl`` and
``retrieved.jsonl`` beside it (docs/formats.md), lazily: each file is indexed once by byte
offset (:class:`~unimo_kit.generators.lines.JsonlIndex`, which reads with ``os.pread`` through a
descriptor of its own in each DataLoader worker) and a line is decoded when its item is
built. Without ``rewrites.jsonl`` the rewrites are made on the fly
(:class:`~unimo_kit.rewrite.RewriteDataset`, which parses with spaCy inside each worker).
Every draw of an item (which caption, which negatives and positives) comes from
``derive_seed(seed, epoch, item id)``, so an item does not depend on workers, ranks or order.
"""

from __future__ import annotations

import functools
import os
import random
from array import array
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from unimo_kit.data.records import PairRecord, caption_id
from unimo_kit.generators.items import (
    RETRIEVED,
    SENTENCE,
    ItemBuilder,
    PreparedRecord,
    collate_items,
)
from unimo_kit.generators.lines import JsonlIndex
from unimo_kit.generators.tokenize import TOKEN_CACHE, TokenizerLike, as_tokenizer
from unimo_kit.utils import ErrorReport, RecordError, derive_seed

PathLike = str | os.PathLike
#: Default cache of prepared candidate records: distinct captions a worker keeps (about 2 KB
#: each with the synthetic world's four negatives and two positives, so about 40 MB).
RECORD_CACHE = 20_000


class HardNegativeDataset(Dataset):
    """Pairs with K hard negatives chosen by a type mix and retrieved / rewritten positives.

    Args:
        pairs: ``pairs.jsonl``.
        rewrites: its ``rewrites.jsonl`` (``unimo rewrite``); ``None`` with ``on_the_fly``
            makes rewrites while loading.
        retrieved: its ``retrieved.jsonl`` (``unimo index mine``): neighbour-caption
            negatives (type ``retrieved``), related texts and images as positives.
        transform: image transform (open_clip's ``preprocess``); ``None`` keeps PIL images.
        tokenizer: open_clip ``get_tokenizer(...)`` output, a Hugging Face tokenizer or any
            callable (:func:`~unimo_kit.generators.as_tokenizer`); ``None``: texts only.
        num_negatives: K per item.
        type_mix: weight per negative type (``{"swap-att": 2, "replace-obj": 1}``; types not
            named are left out); ``None``: every type alike.
        num_positives: extra positive texts per item.
        positive_images: retrieved positive images per item.
        sentence_negatives: use the rewrite stage's TF-IDF negatives (type ``sentence``).
        retrieved_negatives: use ``retrieved.jsonl`` negatives (type ``retrieved``).
        each_caption: one item per caption (``"<pair id>#<i>"``); ``False``: one per pair,
            its caption drawn per epoch.
        split: keep only pairs of this split.
        seed: seed of every draw.
        on_the_fly: rewrite captions while loading when ``rewrites`` is ``None`` (builds the
            vocabulary by parsing every caption now, unless ``vocab`` is given).
        vocab: a vocabulary file (``unimo rewrite --save-vocab``) for on-the-fly rewrites.
        spacy_model: the spaCy pipeline of on-the-fly rewrites.
        load_images: decode images (``False``: items carry paths; used by ``unimo export``).
        on_error: receives malformed input lines (default: warnings on stderr).
        token_cache: token ids of up to this many distinct texts kept per worker, so that a
            negative drawn again in a later epoch is not tokenised again (the same ids; 0: off;
            ignored when ``tokenizer`` is already a :class:`TextTokenizer`).
        record_cache: candidates of up to this many distinct captions kept per worker,
            decoded and prepared (:meth:`ItemBuilder.prepare`), so that a caption drawn again
            in a later epoch reads no line again (the same items; 0: off; on-the-fly rewrites,
            which change with the epoch, are never kept).

    Items are dicts (:class:`~unimo_kit.generators.items.ItemBuilder`); batch them with
    :meth:`collate` (``DataLoader(ds, batch_size=32, collate_fn=ds.collate)``).
    """

    def __init__(
        self,
        pairs: PathLike,
        rewrites: PathLike | None = None,
        retrieved: PathLike | None = None,
        *,
        transform: Callable[[Any], Any] | None = None,
        tokenizer: TokenizerLike | None = None,
        num_negatives: int = 4,
        type_mix: Mapping[str, float] | None = None,
        num_positives: int = 1,
        positive_images: int = 0,
        sentence_negatives: bool = True,
        retrieved_negatives: bool = True,
        each_caption: bool = False,
        split: str | None = None,
        seed: int = 0,
        on_the_fly: bool = True,
        vocab: PathLike | None = None,
        spacy_model: str | None = None,
        load_images: bool = True,
        on_error: ErrorReport | None = None,
        token_cache: int = TOKEN_CACHE,
        record_cache: int = RECORD_CACHE,
    ):
        for name, path in (("pairs", pairs), ("rewrites", rewrites), ("retrieved", retrieved)):
            if path is not None and not os.path.isfile(path):
                raise FileNotFoundError(f"{name} file not found: {path}")
        self.pairs_path = Path(pairs)
        self.retrieved_dir = Path(retrieved).parent if retrieved is not None else None
        self._pairs_dir = os.path.realpath(self.pairs_path.parent)
        self._retrieved_dir = (
            os.path.realpath(self.retrieved_dir) if self.retrieved_dir is not None else None
        )
        self.split = split
        self.seed = seed
        self.epoch = 0
        self.each_caption = each_caption
        self.sentence_negatives = sentence_negatives
        self.retrieved_negatives = retrieved_negatives
        report = on_error if on_error is not None else ErrorReport()
        counts = array("i")

        def keep(record: dict[str, Any], line: int) -> str | None:
            if split is not None and record.get("split") != split:
                return None
            pair = PairRecord.from_dict(record, path=self.pairs_path, line=line)
            counts.append(len(pair.captions))
            return pair.id

        if record_cache < 0:
            raise ValueError(f"record_cache must be >= 0, got {record_cache}")
        self.pairs = JsonlIndex(pairs, keep, report)
        self._captions = counts  # row -> how many captions the pair has
        if not len(self.pairs):
            where = f" of split {split!r}" if split is not None else ""
            raise ValueError(f"{pairs}: no usable pairs{where}")
        # item -> (pair row, caption index); -1: drawn per epoch
        self.items = array("q")
        for row, n in enumerate(counts):
            for ci in range(n) if each_caption else (-1,):
                self.items.extend((row, ci))
        by_id = lambda r, _: str(r.get("id"))  # noqa: E731
        self.rewrites = JsonlIndex(rewrites, by_id, report) if rewrites is not None else None
        self.retrieved = JsonlIndex(retrieved, by_id, report) if retrieved is not None else None
        self.on_the_fly = None
        if self.rewrites is None and on_the_fly:
            from unimo_kit.rewrite import RewriteDataset, Vocabulary

            loaded = Vocabulary.load(vocab) if vocab is not None else None
            self.on_the_fly = RewriteDataset(
                pairs, loaded, seed=seed, positives=True, spacy_model=spacy_model
            )
            self._fly_index = {item_id: i for i, (item_id, _) in enumerate(self.on_the_fly.items)}
        self.builder = ItemBuilder(
            transform=transform,
            tokenizer=(
                as_tokenizer(tokenizer, cache_size=token_cache) if tokenizer is not None else None
            ),
            num_negatives=num_negatives,
            type_mix=type_mix,
            num_positives=num_positives,
            positive_images=positive_images,
            load_images=load_images,
        )
        self.skipped = report
        # caption id -> (prepared candidates, line of the pair); on-the-fly rewrites change
        # with the epoch, so they are prepared anew each time
        self.record_cache = record_cache if self.on_the_fly is None else 0
        self._prepared: dict[str, tuple[PreparedRecord, int]] = {}

    def set_epoch(self, epoch: int) -> None:
        """Draw the captions, negatives and positives of ``epoch`` (call before iterating;
        on-the-fly rewrites of epoch 0 are those of ``unimo rewrite`` with the same seed)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.items) // 2

    @staticmethod
    def _resolve(image: str, real_dir: str | None) -> str:
        """:func:`~unimo_kit.data.records.resolve_path` with the folder's symlinks resolved
        once (``real_dir``), not per item."""
        if real_dir is None or "://" in image:
            return image
        return os.path.normpath(os.path.join(real_dir, image))

    def _rng(self, key: str) -> random.Random:
        return random.Random(derive_seed(self.seed, "generator", self.epoch, key))

    def _rewrite(self, key: str) -> dict[str, Any] | None:
        if self.rewrites is not None:
            return self.rewrites.get(key)
        if self.on_the_fly is None or key not in self._fly_index:
            return None
        self.on_the_fly.set_epoch(self.epoch)
        item = self.on_the_fly[self._fly_index[key]]
        return {
            "negatives": [
                {"text": t, "type": k}
                for t, k in zip(item["negatives"], item["negative_types"], strict=True)
            ],
            "positives": [
                {"text": t, "type": k}
                for t, k in zip(item["positives"], item["positive_types"], strict=True)
            ],
        }

    def candidates(self, index: int) -> dict[str, Any]:
        """Item ``index`` before sampling: the caption and every negative and positive.

        Returns:
            ``id`` (``"<pair id>#<caption index>"``), ``pair_id``, ``caption_index``,
            ``caption``, ``captions`` (all of the image), ``image`` (absolute path),
            ``negatives`` / ``positives`` (``{"text", "type"}``), ``positive_images``
            (``{"id", "image"}``, absolute paths), ``split``.
        """
        return self._candidates(*self._locate(index))

    def _locate(self, index: int) -> tuple[int, int]:
        """Item ``index`` as (pair row, caption index), the caption drawn when per epoch."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        row, ci = self.items[2 * index], self.items[2 * index + 1]
        if ci < 0:  # drawn per epoch; one caption needs no generator (randrange(1) is 0)
            n = self._captions[row]
            ci = self._rng(self.pairs.keys[row]).randrange(n) if n > 1 else 0
        return row, ci

    def _candidates(self, row: int, ci: int) -> dict[str, Any]:
        """:meth:`candidates` of caption ``ci`` of the pair in ``row``."""
        record, line = self.pairs.read(row)  # checked by PairRecord when indexed
        pair_id, captions = self.pairs.keys[row], record["captions"]
        image = self._resolve(record["image"], self._pairs_dir)
        key = caption_id(pair_id, ci)
        negatives: list[dict[str, Any]] = []
        positives: list[dict[str, Any]] = []
        positive_images: list[dict[str, Any]] = []
        rewrite = self._rewrite(key)
        if rewrite is not None:
            negatives += [
                {"text": n.get("text"), "type": n.get("type")} for n in rewrite.get("negatives", [])
            ]
            if self.sentence_negatives:
                negatives += [
                    {"text": n.get("text"), "type": SENTENCE}
                    for n in rewrite.get("sentence_negatives", [])
                ]
            positives += [
                {"text": p.get("text"), "type": p.get("type")} for p in rewrite.get("positives", [])
            ]
        retrieved = self.retrieved.get(pair_id) if self.retrieved is not None else None
        if retrieved is not None:
            if self.retrieved_negatives:
                negatives += [
                    {"text": n.get("text"), "type": RETRIEVED}
                    for n in retrieved.get("negatives", [])
                ]
            positives += [
                {"text": t.get("text"), "type": RETRIEVED} for t in retrieved.get("texts", [])
            ]
            for found in retrieved.get("images", []):
                if not isinstance(found.get("image"), str):
                    continue
                path = self._resolve(found["image"], self._retrieved_dir)
                if path != image:
                    positive_images.append({"id": str(found.get("id")), "image": path})
        return {
            "id": key,
            "pair_id": pair_id,
            "caption_index": ci,
            "caption": captions[ci],
            "captions": list(captions),
            "image": image,
            "negatives": negatives,
            "positives": positives,
            "positive_images": positive_images,
            "split": record.get("split"),
            "_line": line,
        }

    def __getitem__(self, index: int) -> dict[str, Any]:
        row, ci = self._locate(index)
        key = caption_id(self.pairs.keys[row], ci)
        prepared, line = self._prepared.get(key) or self._prepare(key, row, ci)
        try:
            return self.builder.build(prepared, self._rng(key))
        except OSError as exc:  # a missing or unreadable image file
            raise RecordError(self.pairs_path, line, f"pair {prepared.pair_id}: {exc}") from exc

    def _prepare(self, key: str, row: int, ci: int) -> tuple[PreparedRecord, int]:
        """The prepared candidates of caption ``key`` and its pair's line, kept while the
        record cache has room."""
        record = self._candidates(row, ci)
        found = self.builder.prepare(record), record["_line"]
        if len(self._prepared) < self.record_cache:
            self._prepared[key] = found
        return found

    @property
    def collate(self) -> Callable[[Sequence[Mapping[str, Any]]], dict[str, Any]]:
        """The collate function of this dataset: negatives as (B, K, L) with K =
        ``num_negatives`` and a (B, K) mask (:func:`~unimo_kit.generators.collate_items`)."""
        pad = self.builder.tokenizer.pad_id if self.builder.tokenizer is not None else 0
        return functools.partial(
            collate_items,
            num_negatives=self.builder.num_negatives,
            num_positives=self.builder.num_positives,
            pad_id=pad,
        )
