"""Rewrite benchmark: captions/s of ``unimo rewrite`` end to end against the library doing the
same work, in one run.

On the same captions (``--limit``, default 5,000, a seeded sample of ``--captions``, default
``factual_train.csv`` of the shared data: real Visual Genome captions) and the same spaCy model,
each timed ``--repeats`` times in turns (best kept; the machine is shared):

1. **raw spaCy** ``nlp.pipe`` of the parser's trimmed pipeline, and **parse only**
   (``SceneGraphParser.parse_each``), for scale;
2. **library**, per configuration: what a user of the library does for the whole job in one
   process with the models and tables loaded: parse every caption once, ``Vocabulary.build``,
   ``Rewriter.candidates`` + ``make_positives`` per caption (keyed like the CLI, ``<id>#0``),
   and the ``CandidateFilter`` (round-trip re-parse) per 256 captions;
3. **CLI**: ``unimo rewrite PAIRS -o OUT --no-resume`` in a fresh process (imports, model loads,
   reading and writing JSONL included), with the same configuration.

Two configurations: ``defaults`` (the CLI's defaults: the shipped reference table, the
round-trip check, 2 spares per wanted negative) and ``bare`` (``--no-reference --no-roundtrip
--spares 1``: the least work per caption, where the CLI's fixed start-up weighs most). The CLI's
negatives and positives are compared with the library's (``cli_output_same_as_library``: the
share of captions with equal lines; 1.0 means the two did the same work).
The goal is ``cli_vs_library`` >= 0.9 for the defaults (``ratios``).

Usage::

    python benchmarks/bench_rewrite.py --label after
    python benchmarks/bench_rewrite.py --captions my.csv --limit 2000 --label mine

Writes ``benchmarks/results/rewrite.json`` under ``--label`` (other labels' entries kept).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_rewrite_real import code_version, factual_rows, save_labelled, write_pairs

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "rewrite.json"
DEFAULT_CAPTIONS = ROOT.parent / "shared" / "data" / "factual_train.csv"
CONFIGS: dict[str, dict[str, Any]] = {  # name -> library settings and the CLI flags for them
    "defaults": {"reference": True, "roundtrip": True, "spares": 2, "flags": []},
    "bare": {
        "reference": False,
        "roundtrip": False,
        "spares": 1,
        "flags": ["--no-reference", "--no-roundtrip", "--spares", "1"],
    },
}
GOALS = {"cli_vs_library": 0.9}
CHUNK = 256  # the CLI's default --chunk-size


def clear_word_caches() -> int:
    """Empty the per-word ``lru_cache``s of ``unimo_kit.rewrite`` (WordNet look-ups and the
    like), so each timed library call starts with cold caches like a CLI run; loaders
    (``maxsize`` 1 or unbounded: the WordNet reader, lexicons) keep what they loaded.

    Returns:
        How many caches were emptied.
    """
    emptied = 0
    for name, module in list(sys.modules.items()):
        if not name.startswith("unimo_kit.rewrite") or module is None:
            continue
        for obj in vars(module).values():
            info = getattr(obj, "cache_info", None)
            if callable(info) and info().maxsize not in (None, 1):
                obj.cache_clear()
                emptied += 1
    return emptied


def rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1) if seconds > 0 else float("inf")


def round_robin(repeats: int, runs: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Fastest of ``repeats`` timed calls of each run, taken in turns (the machine is shared:
    turns spread load changes over all runs, the minimum is the least disturbed timing)."""
    best = {name: float("inf") for name in runs}
    for turn in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
            print(f"  turn {turn + 1}: {name} {best[name]:.1f}s", file=sys.stderr)
    return best


def library_run(
    parser: Any,
    captions: list[str],
    keys: list[str],
    reference: Any,
    roundtrip: bool,
    spares: int,
) -> list[dict[str, Any]]:
    """The library doing what ``unimo rewrite`` does for one caption per record.

    Returns:
        ``{"negatives", "positives"}`` per caption, as the CLI writes them.
    """
    from unimo_kit.rewrite.negatives import CandidateFilter, Rewriter
    from unimo_kit.rewrite.positives import make_positives
    from unimo_kit.rewrite.vocab import Vocabulary

    clear_word_caches()
    graphs = [
        g
        for i in range(0, len(captions), CHUNK)
        for g in parser.parse_each(captions[i : i + CHUNK])
    ]
    rewriter = Rewriter(
        Vocabulary.build(graphs), per_type=1, seed=0, reference=reference, spares=spares
    )
    check = CandidateFilter(parser.parse_each if roundtrip else None)
    out: list[dict[str, Any]] = []
    for i in range(0, len(captions), CHUNK):
        chunk = list(
            zip(captions[i : i + CHUNK], graphs[i : i + CHUNK], keys[i : i + CHUNK], strict=True)
        )
        negatives = check([rewriter.candidates(c, g, k) for c, g, k in chunk], 1)
        made = [list(make_positives(c, g)) for c, g, _ in chunk]
        positives = check(made, max(1, sum(len(p) for p in made)), rank=False)
        for neg, pos in zip(negatives, positives, strict=True):
            out.append(
                {"negatives": [n.to_dict() for n in neg], "positives": [p.to_dict() for p in pos]}
            )
    return out


