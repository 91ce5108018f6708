"""Does a checkpoint read spatial direction, and on which side is it lost?

For each checkpoint, on a ``unimo data synth`` world:

1. **replace-rel split by what the negative changes** (token score on the compositional test
   set): the direction on one axis (``left of`` ↔ ``right of``, ``above`` ↔ ``below``), or a
   relation of the other axis / ``next to`` — only the first needs who-is-where;
2. **the text side alone**, on training captions that have both an inverse paraphrase
   (``A below B`` → ``B above A``, true) and a direction flip among their rewritten negatives
   (``A above B``, false): how often the CMCL text embedding of the caption is closer to the
   paraphrase than to the flip, and how often the paraphrase beats the flip by the token score
   on the caption's own image. A text encoder that reads who is where puts the paraphrase
   closer; one that reads word identity and order puts the flip closer.

Prints a table and writes ``benchmarks/results/probe_direction.json``.

    python benchmarks/probe_direction.py --world runs/demo/world runs/demo/run/final [CKPT ...]
"""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np

from unimo_kit.eval.compositional import load_compositional, score_examples
from unimo_kit.eval.scorers import UnimoScorer

AXIS_WORDS = (
    ("left", "left"),
    ("right", "right"),
    ("above", "above"),
    ("over", "above"),
    ("top", "above"),
    ("below", "below"),
    ("under", "below"),
    ("beneath", "below"),
)
OPPOSITE = {
    frozenset({"left", "right"}): "left<->right",
    frozenset({"above", "below"}): "above<->below",
}


def direction(phrase: str) -> str:
    """``left`` / ``right`` / ``above`` / ``below``, or ``other`` (``next to``, ...)."""
    phrase = phrase.lower()
    return next((d for word, d in AXIS_WORDS if word in phrase), "other")


def change_kind(old: str, new: str) -> str:
    """What a relation edit changes: a direction on one axis, or anything else."""
    return OPPOSITE.get(frozenset({direction(old), direction(new)}), "across axes / next to")


def _relation(graph: str) -> str:
    """The predicate of the last triple of a linearised scene graph."""
    return graph.rsplit("(", 1)[1].split(" , ")[1]


def replace_rel_split(scorer: UnimoScorer, world: Path) -> dict[str, dict[str, float]]:
    records = {}
    path = world / "compositional.test.jsonl"
    for line in path.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        if r["category"] == "replace-rel":
            records[r["id"]] = (_relation(r["positive_graph"]), _relation(r["negative_graphs"][0]))
    examples = [e for e in load_compositional(path) if e.id in records]
    positive, negatives = score_examples(scorer, examples, "token")
    right, total = Counter(), Counter()
    for example, pos, neg in zip(examples, positive, negatives, strict=True):
        kind = change_kind(*records[example.id])
        right[kind] += int(pos > neg[0])
        total[kind] += 1
    return {k: {"accuracy": right[k] / total[k], "items": total[k]} for k in sorted(total)}


def paraphrase_vs_flip(scorer: UnimoScorer, world: Path, limit: int) -> dict[str, float]:
    rows = []
    for line in (world / "rewrites.jsonl").read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        inverse = [p["text"] for p in r["positives"] if p["type"] == "inverse-rel"]
        flips = [
            n["text"]
            for n in r["negatives"]
            if n["type"] == "replace-rel"
            and change_kind(n["edits"][0]["old"], n["edits"][0]["new"]) in OPPOSITE.values()
        ]
        if inverse and flips:
            rows.append((r["pair_id"], r["caption"], inverse[0], flips[0]))
    rows = rows[:limit]
    captions, paraphrases, flips = ([row[k] for row in rows] for k in (1, 2, 3))
    cap, para, flip = (scorer.encode_texts(texts) for texts in (captions, paraphrases, flips))
    cos_para, cos_flip = (cap * para).sum(1), (cap * flip).sum(1)
    images = [row[0] for row in rows]
    token_para = scorer.token_alignment_scores(images, paraphrases)
    token_flip = scorer.token_alignment_scores(images, flips)
    return {
        "captions": len(rows),
        "cosine_caption_paraphrase": float(cos_para.mean()),
        "cosine_caption_flip": float(cos_flip.mean()),
        "paraphrase_closer": float(np.mean(cos_para > cos_flip)),
        "paraphrase_beats_flip_on_image": float(np.mean(token_para > token_flip)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+", help="unimo_kit checkpoint folders")
    parser.add_argument("--world", required=True, type=Path, help="a `unimo data synth` folder")
    parser.add_argument("--features", type=Path, help="features store [WORLD/features]")
    parser.add_argument("--captions", type=int, default=300, help="training captions probed")
    parser.add_argument(
        "--output", default=str(Path(__file__).parent / "results" / "probe_direction.json")
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    results = []
    for checkpoint in args.checkpoints:
        scorer = UnimoScorer(checkpoint, args.features or args.world / "features")
        split = replace_rel_split(scorer, args.world)
        text = paraphrase_vs_flip(scorer, args.world, args.captions)
        results.append({"checkpoint": checkpoint, "replace_rel": split, "text": text})
        cells = ", ".join(
            f"{k} {100 * v['accuracy']:.1f} % ({v['items']})" for k, v in split.items()
        )
        print(f"{checkpoint}\n  replace-rel: {cells}")
        print(
            f"  text: paraphrase closer than flip {100 * text['paraphrase_closer']:.1f} % "
            f"(cosine {text['cosine_caption_paraphrase']:.3f} vs "
            f"{text['cosine_caption_flip']:.3f}); paraphrase beats flip on the image "
            f"{100 * text['paraphrase_beats_flip_on_image']:.1f} % ({text['captions']} captions)"
        )
    out = {"world": str(args.world), "results": results}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
