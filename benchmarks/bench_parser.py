"""Scene-graph parser benchmark: accuracy on FACTUAL and on the synthetic world, and speed.

1. FACTUAL (``--factual PATH``, a FACTUAL CSV such as the 1,000-caption dev split; skipped when
   absent): mean per-caption tuple F1 and exact set match under the metric of
   ``unimo eval parse``. Goal: mean F1 >= 0.80 (references under this metric: the SPICE parser
   about 0.68, SceneGraphParser 0.1.0 about 0.71); the ratio reported is measured / goal.
2. Synthetic world: a fresh world of ``--n-images`` images, parsed with
   ``canonical_relations=True`` (the world's gold graphs name relations canonically). Goal:
   exact tuple-set match on >= 98% of captions.
3. Speed: captions/s of ``SceneGraphParser.parse_many`` against raw ``nlp.pipe`` of the same
   spaCy model with all its components (the reference), on the same captions, best of
   ``--repeats`` runs each. The rewriter's goal is parse+rewrite >= 0.8x the reference, so the
   ratio here (parser / raw) must stay well above 0.8. Also reports the rule pass alone.

Usage::

    python benchmarks/bench_parser.py --factual /work/shared/data/factual_dev.csv

Writes ``benchmarks/results/parser.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from unimo_kit.rewrite.parse_eval import evaluate_parser, read_factual_csv
from unimo_kit.rewrite.parser import SceneGraphParser, graph_from_doc

RESULTS = Path(__file__).resolve().parent / "results" / "parser.json"


def best_rate(run, n: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return n / best


def main() -> None:
    parser_ = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser_.add_argument("--factual", default="/work/shared/data/factual_dev.csv")
    parser_.add_argument("--n-images", type=int, default=300)
    parser_.add_argument("--repeats", type=int, default=3)
    args = parser_.parse_args()
    results: dict = {"machine": platform.platform(), "cpus": os.cpu_count()}

    parser = SceneGraphParser()
    if Path(args.factual).exists():
        scores = evaluate_parser(read_factual_csv(args.factual), parser, source=args.factual)
        results["factual"] = {
            "path": os.path.basename(args.factual),  # by name: no path of this machine
            "n_captions": scores.n_captions,
            "mean_f1": scores.mean_f1,
            "exact_match": scores.exact_match,
            "objects_f1": scores.kinds["objects"].f1,
            "attributes_f1": scores.kinds["attributes"].f1,
            "relations_f1": scores.kinds["relations"].f1,
            "goal": 0.80,
            "ratio_to_goal": scores.mean_f1 / 0.80,
            "references": {"spice_parser": 0.68, "scenegraphparser_0.1.0": 0.71},
        }
        print(f"FACTUAL mean F1 {scores.mean_f1:.4f} (goal 0.80), exact {scores.exact_match:.4f}")

    from unimo_kit.data.synth import generate_world

    with tempfile.TemporaryDirectory() as tmp:
        generate_world(tmp, seed=0, n_images=args.n_images, progress=False)
        gold = Path(tmp) / "captions.factual.csv"
        canonical = SceneGraphParser(canonical_relations=True)
        scores = evaluate_parser(read_factual_csv(gold), canonical, source=str(gold))
        with open(gold, newline="", encoding="utf-8") as handle:
            synth_captions = [row["caption"] for row in csv.DictReader(handle)]
    results["synthetic"] = {
        "n_images": args.n_images,
        "n_captions": scores.n_captions,
        "exact_match": scores.exact_match,
        "mean_f1": scores.mean_f1,
        "goal": 0.98,
        "ratio_to_goal": scores.exact_match / 0.98,
    }
    print(f"synthetic exact match {scores.exact_match:.4f} on {scores.n_captions} (goal 0.98)")

    captions = synth_captions
    if Path(args.factual).exists():
        with open(args.factual, newline="", encoding="utf-8") as handle:
            captions = [row["caption"] for row in csv.DictReader(handle)] + synth_captions
    from unimo_kit.resources import spacy_pipeline

    raw_nlp = spacy_pipeline()  # every component, as a user would run it
    list(parser.parse_many(captions[:100]))  # warm up

    def raw() -> None:
        for _ in raw_nlp.pipe(captions, batch_size=parser.batch_size):
            pass

    def ours() -> None:
        for _ in parser.parse_many(captions):
            pass

    docs = list(parser.nlp.pipe(captions, batch_size=parser.batch_size))

    def rules() -> None:
        for doc in docs:
            graph_from_doc(doc)

    raw_rate = best_rate(raw, len(captions), args.repeats)
    our_rate = best_rate(ours, len(captions), args.repeats)
    rule_rate = best_rate(rules, len(captions), args.repeats)
    results["speed"] = {
        "n_captions": len(captions),
        "raw_nlp_pipe_per_s": raw_rate,
        "parse_many_per_s": our_rate,
        "rules_only_per_s": rule_rate,
        "ratio_to_raw": our_rate / raw_rate,
        "components_used": list(parser.nlp.pipe_names),
        "components_raw": list(raw_nlp.pipe_names),
    }
    print(
        f"speed: parse_many {our_rate:.0f}/s vs raw nlp.pipe {raw_rate:.0f}/s "
        f"(ratio {our_rate / raw_rate:.2f}); rules alone {rule_rate:.0f}/s"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
