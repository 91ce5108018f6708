"""``unimo eval batch``: many checkpoints x tasks from one config -> tables and plots."""

from __future__ import annotations

import click

from unimo_kit.cli._eval_common import eval_errors
from unimo_kit.cli.options import output_option, resume_option


@click.command("batch")
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@output_option(
    "folder for rows.jsonl, results.{json,csv,md} and plots/.",
    folder=True,
    required=True,
    deprecated="--output-dir",
)
@resume_option(
    "Keep the rows already in OUTPUT/rows.jsonl (same checkpoint, task and settings); "
    "--no-resume recomputes them."
)
@click.option("--no-plots", is_flag=True, help="tables only.")
def batch(config: str, output: str, resume: bool, no_plots: bool) -> None:
    """Evaluate every checkpoint of CONFIG on every task; one table with hashes, plus plots.

    CONFIG is JSON: {"checkpoints": [{"label", "path" | "open_clip" | "st_clip", "group",
    "seed", ...}], "tasks": [{"task": "retrieval" | "compositional" | "caption", "data", ...}]}.
    Checkpoints sharing a group are summarised as mean ± std over their seeds. See
    docs/eval.md for every field.

    \b
    Example:
      unimo eval batch ablation.json -o results/ablation
    """
    from unimo_kit.eval.batch import run_batch

    with eval_errors():
        rows = run_batch(config, output, resume=resume, plots=not no_plots, log=_log)
    click.echo(f"{len(rows)} result rows -> {output}/results.md (.json, .csv, plots/)")


def _log(message: str) -> None:
    click.echo(message, err=True)
