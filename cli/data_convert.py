"""``unimo data convert``: COCO / Karpathy / CSV / webdataset / JSONL -> pairs.jsonl."""

from __future__ import annotations

import click

from unimo_kit.cli.options import output_option, strict_option
from unimo_kit.data.convert import FORMATS

CSV_OPTIONS = ("csv_img_key", "csv_caption_key", "csv_id_key", "csv_sep")


@click.command("convert")
@click.argument("fmt", metavar="FORMAT", type=click.Choice(FORMATS))
@click.argument(
    "inputs",
    metavar="INPUT...",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, dir_okay=False),
)
@output_option("pairs.jsonl to write.", required=True, deprecated="--out")
@click.option(
    "--images-root",
    type=click.Path(file_okay=False),
    help="Directory the source's image paths are relative to (coco, karpathy, csv). "
    "Default: the directory of each input file.",
)
@click.option(
    "--images-dir",
    type=click.Path(file_okay=False),
    help="Where webdataset images are extracted. Default: images/ next to the output.",
)
@click.option(
    "--split",
    help="Keep only pairs of this split; pairs from sources without splits (coco, csv, "
    "webdataset) are labelled with it.",
)
@click.option(
    "--restval-to-train", is_flag=True, help="Karpathy COCO: count 'restval' images as 'train'."
)
@click.option("--csv-img-key", default="filepath", show_default=True, help="CSV image column.")
@click.option("--csv-caption-key", default="title", show_default=True, help="CSV caption column.")
@click.option("--csv-id-key", help="CSV id column. Default: the image path without extension.")
@click.option("--csv-sep", help="CSV separator ('tab' or '\\t' for TSV). Default: by extension.")
@strict_option("record")
@click.option(
    "--check-images", is_flag=True, help="Decode every image; leave out missing or corrupt ones."
)
@click.pass_context
def convert(
    ctx: click.Context,
    fmt: str,
    inputs: tuple[str, ...],
    output: str,
    images_root: str | None,
    images_dir: str | None,
    split: str | None,
    restval_to_train: bool,
    csv_img_key: str,
    csv_caption_key: str,
    csv_id_key: str | None,
    csv_sep: str | None,
    strict: bool,
    check_images: bool,
) -> None:
    """Convert image-caption data in FORMAT to a pairs.jsonl (docs/formats.md).

    \b
    FORMAT is one of:
      coco        COCO captions JSON (captions_train2017.json); --images-root is the
                  folder holding the images (train2017/)
      karpathy    Karpathy-split JSON (dataset_coco.json, dataset_flickr30k.json)
      csv         open_clip-style CSV/TSV with a header (filepath,title); consecutive
                  rows of one image merge into one pair with several captions
      webdataset  tar shards of KEY.jpg/png/webp + KEY.txt (+ KEY.json); images are
                  extracted to --images-dir
      jsonl       pairs.jsonl files (merge, filter a split, check images, relocate)

    Malformed records are reported as FILE:LINE (or FILE:member) and skipped; --strict
    stops at the first one with exit code 1. The output is written atomically.

    \b
    Examples:
      unimo data convert karpathy dataset_coco.json --images-root coco/ \\
          --split test -o data/coco.test.jsonl
      unimo data convert coco annotations/captions_val2017.json \\
          --images-root coco/val2017 --split val -o data/coco.val.jsonl
      unimo data convert csv train.tsv --csv-caption-key caption -o data/train.jsonl
      unimo data convert webdataset shards/*.tar -o data/wds.jsonl --check-images
    """
    from unimo_kit.data.convert import convert as run_convert
    from unimo_kit.data.images import ImageError
    from unimo_kit.utils import RecordError

    if fmt != "csv":
        for name in CSV_OPTIONS:
            if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE:
                flag = "--" + name.replace("_", "-")
                raise click.UsageError(f"{flag} applies only to the csv format")
    if images_root is not None and fmt in ("webdataset", "jsonl"):
        raise click.UsageError(f"--images-root does not apply to {fmt} inputs")
    if images_dir is not None and fmt != "webdataset":
        raise click.UsageError("--images-dir applies only to the webdataset format")
    if restval_to_train and fmt != "karpathy":
        raise click.UsageError("--restval-to-train applies only to the karpathy format")
    if csv_sep is not None and csv_sep.lower() in ("tab", "\\t"):
        csv_sep = "\t"
    if csv_sep is not None and len(csv_sep) != 1:
        raise click.BadParameter("must be one character (or 'tab')", param_hint="--csv-sep")

    try:
        summary = run_convert(
            fmt,
            list(inputs),
            output,
            images_root=images_root,
            images_dir=images_dir,
            split=split,
            restval_to_train=restval_to_train,
            csv_img_key=csv_img_key,
            csv_caption_key=csv_caption_key,
            csv_id_key=csv_id_key,
            csv_sep=csv_sep,
            strict=strict,
            check_images=check_images,
        )
    except (RecordError, ImageError) as error:
        hint = " (--strict: nothing written)" if strict else ""
        raise click.ClickException(f"{error}{hint}") from None
    for line in summary.lines():
        click.echo(line)
