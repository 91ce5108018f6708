"""Batch evaluation end to end on two random tiny checkpoints: tables, plots, hashes, resume,
and mean ± std over seeds."""

import csv
import hashlib
import json

import pytest

from unimo_kit.eval.batch import group_summary, parse_config, run_batch
from unimo_kit.eval.errors import EvalError


@pytest.fixture(scope="module")
def batch_config(tmp_path_factory, tiny_world, tiny_checkpoint, second_checkpoint):
    folder = tmp_path_factory.mktemp("batch")
    config = {
        "name": "tiny ablation",
        "device": "cpu",
        "checkpoints": [
            {
                "label": "a-s0",
                "path": str(tiny_checkpoint),
                "group": "a",
                "seed": 0,
                "features": str(tiny_world / "features"),
            },
            {
                "label": "a-s1",
                "path": str(second_checkpoint),
                "group": "a",
                "seed": 1,
                "features": str(tiny_world / "features"),
            },
        ],
        "tasks": [
            {"task": "retrieval", "data": str(tiny_world / "pairs.test.jsonl"), "ks": [1, 5]},
            {"task": "compositional", "data": str(tiny_world / "compositional.test.jsonl")},
        ],
    }
    path = folder / "config.json"
    path.write_text(json.dumps(config))
    return path


def test_batch_writes_tables_plots_and_hashes(batch_config, tmp_path, tiny_checkpoint):
    out = tmp_path / "out"
    rows = run_batch(batch_config, out, log=lambda m: None)
    assert len(rows) == 4
    for name in ("results.json", "results.csv", "results.md", "rows.jsonl"):
        assert (out / name).stat().st_size > 0
    for name in ("retrieval-retrieval.png", "compositional-compositional.png", "loss.png"):
        assert (out / "plots" / name).read_bytes()[:4] == b"\x89PNG"
    weights = (tiny_checkpoint / "model.safetensors").read_bytes()
    assert rows[0]["checkpoint_sha256"] == hashlib.sha256(weights).hexdigest()
    assert len({r["config_sha256"] for r in rows}) == 1
    assert rows[0]["data_sha256"] != rows[1]["data_sha256"]

    table = list(csv.DictReader((out / "results.csv").open()))
    assert {r["label"] for r in table} == {"a-s0", "a-s1"}
    comp = [r for r in table if r["task"] == "compositional"]
    assert "acc/replace-att" in comp[0]
    md = (out / "results.md").read_text()
    assert "Mean ± std over seeds" in md and "| a | 2 |" in md

    doc = json.loads((out / "results.json").read_text())
    summary = {s["name"]: s for s in doc["summary"]}
    acc = [r["accuracy"] for r in rows if r["task"] == "compositional"]
    mean = sum(acc) / 2
    std = (sum((a - mean) ** 2 for a in acc) / 1) ** 0.5  # sample std of two runs
    assert summary["compositional"]["metrics"]["accuracy"]["mean"] == pytest.approx(mean)
    assert summary["compositional"]["metrics"]["accuracy"]["std"] == pytest.approx(std)

    # resume: nothing recomputed, same rows
    messages = []
    again = run_batch(batch_config, out, log=messages.append, plots=False)
    assert all("reused" in m for m in messages) and len(messages) == 4
    assert [r["rsum"] for r in again if r["task"] == "retrieval"] == [
        r["rsum"] for r in rows if r["task"] == "retrieval"
    ]

    # changed task options are not served from the old rows
    config = json.loads(batch_config.read_text())
    config["tasks"][0]["ks"] = [1, 10]
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(config))
    messages = []
    rows = run_batch(changed, out, log=messages.append, plots=False)
    assert sum("reused" in m for m in messages) == 2  # the compositional rows only
    assert all("i2t_r10" in r for r in rows if r["task"] == "retrieval")


