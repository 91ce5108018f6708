"""The parser recovers the synthetic world's gold graphs (exact tuple-set match)."""

from __future__ import annotations

from pathlib import Path

import pytest

from unimo_kit.data.synth import generate_world
from unimo_kit.rewrite.parse_eval import evaluate_parser, read_factual_csv
from unimo_kit.rewrite.parser import SceneGraphParser


@pytest.mark.slow  # ~25 s with the spaCy and WordNet loads
def test_parses_synthetic_captions_exactly(tmp_path: Path) -> None:
    generate_world(tmp_path, seed=7, n_images=60, progress=False, workers=1)
    gold = tmp_path / "captions.factual.csv"
    # The world's gold graphs name relations canonically ("under" -> "below").
    parser = SceneGraphParser(canonical_relations=True)
    scores = evaluate_parser(read_factual_csv(gold), parser, worst=5, source=str(gold))
    assert scores.n_captions >= 250
    misses = "\n".join(f"{r.caption}\n  gold {r.gold}\n  pred {r.predicted}" for r in scores.worst)
    assert scores.exact_match >= 0.98, misses
