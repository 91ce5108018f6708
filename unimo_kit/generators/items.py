"""From a caption's candidates to a training item, and from items to a batch.

A *candidate record* is what the generator knows about one caption before sampling: its
caption, image, and every hard negative and positive with its type (the ``json`` member of an
``unimo export`` sample holds exactly this; docs/formats.md). :class:`ItemBuilder` samples
``K`` negatives by a type mix and ``P`` positives from it, loads and transforms the image and
tokenises the texts; :func:`collate_items` stacks items into a batch with negatives as
``(B, K, L)`` and a mask for pairs that have fewer than ``K``.

Negative types are those of ``rewrites.jsonl`` (``replace-obj``, ``swap-att``, ...; see
docs/formats.md) plus :data:`SENTENCE` (the rewrite stage's TF-IDF captions of other images)
and :data:`RETRIEVED` (``retrieved.jsonl`` neighbour captions). Positive types are those of
``rewrites.jsonl`` plus :data:`RETRIEVED` (texts of the text index).
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import get_worker_info

from unimo_kit.data.records import caption_key
from unimo_kit.generators.tokenize import TextTokenizer

#: Type of the rewrite stage's sentence-level negatives (``sentence_negatives``).
SENTENCE = "sentence"
#: Type of what ``unimo index mine`` retrieved (neighbour-caption negatives, related texts).
RETRIEVED = "retrieved"


def choose_by_type(
    candidates: Sequence[Mapping[str, Any]],
    k: int,
    rng: random.Random,
    type_mix: Mapping[str, float] | None = None,
) -> list[Mapping[str, Any]]:
    """Up to ``k`` distinct candidates, the type of each drawn by ``type_mix``.

    Each draw picks a type with probability proportional to its weight among the types that
    still have candidates, then one of that type's candidates uniformly; so with
    ``{"swap-att": 1, "replace-obj": 1}`` a batch holds both kinds about equally however many
    of each the rewrite made.

    Args:
        candidates: dicts with ``text`` and ``type``.
        k: how many to take (fewer when fewer are allowed).
        rng: the item's generator (the same draw for the same seed, epoch and item).
        type_mix: weight per type; types not named (or weighted 0) are never taken.
            ``None``: every type present weighs 1.

    Returns:
        The chosen candidates, in draw order.
    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for c in candidates:
        groups.setdefault(str(c.get("type")), []).append(c)
    return _choose_from_groups(sorted(groups.items()), k, rng, type_mix)


def _choose_from_groups(
    groups: Sequence[tuple[str, Sequence[Any]]],
    k: int,
    rng: random.Random,
    type_mix: Mapping[str, float] | None,
) -> list[Any]:
    """:func:`choose_by_type` over candidates already grouped: ``(type, candidates)`` sorted
    by type, each group non-empty (left as it is: the draw pops from copies)."""
    pools = {t: list(g) for t, g in groups if type_mix is None or float(type_mix.get(t, 0.0)) > 0}
    live = list(pools)  # types that still have candidates, sorted
    alike = type_mix is None or all(float(type_mix[t]) == 1.0 for t in live)
    chosen: list[Any] = []
    while len(chosen) < k and live:
        if alike:
            t = live[_draw_index(rng, len(live), None)]
        else:
            t = live[_draw_index(rng, len(live), [float(type_mix[x]) for x in live])]
        pool = pools[t]
        chosen.append(pool.pop(rng.randrange(len(pool))))
        if not pool:
            live.remove(t)
    return chosen


def _draw_index(rng: random.Random, n: int, weights: Sequence[float] | None) -> int:
    """The index ``rng.choices(range(n), weights=weights)[0]`` draws, from the same one
    ``rng.random()``, without that call's lists: the draw of every item, so it is kept small.

    ``None`` stands for weights all 1.0: the cumulative weights are then the integers 1..n,
    where ``choices``' ``bisect`` lands on ``floor(r * n)`` (clamped to ``n - 1`` as there).
    """
    if weights is None:
        return min(int(rng.random() * n), n - 1)
    cumulative = list(itertools.accumulate(weights))
    return bisect.bisect(cumulative, rng.random() * cumulative[-1], 0, n - 1)


def distinct_texts(
    candidates: Sequence[Mapping[str, Any]], exclude: Sequence[str]
) -> list[Mapping[str, Any]]:
    """Candidates with a non-empty text, the first of each caption (:func:`caption_key`), none
    equal to a text of ``exclude`` (the image's own captions)."""
    seen = {caption_key(t) for t in exclude}
    out = []
    for c in candidates:
        text = c.get("text")
        if not isinstance(text, str) or not text.strip():
            continue
        key = caption_key(text)
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