def test_generative_compositional_task_needs_a_trained_seq2seq_head(
    tiny_world, tiny_checkpoint, tmp_path
):
    """Skipped for CLIP models and for checkpoints whose run config says seq2seq was off; run
    for a unimo checkpoint (without a run config nothing is known, so it runs)."""
    import shutil

    run = tmp_path / "run-a"
    shutil.copytree(tiny_checkpoint, run / "final")
    (run / "config.json").write_text(json.dumps({"seq2seq": False, "steps": 10}))
    features = str(tiny_world / "features")
    config = {
        "device": "cpu",
        "checkpoints": [
            {"label": "u", "path": str(tiny_checkpoint), "features": features},
            {"label": "clip", "open_clip": "ViT-B-32"},
            {"label": "arm-a", "path": str(run / "final"), "features": features},
        ],
        "tasks": [
            {
                "task": "compositional",
                "name": "gen",
                "data": str(tiny_world / "compositional.test.jsonl"),
                "score": "generative",
            }
        ],
    }
    messages = []
    rows = run_batch(config, tmp_path / "out", log=messages.append, plots=False)
    assert [(r["label"], r["score"]) for r in rows] == [("u", "generative")]
    assert any("clip" in m and "skipped" in m for m in messages)
    assert any("arm-a" in m and "trained without seq2seq" in m for m in messages)

    from unimo_kit.eval.compositional import evaluate_compositional, load_compositional
    from unimo_kit.eval.scorers import UnimoScorer

    scorer = UnimoScorer(run / "final", features, device="cpu")
    examples = load_compositional(tiny_world / "compositional.test.jsonl")
    with pytest.raises(EvalError, match="trained without the seq2seq objective"):
        evaluate_compositional(scorer, examples, score="generative")


def test_token_compositional_task_needs_token_alignment(tiny_world, tiny_checkpoint, tmp_path):
    """A checkpoint whose run trained without token alignment skips the token-scored task and
    refuses it when asked directly; one trained with it is scored."""
    import shutil

    from unimo_kit.eval.compositional import evaluate_compositional, load_compositional
    from unimo_kit.eval.scorers import UnimoScorer

    features = str(tiny_world / "features")
    for name, flag in (("off", False), ("on", True)):
        shutil.copytree(tiny_checkpoint, tmp_path / name / "final")
        config = {"steps": 10, "token_alignment": flag}
        (tmp_path / name / "config.json").write_text(json.dumps(config))
    config = {
        "device": "cpu",
        "checkpoints": [
            {"label": name, "path": str(tmp_path / name / "final"), "features": features}
            for name in ("off", "on")
        ],
        "tasks": [
            {
                "task": "compositional",
                "name": "tok",
                "data": str(tiny_world / "compositional.test.jsonl"),
                "score": "token",
            }
        ],
    }
    messages = []
    rows = run_batch(config, tmp_path / "out", log=messages.append, plots=False)
    assert [(r["label"], r["score"]) for r in rows] == [("on", "token")]
    assert any("off" in m and "trained without token_alignment" in m for m in messages)
    scorer = UnimoScorer(tmp_path / "off" / "final", features, device="cpu")
    examples = load_compositional(tiny_world / "compositional.test.jsonl")
    with pytest.raises(EvalError, match="trained without the token_alignment objective"):
        evaluate_compositional(scorer, examples, score="token")


def test_group_summary_single_run_std_zero():
    rows = [{"group": "g", "name": "t", "task": "retrieval", "rsum": 10.0, "seed": 0}]
    (s,) = group_summary(rows)
    assert s["metrics"]["rsum"] == {"mean": 10.0, "std": 0.0} and s["runs"] == 1


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"checkpoints": [], "tasks": []}, "'checkpoints' must be a non-empty list"),
        (
            {"checkpoints": [{"path": "x"}], "tasks": [{"task": "retrieval", "data": "p"}]},
            "missing 'label'",
        ),
        (
            {
                "checkpoints": [{"label": "a", "path": "x", "open_clip": "y"}],
                "tasks": [{"task": "retrieval", "data": "p"}],
            },
            "exactly one of",
        ),
        (
            {
                "checkpoints": [{"label": "a", "path": "x"}],
                "tasks": [{"task": "no-such-task", "data": "p"}],
            },
            r"tasks\[0\]: 'task' must be one of",
        ),
        (
            {
                "checkpoints": [{"label": "a", "path": "x"}],
                "tasks": [{"task": "compositional", "data": "p", "score": "bleu"}],
            },
            r"tasks\[0\]: 'score' must be one of",
        ),
        (
            {
                "checkpoints": [{"label": "a", "path": "x", "colour": 1}],
                "tasks": [{"task": "retrieval", "data": "p"}],
            },
            "unknown field",
        ),
    ],
)
def test_bad_configs_are_named(config, message):
    with pytest.raises(EvalError, match=message):
        parse_config(config)


def test_relative_paths_resolved_against_config(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(
        json.dumps(
            {
                "checkpoints": [{"label": "a", "path": "runs/a/final"}],
                "tasks": [
                    {"task": "compositional", "data": "comp.jsonl"},
                    {"task": "compositional", "data": "comp2.jsonl"},
                ],
            }
        )
    )
    cfg = parse_config(path)
    assert cfg.checkpoints[0].path == str(tmp_path / "runs/a/final")
    assert [t.name for t in cfg.tasks] == ["compositional", "compositional-2"]
    assert cfg.tasks[0].data == str(tmp_path / "comp.jsonl")
