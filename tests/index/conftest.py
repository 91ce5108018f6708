"""Shared fixtures of the index tests: a tiny random sentence-transformers model (no download)
and a small text corpus on disk."""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest
from index_texts import make_texts


@pytest.fixture(scope="session", autouse=True)
def _one_faiss_thread():
    """One OpenMP thread: the tests are small, and spinning threads on a shared, busy machine
    make faiss k-means crawl."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_spec(tiny_st_path) -> str:
    return f"st:{tiny_st_path}"


@pytest.fixture
def texts_file(tmp_path):
    """texts.jsonl with 300 random short texts."""
    path = tmp_path / "texts.jsonl"
    with open(path, "w") as handle:
        for i, text in enumerate(make_texts(300)):
            handle.write(json.dumps({"id": f"t{i:04d}", "text": text}) + "\n")
    return path
