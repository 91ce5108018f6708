"""``unimo env``: placeholder."""

import click


@click.command("env")
def env() -> None:
    """(not yet implemented)"""
