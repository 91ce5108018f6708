"""Training data: image-text pairs, text-only and image-only records mixed per step, with
rewritten / retrieved positives and hard negatives, collated to the training-batch contract.

Every step draws ``batch_pairs`` pairs, ``batch_texts`` texts and ``batch_images`` images (the
mixing ratio). Each kind has its own :class:`EpochSampler`: a fresh permutation per epoch
(seeded by ``seed`` and the epoch), cut into equal per-rank slices, read in batches; its state
is ``(epoch, index)``, so a resumed run continues from the same batch. Everything an item draws
(which caption of an image, which positives and negatives) comes from
``derive_seed(seed, kind, epoch, record id)``, so items do not depend on workers, timing or how
a batch is split over processes.

Files are read lazily: JSONL files are indexed once by byte offset (8 bytes per line in memory)
and lines are decoded when an item is built; visual tokens come from the memory-mapped
:class:`~unimo_kit.features.FeatureStore`.
"""

from __future__ import annotations

import json
import os
import random
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from unimo_kit.data.records import ImageRecord, PairRecord, TextRecord, caption_id, caption_key
from unimo_kit.features import FeatureStore
from unimo_kit.rewrite.positives import GRAPH_POSITIVE_TYPES
from unimo_kit.train.config import TrainConfig
from unimo_kit.train.mirror import mirror_boxes, mirror_text, mirror_words
from unimo_kit.utils import ErrorReport, RecordError, derive_seed, load_line

KINDS = ("pairs", "texts", "images")


# ----------------------------------------------------------------------------- lazy JSONL


