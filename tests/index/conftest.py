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
def tiny_st_path(tmp_path_factory) -> str:
    """A SentenceTransformer folder: random 2-layer BERT (hidden 32) + mean pooling, with the
    packaged MiniLM tokenizer."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import AutoTokenizer, BertConfig, BertModel

    from unimo_kit.resources import minilm_path

    folder = tmp_path_factory.mktemp("tiny-st")
    bert_dir = folder / "bert"
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_path()))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(bert_dir)
    tokenizer.save_pretrained(bert_dir)
    transformer = models.Transformer(str(bert_dir), max_seq_length=64)
    get_dim = getattr(transformer, "get_embedding_dimension", None)
    dim = get_dim() if get_dim else transformer.get_word_embedding_dimension()
    pooling = models.Pooling(dim, "mean")
    model = SentenceTransformer(modules=[transformer, pooling], device="cpu")
    model.save(str(folder / "st"))
    return str(folder / "st")


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
