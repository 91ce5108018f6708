"""Rewrite benchmark: captions/s of the library and of ``unimo rewrite`` end to end, in one run.

On the same captions and the same spaCy model, each timed ``--repeats`` times in turns (best
kept; the machine is shared):

1. **raw spaCy**: ``nlp.pipe`` of the full default pipeline (what a user would run to get
   parses at all) and of the pipeline trimmed to the components the parser needs;
2. **parse only**: ``SceneGraphParser.parse_many``;
3. **library**: what a user of the library does for a whole job, in one process with the
   models loaded: ``SceneGraphParser.parse_many`` once, ``Vocabulary.build`` from those
   graphs, then ``Rewriter.negatives`` (all 8 types, one per type) + ``make_positives`` per
   caption, keyed like the CLI (``<id>#0``) so it makes the same negatives; the per-word
   caches are emptied before each timed call, as a CLI run starts without them.
   The same call is also timed in a fresh interpreter (``library_fresh_process``: imports
   and model loads included, as for the CLI);
4. **CLI**: ``unimo rewrite PAIRS -o OUT --restart --no-progress`` with its defaults, a
   subprocess of this interpreter, start-up included (``PYTHONPATH`` picks the code); PAIRS
   holds one caption per record. Its fixed start-up alone is timed on a 1-caption input, and
   ``cli_without_startup`` is the rate with that time taken off;
5. **SceneGraphParser (PyPI, ``sng_parser`` 0.1.0)**: its spaCy backend, one ``parse`` per
   caption (it has no batch API), parse only, on the first ``--sng-limit`` captions.

Goals: CLI >= 0.9 x library (issue 20, item 6; the library call has its models loaded, so
at 5,000 captions this needs a start-up well under a second); library >= 0.8 x raw
``nlp.pipe`` (full); library >= 3 x ``sng_parser``. Every rate is also given as a ratio to
raw ``nlp.pipe`` (full). The CLI's negatives are compared with the library's
(``cli_output_same_as_library``: share of captions with identical negatives), so both rates
are of the same work.

Captions: ``--captions CSV`` (a FACTUAL CSV, e.g. ``../shared/data/factual_train.csv``): a
seeded random sample of ``--limit`` (default 5,000) rows in file order; without it, the
synthetic world's training captions (a world generated in a temp directory).

Usage::

    python benchmarks/bench_rewrite.py --captions ../shared/data/factual_train.csv --label before
    PYTHONPATH=/tmp/me-before python benchmarks/bench_rewrite.py ...  # another checkout

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

RESULTS = Path(__file__).resolve().parent / "results" / "rewrite.json"
SHORT = {  # rate name -> its name in the ratios
    "cli_end_to_end": "cli",
    "library_parse_rewrite": "library",
    "parse_only": "parse_only",
    "spacy_pipe_parser_components": "spacy_pipe_parser_components",
    "sng_parser": "sng_parser",
}
GOALS = {"cli_vs_library": 0.9, "library_vs_spacy_pipe_full": 0.8, "library_vs_sng_parser": 3.0}


def synthetic_rows(n_images: int, limit: int) -> list[dict[str, Any]]:
    """The synthetic world's training captions as rows of :func:`factual_rows`' shape."""
    from unimo_kit.data.synth import generate_world

    out = Path(tempfile.mkdtemp(prefix="bench_rewrite_"))
    world = generate_world(out, seed=0, n_images=n_images, progress=False)
    rows = []
    with open(world.pairs["train"], encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            for i, caption in enumerate(record["captions"]):
                rows.append(
                    {"id": f"{record['id']}-{i}", "image_id": record["id"], "caption": caption}
                )
    return rows[:limit]


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
    from tqdm.auto import tqdm

    best = {name: float("inf") for name in runs}
    with tqdm(total=repeats * len(runs), desc="timing", unit="run") as bar:
        for _ in range(repeats):
            for name, run in runs.items():
                bar.set_postfix_str(name)
                start = time.perf_counter()
                run()
                best[name] = min(best[name], time.perf_counter() - start)
                bar.update(1)
    return best


LIBRARY_SCRIPT = """
import json, sys
from unimo_kit.rewrite.negatives import Rewriter
from unimo_kit.rewrite.parser import SceneGraphParser
from unimo_kit.rewrite.positives import make_positives
from unimo_kit.rewrite.vocab import Vocabulary
records = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8")]
captions = [r["captions"][0] for r in records]
graphs = list(SceneGraphParser().parse_many(captions))
rewriter = Rewriter(Vocabulary.build(graphs), per_type=1, seed=0)
for record, caption, graph in zip(records, captions, graphs):
    rewriter.negatives(caption, graph, key=record["id"] + "#0")
    make_positives(caption, graph)
