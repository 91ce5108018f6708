"""``unimo index``: placeholder until the stage lands."""

import click


@click.group("index", invoke_without_command=True)
def index() -> None:
    """(not yet implemented)"""
    raise click.ClickException("unimo index is not implemented yet")
