"""PairBatches: one DataLoader over all epochs (persistent workers), the same batches as a
dense reference; the checkpoint it shares with the UNIMO trainer; resume reads state.json once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from torch.utils.data import Dataset, IterableDataset  # noqa: E402

from unimo_kit.finetune.data import PairBatches  # noqa: E402


def _collate(items):
    return {key: torch.tensor([item[key] for item in items]) for key in items[0]}


class _Items(Dataset):
    """A map-style stand-in for the generator: each item says which epoch and which process
    made it."""

    collate = staticmethod(_collate)

    def __init__(self, n: int = 12):
        self.n, self.epoch = n, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict[str, int]:
        return {"index": index, "epoch": self.epoch, "pid": os.getpid()}


class _Stream(IterableDataset):
    """A streaming stand-in: an epoch-dependent order, split between the workers."""

    collate = staticmethod(_collate)

    def __init__(self, n: int = 12):
        self.n, self.epoch = n, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.epoch))
        for index in order.tolist()[worker::workers]:
            yield {"index": index, "epoch": self.epoch, "pid": os.getpid()}


def _take(batches: PairBatches, n: int) -> list[dict[str, torch.Tensor]]:
    stream = iter(batches)
    return [next(stream) for _ in range(n)]


def test_one_loader_keeps_its_workers_and_gives_each_epoch_its_own_batches():
    batches = PairBatches(_Items(), 4, seed=3, num_workers=2)
    got = _take(batches, 9)  # 3 epochs of 3 batches
    want = [idx for epoch in range(3) for idx in batches.epoch_batches(epoch)]
    assert [b["index"].tolist() for b in got] == want  # the seeded order of each epoch
    assert [b["epoch"].tolist() for b in got] == [[e] * 4 for e in range(3) for _ in range(3)]
    pids = {p for b in got for p in b["pid"].tolist()}
    assert len(pids) == 2 and os.getpid() not in pids  # the same two workers, all epochs
    assert batches.state_dict() == {"epoch": 2, "batch": 3}  # prefetched batches not counted


class _SeededItems(_Items):
    """Items that also say the torch seed of the worker that made them."""

    def __getitem__(self, index: int) -> dict[str, int]:
        return {**super().__getitem__(index), "seed": torch.utils.data.get_worker_info().seed}


def test_a_resumed_run_gives_its_workers_the_seeds_of_an_uninterrupted_run():
    """The loader's generator is seeded once: the workers of a run resumed in epoch 1 get the
    seeds the workers of an uninterrupted run got when it started in epoch 0."""
    whole = PairBatches(_SeededItems(), 4, seed=3, num_workers=2)
    want = _take(whole, 6)[3:]  # epoch 1
    resumed = PairBatches(_SeededItems(), 4, seed=3, num_workers=2)
    resumed.load_state_dict({"epoch": 1, "batch": 0})
    got = _take(resumed, 3)
    assert [b["epoch"].tolist() for b in got] == [[1] * 4] * 3
    for batch, reference in zip(got, want, strict=True):
        assert batch["index"].tolist() == reference["index"].tolist()
        assert batch["seed"].tolist() == reference["seed"].tolist()
    other = PairBatches(_SeededItems(), 4, seed=4, num_workers=2)
    assert _take(other, 1)[0]["seed"].tolist() != want[0]["seed"].tolist()  # seeds do matter


def test_streams_see_the_epoch_in_persistent_workers_and_resume_mid_epoch():
    # 16 items, 2 workers batching 8 each: 4 batches an epoch, none dropped
    whole = PairBatches(_Stream(16), 4, seed=0, num_workers=2)
    got = _take(whole, 8)  # 2 epochs
    assert [b["epoch"].tolist() for b in got] == [[e] * 4 for e in range(2) for _ in range(4)]
    for epoch in range(2):  # each epoch: every item once, in that epoch's order
        indices = sorted(i for b in got[4 * epoch : 4 * epoch + 4] for i in b["index"].tolist())
        assert indices == list(range(16))
    assert got[0]["index"].tolist() != got[4]["index"].tolist()
    assert len({p for b in got for p in b["pid"].tolist()}) == 2

    resumed = PairBatches(_Stream(16), 4, seed=0, num_workers=2)
    resumed.load_state_dict({"epoch": 0, "batch": 3})
    rest = _take(resumed, 5)
    for want, batch in zip(got[3:], rest, strict=True):
        assert batch["index"].tolist() == want["index"].tolist()


@pytest.mark.slow
def test_generator_batches_with_workers_equal_items_built_one_by_one(tiny_clip, pair_data):
    """The real generator (tokenizer, images, negatives) with 2 persistent workers over 3
    epochs: each batch equals the collate of its items built in this process."""
    pytest.importorskip("open_clip")
    from unimo_kit.finetune import FinetuneConfig
    from unimo_kit.finetune.data import build_dataset
    from unimo_kit.finetune.trainer import load_open_clip

    pairs, rewrites = pair_data
    config = FinetuneConfig(
        model=f"open_clip:{tiny_clip}", pairs=str(pairs), rewrites=str(rewrites), num_negatives=2
    ).resolved()
    _, preprocess, tokenizer, _ = load_open_clip(config.model, "cpu")
    dataset = build_dataset(config, preprocess, tokenizer, 0, 1)
    batches = PairBatches(dataset, 4, seed=config.seed, num_workers=2)
    got = _take(batches, 12)  # 16 pairs: 4 batches an epoch
    reference = build_dataset(config, preprocess, tokenizer, 0, 1)
    for step, batch in enumerate(got):
        epoch, index = divmod(step, 4)
        reference.set_epoch(epoch)
        items = [reference[i] for i in batches.epoch_batches(epoch)[index]]
        want = reference.collate(items)
        assert batch.keys() == want.keys()
        for key, value in want.items():
            if torch.is_tensor(value):
                assert torch.equal(batch[key], value), (step, key)
            else:
                assert batch[key] == value, (step, key)


def test_write_checkpoint_saves_the_model_through_the_hook(tmp_path):
    from unimo_kit.train.checkpoint import read_checkpoint, rng_state_tensors, write_checkpoint

    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    calls = []

    def save(module, folder: Path, metadata):
        from safetensors.torch import save_file

        calls.append(metadata)
        weights = {k: v.contiguous() for k, v in module.state_dict().items()}
        save_file(weights, folder / "model.safetensors")
        (folder / "own.json").write_text("{}")

    folder = write_checkpoint(
        tmp_path, 7, model, optimizer, [rng_state_tensors()], {"x": 1}, keep=1, save_model=save
    )
    assert calls == [{"step": "7"}]
    assert sorted(p.name for p in folder.iterdir()) == [
        "model.safetensors", "optimizer.safetensors", "own.json", "rng.safetensors", "state.json"
    ]  # fmt: skip  # no objective.safetensors without extra
    loaded = read_checkpoint(folder, rank=0)
    assert torch.equal(loaded["model"]["weight"], model.weight.detach())
    assert loaded["objective"] == {} and loaded["state"] == {"x": 1}


def test_resume_reads_state_json_once(tiny_clip, pair_data, tmp_path, monkeypatch):
    pytest.importorskip("open_clip")
    from unimo_kit.finetune import FinetuneConfig, finetune_clip

    pairs, rewrites = pair_data
    config = FinetuneConfig(
        model=f"open_clip:{tiny_clip}", pairs=str(pairs), rewrites=str(rewrites),
        out=str(tmp_path / "run"), num_negatives=2, batch_size=4, steps=3, save_every=2,
        threads=1, progress=False, device="cpu",
    )  # fmt: skip
    finetune_clip(config, stop_after=2)
    reads: list[Path] = []
    read_text = Path.read_text

    def counted(self: Path, *args, **kwargs) -> str:
        if self.name == "state.json":
            reads.append(self)
        return read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", counted)
    done = finetune_clip(config)
    assert done.state.step == 3
    assert [p.parent.name for p in reads] == ["step-000002"]
