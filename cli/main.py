"""``unimo``: the click group. Subcommands are imported only when used (or listed)."""

from __future__ import annotations

import logging
import os

import click

from unimo_kit import __version__
from unimo_kit.cli.lazy import LazyGroup

# name -> "module:attribute" under unimo_kit.cli
SUBCOMMANDS: dict[str, str] = {
    "env": "env:env",
    "data": "data:data",
    "rewrite": "rewrite:rewrite",
    "index": "index:index",
    "features": "features:features",
    "train": "train:train",
    "finetune-clip": "finetune:finetune_clip",
    "eval": "eval:eval_group",
    "export": "export:export",
    "demo": "demo:demo",
}


@click.group(
    cls=LazyGroup,
    lazy_subcommands=SUBCOMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="unimo")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """UNIMO toolkit: rewrite captions into hard negatives, mine retrieval positives,
    train a unified-modal Transformer with cross-modal contrastive learning, evaluate.

    \b
    Stages and the files between them (formats in docs/formats.md):
      unimo data synth      -> pairs/texts/images JSONL + images   (the embedded default)
      unimo rewrite         pairs.jsonl -> rewrites.jsonl
      unimo index build     texts.jsonl | images.jsonl -> indexes/NAME/
      unimo index mine      pairs.jsonl + indexes -> retrieved.jsonl
      unimo features        images.jsonl -> features store
      unimo train           all of the above -> runs/NAME/
      unimo eval ...        checkpoint + test sets -> results.json
      unimo demo            all of the above on the synthetic world -> runs/demo/REPORT.md
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    cli(prog_name="unimo")


if __name__ == "__main__":
    main()
