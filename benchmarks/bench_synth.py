"""Synthetic-world benchmark: generation time and how well spaCy tags the captions.

1. Time: ``generate_world`` with ``--n-images`` (default 2,000, plus the default 1,000
   image-only images and 4,000 texts), once with one render process and once with the default
   worker count, each in a fresh directory. Goal: under 60 s on a 2-core machine; the ratio
   reported is goal / measured (> 1 is inside the goal). The two worlds are compared byte for
   byte (workers must not change the output).
2. Tagging, a proxy for how parseable the captions are: on ``--n-captions`` training
   captions, the share in which spaCy's English pipeline tags every shape noun as a common
   noun and every colour/size word as an adjective modifier or complement, and the share
   in which only the bare "left of"/"right of" is mis-tagged (as a verb). Goal: >= 98% of
   captions parse to their gold graph (checked by the parser's own benchmark; this only
   screens the vocabulary).

Usage::

    python benchmarks/bench_synth.py
    python benchmarks/bench_synth.py --n-images 500 --n-captions 500

Writes ``benchmarks/results/synth.json``.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from unimo_kit.data.synth import COLORS, PLURALS, SHAPES, SIZES, generate_world

RESULTS = Path(__file__).resolve().parent / "results" / "synth.json"
GOAL_SECONDS = 60.0


def timed_world(out: Path, n_images: int, workers: int | None) -> float:
    start = time.perf_counter()
    generate_world(out, seed=0, n_images=n_images, workers=workers, progress=False)
    return time.perf_counter() - start


def same_files(a: Path, b: Path) -> bool:
    names = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    if names != sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file()):
        return False
    return all(filecmp.cmp(a / n, b / n, shallow=False) for n in names)


def tagging(pairs_path: Path, n_captions: int) -> dict[str, float]:
    from unimo_kit.resources import spacy_pipeline, spacy_pipeline_name

    captions: list[str] = []
    with open(pairs_path, encoding="utf-8") as handle:
        for line in handle:
            captions += json.loads(line)["captions"]
            if len(captions) >= n_captions:
                break
    captions = captions[:n_captions]
    nlp = spacy_pipeline()
    nouns = set(SHAPES) | set(PLURALS.values())
    adjectives = set(COLORS) | set(SIZES)
    clean = only_left_right = 0
    for doc in nlp.pipe(captions, batch_size=256):
        other = side = False
        for token in doc:
            if (token.text in nouns and token.pos_ != "NOUN") or (
                token.text in adjectives
                and (token.pos_ != "ADJ" or token.dep_ not in ("amod", "acomp", "conj"))
            ):
                other = True
            elif token.text in ("left", "right") and token.pos_ == "VERB":
                side = True
        clean += not (other or side)
        only_left_right += side and not other
    n = len(captions)
    return {
        "pipeline": spacy_pipeline_name(),
        "captions": n,
        "all_tags_as_expected": clean / n,
        "only_bare_left_right_as_verb": only_left_right / n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-images", type=int, default=2000)
    parser.add_argument("--n-captions", type=int, default=4000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        one = timed_world(Path(tmp) / "one", args.n_images, workers=1)
        auto = timed_world(Path(tmp) / "auto", args.n_images, workers=None)
        identical = same_files(Path(tmp) / "one", Path(tmp) / "auto")
        tags = tagging(Path(tmp) / "one" / "pairs.train.jsonl", args.n_captions)
    result = {
        "n_images": args.n_images,
        "seconds_one_worker": round(one, 2),
        "seconds_default_workers": round(auto, 2),
        "goal_seconds": GOAL_SECONDS,
        "ratio_goal_over_default": round(GOAL_SECONDS / auto, 2),
        "workers_give_identical_files": identical,
        "tagging": {k: round(v, 4) if isinstance(v, float) else v for k, v in tags.items()},
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
    }
    print(json.dumps(result, indent=2))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
