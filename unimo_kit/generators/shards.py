"""Iterable datasets split over DataLoader workers and distributed ranks.

- :class:`ShardedIterable` walks a map-style dataset (a
  :class:`~unimo_kit.generators.HardNegativeDataset`) in a seeded per-epoch order, each
  (rank, worker) slot reading every ``n_slots``-th index: no index twice, none lost.
- :class:`WebDatasetHardNegatives` reads the tar shards of ``unimo export`` (docs/formats.md,
  "Exported webdataset shards") and samples each sample's negatives again by type mix; shards
  are dealt to slots when there are at least as many shards as slots, else samples are.

Rank and world size come from the arguments, else from an initialised ``torch.distributed``
group, else a single process (which never touches ``torch.distributed``).
"""

from __future__ import annotations

import io
import json
import os
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset

from unimo_kit.generators.items import ItemBuilder, collate_items
from unimo_kit.generators.tokenize import TOKEN_CACHE, TokenizerLike, as_tokenizer
from unimo_kit.utils import derive_seed

PathLike = str | os.PathLike


def rank_and_world(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """``(rank, world_size)`` as given, else of the initialised process group, else ``(0, 1)``."""
    if rank is not None and world_size is not None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, {world_size})")
        return rank, world_size
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def worker_and_workers() -> tuple[int, int]:
    """``(worker id, number of workers)`` of this DataLoader worker (``(0, 1)`` outside one)."""
    info = torch.utils.data.get_worker_info()
    return (info.id, info.num_workers) if info is not None else (0, 1)


