"""``unimo rewrite``: placeholder until the stage lands."""

import click


@click.group("rewrite", invoke_without_command=True)
def rewrite() -> None:
    """(not yet implemented)"""
    raise click.ClickException("unimo rewrite is not implemented yet")
