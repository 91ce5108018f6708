"""``unimo rewrite``: scene-graph rewrites of captions (positives, typed hard negatives, TF-IDF
sentence negatives) for cross-modal contrastive learning."""

from __future__ import annotations

import click

from unimo_kit.cli.engine_options import engine_errors, engine_from_cli, engine_options
from unimo_kit.cli.options import (
    no_progress_option,
    output_option,
    resume_from,
    resume_option,
    seed_option,
    shard_option,
    strict_option,
    workers_option,
)


@click.command("rewrite")
@click.argument("pairs", type=click.Path(exists=True, dir_okay=False))
@output_option("rewrites.jsonl to write.", required=True)
@click.option(
    "--types",
    default=None,
    help="Comma list of hard-negative types [default: every registered type "
    "(unimo_kit.rewrite.NEGATIVE_TYPES): the built-in replace-obj/att/rel, swap-obj/att, "
    "add-obj/att and count, then any the running program registers].",
)
@click.option("--per-type", default=1, show_default=True, help="Negatives per type and caption.")
@seed_option("Global seed (per-caption seeds derive).")
@workers_option(
    "Local: processes [default: 1]. --engine ray: units in flight at once [default: the "
    "cluster's CPUs]. The output does not change."
)
@shard_option("Contiguous slice I/N of the input, e.g. 0/4.")
@click.option(
    "--sentence-negatives",
    default=0,
    show_default=True,
    help="TF-IDF nearest captions of other images per caption (needs a first pass).",
)
@click.option("--positives/--no-positives", default=True, show_default=True, help="Make positives.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["rewrites", "factual"]),
    default="rewrites",
    show_default=True,
    help="rewrites: full records; factual: parse only (caption + FACTUAL scene graph).",
)
@click.option("--spacy-model", default=None, help="spaCy pipeline name or path [auto].")
@click.option(
    "--vocab",
    "vocab_path",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Use this vocabulary JSON instead of building one from the input.",
)
@click.option(
    "--save-vocab", type=click.Path(dir_okay=False), default=None, help="Write the vocabulary."
)
@click.option(
    "--min-count", default=1, show_default=True, help="Min corpus frequency of replacements."
)
@click.option(
    "--max-caption-chars", default=1000, show_default=True, help="Longer captions get an error."
)
@click.option(
    "--back-translation",
    nargs=2,
    type=click.Path(exists=True, file_okay=False),
    default=None,
    metavar="FORWARD_DIR BACKWARD_DIR",
    help="Local seq2seq model folders (e.g. MarianMT en-de and de-en) for paraphrases.",
)
@click.option(
    "--scenes",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Gold scenes.jsonl (synthetic world): drop negatives that are true of the image.",
)
@click.option(
    "--reference-corpus",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Evidence of which objects, attributes and relations go together: a FACTUAL-style "
    "CSV (caption, scene_graph) or a --save-vocab JSON [default: the table that ships, from "
    "36,894 Visual Genome captions].",
)
@click.option("--no-reference", is_flag=True, help="Use the input corpus alone as evidence.")
@click.option(
    "--roundtrip/--no-roundtrip",
    default=True,
    show_default=True,
    help="Re-parse every rewrite and keep it only if its graph is the intended edit.",
)
@click.option(
    "--spares",
    default=2,
    show_default=True,
    help="Candidates drawn per wanted negative, to replace those the checks drop.",
)
@click.option(
    "--lm",
    default=None,
    metavar="NAME_OR_PATH",
    help="Masked or causal language model (local weights) that ranks the candidates "
    "[default: none].",
)
@click.option(
    "--chunk-size", default=256, show_default=True, help="Captions per unit of work and write."
)
@strict_option()
@resume_option(
    "Keep the finished lines of an existing output (refused if it was made with other "
    "options or input) or start it afresh.",
    deprecated="--restart",
)
@no_progress_option
@engine_options
def rewrite(
    pairs: str,
    output: str,
    types: str,
    per_type: int,
    seed: int,
    workers: int | None,
    shard: str | None,
    sentence_negatives: int,
    positives: bool,
    output_format: str,
    spacy_model: str | None,
    vocab_path: str | None,
    save_vocab: str | None,
    min_count: int,
    max_caption_chars: int,
    back_translation: tuple[str, str] | None,
    scenes: str | None,
    reference_corpus: str | None,
    no_reference: bool,
    roundtrip: bool,
    spares: int,
    lm: str | None,
    chunk_size: int,
    strict: bool,
    resume: bool,
    restart: bool,
    no_progress: bool,
    engine: str,
    ray_address: str | None,
) -> None:
    """Parse each caption of PAIRS (pairs.jsonl) into a scene graph and write one line per
    caption to rewrites.jsonl: positives (inverse/symmetric relations, passive, "there is",
    determiners, other captions of the image, optional back-translation), typed hard
    negatives with character edits, and TF-IDF sentence negatives.

    \b
    Examples:
      unimo rewrite data/synth/pairs.train.jsonl -o rewrites.jsonl --per-type 2
      unimo rewrite pairs.jsonl -o rewrites.jsonl --sentence-negatives 5 --workers 4
      unimo rewrite pairs.jsonl --save-vocab vocab.json -o part0.jsonl --shard 0/2
      unimo rewrite pairs.jsonl --vocab vocab.json -o part1.jsonl --shard 1/2
      unimo rewrite captions.jsonl -o graphs.jsonl --format factual
      unimo rewrite pairs.jsonl -o rewrites.jsonl --engine ray --ray-address auto
    \b
    Re-running the same command after a kill resumes where it stopped; OUT.manifest.json keeps
    the options and an input fingerprint, and a rerun with other options or an edited input
    is refused (use --no-resume to start afresh). Shard outputs concatenated in order equal
    the unsharded output, and --workers does not change it.
    The vocabulary is built from the whole input (all shards) in a first pass; build it once
    with --save-vocab and pass --vocab to every shard to skip that pass.
    Replacements must be attested with their context in the input or the reference table
    (--reference-corpus, --no-reference), and every rewrite is parsed again and kept only if
    its graph is the intended edit (--no-roundtrip to skip; what it dropped is summarised
    per type at the end). --lm ranks the candidates with a local language model.
    Bad lines are reported as FILE:LINE and skipped; bad captions (empty, too long, control
    characters, non-Latin text) get a line with an "error" field. Format: docs/formats.md.
    With --engine ray the vocabulary and the rewriting run as units of 2,000 records on Ray
    (OUT.engine/ holds the finished units until the end, so a rerun after a kill resumes
    them); input and output must be paths every worker sees (docs/scaling.md).
    """
    from unimo_kit.engine import run_rewrite
    from unimo_kit.resources import ResourceNotFound
    from unimo_kit.rewrite.negatives import NEGATIVE_TYPES
    from unimo_kit.rewrite.pipeline import REFERENCE_BUILTIN, RewriteConfig
    from unimo_kit.utils import RecordError, parse_shard

    resume = resume_from(resume, restart, "--restart")
    if no_reference and reference_corpus:
        raise click.UsageError("--no-reference and --reference-corpus exclude each other")
    options = engine_from_cli(engine, ray_address, workers=workers, progress=not no_progress)
    try:
        if lm:
            from unimo_kit.rewrite.lm import LanguageModelScorer

            LanguageModelScorer(lm)  # fail now, not in a worker, when the model is missing
        config = RewriteConfig(
            types=NEGATIVE_TYPES
            if types is None
            else tuple(t.strip() for t in types.split(",") if t.strip()),
            reference=None if no_reference else reference_corpus or REFERENCE_BUILTIN,
            roundtrip=roundtrip,
            spares=spares,
            lm=lm,
            per_type=per_type,
            seed=seed,
            positives=positives,
            sentence_negatives=sentence_negatives,
            output_format=output_format,
            spacy_model=spacy_model,
            workers=workers or 1,  # on Ray the units run one process each
            shard=parse_shard(shard),
            vocab_path=vocab_path,
            save_vocab=save_vocab,
            min_count=min_count,
            max_caption_chars=max_caption_chars,
            back_translation=tuple(back_translation) if back_translation else None,
            scenes=scenes,
            chunk_size=chunk_size,
            strict=strict,
            progress=not no_progress,
            resume=resume,
        )
        summary = run_rewrite(pairs, output, config, engine=options)
    except (ValueError, RecordError, FileNotFoundError, ResourceNotFound, *engine_errors()) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"wrote {summary.written} caption line(s) to {summary.output}"
        f" ({summary.skipped_done} already done, {summary.caption_errors} with errors,"
        f" {summary.record_errors} bad record(s) skipped)",
        err=True,
    )
