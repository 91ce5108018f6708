"""``unimo eval compositional``: positive-vs-negative caption accuracy per category."""

from __future__ import annotations

import click

from unimo_kit.cli._eval_common import (
    build_scorer_from_options,
    emit,
    eval_errors,
    results_option,
    scorer_options,
)
from unimo_kit.cli.options import strict_option


@click.command("compositional")
@scorer_options
@click.option(
    "--data",
    "data_paths",
    required=True,
    multiple=True,
    type=click.Path(exists=True),
    help="compositional.test.jsonl, a generic JSONL, a SugarCrepe .json or a folder of them "
    "(repeatable).",
)
@click.option(
    "--images",
    "images_dir",
    type=click.Path(exists=True, file_okay=False),
    help="image folder of SugarCrepe files (COCO val2017).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "jsonl", "sugarcrepe"]),
    default="auto",
    show_default=True,
    help="input format (auto: .json or folder = SugarCrepe, else JSONL).",
)
@click.option(
    "--score",
    type=click.Choice(["contrastive", "generative", "token", "matching"]),
    default="contrastive",
    show_default=True,
    help="contrastive: cosine of the CMCL/CLIP embeddings; generative: log p(caption | image) "
    "of a unimo checkpoint's captioning (seq2seq) head; token: each word matched to its best "
    "image region, averaged (checkpoints trained with token_alignment); matching: the "
    "image-text matching head on image and text encoded together (checkpoints trained with "
    "itm).",
)
@strict_option("record")
@results_option
def compositional(data_paths, images_dir, fmt, score, strict, output, **kw) -> None:
    """Accuracy of scoring the true caption strictly above every false one (ties are wrong),
    per category (replace-att, swap-obj, ...) and overall, for a checkpoint or a CLIP model.

    \b
    Examples:
      unimo eval compositional --checkpoint runs/synth/final \\
          --data synth/compositional.test.jsonl -o results/compositional.json
      unimo eval compositional --open-clip ViT-B-32:/models/clip.bin \\
          --data sugarcrepe/ --images coco/val2017
    """
    from unimo_kit.eval.compositional import evaluate_compositional, load_compositional
    from unimo_kit.utils import ErrorReport

    with eval_errors():
        report = ErrorReport(strict=strict)
        examples = []
        for path in data_paths:
            examples.extend(
                load_compositional(
                    path, images_dir=images_dir, fmt=fmt, strict=strict, on_error=report
                )
            )
        if not examples:
            raise click.ClickException(
                f"no valid examples in {', '.join(data_paths)}"
                + (f" ({report.summary()})" if report.count else "")
            )
        scorer = build_scorer_from_options(kw)
        results = evaluate_compositional(scorer, examples, data=",".join(data_paths), score=score)
        results["skipped_records"] = report.count
    lines = [f"{'category':<14} {'acc':>7} {'chance':>7} {'n':>6}   95% CI         p(>chance)"]
    for name, c in results["categories"].items():
        lo, hi = c["ci95"]
        lines.append(
            f"{name:<14} {c['accuracy']:>7.3f} {c['chance']:>7.3f} {c['count']:>6}   "
            f"[{lo:.3f}, {hi:.3f}]  {c['p_above_chance']:.2g}"
        )
    lines.append(
        f"{'overall':<14} {results['accuracy']:>7.3f} {results['chance']:>7.3f} "
        f"{results['num_examples']:>6}   (macro {results['macro_accuracy']:.3f})"
    )
    for subset, part in results.get("subsets", {}).items():
        cats = "  ".join(f"{n} {c['accuracy']:.3f}" for n, c in part["categories"].items())
        lines.append(f"{subset:<14} {part['accuracy']:>7.3f} ({part['num_examples']}): {cats}")
    if report.count:
        lines.append(report.summary())
    emit(results, output, "\n".join(lines))