def cli_run(pairs: Path, output: Path, flags: list[str]) -> None:
    """``unimo rewrite PAIRS -o OUTPUT`` in a fresh process, as a user runs it."""
    command = [sys.executable, "-m", "unimo_kit.cli.main", "rewrite", str(pairs)]
    command += ["-o", str(output), "--no-resume", "--no-progress", *flags]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"unimo rewrite failed (exit {done.returncode}):\n{done.stderr[-2000:]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--captions", default=str(DEFAULT_CAPTIONS), help="FACTUAL CSV")
    ap.add_argument("--limit", type=int, default=5000, help="captions to time (seeded sample)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the caption sample")
    ap.add_argument("--repeats", type=int, default=1, help="timed repeats (best is kept)")
    ap.add_argument(
        "--configs", default=",".join(CONFIGS), help="comma list of " + "/".join(CONFIGS)
    )
    ap.add_argument("--label", required=True, help="name of this run in the results")
    ap.add_argument("--output", default=str(RESULTS), help="results JSON")
    args = ap.parse_args()

    from unimo_kit.resources import spacy_pipeline_name
    from unimo_kit.rewrite.parser import SceneGraphParser
    from unimo_kit.rewrite.pipeline import load_reference_option

    rows = factual_rows(args.captions, sample=args.limit, seed=args.seed)
    source = f"{Path(args.captions).name}, seeded sample (seed {args.seed})"
    captions = [row["caption"] for row in rows]
    keys = [f"{row['id']}#0" for row in rows]  # the CLI's caption ids
    n = len(captions)
    model = spacy_pipeline_name(None)  # the CLI's default
    print(f"{n} captions from {source}; spaCy model {model}", file=sys.stderr)

    work = Path(tempfile.mkdtemp(prefix="bench_rewrite_cli_"))
    pairs = work / "pairs.jsonl"
    write_pairs(rows, pairs, "train")
    parser = SceneGraphParser(model, batch_size=CHUNK)
    reference = load_reference_option("builtin")  # a table load, like spaCy's: not timed
    trimmed = parser.nlp
    parser.parse_each(captions[:50])  # warm up (spaCy, WordNet files)
    names = [c.strip() for c in args.configs.split(",") if c.strip()]
    outputs: dict[str, list[dict[str, Any]]] = {}

    def library(name: str) -> Callable[[], None]:
        c = CONFIGS[name]

        def run() -> None:
            outputs[name] = library_run(
                parser, captions, keys, reference if c["reference"] else None,
                c["roundtrip"], c["spares"],
            )  # fmt: skip

        return run

    runs: dict[str, Callable[[], object]] = {
        "spacy_pipe": lambda: list(trimmed.pipe(captions, batch_size=CHUNK)),
        "parse_only": lambda: parser.parse_each(captions),
    }
    for name in names:
        runs[f"library_{name}"] = library(name)
        runs[f"cli_{name}"] = lambda name=name: cli_run(
            pairs, work / f"{name}.jsonl", CONFIGS[name]["flags"]
        )
    runs["cli_startup"] = lambda: cli_run(pairs.with_name("one.jsonl"), work / "one.out", [])
    write_pairs(rows[:1], work / "one.jsonl", "train")
    times = round_robin(args.repeats, runs)

    per_s = {name: rate(n, seconds) for name, seconds in times.items() if name != "cli_startup"}
    configs: dict[str, Any] = {}
    for name in names:
        with open(work / f"{name}.jsonl", encoding="utf-8") as handle:
            cli = [json.loads(line) for line in handle]
        same = sum(
            a.get("negatives") == b["negatives"] and a.get("positives") == b["positives"]
            for a, b in zip(cli, outputs[name], strict=True)
        )
        configs[name] = {
            "cli_flags": " ".join(CONFIGS[name]["flags"]) or "(defaults)",
            "library_captions_per_s": per_s[f"library_{name}"],
            "cli_captions_per_s": per_s[f"cli_{name}"],
            "cli_vs_library": round(times[f"library_{name}"] / times[f"cli_{name}"], 3),
            "cli_output_same_as_library": round(same / max(n, 1), 4),
            "negatives_per_caption": round(sum(len(x["negatives"]) for x in cli) / max(n, 1), 2),
        }
    ratios = (
        {"cli_vs_library": configs["defaults"]["cli_vs_library"]} if "defaults" in configs else {}
    )
    entry = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "code": code_version(),
        "captions": n,
        "source": source,
        "spacy_model": model,
        "repeats": args.repeats,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "captions_per_s": per_s,
        "seconds": {name: round(value, 2) for name, value in times.items()},
        "cli_startup_s": round(times["cli_startup"], 2),
        "configs": configs,
        "ratios": ratios,
        "goals": GOALS,
        "goals_met": {k: ratios.get(k) is not None and ratios[k] >= g for k, g in GOALS.items()},
    }
    about = (
        "captions/s of unimo rewrite end to end (fresh process) against the library doing the "
        "same work (models loaded), per configuration, on the same captions in one run; one "
        "entry per label (benchmarks/bench_rewrite.py)"
    )
    save_labelled(args.output, args.label, entry, about)
    print(json.dumps(entry, indent=2))
    print(f"wrote {args.output} (label {args.label!r})", file=sys.stderr)


if __name__ == "__main__":
    main()