"""  # the library call of ``main`` in a fresh process: imports and model loads included


def library_cold(pairs: Path) -> None:
    """The library call in a fresh interpreter (start-up included, like the CLI)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    done = subprocess.run(
        [sys.executable, "-c", LIBRARY_SCRIPT, str(pairs)], capture_output=True, text=True, env=env
    )
    if done.returncode != 0:
        raise SystemExit(f"library script failed:\n{done.stderr[-2000:]}")


def cli_run(pairs: Path, output: Path) -> None:
    """``unimo rewrite PAIRS -o OUTPUT`` with its defaults, as a user runs it."""
    command = [sys.executable, "-m", "unimo_kit.cli.main", "rewrite", str(pairs)]
    command += ["-o", str(output), "--restart", "--no-progress"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"unimo rewrite failed (exit {done.returncode}):\n{done.stderr[-2000:]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--captions", help="FACTUAL CSV (caption column); default: synthetic world")
    ap.add_argument("--n-images", type=int, default=1000, help="synthetic world size")
    ap.add_argument("--limit", type=int, default=5000, help="captions to time (seeded sample)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the caption sample")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats (best is kept)")
    ap.add_argument("--sng-limit", type=int, default=2000, help="captions for sng_parser")
    ap.add_argument("--spacy-model", default=None)
    ap.add_argument("--label", required=True, help="name of this run in the results")
    ap.add_argument("--output", default=str(RESULTS), help="results JSON")
    args = ap.parse_args()

    from unimo_kit.resources import spacy_pipeline, spacy_pipeline_name
    from unimo_kit.rewrite.negatives import Rewriter
    from unimo_kit.rewrite.parser import SceneGraphParser
    from unimo_kit.rewrite.positives import make_positives
    from unimo_kit.rewrite.vocab import Vocabulary, _wordnet

    if args.captions:
        rows = factual_rows(args.captions, sample=args.limit, seed=args.seed)
        source = f"{Path(args.captions).name}, seeded sample (seed {args.seed})"
    else:
        rows = synthetic_rows(args.n_images, args.limit)
        source = f"synthetic world (seed 0, {args.n_images} images, train split)"
    captions = [row["caption"] for row in rows]
    keys = [f"{row['id']}#0" for row in rows]  # the CLI's caption ids
    n = len(captions)
    model = spacy_pipeline_name(args.spacy_model)
    print(f"{n} captions from {source}; spaCy model {model}", file=sys.stderr)
    if args.spacy_model is not None:
        print("note: the CLI runs with its default spaCy model", file=sys.stderr)

    work = Path(tempfile.mkdtemp(prefix="bench_rewrite_cli_"))
    pairs, tiny = work / "pairs.jsonl", work / "tiny.jsonl"
    write_pairs(rows, pairs, "train")
    write_pairs(rows[:1], tiny, "train")

    full = spacy_pipeline(model)
    parser = SceneGraphParser(model)
    trimmed = parser.nlp
    _wordnet()
    list(full.pipe(captions[:50]))  # warm up
    library_out: list[list[dict[str, Any]]] = []

    def library() -> None:
        clear_word_caches()
        graphs = list(parser.parse_many(captions))
        vocab = Vocabulary.build(graphs)
        rewriter = Rewriter(vocab, per_type=1, seed=0)
        library_out.clear()
        for caption, graph, key in zip(captions, graphs, keys, strict=True):
            library_out.append(rewriter.negatives(caption, graph, key=key))
            make_positives(caption, graph)

    def parse_only() -> None:
        for _ in parser.parse_many(captions):
            pass

    library()  # warm-up (spaCy, WordNet files); each timed call empties the per-word caches
    times = round_robin(
        args.repeats,
        {
            "full": lambda: list(full.pipe(captions, batch_size=256)),
            "trimmed": lambda: list(trimmed.pipe(captions, batch_size=256)),
            "parse": parse_only,
            "library": library,
            "cli": lambda: cli_run(pairs, work / "rewrites.jsonl"),
            "cli_startup": lambda: cli_run(tiny, work / "tiny.rewrites.jsonl"),
            "library_cold": lambda: library_cold(pairs),
        },
    )
    with open(work / "rewrites.jsonl", encoding="utf-8") as handle:
        cli_negatives = [json.loads(line).get("negatives", []) for line in handle]
    same = sum(a == b for a, b in zip(cli_negatives, library_out, strict=False))
    negatives = sum(len(x) for x in library_out)

    sng: dict[str, Any] = {"package": "SceneGraphParser==0.1.0 (import sng_parser)"}
    try:
        import sng_parser

        sng_model = sng_parser.Parser("spacy", model=model)
        sng_captions = captions[: args.sng_limit]
        sng_model.parse(sng_captions[0])
        seconds = round_robin(
            args.repeats, {"sng": lambda: [sng_model.parse(c) for c in sng_captions]}
        )["sng"]
        sng.update(
            status="ran",
            captions=len(sng_captions),
            captions_per_s=rate(len(sng_captions), seconds),
            note=f"spaCy {__import__('spacy').__version__}, model {model} passed as "
            "Parser('spacy', model=...); no download needed",
        )
    except Exception as exc:  # report honestly instead of failing the benchmark
        sng.update(status="failed", error=f"{type(exc).__name__}: {exc}")

    per_s = {
        "spacy_pipe_full": rate(n, times["full"]),
        "spacy_pipe_parser_components": rate(n, times["trimmed"]),
        "parse_only": rate(n, times["parse"]),
        "library_parse_rewrite": rate(n, times["library"]),
        "cli_end_to_end": rate(n, times["cli"]),
        "cli_without_startup": rate(n, times["cli"] - times["cli_startup"]),
        "library_fresh_process": rate(n, times["library_cold"]),
        "sng_parser": sng.get("captions_per_s"),
    }
    full_rate = per_s["spacy_pipe_full"]
    ratios = {
        "cli_vs_library": round(per_s["cli_end_to_end"] / per_s["library_parse_rewrite"], 3),
        "cli_without_startup_vs_library": round(
            per_s["cli_without_startup"] / per_s["library_parse_rewrite"], 3
        ),
        "cli_vs_library_fresh_process": round(
            per_s["cli_end_to_end"] / per_s["library_fresh_process"], 3
        ),
        "library_vs_sng_parser": (
            round(per_s["library_parse_rewrite"] / sng["captions_per_s"], 2)
            if sng.get("captions_per_s")
            else None
        ),
        **{
            f"{short}_vs_spacy_pipe_full": round(per_s[name] / full_rate, 3)
            for name, short in SHORT.items()
            if per_s[name]
        },
        "library_vs_spacy_pipe_parser_components": round(
            per_s["library_parse_rewrite"] / per_s["spacy_pipe_parser_components"], 3
        ),
    }
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
        "ratios": ratios,
        "goals": GOALS,
        "goals_met": {
            key: ratios.get(key) is not None and ratios[key] >= goal for key, goal in GOALS.items()
        },
        "negatives_per_caption": round(negatives / max(n, 1), 2),
        "cli_output_same_as_library": round(same / max(n, 1), 4),
        "sng_parser": sng,
    }
    about = (
        "captions/s of raw spaCy nlp.pipe, the parser, the library parse+rewrite and the "
        "unimo rewrite CLI end to end, on the same captions in one run; one entry per label "
        "(benchmarks/bench_rewrite.py)"
    )
    save_labelled(args.output, args.label, entry, about)
    print(json.dumps(entry, indent=2))
    print(f"wrote {args.output} (label {args.label!r})", file=sys.stderr)


if __name__ == "__main__":
    main()
