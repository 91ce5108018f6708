"""``unimo eval``: parser, retrieval, compositional, captioning, VQA and batch evaluation."""

import click

from unimo_kit.cli.lazy import LazyGroup


@click.group(
    "eval",
    cls=LazyGroup,
    lazy_subcommands={
        "parse": "eval_parse:parse",
        "retrieval": "eval_retrieval:retrieval",
        "compositional": "eval_compositional:compositional",
        "caption": "eval_caption:caption",
        "vqa": "eval_vqa:vqa",
        "batch": "eval_batch:batch",
    },
)
def eval_group() -> None:
    """Evaluate parsers, checkpoints and baselines; write results.json, tables and plots."""
