"""``unimo data``: placeholder until the stage lands."""

import click


@click.group("data", invoke_without_command=True)
def data() -> None:
    """(not yet implemented)"""
    raise click.ClickException("unimo data is not implemented yet")
