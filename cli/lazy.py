"""A click group whose subcommands live in sibling modules, imported on first use."""

from __future__ import annotations

import importlib

import click


class LazyGroup(click.Group):
    """Click group with ``lazy_subcommands={"name": "module:attribute"}``.

    Modules are resolved relative to this package (``unimo_kit.cli``), so each subcommand keeps
    its own file and a broken or slow one does not affect the others.
    """

    def __init__(self, *args, lazy_subcommands: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_subcommands = dict(lazy_subcommands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_subcommands})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = self.lazy_subcommands.get(name)
        if target is None:
            return super().get_command(ctx, name)
        module_name, attribute = target.split(":")
        module = importlib.import_module(f"{__package__}.{module_name}")
        return getattr(module, attribute)
