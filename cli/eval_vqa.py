"""``unimo eval vqa``: placeholder until the stage lands."""

import click


@click.command("vqa")
def vqa() -> None:
    """(not yet implemented)"""
    raise click.ClickException("unimo eval vqa is not implemented yet")
