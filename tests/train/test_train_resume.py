"""A run stopped at step k and resumed ends with the same weights as an uninterrupted run."""

from __future__ import annotations

import csv
import json

import pytest
from safetensors.torch import load_file

from unimo_kit.train import load_config, train
from unimo_kit.train.checkpoint import list_checkpoints


def _rows(run_dir):
    with open(run_dir / "log.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_kill_at_step_k_then_resume_equals_uninterrupted(tmp_path, tiny_overrides):
    config = load_config(
        "tiny",
        {**tiny_overrides, "steps": 6, "save_every": 2, "val_pairs": None,
         "learn_temperature": True},
    )  # fmt: skip
    reference = train(config, tmp_path / "ref")
    assert reference.state.step == 6 and reference.final is not None

    # "Killed" after step 3: checkpoint at step 2, step 3's work and log row are lost.
    stopped = train(config, tmp_path / "run", stop_after=3, _kill=True)
    assert stopped.final is None and stopped.state.step == 3
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == ["step-000002"]
    assert len(_rows(tmp_path / "run")) == 3
    resumed = train(config, tmp_path / "run")
    assert resumed.state.step == 6 and resumed.state.data == reference.state.data

    want = load_file(str(reference.final / "model.safetensors"))
    got = load_file(str(resumed.final / "model.safetensors"))
    assert want.keys() == got.keys()
    for key in want:
        assert (want[key] == got[key]).all(), key  # bit-exact on CPU
    # The objective's own state (the learnt temperature) resumes too.
    last = "checkpoints/step-000006/objective.safetensors"
    want_obj = load_file(str(tmp_path / "ref" / last))
    got_obj = load_file(str(tmp_path / "run" / last))
    assert want_obj and all((want_obj[k] == got_obj[k]).all() for k in want_obj)
    # The log has one row per step (step 3 logged again after the resume, same values).
    ref_rows, rows = _rows(tmp_path / "ref"), _rows(tmp_path / "run")
    assert [r["step"] for r in rows] == [str(s) for s in range(1, 7)]
    for a, b in zip(ref_rows, rows, strict=True):
        assert a["loss"] == b["loss"] and a["lr"] == b["lr"]


@pytest.mark.slow
def test_no_resume_starts_afresh_and_objectives_all_report(tmp_path, tiny_overrides, caplog):
    config = load_config("tiny", {**tiny_overrides, "steps": 2, "save_every": 1})
    with caplog.at_level("WARNING", logger="unimo_kit.train.trainer"):
        train(config, tmp_path / "run", stop_after=1)
    assert not caplog.records  # clean data: nothing to warn about (no empty warnings)
    result = train(config, tmp_path / "run", resume=False)
    assert result.state.step == 2 and len(_rows(tmp_path / "run")) == 2
    for key in ("cmcl_loss", "mlm_loss", "seq2seq_loss", "mrp_loss", "cmcl_hardneg_acc"):
        assert key in result.last_losses, key
    assert result.eval is not None and 0.0 <= result.eval["i2t_r1"] <= 1.0
    assert (tmp_path / "run" / "eval.jsonl").exists()


def test_a_rerun_returns_final_only_when_it_holds_the_last_step(tmp_path, tiny_overrides):
    """A finished run is not trained again; one extended and stopped since gets a new final/."""
    from safetensors import safe_open

    def final_step():
        with safe_open(str(tmp_path / "run" / "final" / "model.safetensors"), "np") as handle:
            return handle.metadata()["step"]

    base = {**tiny_overrides, "save_every": 1}
    train(load_config("tiny", {**base, "steps": 2}), tmp_path / "run")
    again = train(load_config("tiny", {**base, "steps": 2}), tmp_path / "run")
    assert again.final is not None and again.last_losses == {} and again.state.step == 2
    train(load_config("tiny", {**base, "steps": 4}), tmp_path / "run", stop_after=3)
    assert final_step() == "2"
    result = train(load_config("tiny", {**base, "steps": 3}), tmp_path / "run")
    assert result.state.step == 3 and final_step() == "3"  # saved again, not taken as done


def test_warmup_longer_than_the_run_is_warned_about(tmp_path, tiny_overrides, caplog):
    config = load_config("tiny", {**tiny_overrides, "steps": 1, "warmup_steps": 5})
    with caplog.at_level("WARNING", logger="unimo_kit.train.trainer"):
        train(config, tmp_path / "run")
    assert any("warmup_steps 5 > steps 1" in r.getMessage() for r in caplog.records)


@pytest.mark.slow
def test_resume_under_another_config_is_refused_and_names_the_fields(
    tmp_path, tiny_overrides, caplog
):
    config = load_config("tiny", {**tiny_overrides, "steps": 4, "save_every": 1})
    train(config, tmp_path / "run", stop_after=1)
    written = (tmp_path / "run" / "config.json").read_text()

    other = load_config("tiny", {**tiny_overrides, "steps": 4, "save_every": 1, "lr": 3e-4})
    with pytest.raises(ValueError, match=r"another config .*step-000001.*lr: 0\.001 -> 0\.0003"):
        train(other, tmp_path / "run")
    assert (tmp_path / "run" / "config.json").read_text() == written  # the run's own, kept
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == ["step-000001"]

    # How the run is carried out may change; the schedule's length with a warning.
    shorter = load_config(
        "tiny", {**tiny_overrides, "steps": 3, "save_every": 1, "threads": 2, "log_every": 2}
    )
    with caplog.at_level("WARNING", logger="unimo_kit.train.trainer"):
        result = train(shorter, tmp_path / "run")
    assert result.state.step == 3
    assert any("changed steps: 4 -> 3" in r.getMessage() for r in caplog.records)
    # --no-resume starts afresh under any config.
    assert train(other, tmp_path / "run", resume=False, stop_after=1).state.step == 1


def _eval_steps(run_dir):
    lines = (run_dir / "eval.jsonl").read_text().splitlines()
    return [json.loads(line)["step"] for line in lines]


@pytest.mark.slow
def test_stop_after_checkpoints_step_k_and_the_rerun_resumes_there(
    tmp_path, tiny_overrides, caplog
):
    config = load_config("tiny", {**tiny_overrides, "steps": 6, "save_every": 3, "val_pairs": None})
    stopped = train(config, tmp_path / "run", stop_after=4)
    assert stopped.final is None and stopped.state.step == 4
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == ["step-000003", "step-000004"]
    with caplog.at_level("INFO", logger="unimo_kit.train.trainer"):
        resumed = train(config, tmp_path / "run")
    assert any("(step 4)" in r.getMessage() for r in caplog.records)
    assert resumed.state.step == 6 and resumed.final is not None
    assert [r["step"] for r in _rows(tmp_path / "run")] == [str(s) for s in range(1, 7)]
    # Stopping where a checkpoint already is writes nothing more.
    assert train(config, tmp_path / "other", stop_after=3).state.step == 3
    assert [p.name for p in list_checkpoints(tmp_path / "other")] == ["step-000003"]


@pytest.mark.slow
def test_resume_drops_eval_rows_past_the_checkpoint(tmp_path, tiny_overrides):
    config = load_config("tiny", {**tiny_overrides, "steps": 6, "save_every": 3, "eval_every": 2})
    train(config, tmp_path / "run", stop_after=5, _kill=True)  # checkpoint 3, evals at 2 and 4
    assert _eval_steps(tmp_path / "run") == [2, 4]
    train(config, tmp_path / "run")
    assert _eval_steps(tmp_path / "run") == [2, 4, 6]  # step 4 not twice


@pytest.mark.slow
def test_a_restart_without_checkpoint_starts_fresh_logs(tmp_path, tiny_overrides):
    fewer = {"mlm": False, "seq2seq": False, "mrp": False}
    first = load_config("tiny", {**tiny_overrides, **fewer, "steps": 4, "eval_every": 1})
    train(first, tmp_path / "run", stop_after=1, _kill=True)  # a log row, no checkpoint
    assert not list_checkpoints(tmp_path / "run") and len(_rows(tmp_path / "run")) == 1
    second = load_config("tiny", {**tiny_overrides, "steps": 2, "val_pairs": None})
    train(second, tmp_path / "run")
    rows = _rows(tmp_path / "run")
    assert [r["step"] for r in rows] == ["1", "2"] and rows[0]["mlm_loss"]  # its own columns
    assert not (tmp_path / "run" / "eval.jsonl").exists()


def test_val_pairs_are_checked_before_training(tmp_path, tiny_overrides):
    missing = load_config("tiny", {**tiny_overrides, "val_pairs": "pairs.val.jsonl"})
    with pytest.raises(FileNotFoundError, match=r"val_pairs=\S*pairs\.val\.jsonl"):
        train(missing, tmp_path / "a")
    no_val = load_config("tiny", {**tiny_overrides, "val_pairs": "texts.jsonl"})
    with pytest.raises(ValueError, match="no pairs of split 'val' with features"):
        train(no_val, tmp_path / "b")
    assert not (tmp_path / "a" / "checkpoints").exists()
    assert not (tmp_path / "b" / "checkpoints").exists()


@pytest.mark.slow
def test_final_is_saved_before_the_last_quick_eval_whose_failure_is_a_warning(
    tmp_path, tiny_overrides, monkeypatch, caplog
):
    from unimo_kit.train import quick_eval

    def broken(*args, **kwargs):
        raise ValueError("val features unreadable")

    monkeypatch.setattr(quick_eval, "retrieval_r1", broken)
    config = load_config("tiny", {**tiny_overrides, "steps": 2})
    with caplog.at_level("WARNING", logger="unimo_kit.train.trainer"):
        result = train(config, tmp_path / "run")
    assert result.final is not None and (result.final / "model.safetensors").exists()
    assert result.eval is None
    assert any("val features unreadable" in r.getMessage() for r in caplog.records)
