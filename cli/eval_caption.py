"""``unimo eval caption``: generate captions with a checkpoint and score BLEU/METEOR/ROUGE/CIDEr."""

from __future__ import annotations

import click

from unimo_kit.cli._eval_common import (
    checkpoint_option,
    emit,
    eval_errors,
    extractor_option,
    features_option,
    results_option,
)
from unimo_kit.cli.options import device_option


@click.command("caption")
@checkpoint_option(required=True)
@click.option(
    "--references",
    "references_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="pairs.jsonl (captions per image) or a COCO captions .json.",
)
@click.option(
    "--images-root",
    type=click.Path(exists=True, file_okay=False),
    help="folder of the COCO file_name paths (default: the JSON's folder).",
)
@features_option
@extractor_option
@click.option("--beams", default=1, show_default=True, help="1 = greedy, k > 1 = beam search.")
@click.option("--max-length", default=20, show_default=True, help="most generated word pieces.")
@click.option("--max-images", type=int, help="caption the first N images only.")
@click.option(
    "--tokenizer",
    type=click.Choice(["auto", "ptb", "simple"]),
    default="auto",
    show_default=True,
    help="metric tokenizer (ptb needs Java).",
)
@click.option(
    "--meteor",
    type=click.Choice(["auto", "yes", "no"]),
    default="auto",
    show_default=True,
    help="METEOR (needs Java; auto skips it with a note when Java is missing).",
)
@click.option("--predictions", type=click.Path(dir_okay=False), help="write captions JSONL here.")
@device_option
@click.option("--batch-size", default=32, show_default=True, help="images per generate call.")
@results_option
def caption(
    checkpoint,
    references_path,
    images_root,
    features,
    extractor,
    beams,
    max_length,
    max_images,
    tokenizer,
    meteor,
    predictions,
    device,
    batch_size,
    output,
) -> None:
    """Caption the test images with the seq2seq head and score against the references.

    \b
    Example:
      unimo eval caption --checkpoint runs/synth/final \\
          --references synth/pairs.test.jsonl --beams 3 -o results/caption.json
    """
    from unimo_kit.eval.caption import evaluate_captioning
    from unimo_kit.eval.errors import checkpoint_files
    from unimo_kit.utils import ResumableJsonlWriter

    with eval_errors():
        checkpoint_files(checkpoint)
        results = evaluate_captioning(
            checkpoint,
            references_path,
            features=features,
            extractor=extractor,
            num_beams=beams,
            max_length=max_length,
            max_images=max_images,
            images_root=images_root,
            tokenizer=tokenizer,
            meteor=meteor,
            batch_size=batch_size,
            device=device,
        )
    if predictions:
        with ResumableJsonlWriter(predictions, resume=False) as writer:
            writer.write_many(results["predictions"])
    metrics = ["bleu4", "meteor", "rouge_l", "cider"]
    summary = f"{results['num_images']} images, beams={beams}: " + " ".join(
        f"{m}={results[m]:.4f}" for m in metrics if m in results
    )
    for note in results["notes"]:
        summary += f"\nnote: {note}"
    emit(results, output, summary)
