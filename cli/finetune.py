"""``unimo finetune-clip``: fine-tune an open_clip model with hard negatives (NegCLIP)."""

from __future__ import annotations

import json

import click

from unimo_kit.cli.options import (
    device_option,
    no_progress_option,
    output_option,
    resume_option,
    seed_option,
)


def _type_mix(value: str | None) -> dict[str, float] | None:
    """``"swap-att=2,replace-obj=1"`` (or a JSON object) -> ``{"swap-att": 2.0, ...}``."""
    if not value:
        return None
    if value.lstrip().startswith("{"):
        return {str(k): float(v) for k, v in json.loads(value).items()}
    mix = {}
    for part in value.split(","):
        name, sep, weight = part.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"{part!r}: expected TYPE=WEIGHT", param_hint="--type-mix")
        mix[name.strip()] = float(weight)
    return mix


@click.command("finetune-clip")
@click.option(
    "--model",
    required=True,
    metavar="open_clip:ARCH[:WEIGHTS]",
    help="open_clip architecture (or a model config JSON) and weights: a pretrained tag "
    "(needs the hub), a local checkpoint file, or none (random init); or an open_clip model "
    "folder (open_clip_config.json + weights, e.g. an earlier run's OUT/final). E.g. "
    "open_clip:ViT-B-32:openai, open_clip:ViT-B-32:/models/clip.bin, open_clip:runs/base/final.",
)
@click.option("--pairs", type=click.Path(exists=True, dir_okay=False), help="pairs.jsonl.")
@click.option(
    "--rewrites",
    type=click.Path(exists=True, dir_okay=False),
    help="rewrites.jsonl of --pairs (unimo rewrite): the typed hard negatives.",
)
@click.option(
    "--retrieved",
    type=click.Path(exists=True, dir_okay=False),
    help="retrieved.jsonl of --pairs (unimo index mine): neighbour-caption negatives.",
)
@click.option(
    "--shards",
    type=click.Path(exists=True, file_okay=False),
    help="A folder of `unimo export` tar shards, instead of --pairs.",
)
@click.option("--on-the-fly", is_flag=True, help="No --rewrites: rewrite while loading (slow).")
@click.option("--split", help="Keep only pairs of this split (e.g. train).")
@output_option("Run folder.", folder=True, required=True, deprecated="--out")
@click.option(
    "--negatives",
    "num_negatives",
    default=4,
    show_default=True,
    help="Hard negatives per pair (0: plain CLIP fine-tuning).",
)
@click.option(
    "--type-mix",
    help="Weight per negative type, e.g. swap-att=1,swap-obj=1,replace-att=1 [all alike].",
)
@click.option("--positives", "num_positives", default=0, show_default=True,
              help="Extra positive texts per pair (rewritten / retrieved).")  # fmt: skip
@click.option("--no-sentence-negatives", is_flag=True, help="Leave out TF-IDF caption negatives.")
@click.option("--no-retrieved-negatives", is_flag=True, help="Leave out retrieved negatives.")
@click.option(
    "--scope",
    "hard_negative_scope",
    type=click.Choice(["all", "own", "rank"]),
    default="all",
    show_default=True,
    help="all: negatives are columns of every image (NegCLIP); own: of their own image; "
    "rank: only in the rank loss.",
)
@click.option("--rank-weight", default=0.0, show_default=True,
              help="Weight of the rank loss on each pair's own negatives (0: off).")  # fmt: skip
@click.option("--steps", default=500, show_default=True, help="Optimizer steps.")
@click.option("--batch-size", default=32, show_default=True, help="Pairs per step and process.")
@click.option("--lr", default=1e-5, show_default=True, help="Peak learning rate (cosine).")
@click.option("--warmup-steps", default=50, show_default=True, help="Linear warmup steps.")
@click.option("--weight-decay", default=0.1, show_default=True, help="AdamW weight decay.")
@click.option("--grad-clip", default=1.0, show_default=True, help="Max grad norm (0: off).")
@click.option(
    "--precision",
    type=click.Choice(["auto", "fp32", "bf16"]),
    default="auto",
    show_default=True,
    help="auto: bf16 autocast on CUDA, fp32 on CPU.",
)
@seed_option("Seed of weights init, order, draws.")
@click.option("--save-every", default=100, show_default=True, help="Checkpoint every N steps.")
@click.option("--keep-checkpoints", default=2, show_default=True, help="Checkpoints kept.")
@click.option("--log-every", default=10, show_default=True, help="log.csv row every N steps.")
@click.option("--workers", "num_workers", default=0, show_default=True,
              help="DataLoader workers.")  # fmt: skip
@device_option
@click.option("--threads", default=0, show_default=True, help="torch CPU threads (0: default).")
@resume_option("Continue from the newest checkpoint in OUTPUT (--no-resume starts afresh).")
@click.option("--stop-after", type=int, help="Stop after N steps with a checkpoint there.")
@no_progress_option
def finetune_clip(
    output: str,
    no_sentence_negatives: bool,
    no_retrieved_negatives: bool,
    type_mix: str | None,
    resume: bool,
    stop_after: int | None,
    no_progress: bool,
    **options,
) -> None:
    """Fine-tune an open_clip model with the toolkit's hard negatives: CLIP's contrastive
    loss where each pair's negatives are extra text columns of the image->text softmax
    (NegCLIP), optionally a rank loss; AdamW with warmup + cosine, bf16 autocast on CUDA,
    several GPUs under torchrun, checkpoints every --save-every steps (a killed run resumes
    when the command runs again).

    \b
    Examples:
      unimo finetune-clip --model open_clip:ViT-B-32:openai --pairs pairs.jsonl \\
          --rewrites rewrites.jsonl -o runs/negclip --type-mix swap-att=1,swap-obj=1
      unimo finetune-clip --model open_clip:ViT-B-32:/models/clip.bin --shards shards/ -o runs/x
      torchrun --nproc-per-node 2 -m unimo_kit.cli.main finetune-clip ...
    \b
    Score the result as any open_clip model (docs/finetune.md):
      unimo eval compositional --open-clip ViT-B-32:runs/negclip/final/model.safetensors ...
    """
    from unimo_kit.finetune import FinetuneConfig
    from unimo_kit.finetune import finetune_clip as run
    from unimo_kit.resources import ResourceNotFound

    try:
        config = FinetuneConfig(
            **options,
            out=output,
            type_mix=_type_mix(type_mix),
            sentence_negatives=not no_sentence_negatives,
            retrieved_negatives=not no_retrieved_negatives,
            progress=not no_progress,
        )
        result = run(config, resume=resume, stop_after=stop_after)
    except (ValueError, FileNotFoundError, ResourceNotFound) as exc:
        raise click.ClickException(str(exc)) from exc
    losses = ", ".join(f"{k}={v:.4f}" for k, v in result.last_losses.items() if k.endswith("loss"))
    if losses:
        click.echo(f"step {result.state.step}: {losses}", err=True)
    elif result.final is not None:
        click.echo(f"{config.out}: already trained ({result.state.step} steps)", err=True)
    if result.final is not None:
        click.echo(f"model: {result.final / 'model.safetensors'}", err=True)
    else:
        click.echo(
            f"stopped at step {result.state.step} of {config.steps} (checkpoint saved); "
            "run the same command again to finish",
            err=True,
        )
