"""``unimo eval vqa``: fine-tune an answer classifier on the unified model, report accuracy."""

from __future__ import annotations

import click

from unimo_kit.cli._eval_common import emit, eval_errors, results_option
from unimo_kit.cli.options import device_option, seed_option, set_option


@click.command("vqa")
@click.option(
    "--data",
    type=click.Choice(["easy-vqa", "jsonl"]),
    default="easy-vqa",
    show_default=True,
    help="easy-vqa: the installed easy-VQA set; jsonl: --train/--test files.",
)
@click.option(
    "--train",
    "train_path",
    type=click.Path(exists=True, dir_okay=False),
    help="JSONL of {image, question, answer} (with --data jsonl).",
)
@click.option(
    "--test",
    "test_path",
    type=click.Path(exists=True, dir_okay=False),
    help="JSONL of {image, question, answer} (with --data jsonl).",
)
@click.option(
    "--model",
    default="unimo-tiny",
    show_default=True,
    help="preset or config JSON of a fresh backbone.",
)
@click.option("--checkpoint", type=click.Path(), help="start from a unimo checkpoint instead.")
@click.option("--epochs", default=4, show_default=True)
@click.option("--lr", default=1e-3, show_default=True, help="peak learning rate.")
@click.option("--batch-size", default=128, show_default=True)
@click.option(
    "--image-size",
    default=128,
    show_default=True,
    help="CNN input side (multiple of 32; 128 -> 4x4 grid tokens).",
)
@click.option(
    "--extractor",
    type=click.Choice(["effnet", "effnet-ms"]),  # == unimo_kit.eval.vqa.VQA_EXTRACTORS (tested)
    default=None,
    help="grid features: EfficientNet-Lite0's last stage (effnet), or with two earlier stages "
    "(effnet-ms, colour). Default: the checkpoint run's, else effnet.",
)
@click.option(
    "--fusion",
    type=click.Choice(["concat", "product"]),
    default="concat",
    show_default=True,
    help="answer head input: [IMG; CLS; IMG*CLS] (product) or [IMG; CLS] (concat).",
)
@seed_option("Seeds model init, shuffling and dropout.")
@click.option("--threads", type=int, help="torch CPU threads.")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    help="cache the grid features here (reused across runs).",
)
@click.option("--max-train", type=int, help="first N training questions only.")
@click.option("--max-test", type=int, help="first N test questions only.")
@set_option(
    "UnimoConfig field of the backbone, e.g. --set hidden_size=256 (repeatable); "
    "replaces the default widening of unimo-tiny (hidden 128, 4 heads, FFN 256)."
)
@click.option("--eval-each-epoch", is_flag=True, help="log test accuracy after every epoch.")
@click.option(
    "--predictions",
    is_flag=True,
    help="keep the answer given to each test question in the output (error analysis).",
)
@device_option
@results_option
def vqa(
    data,
    train_path,
    test_path,
    model,
    checkpoint,
    epochs,
    lr,
    batch_size,
    image_size,
    extractor,
    fusion,
    seed,
    threads,
    cache_dir,
    max_train,
    max_test,
    overrides,
    eval_each_epoch,
    predictions,
    device,
    output,
) -> None:
    """Answer classification over the [IMG] and [CLS] outputs of image + question.

    \b
    Example (easy-VQA: 93-99 % test accuracy by seed, about 7 CPU-minutes; docs/eval.md):
      unimo eval vqa --cache-dir .cache/vqa -o results/vqa.json
    """
    from unimo_kit.eval.errors import checkpoint_files
    from unimo_kit.eval.vqa import VqaConfig, load_easy_vqa, read_vqa_jsonl, train_vqa
    from unimo_kit.train.config import parse_override

    with eval_errors():
        if checkpoint:
            checkpoint_files(checkpoint)
        if data == "easy-vqa":
            train, test = load_easy_vqa("train"), load_easy_vqa("test")
        else:
            if not (train_path and test_path):
                raise click.UsageError("--data jsonl needs --train and --test")
            train, test = read_vqa_jsonl(train_path), read_vqa_jsonl(test_path)
        # None: the library's default backbone (FRESH_MODEL)
        model_overrides = dict(map(parse_override, overrides)) or None
        config = VqaConfig(
            model=model,
            checkpoint=checkpoint,
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            image_size=image_size,
            extractor=extractor,
            fusion=fusion,
            seed=seed,
            threads=threads,
            cache_dir=cache_dir,
            max_train=max_train,
            max_test=max_test,
            device=device,
            model_overrides=model_overrides,
            eval_each_epoch=eval_each_epoch,
            keep_predictions=predictions,
        )
        results = train_vqa(train, test, config)
    results["data"] = data if data == "easy-vqa" else f"{train_path},{test_path}"
    by_type = " ".join(f"{k}={v:.4f}" for k, v in results["accuracy_by_type"].items())
    summary = (
        f"test accuracy {results['accuracy']:.4f} ({results['num_test']} questions; {by_type}); "
        f"{results['total_seconds']:.0f} s wall, {results['cpu_seconds']:.0f} s CPU"
    )
    emit(results, output, summary)
