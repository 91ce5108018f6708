"""How many real captions offer a swap at all, and why the rewriter refuses the ones it does.

For swap-att and swap-obj the coverage of ``unimo rewrite`` is bounded by what the captions
offer: two objects that each carry an attribute (or a stated count), or two *parallel*
objects (coordinated nouns, two subjects or two objects of relations, the two ends of one
relation). This script parses FACTUAL captions (Visual Genome region captions; paths given as
arguments, no gold graphs used), builds the evidence as ``unimo rewrite`` does (the split's
own vocabulary merged with the shipped reference table), and counts per split:

* the **ceiling**: captions with >= 2 attributed objects, with two objects whose numbers
  are stated (a numeral or ``a``/``an``) and differ, with coordinated nouns, two subjects,
  two objects, a relation between two noun phrases;
* every swap candidate the rewriter considers (:meth:`Rewriter.swap_review`) by form and by
  the reason it is refused, and the captions with at least one swap made (before the
  round-trip check, which ``bench_rewrite_real.py`` measures end to end).

Results go to ``benchmarks/results/swap_ceiling.json`` under ``--label``; other labels' entries
are kept.

Usage::

    python benchmarks/swap_ceiling.py --train ../shared/data/factual_train.csv \\
        --dev ../shared/data/factual_dev.csv --label after
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_rewrite_real import code_version, factual_rows

RESULTS = Path(__file__).resolve().parent / "results" / "swap_ceiling.json"
COORDINATORS = ("and", ",", "or", "&", ", and")


def ceiling_flags(caption: str, graph: Any) -> set[str]:
    """Which kinds of swap material one caption's graph holds.

    Args:
        caption: the caption.
        graph: its :class:`~unimo_kit.data.scene_graph.SceneGraph` with spans.

    Returns:
        A subset of ``{"attributed>=2", "coordinated", "two subjects", "two objects",
        "relation"}`` (``"different counts"`` is added by :func:`measure`).
    """
    from unimo_kit.rewrite.edits import phrases
    from unimo_kit.rewrite.vocab import attribute_category

    flags: set[str] = set()
    ps = phrases(graph, caption)
    attributed = [
        i
        for i, e in enumerate(graph.entities)
        if ps[i] is not None and any(attribute_category(a.text) != "count" for a in e.attributes)
    ]
    if len(attributed) >= 2:
        flags.add("attributed>=2")
    spans = sorted((p.start, p.end) for p in ps if p is not None)
    for (_, end), (start, _) in itertools.pairwise(spans):
        if caption[end:start].strip().lower() in COORDINATORS:
            flags.add("coordinated")
    subjects = {r.subject for r in graph.relations if ps[r.subject] is not None}
    objects = {r.object for r in graph.relations if ps[r.object] is not None}
    if len(subjects) >= 2:
        flags.add("two subjects")
    if len(objects) >= 2:
        flags.add("two objects")
    if any(
        r.subject != r.object and ps[r.subject] is not None and ps[r.object] is not None
        for r in graph.relations
    ):
        flags.add("relation")
    return flags


def measure(captions: list[str], graphs: list[Any], rewriter: Any) -> dict[str, Any]:
    """The ceiling and the refusals over one split.

    Args:
        captions: the captions.
        graphs: their graphs (an exception object where the parse failed).
        rewriter: a :class:`~unimo_kit.rewrite.negatives.Rewriter` built as the stage builds it.

    Returns:
        ``{"captions", "ceiling": {flag: [n, share]}, "candidates": {type: {form: {reason:
        n}}}, "made": {type: [n, share]}, "made_by_form": {type: {form: n}}}``.
    """
    n = len(captions)
    flags: Counter[str] = Counter()
    reasons: dict[str, dict[str, Counter[str]]] = {}
    made: Counter[str] = Counter()
    made_by_form: dict[str, Counter[str]] = {}
    for caption, graph in zip(captions, graphs, strict=True):
        if isinstance(graph, Exception):
            continue
        own = ceiling_flags(caption, graph)
        flags.update(own)
        if own & {"coordinated", "two subjects", "two objects", "relation"}:
            flags["parallel (any)"] += 1
        kinds: set[str] = set()
        review = rewriter.swap_review(caption, graph)
        if any(form == "count" and why != "same count" for _, form, why in review):
            flags["different counts"] += 1  # two stated numbers that differ
        for kind, form, why in review:
            by_form = reasons.setdefault(kind, {}).setdefault(form, Counter())
            by_form[why or "made"] += 1
            if why is None:
                kinds.add(kind)
                made_by_form.setdefault(kind, Counter())[form] += 1
        made.update(kinds)
    share = lambda k: [k, round(100.0 * k / max(n, 1), 2)]  # noqa: E731
    return {
        "captions": n,
        "ceiling": {f: share(k) for f, k in sorted(flags.items())},
        "candidates": {
            t: {f: dict(c.most_common()) for f, c in sorted(by.items())}
            for t, by in sorted(reasons.items())
        },
        "made": {t: share(made[t]) for t in ("swap-att", "swap-obj")},
        "made_by_form": {t: dict(c) for t, c in sorted(made_by_form.items())},
    }


def build_rewriter(graphs: list[Any]) -> Any:
    """A rewriter with the stage's evidence: this split's vocabulary and the shipped table."""
    from unimo_kit.rewrite.negatives import Rewriter
    from unimo_kit.rewrite.reference import load_reference
    from unimo_kit.rewrite.vocab import Vocabulary

    vocab = Vocabulary(min_count=1)
    for graph in graphs:
        if not isinstance(graph, Exception):
            vocab.add(graph)
    return Rewriter(vocab, reference=load_reference(), spares=2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", help="FACTUAL train CSV")
    ap.add_argument("--dev", help="FACTUAL dev CSV")
    ap.add_argument("--train-sample", type=int, default=5000, help="train captions [5000; 0=all]")
    ap.add_argument("--seed", type=int, default=0, help="seed of the train sample")
    ap.add_argument("--label", required=True, help="name of this run in the results")
    ap.add_argument("--output", default=str(RESULTS), help="results JSON")
    args = ap.parse_args(argv)
    from unimo_kit.rewrite.parser import SceneGraphParser

    parser = SceneGraphParser()
    entry: dict[str, Any] = {"code": code_version()}
    for split, path, sample in (("train", args.train, args.train_sample), ("dev", args.dev, 0)):
        if not path:
            continue
        rows = factual_rows(path, sample=sample, seed=args.seed)
        captions = [r["caption"] for r in rows]
        print(f"{split}: parsing {len(captions)} captions", file=sys.stderr)
        graphs = parser.parse_each(captions)
        entry[split] = measure(captions, graphs, build_rewriter(graphs))
        print(json.dumps({split: entry[split]["made"]}), file=sys.stderr)
    out = Path(args.output)
    results = json.loads(out.read_text()) if out.exists() else {}
    results[args.label] = entry
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    tmp.replace(out)
    print(json.dumps(entry, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