class JsonlLines:
    """Byte offsets of selected lines of a JSONL file, read back on demand.

    Args:
        path: the JSONL file.
        keep: called with each decoded record (and its line number); return a key to keep the
            line under that key, ``None`` to drop it. Raise :class:`RecordError` to report it.
        on_error: receives malformed lines (default: warnings on stderr).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        keep: Callable[[dict[str, Any], int], str | None],
        on_error: ErrorReport | None = None,
    ):
        self.path = Path(path)
        self.offsets = array("q")
        self.lines = array("q")
        self.keys: list[str] = []
        report = on_error if on_error is not None else ErrorReport()
        offset = 0
        with open(self.path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                start, offset = offset, offset + len(raw)
                if not raw.strip():
                    continue
                try:
                    # not UTF-8, not JSON, a lone surrogate: RecordError naming the line
                    record = load_line(self.path, number, raw)
                    if not isinstance(record, dict):
                        raise RecordError(self.path, number, "expected a JSON object")
                    key = keep(record, number)
                except RecordError as exc:
                    report(exc)
                    continue
                if key is not None:
                    self.offsets.append(start)
                    self.lines.append(number)
                    self.keys.append(key)
        self.index = {key: i for i, key in enumerate(self.keys)}
        self._handle = None
        self._handle_pid: int | None = None

    def __len__(self) -> int:
        return len(self.offsets)

    def read(self, i: int) -> tuple[dict[str, Any], int]:
        """The ``i``-th kept record and its line number."""
        if self._handle is None or self._handle_pid != os.getpid():
            # One handle per process: one inherited through a DataLoader fork would share its
            # file offset with the parent and the other workers (cut lines).
            self._handle = open(self.path, "rb")  # noqa: SIM115 (kept open, dropped on pickle)
            self._handle_pid = os.getpid()
        self._handle.seek(self.offsets[i])
        return json.loads(self._handle.readline()), self.lines[i]

    def get(self, key: str) -> dict[str, Any] | None:
        """The record kept under ``key``, or ``None``."""
        i = self.index.get(key)
        return None if i is None else self.read(i)[0]

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_handle": None}


# ----------------------------------------------------------------------------- sampler


@dataclass
class EpochSampler:
    """Batches of indices in ``[0, n)``: a seeded permutation per epoch, split across ranks.

    Rank ``r`` of ``w`` reads ``perm[r::w]`` cut to equal length, in batches of ``batch_size``
    (the last incomplete batch of an epoch is dropped). State: ``epoch`` and ``index`` (the
    position within this rank's slice).
    """

    n: int
    batch_size: int
    seed: int
    kind: str
    rank: int = 0
    world_size: int = 1
    epoch: int = 0
    index: int = 0

    def __post_init__(self) -> None:
        self.per_rank = self.n // self.world_size
        if self.batch_size and self.per_rank < self.batch_size:
            raise ValueError(
                f"{self.kind}: {self.n} usable records cannot fill batches of {self.batch_size} "
                f"on {self.world_size} process(es); lower batch_{self.kind}, or check `split` "
                "and that the features store holds these images"
            )
        self._perm_epoch = -1
        self._perm: np.ndarray | None = None

    def _slice(self, epoch: int) -> np.ndarray:
        if self._perm_epoch != epoch:
            rng = np.random.default_rng(derive_seed(self.seed, "sampler", self.kind, epoch))
            perm = rng.permutation(self.n)
            self._perm = perm[self.rank :: self.world_size][: self.per_rank]
            self._perm_epoch = epoch
        return self._perm

    def next_batch(self) -> list[tuple[int, int, int]]:
        """The next batch as ``(record index, epoch, position)`` triples; advances the state."""
        if self.index + self.batch_size > self.per_rank:
            self.epoch, self.index = self.epoch + 1, 0
        order = self._slice(self.epoch)
        batch = [
            (int(order[p]), self.epoch, p) for p in range(self.index, self.index + self.batch_size)
        ]
        self.index += self.batch_size
        return batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "index": self.index}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.index = int(state["epoch"]), int(state["index"])


class StepSampler:
    """What each micro-step loads: one batch of each kind with a non-zero batch size.

    Iterating yields ``{"pairs": [...], "texts": [...], "images": [...]}`` forever; the state of
    every kind's :class:`EpochSampler` is in :meth:`state_dict`. Used as a DataLoader sampler
    with ``batch_size=None``; the trainer advances a copy of the state by one per batch it
    consumes (DataLoader workers read ahead).
    """

    def __init__(self, samplers: dict[str, EpochSampler]):
        self.samplers = samplers

    def __iter__(self) -> Iterator[dict[str, list[tuple[int, int, int]]]]:
        while True:
            yield self.next_spec()

    def next_spec(self) -> dict[str, list[tuple[int, int, int]]]:
        return {kind: s.next_batch() for kind, s in self.samplers.items()}

    def state_dict(self) -> dict[str, dict[str, int]]:
        return {kind: s.state_dict() for kind, s in self.samplers.items()}

    def load_state_dict(self, state: dict[str, dict[str, int]]) -> None:
        for kind, s in self.samplers.items():
            if kind in state:
                s.load_state_dict(state[kind])


# ----------------------------------------------------------------------------- dataset


class OnTheFlyRewrites:
    """Rewrites made while training (no ``rewrites.jsonl``): the rewrite stage's
    :class:`~unimo_kit.rewrite.RewriteDataset` over the pairs file, asked per caption.

    Epoch 0 gives the negatives ``unimo rewrite`` would write with the same seed; later epochs
    draw fresh ones. Building it parses every caption once (spaCy) for the vocabulary.

    Args:
        pairs: the pairs.jsonl of the run.
        seed: the rewriter's seed.
    """

    def __init__(self, pairs: str | os.PathLike, seed: int = 0):
        from unimo_kit.rewrite import RewriteDataset

        self.dataset = RewriteDataset(pairs, seed=seed, positives=True)
        self.index = {item_id: i for i, (item_id, _) in enumerate(self.dataset.items)}

    def get(self, key: str, epoch: int) -> dict[str, Any] | None:
        """A rewrites.jsonl-shaped record for caption ``key`` (``"<pair_id>#<index>"``)."""
        i = self.index.get(key)
        if i is None:
            return None
        self.dataset.set_epoch(epoch)
        item = self.dataset[i]
        return {
            "positives": [
                {"text": t, "type": k}
                for t, k in zip(item["positives"], item["positive_types"], strict=True)
            ],
            "negatives": [
                {"text": t, "type": k}
                for t, k in zip(item["negatives"], item["negative_types"], strict=True)
            ],
            "sentence_negatives": [],
        }


class UnimoTrainData(torch.utils.data.Dataset):
    """Builds and collates one micro-batch from a :class:`StepSampler` spec.

    Args:
        config: the run's :class:`TrainConfig` (paths, batch sizes, which extras to use).
        tokenizer: a HF fast tokenizer (``load_tokenizer(model.config)``).
        on_the_fly: rewrites for runs without a rewrites file (default: an
            :class:`OnTheFlyRewrites` when ``rewrite_on_the_fly`` and rewritten negatives or
            positives are asked for).
        on_error: receives malformed input lines.
    """

    def __init__(
        self,
        config: TrainConfig,
        tokenizer: Any,
        on_the_fly: OnTheFlyRewrites | None = None,
        on_error: ErrorReport | None = None,
    ):
        self.config = c = config
        self.tokenizer = tokenizer
        report = on_error if on_error is not None else ErrorReport()
        _check_paths(c)
        self.without_features = {"pairs": 0, "images": 0}  # records skipped: no visual tokens
        self.store = FeatureStore(c.features) if c.features else None
        needs_visual = c.batch_pairs or c.batch_images
        if needs_visual and self.store is None:
            raise ValueError("training on pairs or images needs `features` (a features store)")
        self.pairs = self.texts = self.images = None
        if c.batch_pairs:
            if not c.pairs:
                raise ValueError("batch_pairs > 0 needs `pairs`")
            self.pairs = JsonlLines(c.pairs, self._keep_pair, report)
        if c.batch_texts:
            if not c.texts:
                raise ValueError("batch_texts > 0 needs `texts`")
            self.texts = JsonlLines(c.texts, self._keep_text, report)
        if c.batch_images:
            if not c.images:
                raise ValueError("batch_images > 0 needs `images`")
            self.images = JsonlLines(c.images, self._keep_image, report)
        # (paraphrase reads rewrites too; it needs rewrite_negatives, so it is covered)
        want_rewrites = (
            c.rewrite_negatives or c.rewrite_positives or c.sentence_negatives_from("rewrites")
        )
        self.rewrites = (
            JsonlLines(c.rewrites, lambda r, _: str(r.get("id")), report)
            if c.rewrites and want_rewrites
            else None
        )
        want_retrieved = c.retrieval_positives or c.sentence_negatives_from("retrieved")
        self.retrieved = (
            JsonlLines(c.retrieved, lambda r, _: str(r.get("id")), report)
            if c.retrieved and want_retrieved
            else None
        )
        if (
            on_the_fly is None
            and c.pairs
            and c.batch_pairs
            and not c.rewrites
            and c.rewrite_on_the_fly
            and (c.rewrite_negatives or c.rewrite_positives)
        ):
            on_the_fly = OnTheFlyRewrites(c.pairs, seed=c.seed)
        self.on_the_fly = on_the_fly if self.rewrites is None else None
        self.skipped = report

    # --- index building: keep only records usable for training ---

    def _keep_pair(self, record: dict[str, Any], line: int) -> str | None:
        if self.config.split and record.get("split") != self.config.split:
            return None
        pair = PairRecord.from_dict(record, path=self.config.pairs, line=line)
        if pair.id not in self.store:
            self.without_features["pairs"] += 1
            return None
        return pair.id

    def _keep_text(self, record: dict[str, Any], line: int) -> str:
        return TextRecord.from_dict(record, path=self.config.texts, line=line).id

    def _keep_image(self, record: dict[str, Any], line: int) -> str | None:
        image = ImageRecord.from_dict(record, path=self.config.images, line=line)
        if image.id not in self.store:
            self.without_features["images"] += 1
            return None
        return image.id

    def sizes(self) -> dict[str, int]:
        """Records available per kind (pairs with features, texts, images with features)."""
        return {k: len(getattr(self, k)) for k in KINDS if getattr(self, k) is not None}

    def make_sampler(self, rank: int = 0, world_size: int = 1) -> StepSampler:
        c = self.config
        batch = {"pairs": c.batch_pairs, "texts": c.batch_texts, "images": c.batch_images}
        return StepSampler(
            {
                kind: EpochSampler(n, batch[kind], c.seed, kind, rank, world_size)
                for kind, n in self.sizes().items()
                if batch[kind]
            }
        )

    # --- items ---

    def _visual(self, image_id: str) -> dict[str, np.ndarray | None]:
        item = self.store[image_id]
        if self.config.max_visual_tokens:
            item = crop_visual(item, self.config.max_visual_tokens)
        return item

    def _pair_item(self, index: int, epoch: int, position: int) -> dict[str, Any]:
        c = self.config
        record, line = self.pairs.read(index)
        pair = PairRecord.from_dict(record, path=c.pairs, line=line)
        # Seeded by the epoch and the pair only (not the position), so a pair's draw is the
        # same however the batch is split over processes.
        rng = random.Random(derive_seed(c.seed, "pairs", epoch, pair.id))
        ci = rng.randrange(len(pair.captions))
        item: dict[str, Any] = {
            "image_id": pair.id,
            "image_index": index,  # position among the training pairs: the same on every rank
            "text": pair.captions[ci],
            "visual": self._visual(pair.id),
            "pos_texts": [],
            "pos_images": [],
            "neg_texts": [],
            "para_texts": [],
        }
        key = caption_id(pair.id, ci)
        rewrite = None
        if self.rewrites is not None:
            rewrite = self.rewrites.get(key)
        elif self.on_the_fly is not None:
            rewrite = self.on_the_fly.get(key, epoch)
        retrieved = self.retrieved.get(pair.id) if self.retrieved is not None else None
        pos_texts: list[str] = []
        neg_texts: list[str] = []
        pos_image_ids: list[str] = []
        if rewrite is not None:
            if c.rewrite_positives:
                pos_texts += [p["text"] for p in rewrite.get("positives", [])]
            if c.rewrite_negatives:
                neg_texts += [
                    n["text"]
                    for n in rewrite.get("negatives", [])
                    if c.negative_types is None or n.get("type") in c.negative_types
                ]
            if c.sentence_negatives_from("rewrites"):
                neg_texts += self._sentence_negatives(
                    rewrite.get("sentence_negatives", []), item["text"]
                )
        if retrieved is not None:
            if c.retrieval_positives:
                pos_texts += [t["text"] for t in retrieved.get("texts", [])]
                pos_image_ids += [i["id"] for i in retrieved.get("images", [])]
            if c.sentence_negatives_from("retrieved"):
                neg_texts += self._sentence_negatives(retrieved.get("negatives", []), item["text"])
        # Texts identical to the caption are neither extra positives nor negatives.
        own = {caption_key(caption) for caption in pair.captions}
        pos_texts = [t for t in dict.fromkeys(pos_texts) if caption_key(t) not in own]
        neg_texts = [t for t in dict.fromkeys(neg_texts) if caption_key(t) not in own]
        pos_image_ids = [
            i for i in dict.fromkeys(pos_image_ids) if i in self.store and i != pair.id
        ]
        item["pos_texts"] = _sample(rng, pos_texts, c.pos_texts_per_pair)
        item["neg_texts"] = _sample(rng, neg_texts, c.neg_texts_per_pair)
        item["pos_images"] = [
            self._visual(i) for i in _sample(rng, pos_image_ids, c.pos_images_per_pair)
        ]
        if c.paraphrase and rewrite is not None and item["neg_texts"]:
            # Meaning-preserving rewrites of this very caption (not other captions of the image).
            paraphrases = [
                p["text"]
                for p in rewrite.get("positives", [])
                if p.get("type") in GRAPH_POSITIVE_TYPES and caption_key(p["text"]) not in own
            ]
            item["para_texts"] = _sample(rng, list(dict.fromkeys(paraphrases)), 1)
        if c.mirror_horizontal or c.mirror_vertical:  # drawn last: the draws above stay
            self._mirror(item, rng)
        return item

    def _mirror(self, item: dict[str, Any], rng: random.Random) -> None:
        """Maybe show the pair mirrored: its boxes and the spatial words of its caption,
        positives and negatives (:mod:`unimo_kit.train.mirror`)."""
        horizontal = rng.random() < self.config.mirror_horizontal
        vertical = rng.random() < self.config.mirror_vertical
        boxes = item["visual"].get("boxes")
        if not (horizontal or vertical) or boxes is None:
            return
        item["visual"] = {
            **item["visual"],
            "boxes": mirror_boxes(boxes, horizontal=horizontal, vertical=vertical),
        }
        words = mirror_words(horizontal=horizontal, vertical=vertical)
        item["text"] = text = mirror_text(item["text"], words)
        item["pos_texts"] = [mirror_text(t, words) for t in item["pos_texts"]]
        item["para_texts"] = [mirror_text(t, words) for t in item["para_texts"]]
        negatives = (mirror_text(t, words) for t in item["neg_texts"])
        item["neg_texts"] = [t for t in negatives if caption_key(t) != caption_key(text)]

    def _sentence_negatives(self, negatives: list[dict[str, Any]], caption: str) -> list[str]:
        """Texts of sentence-level negatives; with ``sentence_negative_length_gap`` only those
        within that many words of the caption (negatives proven false are mostly long ones,
        and length alone then tells them apart: docs/RESULTS.md)."""
        gap = self.config.sentence_negative_length_gap
        if gap is None:
            return [n["text"] for n in negatives]
        words = len(caption.split())
        return [n["text"] for n in negatives if abs(len(n["text"].split()) - words) <= gap]

    def __getitem__(self, spec: dict[str, list[tuple[int, int, int]]]) -> dict[str, Tensor]:
        """Build the batch for a :class:`StepSampler` spec."""
        pairs = [self._pair_item(*x) for x in spec.get("pairs", [])]
        texts = []
        for index, _, _ in spec.get("texts", []):
            record, line = self.texts.read(index)
            texts.append(TextRecord.from_dict(record, path=self.config.texts, line=line).text)
        images = [self._visual(self.images.keys[index]) for index, _, _ in spec.get("images", [])]
        return self.collate(pairs, texts, images)

    # --- collation to the training-batch contract (docs/model.md) ---

    def _tokenize(self, texts: list[str]) -> tuple[Tensor, Tensor]:
        enc = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.config.max_text_length,
            return_tensors="pt",
        )
        return enc["input_ids"], enc["attention_mask"]  # (B, T), (B, T)

    def collate(
        self,
        pairs: list[dict[str, Any]],
        texts: list[str],
        images: list[dict[str, np.ndarray | None]],
    ) -> dict[str, Tensor]:
        """Tokenise and pad one micro-batch into the tensors of the batch contract."""
        batch: dict[str, Tensor] = {}
        if pairs:
            # Global ids (equal across processes), so gathered CMCL never mistakes two images.
            batch["pair_image_ids"] = torch.tensor([p["image_index"] for p in pairs])  # (B_p,)
            batch["text_input_ids"], batch["text_attention_mask"] = self._tokenize(
                [p["text"] for p in pairs]
            )
            batch.update(pad_visual([p["visual"] for p in pairs], "visual"))
            text_groups = (
                ("pos_text", "pos_texts"),
                ("neg_text", "neg_texts"),
                ("para_text", "para_texts"),
            )
            for group, key in text_groups:
                owners = [k for k, p in enumerate(pairs) for _ in p[key]]
                if owners:
                    ids_, mask = self._tokenize([t for p in pairs for t in p[key]])
                    batch[f"{group}_input_ids"], batch[f"{group}_attention_mask"] = ids_, mask
                    batch[f"{group}_owner"] = torch.tensor(owners)  # (P_t,) or (H,)
            owners = [k for k, p in enumerate(pairs) for _ in p["pos_images"]]
            if owners:
                batch.update(pad_visual([v for p in pairs for v in p["pos_images"]], "pos_visual"))
                batch["pos_visual_owner"] = torch.tensor(owners)  # (P_v,)
        if texts:
            batch["textonly_input_ids"], batch["textonly_attention_mask"] = self._tokenize(texts)
        if images:
            batch.update(pad_visual(images, "imageonly_visual"))
        return batch


def corpus_texts(config: TrainConfig) -> Iterator[str]:
    """Every text a run may tokenize, from its input files (``vocab = "corpus"``).

    The captions of the pairs (of ``split``; of every split when rewrites are made on the fly,
    whose replacement words come from all of them), of ``val_pairs``, the text-only corpus,
    the captions, positives, hard negatives and sentence negatives of ``rewrites``, the
    retrieved texts and mined negatives of ``retrieved``, and with mirroring on the words it
    swaps in. Lines that do not parse are skipped here (training reports them). Texts a run
    makes while it trains (on-the-fly rewrites) are not listed: their words come from the
    captions, and a word outside the corpus still tokenizes, spelt in single characters.

    Args:
        config: the run's config, paths resolved (:meth:`TrainConfig.resolved`).

    Yields:
        Texts, file by file in a fixed order (the same config gives the same stream).
    """
    c = config
    on_the_fly = c.rewrite_on_the_fly and not c.rewrites
    if c.pairs:
        for record in _records(c.pairs):
            if on_the_fly or not c.split or record.get("split") == c.split:
                yield from _strings(record.get("captions"))
    if c.val_pairs:
        for record in _records(c.val_pairs):
            yield from _strings(record.get("captions"))
    if c.texts:
        for record in _records(c.texts):
            yield from _strings([record.get("text")])
    if c.rewrites:
        for record in _records(c.rewrites):
            yield from _strings([record.get("caption")])
            for key in ("positives", "negatives", "sentence_negatives"):
                yield from _strings(_texts_of(record.get(key)))
    if c.retrieved:
        for record in _records(c.retrieved):
            for key in ("texts", "negatives"):
                yield from _strings(_texts_of(record.get(key)))
    if c.mirror_horizontal or c.mirror_vertical:
        words = mirror_words(horizontal=c.mirror_horizontal > 0, vertical=c.mirror_vertical > 0)
        yield from sorted({*words, *words.values()})


def _records(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSONL file, lines that do not parse skipped."""
    with open(path, "rb") as handle:
        for raw in handle:
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if isinstance(record, dict):
                yield record


def _texts_of(entries: Any) -> list[Any]:
    """The ``text`` of each entry of a list of ``{"text": ...}`` objects."""
    if not isinstance(entries, list):
        return []
    return [e.get("text") for e in entries if isinstance(e, dict)]


def _strings(values: Any) -> Iterator[str]:
    """The strings of a list (other values skipped)."""
    if isinstance(values, list):
        yield from (v for v in values if isinstance(v, str))


def _check_paths(c: TrainConfig) -> None:
    """Every input the config switches on exists (one message naming what is missing)."""
    wanted = {
        "pairs": c.batch_pairs > 0,
        "texts": c.batch_texts > 0,
        "images": c.batch_images > 0,
        "features": c.batch_pairs > 0 or c.batch_images > 0,
        "val_pairs": True,
        "rewrites": c.rewrite_negatives
        or c.rewrite_positives
        or c.sentence_negatives_from("rewrites"),
        "retrieved": c.retrieval_positives or c.sentence_negatives_from("retrieved"),
    }
    missing = [
        f"{name}={getattr(c, name)}"
        for name, used in wanted.items()
        if used and getattr(c, name) and not os.path.exists(getattr(c, name))
    ]
    if missing:
        raise FileNotFoundError(
            f"training inputs not found: {', '.join(missing)}; make them with the earlier "
            "stages (docs/train.md) or switch them off (e.g. --set retrieved=null)"
        )


def _sample(rng: random.Random, items: list, k: int) -> list:
    return items if len(items) <= k else rng.sample(items, k)


def crop_visual(
    item: dict[str, np.ndarray | None], max_tokens: int
) -> dict[str, np.ndarray | None]:
    """The first ``max_tokens`` visual tokens of a features store item
    (``TrainConfig.max_visual_tokens``)."""
    return {k: None if v is None else v[:max_tokens] for k, v in item.items()}


def pad_visual(items: list[dict[str, np.ndarray | None]], prefix: str) -> dict[str, Tensor]:
    """Stack per-image tokens, right-padded to the longest.

    Returns:
        ``{prefix}_feats`` (B, N, F) float32, ``{prefix}_boxes`` (B, N, 5),
        ``{prefix}_mask`` (B, N) long (1 = real token), and ``{prefix}_class_probs``
        (B, N, C) when every item has class probabilities.
    """
    n = max(len(item["feats"]) for item in items)
    b, f = len(items), items[0]["feats"].shape[1]
    # Filled in numpy, handed to torch once (many small torch copies cost more than the data).
    feats = np.zeros((b, n, f), np.float32)  # (B, N, F)
    boxes = np.zeros((b, n, 5), np.float32)  # (B, N, 5)
    mask = np.zeros((b, n), np.int64)  # (B, N)
    with_probs = all(item.get("class_probs") is not None for item in items)
    probs = np.zeros((b, n, items[0]["class_probs"].shape[1]), np.float32) if with_probs else None
    for k, item in enumerate(items):
        m = len(item["feats"])
        feats[k, :m] = item["feats"]
        boxes[k, :m] = item["boxes"]
        mask[k, :m] = 1
        if probs is not None:
            probs[k, :m] = item["class_probs"]
    feats, boxes, mask = torch.from_numpy(feats), torch.from_numpy(boxes), torch.from_numpy(mask)
    out = {f"{prefix}_feats": feats, f"{prefix}_boxes": boxes, f"{prefix}_mask": mask}
    if probs is not None:
        out[f"{prefix}_class_probs"] = torch.from_numpy(probs)
    return out
