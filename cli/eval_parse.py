"""``unimo eval parse``: placeholder until the stage lands."""

import click


@click.command("parse")
def parse() -> None:
    """(not yet implemented)"""
    raise click.ClickException("unimo eval parse is not implemented yet")
