"""``unimo eval caption``: placeholder until the stage lands."""

import click


@click.command("caption")
def caption() -> None:
    """(not yet implemented)"""
    raise click.ClickException("unimo eval caption is not implemented yet")
