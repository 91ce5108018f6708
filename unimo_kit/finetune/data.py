"""Training batches for CLIP fine-tuning, from the hard-negative generator, with a position a
checkpoint can record.

:class:`PairBatches` walks :class:`~unimo_kit.generators.HardNegativeDataset` epoch by epoch
in the seeded order of :class:`~unimo_kit.generators.ShardedIterable` (this rank's share,
ranks cut to equal length), ``batch_size`` items a batch, and counts the batches it has
handed out in the current epoch. A resumed run starts the epoch at that batch without
building the items before it, and every item is the same whatever the number of DataLoader
workers (each draw comes from ``(seed, epoch, item id)``). One DataLoader serves all epochs,
its workers persistent (their tokenizer's cache of token ids survives an epoch). Over
``unimo export`` shards (:class:`~unimo_kit.generators.WebDatasetHardNegatives`, a stream)
the skipped batches are read and dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from unimo_kit.finetune.config import FinetuneConfig
from unimo_kit.utils import derive_seed


def build_dataset(
    config: FinetuneConfig,
    transform: Callable[[Any], Any],
    tokenizer: Any,
    rank: int,
    world_size: int,
) -> Any:
    """The generator of ``config``'s data: over pairs.jsonl (map-style) or shards (a stream).

    Raises:
        FileNotFoundError: a data file is missing.
        ValueError: no usable pairs.
    """
    from unimo_kit.generators import HardNegativeDataset, WebDatasetHardNegatives

    common = dict(
        transform=transform,
        tokenizer=tokenizer,
        num_negatives=config.num_negatives,
        type_mix=config.type_mix,
        num_positives=config.num_positives,
        seed=config.seed,
    )
    if config.shards is not None:
        return WebDatasetHardNegatives(config.shards, rank=rank, world_size=world_size, **common)
    return HardNegativeDataset(
        config.pairs,
        config.rewrites,
        config.retrieved,
        sentence_negatives=config.sentence_negatives,
        retrieved_negatives=config.retrieved_negatives,
        split=config.split,
        on_the_fly=config.on_the_fly and config.num_negatives + config.num_positives > 0,
        **common,
    )


class SharedEpoch:
    """The epoch in shared memory: set by the main process, read by DataLoader workers that
    outlive an epoch (``persistent_workers``), whose copy of the dataset would otherwise keep
    the epoch it had when they started (open_clip_train's ``SharedEpoch``)."""

    def __init__(self, epoch: int = 0):
        import multiprocessing

        # Written only between epochs, while the workers wait for the next one: no lock.
        self._value = multiprocessing.RawValue("q", epoch)

    def set(self, epoch: int) -> None:
        self._value.value = int(epoch)

    def get(self) -> int:
        return int(self._value.value)


class _EpochItems(Dataset):
    """A map-style generator dataset read at the :class:`SharedEpoch` of the moment."""

    def __init__(self, dataset: Any, epoch: SharedEpoch):
        self.dataset, self.epoch = dataset, epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        self.dataset.set_epoch(self.epoch.get())  # an int assignment: cheap per item
        return self.dataset[index]


class _EpochStream(IterableDataset):
    """A streaming generator dataset read at the :class:`SharedEpoch` of the moment."""

    def __init__(self, dataset: Any, epoch: SharedEpoch):
        self.dataset, self.epoch = dataset, epoch

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self.dataset.set_epoch(self.epoch.get())
        return iter(self.dataset)


class _EpochBatchSampler:
    """The batch sampler of the one DataLoader: the batches of the epoch being read, replaced
    before each epoch (a DataLoader's ``batch_sampler`` cannot be swapped)."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class PairBatches:
    """An endless stream of collated batches of one rank, resumable at any batch.

    One DataLoader serves every epoch: with workers they are persistent, so what a worker
    keeps (the tokenizer's cache of token ids) lives across epochs. Before each epoch the
    epoch goes to the workers through a :class:`SharedEpoch` and the batch sampler gets that
    epoch's batches. The loader's generator is seeded once, from ``seed``: torch draws the
    workers' base seed from it only when the workers start, and nothing in an item depends on
    it (every draw comes from ``(seed, epoch, item id)``), so a resumed run makes the batches
    of an uninterrupted one.

    Args:
        dataset: a map-style generator dataset (``set_epoch``, ``collate``) or a stream
            (``IterableDataset`` with ``set_epoch`` and ``collate``).
        batch_size: items per batch (the last, incomplete batch of an epoch is dropped).
        seed: seed of the order.
        rank, world_size: this process in a distributed run.
        num_workers: DataLoader workers (persistent when > 0).
        pin_memory: pin batches (CUDA).
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        *,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        num_workers: int = 0,
        pin_memory: bool = False,
    ):
        self.dataset = dataset
        self.batch_size = batch_size
        self.seed = seed
        self.rank, self.world_size = rank, world_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.epoch = 0  # the epoch being read
        self.batch = 0  # batches of it handed out
        self.streaming = isinstance(dataset, IterableDataset)
        self._shared_epoch = SharedEpoch()
        self._sampler = _EpochBatchSampler()
        self._loader: DataLoader | None = None  # built on first use, then kept
        if not self.streaming and not self.epoch_batches(0):
            raise ValueError(
                f"{len(dataset)} items make no batch of {batch_size} on each of {world_size} "
                "process(es): lower batch_size"
            )

    def state_dict(self) -> dict[str, int]:
        """The position: ``{"epoch", "batch"}``."""
        return {"epoch": self.epoch, "batch": self.batch}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.batch = int(state["epoch"]), int(state["batch"])

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """This rank's batches of ``epoch`` (map-style datasets): lists of item indices."""
        from unimo_kit.generators import ShardedIterable

        order = ShardedIterable(
            self.dataset, seed=self.seed, rank=self.rank, world_size=self.world_size, even=True
        )
        order.set_epoch(epoch)
        indices = order.indices()
        full = len(indices) // self.batch_size * self.batch_size
        return [indices[i : i + self.batch_size] for i in range(0, full, self.batch_size)]

    def _build_loader(self) -> DataLoader:
        """The one DataLoader, over the dataset wrapped to read the shared epoch."""
        common = dict(
            collate_fn=self.dataset.collate,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            # seeded once: the workers' base seed is drawn from it when they start
            generator=torch.Generator().manual_seed(derive_seed(self.seed, "loader")),
        )
        if self.streaming:
            stream = _EpochStream(self.dataset, self._shared_epoch)
            return DataLoader(stream, batch_size=self.batch_size, drop_last=True, **common)
        items = _EpochItems(self.dataset, self._shared_epoch)
        return DataLoader(items, batch_sampler=self._sampler, **common)

    def _epoch(self, epoch: int) -> Iterator[dict[str, Any]]:
        """The batches of ``epoch`` from position ``self.batch`` on."""
        self._shared_epoch.set(epoch)
        self.dataset.set_epoch(epoch)  # this process's copy too (e.g. for collate)
        if self._loader is None:
            self._loader = self._build_loader()
        if self.streaming:
            batches = iter(self._loader)
            for _ in range(self.batch):  # a stream cannot seek: read and drop
                next(batches)
            return batches
        self._sampler.batches = self.epoch_batches(epoch)[self.batch :]
        return iter(self._loader)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while True:
            empty = True
            for batch in self._epoch(self.epoch):
                empty = False
                self.batch += 1
                yield batch
            if empty and self.batch == 0:
                raise ValueError(
                    f"rank {self.rank}: epoch {self.epoch} gave no batch of {self.batch_size}"
                )
            self.epoch, self.batch = self.epoch + 1, 0
