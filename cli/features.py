"""``unimo features``: placeholder until the stage lands."""

import click


@click.group("features", invoke_without_command=True)
def features() -> None:
    """(not yet implemented)"""
    raise click.ClickException("unimo features is not implemented yet")
