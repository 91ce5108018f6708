"""``unimo eval retrieval``: image<->text R@K and RSUM on a pairs.jsonl test set."""

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


@click.command("retrieval")
@scorer_options
@click.option(
    "--pairs",
    "pairs_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="test pairs.jsonl (one image, several captions per line).",
)
@click.option("--ks", default="1,5,10", show_default=True, help="comma-separated cut-offs K.")
@click.option("--max-images", type=int, help="evaluate the first N images only.")
@click.option("--chunk", default=1024, show_default=True, help="queries per similarity block.")
@strict_option("line")
@click.option(
    "--own-captions-only",
    is_flag=True,
    help="count only a caption's own record as right, not other images sharing the same "
    "caption string or image path (the protocol before shared captions were merged).",
)
@results_option
def retrieval(pairs_path, ks, max_images, chunk, strict, own_captions_only, output, **kw) -> None:
    """Image->text and text->image recall at K of a checkpoint (or a CLIP baseline).

    Karpathy protocol: an image is a hit when ANY of its captions is in the top K; a caption
    when its image is. The same caption string (casefolded, whitespace collapsed) of another
    image, or the same image path in another record, counts as right too. Ties with wrong
    candidates count against the query (pessimistic ranks).

    \b
    Example:
      unimo eval retrieval --checkpoint runs/synth/final \\
          --pairs synth/pairs.test.jsonl -o results/retrieval.json
    """
    from unimo_kit.eval.retrieval import evaluate_retrieval
    from unimo_kit.utils import ErrorReport

    with eval_errors():
        cutoffs = tuple(int(k) for k in ks.split(",") if k.strip())
        report = ErrorReport(strict=strict)
        scorer = build_scorer_from_options(kw)
        results = evaluate_retrieval(
            scorer,
            pairs_path,
            ks=cutoffs,
            chunk=chunk,
            max_images=max_images,
            strict=strict,
            on_error=report,
            shared_captions=not own_captions_only,
        )
        results["skipped_records"] = report.count
    parts = [f"{d}_r{k}={results[f'{d}_r{k}']:.2f}" for d in ("i2t", "t2i") for k in cutoffs]
    summary = (
        f"{results['num_images']} images, {results['num_texts']} captions: "
        + " ".join(parts)
        + f" rsum={results['rsum']:.2f}"
    )
    if results.get("num_shared_captions"):
        summary += (
            f"\n{results['num_shared_captions']} caption(s) are shared by more than one image "
            "(a shared caption counts as right for each of them)"
        )
    if report.count:
        summary += f"\n{report.summary()}"
    emit(results, output, summary)
