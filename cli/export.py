"""``unimo export``: pairs with their hard negatives and positives as webdataset tar shards (or
parquet), for trainers that read webdataset and do not import unimo_kit."""

from __future__ import annotations

import click

from unimo_kit.cli.options import (
    no_progress_option,
    output_option,
    resume_option,
    seed_option,
    strict_option,
)


@click.command("export")
@click.argument("pairs", type=click.Path(exists=True, dir_okay=False))
@output_option(
    "Output folder: PREFIX-000000.tar ..., export.json and manifest.json.",
    folder=True,
    required=True,
)
@click.option(
    "--rewrites",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="rewrites.jsonl of PAIRS (unimo rewrite): typed hard negatives and positives.",
)
@click.option(
    "--retrieved",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="retrieved.jsonl of PAIRS (unimo index mine): neighbour-caption negatives, "
    "related texts and images as positives.",
)
@click.option(
    "--on-the-fly",
    is_flag=True,
    help="No --rewrites: rewrite the captions while exporting (parses with spaCy; slow).",
)
@click.option(
    "--vocab",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Vocabulary of --on-the-fly rewrites (unimo rewrite --save-vocab) [built from PAIRS].",
)
@click.option("--spacy-model", default=None, help="spaCy pipeline of --on-the-fly [auto].")
@click.option(
    "--format",
    "layout",
    type=click.Choice(["webdataset", "parquet"]),
    default="webdataset",
    show_default=True,
    help="Tar shards, or parquet files (needs the pyarrow package).",
)
@click.option(
    "--samples-per-shard", default=1000, show_default=True, help="Captions per shard file."
)
@click.option("--prefix", default="shard", show_default=True, help="Shard file name prefix.")
@click.option(
    "--one-per-image",
    is_flag=True,
    help="One sample per image (its caption drawn with --seed) instead of one per caption.",
)
@click.option("--split", default=None, help="Keep only pairs of this split.")
@click.option(
    "--sentence-negatives/--no-sentence-negatives",
    default=True,
    show_default=True,
    help="Include the rewrite stage's TF-IDF captions of other images (type 'sentence').",
)
@click.option(
    "--retrieved-negatives/--no-retrieved-negatives",
    default=True,
    show_default=True,
    help="Include --retrieved neighbour captions (type 'retrieved').",
)
@seed_option("Seed of on-the-fly rewrites and of --one-per-image's caption draw.")
@resume_option(
    "Keep the shards an earlier run with the same options and inputs completed "
    "(--no-resume: start the export afresh)."
)
@strict_option()
@no_progress_option
def export(
    pairs: str,
    output: str,
    rewrites: str | None,
    retrieved: str | None,
    on_the_fly: bool,
    vocab: str | None,
    spacy_model: str | None,
    layout: str,
    samples_per_shard: int,
    prefix: str,
    one_per_image: bool,
    split: str | None,
    sentence_negatives: bool,
    retrieved_negatives: bool,
    seed: int,
    resume: bool,
    strict: bool,
    no_progress: bool,
) -> None:
    """Write PAIRS (pairs.jsonl) with every hard negative and positive of each caption as
    webdataset tar shards: per sample KEY.jpg (the image file as it is), KEY.txt (the
    caption) and KEY.json (id, captions, negatives and positives with their types). A trainer
    that reads webdataset (open_clip_train: --train-data 'OUT/shard-{000000..000009}.tar')
    takes images and captions as usual and finds the negatives in the json member.

    \b
    Examples:
      unimo export pairs.jsonl --rewrites rewrites.jsonl -o shards/
      unimo export pairs.jsonl --rewrites rewrites.jsonl --retrieved retrieved.jsonl \\
          --samples-per-shard 5000 -o shards/
      unimo export pairs.jsonl --on-the-fly -o shards/ --format parquet
    \b
    Shard i holds captions [i*N, (i+1)*N) (N = --samples-per-shard), written as NAME.tmp and
    renamed when complete; export.json lists the finished shards (and the options and
    inputs, for readers), manifest.json is the resume manifest every stage keeps. Rerunning
    the same command after a kill skips the finished shards and writes the rest; a rerun
    with other options or changed inputs is refused (--no-resume replaces the earlier
    export). A missing image or a bad input line is reported as FILE:LINE and
    left out. Layout: docs/formats.md, "Exported webdataset shards"; reading it back in
    PyTorch: docs/generators.md.
    """
    from unimo_kit.generators.export import ExportConfig, export_pairs
    from unimo_kit.resources import ResourceNotFound
    from unimo_kit.utils import RecordError

    if not (rewrites or retrieved or on_the_fly):
        raise click.UsageError(
            "nothing to export beside the captions: give --rewrites, --retrieved or --on-the-fly"
        )
    if on_the_fly and rewrites:
        raise click.UsageError("--on-the-fly and --rewrites exclude each other")
    config = ExportConfig(
        rewrites=rewrites,
        retrieved=retrieved,
        layout=layout,
        samples_per_shard=samples_per_shard,
        prefix=prefix,
        each_caption=not one_per_image,
        split=split,
        sentence_negatives=sentence_negatives,
        retrieved_negatives=retrieved_negatives,
        on_the_fly=on_the_fly,
        vocab=vocab,
        spacy_model=spacy_model,
        seed=seed,
        strict=strict,
        resume=resume,
        progress=not no_progress,
    )
    try:
        summary = export_pairs(pairs, output, config)
    except (ValueError, RecordError, FileNotFoundError, ResourceNotFound) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"wrote {summary.samples} sample(s) in {len(summary.shards)} shard(s) to "
        f"{summary.out_dir} ({summary.resumed} shard(s) kept from an earlier run, "
        f"{summary.skipped} left out)",
        err=True,
    )
