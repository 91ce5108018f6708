"""``unimo train``: train a UNIMO model from a preset or a JSON config."""

from __future__ import annotations

import click

from unimo_kit.cli.options import output_option, resume_option, set_option


@click.command("train")
@click.option(
    "--config",
    "config_name",
    metavar="PRESET_OR_JSON",
    help="A training preset (see --list-presets) or a TrainConfig JSON file; a file may "
    'start from a preset with "extends": "PRESET" and set only what differs.',
)
@output_option("Run folder, e.g. runs/NAME.", folder=True, deprecated="--out")
@set_option(
    "Override a config field (value parsed as JSON when possible: true/false, numbers, "
    "null, [...], {...}; a value of the wrong type is refused); repeatable. "
    "model_overrides.NAME=VALUE or loss_weights.NAME=VALUE sets one entry of that dict."
)
@resume_option("Continue from the newest checkpoint in OUTPUT (--no-resume starts afresh).")
@click.option(
    "--stop-after",
    type=int,
    default=None,
    help="Stop once this many steps are done, with a checkpoint there (the schedule still "
    "spans `steps`); run the same command again to finish.",
)
@click.option("--list-presets", is_flag=True, help="List the shipped presets and exit.")
def train(
    config_name: str,
    output: str | None,
    overrides: list[str],
    resume: bool,
    stop_after: int | None,
    list_presets: bool,
) -> None:
    """Pre-train a UNIMO model: CMCL with rewritten/retrieved positives and hard negatives,
    token alignment, image-text matching, paraphrase ranking, MLM, seq2seq and masked region
    prediction, as the config switches them on.

    The run folder gets config.json, log.csv, checkpoints/step-N/ and final/ (loadable with
    unimo_kit.model.load_checkpoint; with vocab=corpus each carries its tokenizer/). A killed
    run resumes exactly from its last checkpoint.
    Several processes: torchrun --nproc-per-node 2 -m unimo_kit.cli.main train ...

    \b
    Examples:
      unimo train --config synth-small -o runs/synth --set data_dir=synth
      unimo train --config synth-a-cmcl -o runs/abl-a --set data_dir=synth --set steps=300
      unimo train --config synth-small -o runs/deep --set model_overrides.num_hidden_layers=4
      unimo train --config synth-small -o runs/small --set data_dir=synth --set vocab=corpus
      unimo train --config my_config.json -o runs/big --set lr=5e-5 --no-resume
    """
    from unimo_kit.train import config as train_config

    if list_presets:
        click.echo("\n".join(train_config.list_presets()))
        return
    if not config_name or not output:
        raise click.UsageError("--config and -o/--output are required")
    try:
        config = train_config.load_config(config_name, list(overrides))
    except (ValueError, TypeError) as exc:
        raise click.ClickException(str(exc)) from exc

    from unimo_kit.train.trainer import train as run_training

    try:
        result = run_training(config, output, resume=resume, stop_after=stop_after)
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    losses = ", ".join(f"{k}={v:.4f}" for k, v in result.last_losses.items() if k.endswith("loss"))
    if losses:
        click.echo(f"step {result.state.step}: {losses}", err=True)
    elif result.final and result.state.step >= config.steps:
        done = f"{output}: already trained ({result.state.step} steps); nothing to do"
        click.echo(done, err=True)
    if result.eval:
        e = result.eval
        click.echo(
            f"val R@1 image->text {e['i2t_r1']:.3f} (chance {e['i2t_chance']:.3f}), "
            f"text->image {e['t2i_r1']:.3f} (chance {e['t2i_chance']:.3f})",
            err=True,
        )
    if result.final:
        click.echo(f"model: {result.final}", err=True)
    elif result.state.step < config.steps:
        click.echo(
            f"stopped at step {result.state.step} of {config.steps} (checkpoint saved); "
            "run the same command again to finish",
            err=True,
        )
