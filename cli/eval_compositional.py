"""``unimo eval compositional``: placeholder until the stage lands."""

import click


@click.command("compositional")
def compositional() -> None:
    """(not yet implemented)"""
    raise click.ClickException("unimo eval compositional is not implemented yet")