def current_slot(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """``(slot, n_slots)`` of this DataLoader worker on this rank: ``rank * workers + worker``
    of ``world_size * workers``."""
    rank, world_size = rank_and_world(rank, world_size)
    worker, workers = worker_and_workers()
    return rank * workers + worker, world_size * workers


class ShardedIterable(IterableDataset):
    """A map-style dataset as an iterable split over ranks and workers.

    Args:
        dataset: any map-style dataset; ``set_epoch`` is called on it when it has one.
        shuffle: a seeded permutation per epoch (``False``: index order).
        seed: the permutation's seed.
        rank, world_size: this process in a distributed run (default: from
            ``torch.distributed`` when initialised, else 0 of 1).
        even: cut every rank to ``len(dataset) // world_size`` items, so that ranks take the
            same number of steps (DDP needs this); the remainder of each epoch is skipped.
            ``False`` (default): every item exactly once per epoch, ranks may differ by one.

    Call :meth:`set_epoch` before each epoch (or pass ``persistent_workers=False``).
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        shuffle: bool = True,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        even: bool = False,
    ):
        self.dataset = dataset
        self.shuffle = shuffle
        self.seed = seed
        self.rank, self.world_size = rank, world_size
        self.even = even
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """The order (and the dataset's draws) of ``epoch``."""
        self.epoch = int(epoch)

    def indices(self) -> list[int]:
        """The indices this worker of this rank reads in the current epoch."""
        n = len(self.dataset)  # type: ignore[arg-type]
        order = (
            np.random.default_rng(derive_seed(self.seed, "shuffle", self.epoch)).permutation(n)
            if self.shuffle
            else np.arange(n)
        )
        rank, world = rank_and_world(self.rank, self.world_size)
        worker, workers = worker_and_workers()
        if self.even:
            order = order[: (n // world) * world]
        return [int(i) for i in order[rank::world][worker::workers]]

    def __iter__(self) -> Iterator[Any]:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(self.epoch)
        for i in self.indices():
            yield self.dataset[i]


class WebDatasetHardNegatives(IterableDataset):
    """Samples of ``unimo export`` tar shards as training items (no webdataset package).

    Args:
        shards: tar files (a list, or a folder holding ``*.tar``).
        transform, tokenizer, num_negatives, type_mix, num_positives, token_cache: as
            :class:`~unimo_kit.generators.HardNegativeDataset`.
        shuffle: shuffle the shard order per epoch and samples in a buffer of
            ``shuffle_buffer``.
        seed: seed of the order and of every draw.
        rank, world_size: as :class:`ShardedIterable`.

    A sample without the ``json`` member (a plain img2dataset shard) gives items without
    negatives or positives.
    """

    def __init__(
        self,
        shards: PathLike | Sequence[PathLike],
        *,
        transform: Callable[[Any], Any] | None = None,
        tokenizer: TokenizerLike | None = None,
        num_negatives: int = 4,
        type_mix: Mapping[str, float] | None = None,
        num_positives: int = 1,
        shuffle: bool = True,
        shuffle_buffer: int = 1000,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        token_cache: int = TOKEN_CACHE,
    ):
        if isinstance(shards, (str, os.PathLike)) and Path(shards).is_dir():
            shards = sorted(str(p) for p in Path(shards).glob("*.tar"))
        elif isinstance(shards, (str, os.PathLike)):
            shards = [shards]
        self.shards = [str(s) for s in shards]
        if not self.shards:
            raise ValueError("no tar shards given")
        for shard in self.shards:
            if not os.path.isfile(shard):
                raise FileNotFoundError(f"shard not found: {shard}")
        self.builder = ItemBuilder(
            transform=transform,
            tokenizer=(
                as_tokenizer(tokenizer, cache_size=token_cache) if tokenizer is not None else None
            ),
            num_negatives=num_negatives,
            type_mix=type_mix,
            num_positives=num_positives,
        )
        self.shuffle, self.shuffle_buffer, self.seed = shuffle, shuffle_buffer, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _records(self) -> Iterator[tuple[dict[str, Any], bytes]]:
        from unimo_kit.data.webdataset_tar import iter_shard_samples
        from unimo_kit.utils import ErrorReport, RecordError

        report = ErrorReport()
        slot, n_slots = current_slot(self.rank, self.world_size)
        shards = list(self.shards)
        if self.shuffle:
            random.Random(derive_seed(self.seed, "shards", self.epoch)).shuffle(shards)
        by_shard = len(shards) >= n_slots
        mine = shards[slot::n_slots] if by_shard else shards
        count = 0
        for shard in mine:

            def bad(where: str, message: str, shard: str = shard) -> None:
                report(RecordError(shard, 0, f"{where}: {message}"))

            for sample in iter_shard_samples(shard, bad):
                position, count = count, count + 1
                if not by_shard and position % n_slots != slot:
                    continue
                if sample.image is None or sample.caption is None:
                    bad(sample.key, "no image or no caption member")
                    continue
                meta = json.loads(sample.meta) if sample.meta is not None else {}
                record = {
                    "id": meta.get("id", sample.key),
                    "caption": sample.caption.decode("utf-8").strip(),
                    **{k: v for k, v in meta.items() if k != "caption"},
                }
                yield record, sample.image[1]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        rng = random.Random(derive_seed(self.seed, "buffer", self.epoch))
        buffer: list[tuple[dict[str, Any], bytes]] = []
        size = self.shuffle_buffer if self.shuffle else 0
        for entry in self._records():
            if size <= 1:
                yield self._item(*entry)
                continue
            buffer.append(entry)
            if len(buffer) >= size:
                yield self._item(*buffer.pop(rng.randrange(len(buffer))))
        rng.shuffle(buffer)
        for entry in buffer:
            yield self._item(*entry)

    def _item(self, record: dict[str, Any], image: bytes) -> dict[str, Any]:
        from PIL import Image

        rng = random.Random(derive_seed(self.seed, "generator", self.epoch, str(record["id"])))
        record = {**record, "positive_images": []}  # paths of the exporting machine
        return self.builder(record, rng, image=Image.open(io.BytesIO(image)))

    @property
    def collate(self) -> Callable[[Sequence[Mapping[str, Any]]], dict[str, Any]]:
        """As :attr:`HardNegativeDataset.collate`."""
        import functools

        pad = self.builder.tokenizer.pad_id if self.builder.tokenizer is not None else 0
        return functools.partial(
            collate_items,
            num_negatives=self.builder.num_negatives,
            num_positives=self.builder.num_positives,
            pad_id=pad,
        )
