"""``unimo index``: build, search, merge and mine FAISS retrieval indexes.

Heavy libraries (faiss, torch, sentence-transformers) are imported inside the commands.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from unimo_kit.cli.engine_options import engine_from_cli, engine_options
from unimo_kit.cli.options import (
    output_option,
    resume_from,
    resume_option,
    seed_option,
    shard_option,
    strict_option,
    workers_option,
)

if TYPE_CHECKING:
    from unimo_kit.index.build import BuildConfig

TYPES = ("flat", "hnsw", "ivf", "ivfpq", "auto")


def _fail(exc: Exception) -> None:
    raise click.ClickException(str(exc)) from exc


def _known_errors() -> tuple[type[Exception], ...]:
    from unimo_kit.cli.engine_options import engine_errors
    from unimo_kit.index.encoders import EncoderError
    from unimo_kit.index.store import IndexStoreError
    from unimo_kit.resources import ResourceNotFound
    from unimo_kit.utils import RecordError

    return (
        IndexStoreError,
        EncoderError,
        ResourceNotFound,
        RecordError,
        ValueError,
        *engine_errors(),
    )


WORKERS_HELP = (
    "--engine ray: units in flight at once, each an actor holding the model [default: one "
    "per GPU of the cluster, else per CPU]."
)


def _folder(root: str, name: str) -> Path:
    """An index named by a path (anything with a ``/``, e.g. ``./texts``) or by a name under
    ``root``."""
    if os.sep in name or "/" in name:
        return Path(name)
    return Path(root) / name


TARGET_RECALL_HELP = (
    "Tune nprobe/efSearch: the cheapest (doubling from 4 / 16) with recall@10 at least this, "
    "measured on queries the index does not hold."
)

CORPUS_HELP = {
    "texts": "texts.jsonl to index ({id, text} per line).",
    "images": "images.jsonl to index ({id, image} per line).",
    "captions": "pairs.jsonl: index every caption (what `mine` draws negatives from).",
}


def _corpus_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--texts`` / ``--images`` / ``--captions``, of which exactly one must be given;
    the command gets it as ``corpus``: ``(kind, path)``."""

    @functools.wraps(command)
    def run(*, texts: str | None, images: str | None, captions: str | None, **options: Any):
        return command(corpus=_one_input(texts=texts, images=images, captions=captions), **options)

    for kind in reversed(CORPUS_HELP):
        run = click.option(
            f"--{kind}", type=click.Path(exists=True, dir_okay=False), help=CORPUS_HELP[kind]
        )(run)
    return run


def _root_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--root`` (parameter ``root``): the folder that index names are looked up in."""
    return click.option("--root", default="indexes", show_default=True, help="Folder of indexes.")(
        command
    )


def _build_config(corpus: tuple[str, str], encoder: str | None, **settings: Any) -> BuildConfig:
    """The :class:`~unimo_kit.index.build.BuildConfig` of ``corpus`` (``(kind, path)``) with
    ``encoder`` or the kind's default encoder, and the other fields from ``settings``."""
    from unimo_kit.index.build import BuildConfig, default_encoder

    kind, path = corpus
    return BuildConfig(
        input=os.path.abspath(path),
        kind=kind,
        encoder=encoder or default_encoder(kind),
        **settings,
    )


@click.group("index")
def index() -> None:
    """FAISS retrieval indexes over texts and images, and mining of CMCL positives and hard
    negatives (docs/index.md).

    \b
    Example:
      unimo index build --texts world/texts.jsonl --name texts
      unimo index build --images world/images.jsonl --name images
      unimo index search texts --text "a red circle left of a blue square" -k 5
      unimo index mine --pairs world/pairs.train.jsonl --text-index texts \\
          --image-index images -o world/retrieved.jsonl
    """


