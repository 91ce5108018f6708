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
