"""``unimo features``: extract visual tokens of images into a features store."""

from __future__ import annotations

import click

from unimo_kit.cli.engine_options import engine_errors, engine_from_cli, engine_options
from unimo_kit.cli.options import (
    device_option,
    no_progress_option,
    output_option,
    resume_option,
    shard_option,
    strict_option,
    workers_option,
)


@click.command("features")
@click.argument(
    "inputs",
    nargs=-1,
    required=True,
    metavar="IMAGES_OR_PAIRS_JSONL...",
    type=click.Path(exists=True, dir_okay=False),
)
@output_option("Features store folder.", folder=True, required=True, deprecated="--out")
@click.option(
    "--extractor",
    default="effnet",
    show_default=True,
    help="effnet (EfficientNet-Lite0 7x7 grid, ImageNet weights), effnet-ms (the same grid + "
    "two earlier stages pooled onto it: colour; what the demo uses), open_clip:MODEL[:TAG_OR_PATH] "
    "(ViT patch tokens), or import:PATH (precomputed region features: a folder of <id>.npz or "
    "one bundle .npz).",
)
@click.option("--batch-size", default=32, show_default=True, help="Images per forward pass.")
@shard_option("Process only shard I of N (0-based).")
@click.option(
    "--dtype",
    type=click.Choice(["float16", "float32"]),
    default="float16",
    show_default=True,
    help="Storage type of the features.",
)
@click.option("--chunk-size", default=256, show_default=True, help="Images per chunk file.")
@device_option
@resume_option(
    "Skip images already stored (--no-resume: recompute this shard's images; the store's "
    "extractor, dim and dtype stay)."
)
@strict_option("record or image")
@workers_option(
    "--engine ray: extractor actors at once, each holding the model [default: one per "
    "GPU of the cluster, else per CPU]."
)
@no_progress_option
@engine_options
def features(
    inputs: tuple[str, ...],
    output: str,
    extractor: str,
    batch_size: int,
    shard: str | None,
    dtype: str,
    chunk_size: int,
    device: str | None,
    resume: bool,
    strict: bool,
    workers: int | None,
    no_progress: bool,
    engine: str,
    ray_address: str | None,
) -> None:
    """Extract visual tokens (features + boxes) for every image of each IMAGES_OR_PAIRS_JSONL
    into one store (pairs.jsonl and images.jsonl files alike; ids must be unique across them).

    The store (docs/features.md) holds, per image id, N tokens of dimension F with their
    normalised boxes; `unimo train` reads it. Killed runs resume where they stopped; shards
    may write into the same folder.

    \b
    Examples:
      unimo features synth/pairs.*.jsonl synth/images.jsonl -o synth/features
      unimo features pairs.jsonl -o feats --shard 0/4          # one of four machines
      unimo features pairs.jsonl -o feats --extractor import:butd_npz/
      unimo features pairs.jsonl -o feats --engine ray --ray-address auto

    With --engine ray the images are checked (do they load?) in CPU units, then encoded in
    units of 256 by actors holding the extractor once each (one GPU each where the cluster
    has GPUs), and joined in input order: the store is byte-identical to --engine local.
    Finished units wait in FEATURES/.engine/, so a killed run resumes; inputs, images and
    the store must be paths every worker sees (docs/scaling.md).
    """
    from unimo_kit.engine import run_features
    from unimo_kit.features.extractors import build_extractor
    from unimo_kit.resources import ResourceNotFound
    from unimo_kit.utils import parse_shard

    options = engine_from_cli(engine, ray_address, workers=workers, progress=not no_progress)
    built = extractor
    if engine == "local" or extractor.startswith("import:"):  # the workers build their own
        try:
            built = build_extractor(extractor, device=device)
        except (ValueError, FileNotFoundError, ResourceNotFound) as exc:
            raise click.ClickException(str(exc)) from exc
        except ImportError as exc:  # e.g. a torchvision that does not fit torch
            raise click.ClickException(
                f"extractor {extractor!r} cannot be loaded: {exc}; `unimo env` checks the install"
            ) from exc
    for input_path in inputs:
        try:
            report = run_features(
                input_path,
                output,
                extractor=built,
                engine=options,
                batch_size=batch_size,
                shard=parse_shard(shard),
                resume=resume,
                dtype=dtype,
                chunk_size=chunk_size,
                device=device,
                strict=strict,
                progress=not no_progress,
            )
        except (
            ValueError,
            FileNotFoundError,
            ImportError,
            ResourceNotFound,
            *engine_errors(),
        ) as exc:
            raise click.ClickException(f"{input_path}: {exc}") from exc
        click.echo(f"{input_path}: {report.summary()}", err=True)
        resume = True  # --no-resume clears the shard once, before the first input
