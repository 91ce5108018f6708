"""``unimo data convert``: placeholder until the stage lands."""

import click


@click.command("convert")
def convert() -> None:
    """(not yet implemented)"""
    raise click.ClickException("unimo data convert is not implemented yet")