@index.command("build")
@_corpus_options
@click.option("--name", required=True, help="Index name: the folder ROOT/NAME.")
@_root_option
@click.option(
    "--encoder",
    "encoder",
    default=None,
    help="Encoder spec (default: st:all-MiniLM-L6-v2 for texts, "
    "timm:tf_efficientnet_lite0 for images; or open_clip:MODEL:TAG, st:PATH, "
    "features:DIR for image vectors pooled from a features store...).",
)
@click.option(
    "--type",
    "index_type",
    type=click.Choice(TYPES),
    default="auto",
    show_default=True,
    help="auto: flat below 20k vectors, else HNSW where vectors + graph fit --max-memory "
    "(and build within --max-build-time), else IVF-Flat where the vectors fit, else IVF-PQ "
    "re-ranked from the stored vectors on disk.",
)
@click.option("--max-memory", default=None, help="Memory budget of the index, e.g. 4G.")
@click.option(
    "--max-build-time",
    "max_build_seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=3600.0,
    show_default=True,
    metavar="SECONDS",
    help="auto: no HNSW whose graph is estimated to build longer than this (then IVF).",
)
@click.option(
    "--block-size",
    default=65_536,
    show_default=True,
    help="Records per embedding block (the unit of resume).",
)
@click.option("--batch-size", default=64, show_default=True, help="Encoder batch size.")
@shard_option("Index only the I-th of N slices of the input (then merge).")
@click.option(
    "--trained",
    default=None,
    help="Trained quantizer from `unimo index train` (sharded IVF builds).",
)
@click.option(
    "--target-recall", "tune_recall", default=0.95, show_default=True, help=TARGET_RECALL_HELP
)
@click.option(
    "--keep-embeddings/--no-keep-embeddings",
    default=True,
    show_default=True,
    help="Keep blocks/*.npy (needed by --verify and HNSW merges).",
)
@resume_option(
    "Resume an unfinished build or reuse a finished one (refused if it was made with "
    "other settings or its input changed), or build afresh (the folder's embeddings are kept "
    "when they are complete and current).",
    deprecated="--overwrite",
)
@seed_option("Seed of the quantizer's training sample and k-means.", default=1234)
@click.option(
    "--embeddings",
    "embeddings",
    default=None,
    help="Embedding store folder (docs/formats.md) to read, or to fill first when it does "
    "not hold this input's embeddings yet: embed once, then build any --type from it. "
    "Another index's folder works too. Default: the embeddings live in ROOT/NAME.",
)
@click.option(
    "--tune-queries",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Query texts to tune on (as for `search --queries`). Default: 256 seeded rows "
    "of the input kept out of the index until it is tuned.",
)
@engine_options
@workers_option(WORKERS_HELP)
def build_cmd(
    corpus: tuple[str, str],
    name: str,
    root: str,
    encoder: str | None,
    shard: str | None,
    trained: str | None,
    embeddings: str | None,
    tune_queries: str | None,
    resume: bool,
    overwrite: bool,
    engine: str,
    ray_address: str | None,
    workers: int | None,
    **settings: Any,
) -> None:
    """Embed a corpus and build ROOT/NAME (resumable: rerun the same command after a kill).

    Search parameters are tuned on queries the index does not hold (256 rows held out
    until tuned, or --tune-queries): meta.json's recall is theirs. Tune on real queries
    when they differ from the corpus. --no-resume keeps the folder's embeddings when
    only the index settings changed.

    With --engine ray each embedding block (--block-size rows) is one unit, embedded by
    an actor holding the encoder once (a GPU each where the cluster has GPUs); ROOT must
    be a folder every worker sees. The index is byte-identical to --engine local.

    \b
    Example:
      unimo index build --texts world/texts.jsonl --name texts --type auto --max-memory 4G
      unimo index build --texts big.jsonl --name big-hnsw --embeddings indexes/big.emb
      unimo index build --texts big.jsonl --name big-pq --embeddings indexes/big.emb \\
          --type ivfpq --max-memory 2G
      unimo index build --texts big.jsonl --name big.0 --shard 0/2 --trained indexes/big-q
      unimo index build --texts big.jsonl --name big --engine ray --block-size 8192
    """
    from unimo_kit.engine.index import run_index_build
    from unimo_kit.utils import parse_shard

    resume = resume_from(resume, overwrite, "--overwrite", " for build")
    try:
        config = _build_config(
            corpus,
            encoder,
            shard=str(parse_shard(shard)),
            trained=os.path.abspath(_folder(root, trained)) if trained else None,
            embeddings=os.path.abspath(_folder(root, embeddings)) if embeddings else None,
            tune_queries=os.path.abspath(tune_queries) if tune_queries else None,
            **settings,  # index_type, max_memory, max_build_seconds, block_size, ...
        )
        out = run_index_build(
            config,
            _folder(root, name),
            overwrite=not resume,
            engine=engine_from_cli(engine, ray_address, workers=workers),
        )
    except _known_errors() as exc:
        _fail(exc)
    _print_info(out)


