"""The eval task registry: a toy task added through the public extension point runs through
``run_batch`` and lands in the report; empty generated captions are warned about."""

import json

import pytest

from unimo_kit.eval.batch import run_batch
from unimo_kit.eval.caption import empty_caption_warning
from unimo_kit.eval.errors import EvalError
from unimo_kit.eval.registry import EvalTask, Option, register_task, task_names, unregister_task
from unimo_kit.eval.report import markdown_tables


@pytest.fixture
def toy_task():
    def run(run):
        with open(run.task.data, encoding="utf-8") as handle:
            lines = handle.read().split()
        return {"task": "toy", "words": len(lines) * run.options.get("repeats", 1), "num_x": 1}

    def plot(summary, rows, name, folder):
        path = folder / f"toy-{name}.png"
        path.write_bytes(b"png")
        return str(path)

    task = register_task(
        EvalTask(
            name="toy",
            run=run,
            options={"repeats": Option.positive_int()},
            metrics=("words",),
            plot=plot,
            uses_scorer=False,
        )
    )
    yield task
    unregister_task("toy")


def test_a_registered_task_runs_through_batch_and_report(toy_task, tmp_path):
    data = tmp_path / "toy.txt"
    data.write_text("a b c\n")
    config = {
        "checkpoints": [{"label": "m", "st_clip": "no-such-model"}],
        "tasks": [{"task": "toy", "data": str(data), "repeats": 2}],
    }
    assert "toy" in task_names()
    rows = run_batch(config, tmp_path / "out", log=lambda msg: None)
    assert [(r["task"], r["words"]) for r in rows] == [("toy", 6)]
    md = (tmp_path / "out" / "results.md").read_text()
    assert (
        "## toy (toy:" in md and "| checkpoint | words | sha256 |" in md and "| m | 6.0000 |" in md
    )
    assert (tmp_path / "out" / "plots" / "toy-toy.png").exists()
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert doc["rows"][0]["words"] == 6
    with pytest.raises(EvalError, match=r"'repeats' must be a positive integer"):
        run_batch({**config, "tasks": [{"task": "toy", "data": str(data), "repeats": 0}]})
    with pytest.raises(EvalError, match=r"unknown option\(s\) \['beams'\] for a toy task"):
        run_batch({**config, "tasks": [{"task": "toy", "data": str(data), "beams": 2}]})
    with pytest.raises(ValueError, match="registered already"):
        register_task(toy_task)


def test_most_captions_empty_is_warned_and_noted_in_the_report():
    assert empty_caption_warning(["a dog", "", "a cat"]) is None
    warning = empty_caption_warning(["", " ", "a cat"])
    assert warning.startswith("2 of 3 generated captions are empty")
    assert empty_caption_warning([""] * 4).startswith("4 of 4")
    row = {
        "label": "short",
        "group": "short",
        "name": "caption",
        "task": "caption",
        "bleu4": 0.0,
        "cider": 0.0,
        "notes": [warning],
    }
    md = markdown_tables([row], [])
    assert "| short | 0.0000 | 0.0000 |" in md and f"- **short**: {warning}" in md


@pytest.fixture
def toy_task_cli(monkeypatch):
    """A built-in task ``toy-words`` with a CLI module ``unimo_kit.cli.eval_toy_words`` (a
    module object with a spec, as a file in cli/ would give), and ``nocli`` without one."""
    import importlib.machinery
    import sys
    import types

    import click

    from unimo_kit.eval import registry

    @click.command("toy-words")
    @click.argument("text")
    def toy_words(text):
        """Count the words of TEXT."""
        click.echo(f"{len(text.split())} words")

    name = "unimo_kit.cli.eval_toy_words"
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, loader=None)
    module.toy_words = toy_words
    monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(registry, "BUILTIN_TASKS", (*registry.BUILTIN_TASKS, "toy-words", "nocli"))


def test_a_registered_tasks_cli_module_is_an_eval_subcommand(toy_task_cli):
    from click.testing import CliRunner

    from unimo_kit.cli.eval import eval_subcommands
    from unimo_kit.cli.main import cli

    table = eval_subcommands()
    assert list(table) == [
        "parse",
        "retrieval",
        "compositional",
        "caption",
        "vqa",
        "toy-words",
        "batch",
    ]
    assert table["toy-words"] == "eval_toy_words:toy_words" and "nocli" not in table
    runner = CliRunner()
    listing = runner.invoke(cli, ["eval", "--help"]).output
    assert "toy-words" in listing and "Count the words of TEXT." in listing
    assert "nocli" not in listing
    result = runner.invoke(cli, ["eval", "toy-words", "a b c"])
    assert result.exit_code == 0 and result.output == "3 words\n"


def test_the_eval_listing_is_parse_the_builtin_tasks_and_batch():
    from click.testing import CliRunner

    from unimo_kit.cli.main import cli

    listing = CliRunner().invoke(cli, ["eval", "--help"]).output
    lines = listing.split("Commands:\n")[1].splitlines()
    names = [line.split()[0] for line in lines if line.startswith("  ") and line[2] != " "]
    assert names == ["batch", "caption", "compositional", "parse", "retrieval", "vqa"]
