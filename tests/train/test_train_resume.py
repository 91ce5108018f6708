"""A run stopped at step k and resumed ends with the same weights as an uninterrupted run."""

from __future__ import annotations

import csv

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
    stopped = train(config, tmp_path / "run", stop_after=3)
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