@index.command("train")
@_corpus_options
@click.option("--name", required=True, help="Folder ROOT/NAME for the trained quantizer.")
@_root_option
@click.option("--encoder", default=None, help="Encoder spec (as for build).")
@click.option(
    "--type",
    "index_type",
    type=click.Choice(("ivf", "ivfpq", "auto")),
    default="ivf",
    show_default=True,
)
@click.option("--max-memory", default=None, help="Memory budget, e.g. 4G.")
@click.option(
    "--sample",
    "sample_size",
    type=int,
    default=None,
    help="Training vectors (default: 40 per inverted list).",
)
@seed_option("Seed of the training sample and k-means.", default=1234)
@click.option("--overwrite", is_flag=True, help="Replace ROOT/NAME even if it is not a quantizer.")
def train_cmd(
    corpus: tuple[str, str],
    name: str,
    root: str,
    encoder: str | None,
    sample_size: int | None,
    overwrite: bool,
    **settings: Any,
) -> None:
    """Train one IVF quantizer for the whole corpus, to share between shard builds.

    \b
    Example:
      unimo index train --texts big.jsonl --name big-q
      unimo index build --texts big.jsonl --name big.0 --shard 0/2 --trained big-q --type ivf
      unimo index build --texts big.jsonl --name big.1 --shard 1/2 --trained big-q --type ivf
      unimo index merge big.0 big.1 --name big
    """
    from unimo_kit.index.build import train_quantizer

    config = _build_config(corpus, encoder, **settings)  # index_type, max_memory, seed
    try:
        out = train_quantizer(
            config, _folder(root, name), sample_size=sample_size, overwrite=overwrite
        )
    except _known_errors() as exc:
        _fail(exc)
    click.echo(f"trained quantizer: {out}")


@index.command("merge")
@click.argument("sources", nargs=-1, required=True)
@click.option("--name", required=True, help="Name of the merged index.")
@_root_option
@click.option(
    "--target-recall",
    "tune_recall",
    default=0.95,
    show_default=True,
    help=TARGET_RECALL_HELP + " Needs the shards' stored embeddings; else the plan's values.",
)
@click.option(
    "--overwrite", is_flag=True, help="Replace ROOT/NAME (only once the merge has succeeded)."
)
def merge_cmd(sources, name, root, tune_recall, overwrite):
    """Join shard indexes (in the order given) into ROOT/NAME.

    \b
    Example:
      unimo index merge texts.0 texts.1 --name texts
    """
    from unimo_kit.index.build import merge_indexes

    try:
        out = merge_indexes(
            [_folder(root, s) for s in sources],
            _folder(root, name),
            tune_recall=tune_recall,
            overwrite=overwrite,
        )
    except _known_errors() as exc:
        _fail(exc)
    _print_info(out)


