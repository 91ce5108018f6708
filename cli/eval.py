"""``unimo eval``: placeholder until the stage lands."""

import click


@click.group("eval", invoke_without_command=True)
def eval() -> None:
    """(not yet implemented)"""
    raise click.ClickException("unimo eval is not implemented yet")
