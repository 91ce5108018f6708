"""``unimo eval batch``: placeholder until the stage lands."""

import click


@click.command("batch")
def batch() -> None:
    """(not yet implemented)"""
    raise click.ClickException("unimo eval batch is not implemented yet")
