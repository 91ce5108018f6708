"""Options and error handling shared by the ``unimo eval`` commands (retrieval, compositional,
caption, vqa, batch). Kept free of heavy imports: they happen inside the commands."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import click

from unimo_kit.cli.options import device_option, output_option


def checkpoint_option(*, required: bool = False) -> Callable[..., Any]:
    """Add ``--checkpoint`` (parameter ``checkpoint``): a unimo checkpoint folder."""
    return click.option(
        "--checkpoint",
        required=required,
        type=click.Path(),
        help="unimo checkpoint folder (model.safetensors + config.json).",
    )


def features_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--features`` (parameter ``features``): a features store of the test images."""
    return click.option(
        "--features",
        type=click.Path(exists=True, file_okay=False),
        help="features store of the test images (default: extract on the fly).",
    )(func)


def extractor_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--extractor`` (parameter ``extractor``): the extractor without ``--features``."""
    return click.option(
        "--extractor",
        help="on-the-fly extractor (effnet, open_clip:...); default: the one named by the "
        "checkpoint's run (its features store), else effnet.",
    )(func)


def scorer_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--checkpoint`` / ``--open-clip`` / ``--st-clip`` and the unimo feature options."""
    options = [
        checkpoint_option(),
        click.option(
            "--open-clip",
            "open_clip_spec",
            metavar="MODEL[:TAG_OR_PATH]|FOLDER",
            help="score with an open_clip model instead: ARCH:WEIGHTS (e.g. "
            "ViT-B-32:/path/open_clip.bin), CONFIG.json:WEIGHTS for an architecture of one's "
            "own, or a folder with open_clip_config.json (e.g. finetune-clip's OUT/final).",
        ),
        click.option(
            "--st-clip",
            metavar="NAME_OR_DIR",
            help="score with a sentence-transformers CLIP model (e.g. clip-ViT-B-32) instead.",
        ),
        features_option,
        extractor_option,
        device_option,
        click.option("--batch-size", default=64, show_default=True, help="items per forward."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


#: ``-o/--output FILE`` (parameter ``output``) of the task commands: where the results JSON goes
results_option = output_option("write the results JSON here (default: print only).")


@contextlib.contextmanager
def eval_errors() -> Iterator[None]:
    """Turn expected input errors into one-line ``click.ClickException`` messages."""
    from unimo_kit.eval.errors import EvalError
    from unimo_kit.resources import ResourceNotFound
    from unimo_kit.utils import RecordError

    try:
        yield
    except (EvalError, RecordError, ResourceNotFound) as exc:
        raise click.ClickException(str(exc)) from None
    except FileNotFoundError as exc:
        raise click.ClickException(f"file not found: {exc.filename or exc}") from None
    except (ValueError, KeyError) as exc:
        raise click.ClickException(str(exc).strip("'\"")) from None


def build_scorer_from_options(kw: dict[str, Any]) -> Any:
    from unimo_kit.eval.scorers import build_scorer

    return build_scorer(
        checkpoint=kw.get("checkpoint"),
        open_clip=kw.get("open_clip_spec"),
        st_clip=kw.get("st_clip"),
        features=kw.get("features"),
        extractor=kw.get("extractor"),
        device=kw.get("device"),
        batch_size=kw.get("batch_size", 64),
    )


def emit(results: dict[str, Any], output: str | None, summary: str) -> None:
    """Print ``summary`` and write ``results`` as JSON to ``output`` (atomically)."""
    from unimo_kit.utils import atomic_write

    click.echo(summary)
    if output:
        with atomic_write(output) as handle:
            handle.write(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
        click.echo(f"wrote {output}", err=True)
