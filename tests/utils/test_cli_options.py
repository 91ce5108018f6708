"""The options every stage spells the same way (``unimo_kit.cli.options``): one
``--resume/--no-resume``, an old spelling hidden and warned about, ``--strict``,
``--no-progress``."""

from __future__ import annotations

import click
from click.testing import CliRunner

from unimo_kit.cli.options import (
    no_progress_option,
    resume_from,
    resume_option,
    strict_option,
    workers_option,
)


@click.command()
@resume_option("Keep the finished lines of OUT.", deprecated="--restart")
@strict_option("pair")
@no_progress_option
@workers_option("Processes.")
def stage(resume: bool, restart: bool, strict: bool, no_progress: bool, workers: int | None):
    resume = resume_from(resume, restart, "--restart")
    click.echo(f"resume={resume} strict={strict} progress={not no_progress}")
    if workers is not None:
        click.echo(f"workers={workers}")


def _run(*args: str):
    return CliRunner().invoke(stage, list(args))


def test_defaults_and_each_flag():
    assert _run().output == "resume=True strict=False progress=True\n"
    assert _run("--no-resume", "--strict", "--no-progress").output == (
        "resume=False strict=True progress=False\n"
    )
    assert _run("--resume").output.startswith("resume=True")


def test_the_old_spelling_starts_afresh_with_a_warning():
    result = _run("--restart")
    assert result.exit_code == 0
    assert "warning: --restart is deprecated; use --no-resume" in result.output
    assert "resume=False" in result.output
    assert "deprecated" not in _run().output


def test_help_lists_the_one_pair_and_hides_the_old_spelling():
    text = _run("--help").output
    assert "--resume / --no-resume" in text and "[default: resume]" in text
    assert "Keep the finished lines of OUT." in text and "Stop at the first bad pair." in text
    assert "--restart" not in text and "No progress bars." in text


def test_workers_are_at_least_one():
    assert _run("--workers", "3").output.endswith("workers=3\n")
    refused = _run("--workers", "0")
    assert refused.exit_code == 2 and "Invalid value for '--workers'" in refused.output


def test_where_names_the_command():
    assert resume_from(True, False, "--overwrite") is True
    runner = CliRunner()

    @click.command()
    def cmd() -> None:
        click.echo(resume_from(True, True, "--overwrite", " for build"))

    out = runner.invoke(cmd).output
    assert out == "warning: --overwrite is deprecated for build; use --no-resume\nFalse\n"