@index.command("search")
@click.argument("name")
@_root_option
@click.option("--text", "texts", multiple=True, help="A query text (repeatable).")
@click.option("--image", "images", multiple=True, help="A query image path (repeatable).")
@click.option(
    "--queries",
    type=click.Path(exists=True, dir_okay=False),
    help="File of queries. JSONL (a .jsonl name, or a first non-blank line starting with '{'): "
    'one {"id", "text"} or {"id", "image"} per line (image paths relative to the file); a line '
    "with neither, or an empty or null value, is reported as FILE:LINE and skipped. Otherwise "
    "plain text: one query per non-blank line.",
)
@click.option(
    "-k", "k", type=click.IntRange(min=1), default=10, show_default=True, help="Results per query."
)
@output_option("Write JSONL here (default: stdout).")
@click.option(
    "--encoder", default=None, help="Refuse unless it equals the index's encoder (a safety check)."
)
@click.option(
    "--verify",
    is_flag=True,
    help="Report recall@k against exact search over the stored vectors: on the text queries "
    "given (queries outside the index: the recall users get), else on a sample of stored "
    'vectors ("held_out": false, optimistic for HNSW).',
)
def search_cmd(name, root, texts, images, queries, k, output, encoder, verify):
    """Search an index with texts or images; JSONL of ids, scores and records.

    \b
    Example:
      unimo index search texts --text "two green stars" -k 5
      unimo index search images --image world/images/img-000001.png -k 3
      unimo index search texts --verify
    """
    from unimo_kit.index.queries import text_problem
    from unimo_kit.index.store import IndexStore

    for text in texts:
        problem = text_problem(text)
        if problem:
            raise click.BadParameter(problem, param_hint="--text")
    try:
        store = IndexStore.open(_folder(root, name))
        store.check_query_encoder(encoder)
        query_list = [{"id": f"q{i}", "text": t} for i, t in enumerate(texts)]
        query_list += [{"id": f"img{i}", "image": p} for i, p in enumerate(images)]
        if queries:
            query_list += _read_queries(queries)
        if verify:
            click.echo(json.dumps({"index": str(store.path), **_verify(store, query_list, k)}))
        if not query_list:
            if not verify:
                raise click.UsageError("give --text, --image, --queries or --verify")
            return
        lines = _run_queries(store, query_list, k)
    except _known_errors() as exc:
        _fail(exc)
    handle = open(output, "w", encoding="utf-8") if output else sys.stdout  # noqa: SIM115
    try:
        for line in lines:
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")
    finally:
        if output:
            handle.close()


@index.command("info")
@click.argument("name")
@_root_option
def info_cmd(name, root):
    """Print an index's meta.json after checking the folder.

    \b
    Example:
      unimo index info synth-texts            # encoder, factory, count, search parameters
    """
    from unimo_kit.index.store import IndexStore

    try:
        store = IndexStore.open(_folder(root, name))
    except _known_errors() as exc:
        _fail(exc)
    click.echo(json.dumps(store.meta, indent=2))


@index.command("mine")
@click.option(
    "--pairs", required=True, type=click.Path(exists=True, dir_okay=False), help="pairs.jsonl"
)
@click.option("--text-index", default=None, help="Index of texts (positives for the image).")
@click.option("--image-index", default=None, help="Index of images (positives for the text).")
@click.option(
    "--negative-index",
    default=None,
    help="Caption index of the pairs (default: built next to the output).",
)
@_root_option
@output_option(
    "retrieved.jsonl (resumed if it exists; what made it is kept in OUTPUT.manifest.json).",
    required=True,
)
@click.option(
    "-k",
    "k",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="Related texts/images per pair.",
)
@click.option(
    "--negatives",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="Hard negatives per pair.",
)
@click.option("--min-score", default=0.3, show_default=True, help="Similarity floor.")
@click.option(
    "--max-score",
    default=0.98,
    show_default=True,
    help="Near-duplicate ceiling (positives and negatives).",
)
@shard_option("Mine only the I-th of N slices of the pairs.")
@click.option(
    "--chunk-size",
    type=click.IntRange(min=1),
    default=256,
    show_default=True,
    help="Pairs per search call.",
)
@resume_option(
    "Keep the finished pairs of an existing output (refused if it was made with other "
    "settings or pairs) or start it afresh (the automatic caption index is kept while it is "
    "current)."
)
@strict_option("pair")
@click.option(
    "--scenes",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="Gold scenes.jsonl (synthetic world): drop negatives that are true of the pair's image.",
)
@engine_options
@workers_option(WORKERS_HELP)
def mine_cmd(
    pairs,
    text_index,
    image_index,
    negative_index,
    root,
    output,
    k,
    negatives,
    min_score,
    max_score,
    shard,
    chunk_size,
    resume,
    strict,
    scenes,
    engine,
    ray_address,
    workers,
):
    """Mine related texts, related images and neighbour-caption hard negatives per pair.

    With --engine ray the pairs still to mine are cut into units of 4 chunks, mined by
    actors that open the indexes once each, and joined in input order: the output is
    byte-identical to --engine local, and a killed run resumes from its finished units.

    \b
    Example:
      unimo index mine --pairs world/pairs.train.jsonl --text-index texts \\
          --image-index images -o world/retrieved.jsonl -k 5 --negatives 5
    """
    from unimo_kit.engine.mine import run_mine
    from unimo_kit.index.mine import MineConfig
    from unimo_kit.utils import parse_shard

    if not (text_index or image_index or negatives):
        raise click.UsageError("nothing to mine: give --text-index, --image-index or --negatives")
    try:
        shard_obj = parse_shard(shard)
        if negatives and negative_index is None and shard_obj.count > 1:
            raise click.UsageError(
                "with --shard, build the caption index once first "
                "(unimo index build --captions PAIRS --name NAME) and pass --negative-index"
            )
        config = MineConfig(
            k=k,
            negatives=negatives,
            min_score=min_score,
            max_score=max_score,
            negative_max_score=max_score,
            chunk_size=chunk_size,
        )
        stats = run_mine(
            pairs,
            output,
            text_index=_folder(root, text_index) if text_index else None,
            image_index=_folder(root, image_index) if image_index else None,
            negative_index=_folder(root, negative_index) if negative_index else None,
            config=config,
            shard=shard_obj,
            resume=resume,
            strict=strict,
            scenes=scenes,
            engine=engine_from_cli(engine, ray_address, workers=workers),
        )
    except _known_errors() as exc:
        _fail(exc)
    click.echo(json.dumps(stats), err=True)