@dataclass(frozen=True, slots=True)
class PreparedRecord:
    """A candidate record as :meth:`ItemBuilder.prepare` leaves it for :meth:`ItemBuilder.build`."""

    id: Any  # the record's id, pair_id, caption_index, caption and image (path), as they are
    pair_id: Any
    caption_index: Any
    caption: str
    image: Any
    # (type, ((text, type), ...)) sorted by type: the negatives with a distinct text
    negatives: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]
    positives: tuple[tuple[str, str], ...]  # (text, type): the positives with a distinct text
    positive_images: tuple[Mapping[str, Any], ...]  # {"id", "image"} as in the record


@dataclass
class ItemBuilder:
    """Turns a candidate record into a training item (see the module docstring).

    Args:
        transform: applied to the RGB PIL image (``preprocess`` of open_clip, a torchvision
            transform); ``None`` keeps the PIL image.
        tokenizer: a :class:`TextTokenizer`; ``None`` leaves texts untokenised.
        num_negatives: K, hard negatives per item.
        type_mix: weight per negative type (:func:`choose_by_type`); ``None``: all types alike.
        num_positives: P, extra positive texts per item (uniform over the candidates).
        positive_images: retrieved positive images per item (loaded and transformed).
        load_images: read the image files (``False``: items carry the path only).
    """

    transform: Callable[[Any], Any] | None = None
    tokenizer: TextTokenizer | None = None
    num_negatives: int = 4
    type_mix: Mapping[str, float] | None = None
    num_positives: int = 1
    positive_images: int = 0
    load_images: bool = True

    def __post_init__(self) -> None:
        for name in ("num_negatives", "num_positives", "positive_images"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.type_mix is not None:
            bad = {t: w for t, w in self.type_mix.items() if not w >= 0}
            if bad:
                raise ValueError(f"type_mix weights must be >= 0, got {bad}")

    def image(self, source: Any) -> Any:
        """The transformed image of a path, bytes-backed file object or PIL image."""
        from PIL import Image

        if isinstance(source, Image.Image):
            image = source.convert("RGB")
        else:
            with Image.open(source) as opened:
                image = opened.convert("RGB")
        return self.transform(image) if self.transform is not None else image

    def __call__(
        self, record: Mapping[str, Any], rng: random.Random, image: Any = None
    ) -> dict[str, Any]:
        """The item of one candidate record.

        Args:
            record: ``caption``, ``negatives`` / ``positives`` (``{"text", "type"}``),
                ``positive_images`` (``{"id", "image"}``), ``image`` (path), ``id``, and any
                other field (passed through).
            rng: the item's generator.
            image: the image already opened (webdataset bytes); ``None``: read ``record["image"]``.

        Returns:
            ``id``, ``caption``, ``image``, ``negatives`` / ``negative_types`` (≤ K texts),
            ``positives`` / ``positive_types`` (≤ P), ``positive_images`` (transformed), and
            with a tokenizer ``text_ids`` (L,), ``negative_ids`` (k, L), ``positive_ids``
            (p, L) with their ``*_mask`` (bool, True = real token) of one length L.
        """
        return self.build(self.prepare(record), rng, image)

    @staticmethod
    def prepare(record: Mapping[str, Any]) -> PreparedRecord:
        """What an item of ``record`` needs that does not depend on the draw: the negatives
        and positives with a text of their own (:func:`distinct_texts`), the negatives grouped
        by type. Keep it to build many items (epochs) of one record with :meth:`build`."""
        own = [record["caption"], *record.get("captions", [])]
        groups: dict[str, list[tuple[str, str]]] = {}
        for c in distinct_texts(record.get("negatives", []), own):
            kind = str(c.get("type"))
            groups.setdefault(kind, []).append((c["text"], kind))
        positives = distinct_texts(record.get("positives", []), own)
        return PreparedRecord(
            id=record.get("id"),
            pair_id=record.get("pair_id"),
            caption_index=record.get("caption_index"),
            caption=record["caption"],
            image=record.get("image"),
            negatives=tuple((kind, tuple(g)) for kind, g in sorted(groups.items())),
            positives=tuple((p["text"], str(p.get("type"))) for p in positives),
            positive_images=tuple(record.get("positive_images", [])),
        )

    def build(
        self, prepared: PreparedRecord, rng: random.Random, image: Any = None
    ) -> dict[str, Any]:
        """The item of a record made ready by :meth:`prepare`: the same as :meth:`__call__`
        on the record, with the same ``rng``.

        Args:
            prepared: :meth:`prepare` of the candidate record.
            rng: the item's generator.
            image: the image already opened; ``None``: read ``prepared.image``.

        Returns:
            The item (:meth:`__call__`).
        """
        negatives = _choose_from_groups(prepared.negatives, self.num_negatives, rng, self.type_mix)
        pool = prepared.positives
        positives = rng.sample(pool, min(self.num_positives, len(pool)))
        images = prepared.positive_images
        pos_images = rng.sample(images, min(self.positive_images, len(images)))
        item: dict[str, Any] = {
            "id": prepared.id,
            "pair_id": prepared.pair_id,
            "caption_index": prepared.caption_index,
            "caption": prepared.caption,
            "image_path": prepared.image,
            "negatives": [text for text, _ in negatives],
            "negative_types": [kind for _, kind in negatives],
            "positives": [text for text, _ in positives],
            "positive_types": [kind for _, kind in positives],
        }
        if self.load_images:
            item["image"] = self.image(image if image is not None else prepared.image)
            item["positive_images"] = [self.image(p["image"]) for p in pos_images]
        else:
            item["positive_images"] = [p["image"] for p in pos_images]
        if self.tokenizer is not None:
            texts = [item["caption"], *item["negatives"], *item["positives"]]
            ids, mask = self.tokenizer(texts)  # (1 + k + p, L)
            k = len(item["negatives"])
            item["text_ids"], item["text_mask"] = ids[0], mask[0]  # (L,)
            item["negative_ids"], item["negative_mask"] = ids[1 : 1 + k], mask[1 : 1 + k]
            item["positive_ids"], item["positive_mask"] = ids[1 + k :], mask[1 + k :]
        return item


#: The token tensors of a tokenised item.
_TOKEN_KEYS = (
    "text_ids",
    "text_mask",
    "negative_ids",
    "negative_mask",
    "positive_ids",
    "positive_mask",
)


#: The batch's token tensors, packed into one buffer in DataLoader workers (:func:`_pack`).
_BATCH_TOKEN_KEYS = (
    "texts",
    "text_mask",
    "negatives",
    "negative_token_mask",
    "negatives_mask",
    "positives",
    "positive_token_mask",
    "positives_mask",
)


def _pack(batch: dict[str, Any], keys: Sequence[str]) -> None:
    """Replace ``batch[key]`` for ``keys`` by the same tensors as views of one shared-memory
    buffer (each contiguous, 64-byte aligned).

    A DataLoader worker sends each tensor's storage to the main process on its own (a
    shared-memory segment made, its descriptor passed and mapped): eight small token tensors
    cost several times what their bytes do. In one storage they go as one, as
    ``default_collate`` puts each stacked output in shared memory for the same reason.
    """
    tensors = [batch[key] for key in keys]
    starts, total = [], 0
    for t in tensors:
        starts.append(total)
        total += -(-t.numel() * t.element_size() // 64) * 64
    storage = torch.UntypedStorage._new_shared(max(total, 1))
    buffer = torch.empty(0, dtype=torch.uint8).set_(storage)  # (total,) bytes
    for key, t, start in zip(keys, tensors, starts, strict=True):
        size = t.numel() * t.element_size()
        view = buffer[start : start + size].view(t.dtype).view(t.shape)
        batch[key] = view.copy_(t)


def _pad_columns(
    rows: list[Tensor], masks: list[Tensor], width: int, length: int, pad_id: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Each item's ``(k_i, l_i)`` ids and token mask as ``(B, width, L)`` ids, ``(B, width, L)``
    token mask and ``(B, width)`` column mask (True = a real column), cut to ``width``."""
    b = len(rows)
    counts = [x.shape[0] for x in rows]
    if max(counts) > width:
        rows, masks = [x[:width] for x in rows], [m[:width] for m in masks]
        counts = [min(n, width) for n in counts]
    if all(x.shape[1] == length for x in rows):  # one length (open_clip): a few ops per batch
        if min(counts) == width:  # every item has all its columns
            columns = torch.ones((b, width), dtype=torch.bool)  # (B, K)
            return torch.stack(rows), torch.stack(masks), columns
        columns = torch.arange(width) < torch.tensor(counts).unsqueeze(1)  # (B, K)
        ids = torch.full((b, width, length), pad_id, dtype=torch.long)  # (B, K, L)
        tokens = torch.zeros((b, width, length), dtype=torch.bool)  # (B, K, L)
        if any(counts):  # the real columns, row-major: each item's first k_i
            ids[columns], tokens[columns] = torch.cat(rows), torch.cat(masks)
        return ids, tokens, columns
    ids = torch.full((b, width, length), pad_id, dtype=torch.long)  # (B, K, L)
    tokens = torch.zeros((b, width, length), dtype=torch.bool)  # (B, K, L)
    columns = torch.zeros((b, width), dtype=torch.bool)  # (B, K)
    for i, (x, m) in enumerate(zip(rows, masks, strict=True)):  # (k, l)
        ids[i, : x.shape[0], : x.shape[1]] = x
        tokens[i, : m.shape[0], : m.shape[1]] = m
        columns[i, : x.shape[0]] = True
    return ids, tokens, columns


def collate_items(
    items: Sequence[Mapping[str, Any]],
    *,
    num_negatives: int | None = None,
    num_positives: int | None = None,
    pad_id: int = 0,
) -> dict[str, Any]:
    """Stack items of :class:`ItemBuilder` into a batch.

    Args:
        items: the batch's items.
        num_negatives: K, the negatives axis (``None``: the most any item has). Fixed K keeps
            shapes static across batches.
        num_positives: P, likewise for positive texts.
        pad_id: padding id of the token tensors (open_clip: 0; Hugging Face: its pad id).

    Returns:
        ``ids``, ``captions``, ``negative_texts``, ``negative_types``, ``positive_texts`` (lists);
        ``images`` (B, C, H, W) when the transform gives tensors (else a list);
        ``positive_images`` (B, Q, C, H, W) and ``positive_images_mask`` (B, Q) when items
        have them; with tokenised items ``texts`` (B, L), ``text_mask`` (B, L), ``negatives``
        (B, K, L), ``negative_token_mask`` (B, K, L), ``negatives_mask`` (B, K) (True = a real
        negative), ``positives`` (B, P, L), ``positive_token_mask``, ``positives_mask`` (B, P).
    """
    if not items:
        raise ValueError("cannot collate an empty batch")
    batch: dict[str, Any] = {
        "ids": [it["id"] for it in items],
        "captions": [it["caption"] for it in items],
        "negative_texts": [list(it["negatives"]) for it in items],
        "negative_types": [list(it["negative_types"]) for it in items],
        "positive_texts": [list(it["positives"]) for it in items],
    }
    if "image" in items[0]:
        images = [it["image"] for it in items]
        batch["images"] = torch.stack(images) if torch.is_tensor(images[0]) else images
    pos_images = [it.get("positive_images", []) for it in items]
    q = max(len(p) for p in pos_images)
    if q and all(torch.is_tensor(x) for p in pos_images for x in p):
        like = next(x for p in pos_images for x in p)
        stacked = like.new_zeros((len(items), q, *like.shape))  # (B, Q, C, H, W)
        mask = torch.zeros((len(items), q), dtype=torch.bool)  # (B, Q)
        for i, p in enumerate(pos_images):
            for j, x in enumerate(p):
                stacked[i, j], mask[i, j] = x, True
        batch["positive_images"], batch["positive_images_mask"] = stacked, mask
    elif q:
        batch["positive_images"] = pos_images
    if "text_ids" in items[0]:
        col = {key: [it[key] for it in items] for key in _TOKEN_KEYS}
        texts, text_masks = col["text_ids"], col["text_mask"]
        negs, neg_masks = col["negative_ids"], col["negative_mask"]
        poss, pos_masks = col["positive_ids"], col["positive_mask"]
        length = max(x.shape[-1] for rows in (texts, negs, poss) for x in rows)
        if num_negatives is None:
            num_negatives = max(len(it["negatives"]) for it in items)
        if num_positives is None:
            num_positives = max(len(it["positives"]) for it in items)
        if all(x.shape[-1] == length for x in texts):
            batch["texts"] = torch.stack(texts)  # (B, L)
            batch["text_mask"] = torch.stack(text_masks)  # (B, L)
        else:
            batch["texts"] = torch.full((len(items), length), pad_id, dtype=torch.long)  # (B, L)
            batch["text_mask"] = torch.zeros((len(items), length), dtype=torch.bool)  # (B, L)
            for i, (x, m) in enumerate(zip(texts, text_masks, strict=True)):
                batch["texts"][i, : x.shape[-1]], batch["text_mask"][i, : m.shape[-1]] = x, m
        (batch["negatives"], batch["negative_token_mask"], batch["negatives_mask"]) = _pad_columns(
            negs, neg_masks, num_negatives, length, pad_id
        )
        (batch["positives"], batch["positive_token_mask"], batch["positives_mask"]) = _pad_columns(
            poss, pos_masks, num_positives, length, pad_id
        )
        if get_worker_info() is not None:  # the batch goes to the main process
            _pack(batch, _BATCH_TOKEN_KEYS)
    return batch


def flatten_columns(columns: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """The real rows of a ``(B, K, ...)`` column tensor and the pair each belongs to.

    Args:
        columns: (B, K, ...) e.g. ``batch["negatives"]`` (B, K, L).
        mask: (B, K) bool, e.g. ``batch["negatives_mask"]``.

    Returns:
        ``rows`` (H, ...) and ``owner`` (H,) long in ``[0, B)``: the form of
        :class:`unimo_kit.model.losses.CMCLLoss`'s ``neg_text_features`` / ``neg_text_owner``.
    """
    owner = mask.nonzero(as_tuple=True)[0]  # (H,)
    return columns[mask], owner
