"""``unimo demo``: the whole pipeline on the embedded synthetic world (what ``make demo`` runs)."""

from __future__ import annotations

from pathlib import Path

import click

from unimo_kit.cli.options import (
    output_option,
    resume_from,
    resume_option,
    seed_option,
    set_option,
)


@click.command("demo")
@output_option("Folder for everything.", folder=True, default="runs/demo", deprecated="--out")
@click.option(
    "--n-images",
    type=int,
    default=4000,
    show_default=True,
    help="Synthetic images (80/10/10 train/val/test).",
)
@click.option(
    "--compositional-images",
    type=int,
    default=None,
    help="More scenes for the compositional test set alone [as many as the test split, "
    "0.1 x n-images]: "
    "unimo data synth --compositional-images.",
)
@seed_option("Seed of the world, the rewrites and training.")
@click.option(
    "--preset",
    default="synth-small",
    show_default=True,
    help="Training preset (unimo train --list-presets).",
)
@click.option("--steps", type=int, default=None, help="Override the preset's training steps.")
@set_option(
    "Override a field of the training preset (repeatable; passed to unimo train --set, "
    "e.g. --set vocab=corpus). A changed value retrains and reevaluates."
)
@click.option(
    "--extractor",
    type=click.Choice(["effnet-ms", "effnet"]),
    default="effnet-ms",
    show_default=True,
    help="Visual tokens (unimo features --extractor): effnet-ms or effnet.",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Stages run at the same time (those that do not need each other's outputs; each "
    "beside another writes OUTPUT/logs/STAGE.log) [default: the CPU cores, at most 2]; "
    "--jobs 1 runs them one after another.",
)
@resume_option(
    "Skip the stages already done in OUTPUT; --no-resume removes OUTPUT (a folder the demo "
    "made) and starts afresh.",
    deprecated="--restart",
)
def demo(
    output: str,
    n_images: int,
    compositional_images: int | None,
    seed: int,
    preset: str,
    steps: int | None,
    overrides: list[str],
    extractor: str,
    jobs: int | None,
    resume: bool,
    restart: bool,
) -> None:
    """Run synth -> rewrite -> index texts -> features -> index images -> mine -> train -> eval
    and write OUTPUT/REPORT.md (figures, plots, examples of rewrites and mined positives).

    Each stage is the `unimo` command a user would type (all listed in OUTPUT/commands.sh);
    rewrite and the text index run beside the features unless --jobs 1. Finished stages are
    skipped on rerun (a rerun stage reruns those that need it), and each stage resumes by
    itself after a kill.

    \b
    Example:
      unimo demo -o runs/demo
      unimo demo -o runs/small --n-images 300 --steps 100
      unimo demo -o runs/demo-corpus --set vocab=corpus
      unimo demo --no-resume    # a folder made by an earlier version of the demo
    """
    from unimo_kit.demo import DemoConfig, default_jobs, run_demo
    from unimo_kit.demo import restart as remove_demo

    out = Path(output)
    resume = resume_from(resume, restart, "--restart")
    config = DemoConfig(
        out=out,
        n_images=n_images,
        compositional_images=compositional_images,
        seed=seed,
        train_preset=preset,
        train_steps=steps,
        extractor=extractor,
        extra_train_args=overrides,
    )
    try:
        if not resume:
            remove_demo(out)
        run_demo(config, echo=click.echo, jobs=jobs or default_jobs())
    except Exception as exc:  # a failed stage already printed its own message
        raise click.ClickException(f"demo stopped: {exc}") from exc
