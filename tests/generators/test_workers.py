"""The generator inside forked DataLoader workers: the lazy JSONL reader never shares a file
offset with another process (it used to: two workers on one descriptor opened before the fork
read each other's positions and raised JSONDecodeError), and two workers over on-the-fly or
precomputed rewrites give every item exactly once, the same items as one process."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from unimo_kit.generators import HardNegativeDataset, ShardedIterable  # noqa: E402
from unimo_kit.generators.lines import JsonlIndex  # noqa: E402


def _tokenize(texts):  # any callable: texts -> token id lists
    return [[len(w) for w in t.split()] for t in texts]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A synthetic world whose pairs.jsonl is larger than one read buffer (8 KiB), so that
    a reader opened before the fork has to go back to the shared descriptor in the workers."""
    from unimo_kit.data.synth import generate_world

    out = tmp_path_factory.mktemp("generator_world")
    world = generate_world(out, seed=5, n_images=90, captions_per_image=1, progress=False)
    assert world.pairs["train"].stat().st_size > 8192
    return world


def _lines(path: Path, n: int) -> list[dict]:
    records = [{"id": f"r{i}", "text": "x" * (i % 37), "n": i} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return records


def test_reader_ignores_the_file_offset(tmp_path):
    records = _lines(tmp_path / "a.jsonl", 400)
    index = JsonlIndex(tmp_path / "a.jsonl", lambda r, _: r["id"])
    assert index.read(0)[0] == records[0]
    # what a sibling worker sharing the descriptor does between our seek and our read
    os.lseek(index._descriptor(), 0, os.SEEK_END)
    assert [index.read(i)[0] for i in range(len(index))] == records
    assert index.get("r17") == records[17] and index.lines[17] == 18


def _child_reads(index: JsonlIndex, parent_fd: int, queue) -> None:
    queue.put((index._descriptor() != parent_fd, index.read(123)[0]["n"]))


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork")
def test_reader_opens_its_own_descriptor_after_fork(tmp_path):
    _lines(tmp_path / "a.jsonl", 200)
    index = JsonlIndex(tmp_path / "a.jsonl", lambda r, _: r["id"])
    index.read(0)  # opened in the parent before the fork
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_reads, args=(index, index._descriptor(), queue))
    child.start()
    own, n = queue.get(timeout=60)
    child.join(timeout=60)
    assert child.exitcode == 0 and own and n == 123


def _ids_and_negatives(batches) -> list[tuple[str, tuple[str, ...]]]:
    pairs = (zip(b["ids"], b["negative_texts"], strict=True) for b in batches)
    return [(i, tuple(n)) for batch in pairs for i, n in batch]


@pytest.mark.parametrize(
    "precomputed",
    [
        pytest.param(False, id="on_the_fly", marks=pytest.mark.slow),
        pytest.param(True, id="precomputed"),
    ],
)
def test_two_workers_lose_nothing_and_repeat_nothing(world, tmp_path, precomputed):
    pairs = world.pairs["train"]
    rewrites = None
    if precomputed:
        from unimo_kit.rewrite.pipeline import rewrite_file

        rewrites = tmp_path / "rewrites.jsonl"
        rewrite_file(pairs, rewrites, seed=0, progress=False)
    ds = HardNegativeDataset(pairs, rewrites, tokenizer=_tokenize, load_images=False)
    ds[0]  # the parent reads first: its descriptors exist before the workers fork
    # spaCy per item is slow: on the fly, every third item (still spread over the whole file)
    subset = torch.utils.data.Subset(ds, range(0, len(ds), 1 if precomputed else 3))

    def loader(data, **options):
        return torch.utils.data.DataLoader(data, batch_size=8, collate_fn=ds.collate, **options)

    one = _ids_and_negatives(loader(subset, num_workers=0))
    two = _ids_and_negatives(loader(subset, num_workers=2, shuffle=True))
    assert len(two) == len(subset) and len({i for i, _ in two}) == len(subset)
    assert sorted(two) == sorted(one)  # the same items, whichever worker made them
    assert any(negatives for _, negatives in two)
    if precomputed:  # the iterable split over workers: each item once
        sharded = _ids_and_negatives(loader(ShardedIterable(ds, seed=1), num_workers=2))
        assert sorted(sharded) == sorted(one)