# --------------------------------------------------------------------------- helpers


def _one_input(**inputs: str | None) -> tuple[str, str]:
    given = [(kind, path) for kind, path in inputs.items() if path]
    if len(given) != 1:
        raise click.UsageError("give exactly one of --texts, --images, --captions")
    return given[0]


def _read_queries(path: str) -> list[dict]:
    """The queries of a ``--queries`` file (:func:`unimo_kit.index.queries.read_queries`);
    skipped lines are summarised on stderr."""
    from unimo_kit.index.queries import QueryFileError, read_queries

    try:
        out, report = read_queries(path)
    except QueryFileError as exc:
        raise click.ClickException(str(exc)) from exc
    if report.count:
        click.echo(report.summary(), err=True)
    return out


def _verify(store, queries: list[dict], k: int) -> dict:
    """``store.verify`` on the text queries given (outside the index), else on stored rows."""
    texts = [q["text"] for q in queries if "text" in q]
    if texts and "text" in store.encoder().modalities:
        return store.verify(k=k, queries=store.encoder().encode_text(texts))
    return store.verify(k=k)


def _run_queries(store, queries: list[dict], k: int) -> list[dict]:
    texts = [q for q in queries if "text" in q]
    images = [q for q in queries if "image" in q]
    results: dict[int, list | None] = {}
    if texts:
        for q, hits in zip(texts, store.search_texts([q["text"] for q in texts], k), strict=True):
            results[id(q)] = hits
    if images:
        hits_list = store.search_images([q["image"] for q in images], k)
        for q, hits in zip(images, hits_list, strict=True):
            results[id(q)] = hits
    lines = []
    for q in queries:
        hits = results[id(q)]
        line = {"query": q, "results": hits if hits is not None else []}
        if hits is None:
            line["error"] = "image could not be loaded"
        lines.append(line)
    return lines


def _print_info(folder: Path) -> None:
    from unimo_kit.index.store import read_meta

    meta = read_meta(folder)
    tuning = meta.get("tuning") or {}
    recall = tuning.get("recall")
    click.echo(
        f"{folder}: {meta['count']} vectors ({meta.get('failed', 0)} failed), "
        f"{meta['factory']} dim {meta['dim']}, encoder {meta['encoder']}, "
        f"search {meta.get('search_params') or 'exact'}"
        + (f", re-ranking {meta['refine']}·k" if meta.get("refine") else "")
        + (
            f", recall@10 {recall:.3f} on "
            + ("held-out queries" if tuning.get("held_out") else "a sample of indexed rows")
            if recall is not None
            else ""
        )
    )
