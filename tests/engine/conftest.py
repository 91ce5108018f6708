"""Fixtures of the engine tests: one local Ray with 2 CPUs per test module, tiny inputs."""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest

COLOURS = ["red", "blue", "green", "yellow", "white", "black", "brown"]
THINGS = ["dog", "cat", "car", "cup", "tree", "horse", "table", "chair"]
PLACES = ["on a table", "near a tree", "in a field", "next to a car", "under a chair"]


def caption(i: int) -> str:
    c, t, p = COLOURS[i % 7], THINGS[(i * 3) % 8], PLACES[(i * 5) % 5]
    return f"a {c} {t} {p}"


@pytest.fixture(scope="session")
def make_caption():
    """:func:`caption` for test modules (a ``from conftest import`` would find whichever
    conftest module pytest imported first)."""
    return caption


@pytest.fixture(scope="module")
def ray_session():
    """A local Ray of 2 CPUs for the test module (the test machine has 2 cores)."""
    ray = pytest.importorskip("ray")
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=80 * 2**20,
        log_to_driver=False,
    )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    """pairs.jsonl: 14 images with 2 captions each, one bad line and one duplicate id."""
    path = tmp_path_factory.mktemp("engine_pairs") / "pairs.jsonl"
    lines = [
        json.dumps({"id": f"p{i:02d}", "image": "x.png", "captions": [caption(i), caption(i + 20)]})
        for i in range(14)
    ]
    lines.insert(5, "not json")
    lines.insert(9, json.dumps({"id": "p01", "image": "x.png", "captions": ["a cat"]}))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def texts_file(tmp_path_factory):
    """texts.jsonl: 60 short texts."""
    path = tmp_path_factory.mktemp("engine_texts") / "texts.jsonl"
    path.write_text(
        "".join(json.dumps({"id": f"t{i:03d}", "text": caption(i)}) + "\n" for i in range(60))
    )
    return path


@pytest.fixture(scope="module")
def tiny_spec(tiny_st_path) -> str:
    """``st:FOLDER`` of the random tiny sentence-transformer (tests/conftest.py, no download)."""
    return f"st:{tiny_st_path}"
