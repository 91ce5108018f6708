"""The ray rewrite parses each caption once: a vocabulary unit keeps its slice's graphs and
the rewrite unit of the same records rewrites from them, to the bytes of a parsing run."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from unimo_kit.engine import rewrite as engine_rewrite
from unimo_kit.rewrite import pipeline
from unimo_kit.rewrite.pipeline import RewriteConfig, rewrite_file
from unimo_kit.utils import Shard


def test_a_rewrite_unit_uses_its_vocabulary_units_graphs(pairs_file, tmp_path, monkeypatch):
    config = RewriteConfig(per_type=1, sentence_negatives=1, chunk_size=4, progress=False)
    vocab = tmp_path / "vocab.json"
    rewrite_file(pairs_file, tmp_path / "whole.jsonl", config, save_vocab=str(vocab))
    lines = (tmp_path / "whole.jsonl").read_bytes().splitlines(keepends=True)
    total = len(pairs_file.read_text().splitlines())
    unit = replace(config, vocab_path=str(vocab), shard=Shard(1, 3), resume=True)
    lo, hi = unit.shard.bounds(total)
    graphs = engine_rewrite.graphs_file(tmp_path, lo, hi)
    engine_rewrite._vocab_unit(
        (str(pairs_file), str(tmp_path / "v1.json"), config, 1, 3, str(graphs))
    )
    assert graphs.stat().st_size > 0

    def no_parse(captions):
        if captions:  # (a chunk whose captions all have graphs asks for none)
            raise AssertionError(f"parsed again: {captions[:1]}")
        return []

    monkeypatch.setattr(pipeline, "_parse", no_parse)
    part = tmp_path / "part-00001.jsonl"
    summary = engine_rewrite._rewrite_unit((str(pairs_file), str(part), unit, str(graphs)))
    assert not graphs.exists()  # consumed
    got = part.read_bytes()
    assert got and got in b"".join(lines)  # the whole run's lines of those records
    assert summary.written == len(got.splitlines()) and not Path(f"{part}.partial").exists()
