"""``unimo eval parse``: score the scene-graph parser against gold FACTUAL graphs."""

from __future__ import annotations

import json
import sys

import click

from unimo_kit.cli.options import output_option, strict_option


@click.command("parse")
@click.argument("gold", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--spacy-model",
    default=None,
    help="spaCy pipeline name or path (default: en_core_web_sm, else the PyPI copy).",
)
@click.option("--batch-size", default=256, show_default=True, help="Captions per nlp.pipe batch.")
@click.option(
    "--errors",
    "n_errors",
    default=0,
    show_default=True,
    help="Print the N worst captions (gold vs predicted).",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the scores as JSON instead of a table."
)
@output_option("Also write the scores (and worst captions) to this JSON file.")
@click.option(
    "--canonical-relations",
    is_flag=True,
    help="Map spatial synonyms onto canonical predicates (under -> below, beside -> next to), "
    "as the synthetic world's gold graphs do.",
)
@strict_option("row")
def parse(
    gold: str,
    spacy_model: str | None,
    batch_size: int,
    n_errors: int,
    as_json: bool,
    output: str | None,
    canonical_relations: bool,
    strict: bool,
) -> None:
    """Parse the captions of GOLD (a FACTUAL CSV with columns caption and scene_graph, e.g. a
    synthetic world's captions.factual.csv) and compare with the gold graphs.

    Prints tuple precision / recall / F1 per kind (objects, attributes, relations) and overall,
    the mean per-caption tuple F1 (headline) and the exact-match rate. Malformed rows are
    reported as FILE:LINE and skipped.

    \b
    Example:
      unimo eval parse factual_dev.csv --errors 20
      unimo eval parse world/captions.factual.csv --canonical-relations --json -o parse.json
    """
    from tqdm import tqdm

    from unimo_kit.rewrite.parse_eval import evaluate_parser, read_factual_csv
    from unimo_kit.rewrite.parser import SceneGraphParser
    from unimo_kit.utils import ErrorReport, RecordError, atomic_write

    report = ErrorReport(strict=strict)
    parser = SceneGraphParser(
        spacy_model, batch_size=batch_size, canonical_relations=canonical_relations
    )
    try:
        rows = tqdm(
            read_factual_csv(gold, on_error=report),
            desc="parsing",
            unit=" captions",
            file=sys.stderr,
            disable=None,  # off when stderr is not a terminal
        )
        scores = evaluate_parser(
            rows,
            parser,
            worst=n_errors,
            on_error=report,
            source=gold,
        )
    except RecordError as exc:
        raise click.ClickException(str(exc)) from None
    result = {"gold": gold, **scores.as_dict()}
    if not n_errors:
        result.pop("worst")
    if output:
        with atomic_write(output) as handle:
            json.dump(result, handle, indent=2)
            handle.write("\n")
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo(f"{'kind':<12}{'P':>8}{'R':>8}{'F1':>8}{'pred':>8}{'gold':>8}")
        for name, kind in [*scores.kinds.items(), ("overall", scores.overall)]:
            click.echo(
                f"{name:<12}{100 * kind.precision:8.2f}{100 * kind.recall:8.2f}"
                f"{100 * kind.f1:8.2f}{kind.n_pred:8d}{kind.n_gold:8d}"
            )
        click.echo(f"captions: {scores.n_captions}")
        click.echo(f"mean per-caption tuple F1: {100 * scores.mean_f1:.2f}")
        click.echo(f"exact set match: {100 * scores.exact_match:.2f}")
        for result_ in scores.worst:
            click.echo(f"\n[line {result_.line}] F1 {100 * result_.f1:.1f}  {result_.caption}")
            click.echo(f"  gold: {result_.gold}")
            click.echo(f"  pred: {result_.predicted}")
    if report.count:
        click.echo(report.summary(), err=True)
    sys.stdout.flush()
