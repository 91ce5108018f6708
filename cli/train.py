"""``unimo train``: placeholder until the stage lands."""

import click


@click.group("train", invoke_without_command=True)
def train() -> None:
    """(not yet implemented)"""
    raise click.ClickException("unimo train is not implemented yet")
