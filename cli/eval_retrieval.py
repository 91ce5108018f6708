"""``unimo eval retrieval``: placeholder until the stage lands."""

import click


@click.command("retrieval")
def retrieval() -> None:
    """(not yet implemented)"""
    raise click.ClickException("unimo eval retrieval is not implemented yet")
