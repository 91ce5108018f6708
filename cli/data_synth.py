"""``unimo data synth``: placeholder until the stage lands."""

import click


@click.command("synth")
def synth() -> None:
    """(not yet implemented)"""
    raise click.ClickException("unimo data synth is not implemented yet")
