"""``unimo demo``: the whole pipeline on the embedded synthetic world (what ``make demo`` runs)."""

from __future__ import annotations

from pathlib import Path

import click


def _check_overrides(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> list[str]:
    """Each ``--set`` item as ``KEY=VALUE``, with a non-empty key."""
    for value in values:
        key, sep, _ = value.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {value!r}", ctx, param)
    return list(values)


@click.command("demo")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs/demo"),
    show_default=True,
    help="Folder for everything.",
)
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
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--preset",
    default="synth-small",
    show_default=True,
    help="Training preset (unimo train --list-presets).",
)
@click.option("--steps", type=int, default=None, help="Override the preset's training steps.")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    callback=_check_overrides,
    help="Override a field of the training preset (repeatable; passed to unimo train --set, "
    "e.g. --set vocab=corpus). A changed value retrains and reevaluates.",
)
@click.option(
    "--extractor",
    type=click.Choice(["effnet-ms", "effnet"]),
    default="effnet-ms",
    show_default=True,
    help="Visual tokens (unimo features --extractor): effnet-ms or effnet.",
)
@click.option(
    "--resume/--no-resume",
    default=True,
    show_default=True,
    help="Skip the stages already done in OUT; --no-resume removes OUT (a folder the demo "
    "made) and starts afresh.",
)
@click.option("--restart", is_flag=True, hidden=True, help="Deprecated: --no-resume.")
def demo(
    out: Path,
    n_images: int,
    compositional_images: int | None,
    seed: int,
    preset: str,
    steps: int | None,
    overrides: list[str],
    extractor: str,
    resume: bool,
    restart: bool,
) -> None:
    """Run synth -> rewrite -> index texts -> features -> index images -> mine -> train -> eval
    and write OUT/REPORT.md (figures, plots, examples of rewrites and mined positives).

    Each stage is the `unimo` command a user would type (all listed in OUT/commands.sh);
    finished stages are skipped on rerun, and each stage resumes by itself after a kill.

    \b
    Example:
      unimo demo --out runs/demo
      unimo demo --out runs/small --n-images 300 --steps 100
      unimo demo --out runs/demo-corpus --set vocab=corpus
      unimo demo --no-resume    # a folder made by an earlier version of the demo
    """
    from unimo_kit.demo import DemoConfig, run_demo
    from unimo_kit.demo import restart as remove_demo

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
    if restart:
        click.echo("warning: --restart is deprecated; use --no-resume", err=True)
        resume = False
    try:
        if not resume:
            remove_demo(out)
        run_demo(config, echo=click.echo)
    except Exception as exc:  # a failed stage already printed its own message
        raise click.ClickException(f"demo stopped: {exc}") from exc
