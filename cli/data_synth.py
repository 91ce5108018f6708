"""``unimo data synth``: generate the synthetic world (the embedded default dataset)."""

from __future__ import annotations

import click

from unimo_kit.cli.options import (
    no_progress_option,
    output_option,
    resume_from,
    resume_option,
    seed_option,
    workers_option,
)


@click.command("synth")
@output_option("World folder.", folder=True, required=True, deprecated="--out")
@seed_option("Global seed (same seed, same bytes).")
@click.option("--n-images", default=2000, show_default=True, help="Captioned images (all splits).")
@click.option("--image-size", default=224, show_default=True, help="Image side in pixels.")
@click.option("--captions-per-image", default=5, show_default=True, help="Captions per image.")
@click.option("--n-texts", type=int, default=None, help="Text-only descriptions [2 × n-images].")
@click.option("--n-image-only", type=int, default=None, help="Uncaptioned images [n-images / 2].")
@click.option("--val-fraction", default=0.1, show_default=True, help="Share of images in val.")
@click.option("--test-fraction", default=0.1, show_default=True, help="Share of images in test.")
@click.option(
    "--compositional-images",
    default=0,
    show_default=True,
    help="More unseen scenes, drawn like test scenes, only for the compositional test set "
    "(images/cmp-*.png, listed in compositional.images.jsonl).",
)
@workers_option("Render processes [auto]; output unchanged.")
@resume_option(
    "Keep DIR when it holds a complete world of these very parameters; --no-resume regenerates it.",
    deprecated="--force",
)
@no_progress_option
def synth(
    output: str,
    seed: int,
    n_images: int,
    image_size: int,
    captions_per_image: int,
    n_texts: int | None,
    n_image_only: int | None,
    val_fraction: float,
    test_fraction: float,
    compositional_images: int,
    workers: int | None,
    resume: bool,
    force: bool,
    no_progress: bool,
) -> None:
    """Generate the synthetic world: images of coloured shapes with captions and gold scene
    graphs, train/val/test splits (val/test hold colour–shape pairs never seen in training),
    a text-only corpus, an image-only collection and a compositional test set.

    \b
    Example:
      unimo data synth -o data/synth --seed 0 --n-images 2000
    \b
    Writes (formats in docs/formats.md and docs/synth.md):
      images/*.png  pairs.{train,val,test}.jsonl  texts.jsonl  images.jsonl  scenes.jsonl
      compositional.test.jsonl  compositional.images.jsonl  captions.factual.csv  world.json
    --compositional-images N adds N scenes whose only use is a larger compositional test set
    (100 test images give ~87 items of the rarest categories); the rest of the world is
    unchanged by it. Give compositional.images.jsonl to `unimo features` with the other files.
    If DIR already holds a complete world made with the same parameters it is kept
    (--no-resume: made again).
    """
    from unimo_kit.data.synth import generate_world

    try:
        world = generate_world(
            output,
            seed=seed,
            n_images=n_images,
            image_size=image_size,
            captions_per_image=captions_per_image,
            n_texts=n_texts,
            n_image_only=n_image_only,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            n_compositional_images=compositional_images,
            workers=workers,
            progress=not no_progress,
            force=not resume_from(resume, force, "--force"),
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    counts = world.counts
    if world.reused:
        click.echo(f"{world.out_dir} already holds this world (--no-resume regenerates it)")
    images = counts["images"]
    composed = sum(counts["compositional"].values())
    click.echo(
        f"world in {world.out_dir}: {images['train']}/{images['val']}/{images['test']} "
        f"train/val/test images, {sum(counts['captions'].values())} captions, "
        f"{counts['texts']} texts, {counts['image_only']} image-only, "
        f"{composed} compositional test items"
        + (
            f" ({counts['compositional_images']} images beyond the test split)"
            if counts["compositional_images"]
            else ""
        )
        + "; held out: "
        + ", ".join(f"{c} {s}" for c, s in world.held_out)
    )
