"""``unimo data``: make and convert datasets."""

import click

from unimo_kit.cli.lazy import LazyGroup


@click.group(
    "data",
    cls=LazyGroup,
    lazy_subcommands={"synth": "data_synth:synth", "convert": "data_convert:convert"},
)
def data() -> None:
    """Make the synthetic world, convert COCO / Karpathy / CSV / webdataset to pairs.jsonl."""
