"""The demo orchestration: the commands it runs, skipping finished stages, the report."""

import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from unimo_kit.cli.main import cli
from unimo_kit.demo import (
    DemoConfig,
    build_stages,
    eval_config,
    read_stage_record,
    run_demo,
    train_fingerprint,
)
from unimo_kit.demo_report import write_report


def _fake_python(tmp_path):
    """An interpreter stand-in that logs each stage's argv instead of running it."""
    log = tmp_path / "calls.log"
    script = tmp_path / "fake-python"
    script.write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script), log


def test_every_stage_is_a_real_subcommand():
    config = DemoConfig()
    for stage in build_stages(config):
        group = cli
        words = list(stage.argv)
        command = None
        while words and hasattr(group, "get_command"):
            command = group.get_command(None, words[0])
            assert command is not None, stage.argv
            words.pop(0)
            group = command
        options = {opt for p in command.params for opt in getattr(p, "opts", [])}
        used = {word for word in words if word.startswith("-")}
        assert used <= options, (stage.name, used - options)


def test_negatives_are_checked_on_gold_scenes_and_features_keep_colour():
    stages = {stage.name: stage.argv for stage in build_stages(DemoConfig())}
    for name in ("rewrite", "mine"):  # typed, TF-IDF and mined negatives: false of the image
        assert "--scenes" in stages[name]
    features = stages["features"]
    assert features[features.index("--extractor") + 1] == "effnet-ms"
    other = build_stages(DemoConfig(extractor="effnet"))
    assert "effnet" in next(s.argv for s in other if s.name == "features")


def test_every_image_is_encoded_once_the_image_index_reading_the_features_store():
    """features runs before the image index, whose encoder is that store; the store holds
    every image the index and mining's image queries need (images.jsonl, the train pairs)."""
    config = DemoConfig(out=Path("/x/demo"))
    stages = build_stages(config)
    names = [stage.name for stage in stages]
    assert names == [
        "synth",
        "rewrite",
        "index-texts",
        "features",
        "index-images",
        "mine",
        "train",
        "eval",
    ]
    argv = {stage.name: stage.argv for stage in stages}
    build = argv["index-images"]
    store = argv["features"][argv["features"].index("-o") + 1]
    assert store == "/x/demo/world/features"
    assert build[build.index("--encoder") + 1] == f"features:{store}"
    assert build[build.index("--images") + 1] in argv["features"]
    mine = argv["mine"]
    assert mine[mine.index("--pairs") + 1] in argv["features"]
    assert mine[mine.index("--image-index") + 1] == "images"


def test_a_folder_of_the_earlier_order_keeps_its_features_and_rebuilds_the_image_index(tmp_path):
    """A demo folder made when the image index ran its own CNN (no ``--encoder``, features
    after mining): its features are reused, the image index and everything after it rerun."""
    python, log = _fake_python(tmp_path)
    config = DemoConfig(out=tmp_path / "demo", n_images=50, train_steps=5)
    run_demo(config, echo=lambda _: None, python=python)
    marker = config.out / ".stages" / "index-images.json"
    record = read_stage_record(marker)
    at = record["argv"].index("--encoder")
    record["argv"] = record["argv"][:at] + record["argv"][at + 2 :]  # as the earlier demo ran
    marker.write_text(json.dumps(record))
    names = [s.name for s in build_stages(config)]
    lines: list[str] = []
    run_demo(config, echo=lines.append, python=python)
    rerun = [call.split()[2:5] for call in log.read_text().splitlines()[len(names) :]]
    assert rerun == [
        ["index", "build", "--images"],
        ["index", "mine", "--pairs"],
        ["train", "--config", "synth-small"],
        ["eval", "batch", str(config.out / "eval.json")],
    ]
    assert any(line.startswith("[4/8] features") and "skipped" in line for line in lines)


def test_compositional_images_enlarge_the_test_set_and_get_features():
    """By default as many more scenes for the compositional test as the test split (10 % of
    n_images: 4000 -> 400);
    their images are extracted with the others; 0 leaves both commands as they were."""
    stages = {stage.name: stage.argv for stage in build_stages(DemoConfig())}
    synth = stages["synth"]
    assert synth[synth.index("--compositional-images") + 1] == "400"
    assert any(a.endswith("compositional.images.jsonl") for a in stages["features"])
    small = {s.name: s.argv for s in build_stages(DemoConfig(n_images=50))}
    assert small["synth"][small["synth"].index("--compositional-images") + 1] == "5"
    none = {s.name: s.argv for s in build_stages(DemoConfig(compositional_images=0))}
    assert none["synth"][none["synth"].index("--compositional-images") + 1] == "0"
    assert not any(a.endswith("compositional.images.jsonl") for a in none["features"])


def test_stages_run_in_order_and_are_skipped_when_done(tmp_path):
    python, log = _fake_python(tmp_path)
    config = DemoConfig(out=tmp_path / "demo", n_images=50, train_steps=5)
    lines: list[str] = []
    report = run_demo(config, echo=lines.append, python=python)
    calls = log.read_text().splitlines()
    names = [s.name for s in build_stages(config)]
    assert len(calls) == len(names)
    assert calls[0].startswith("-m unimo_kit.cli.main data synth")
    assert "--set steps=5" in calls[names.index("train")]
    assert report.exists() and report.read_text().startswith("# unimo_kit demo report")
    assert json.loads((config.out / "eval.json").read_text()) == eval_config(config)
    commands = (config.out / "commands.sh").read_text().splitlines()
    assert commands[3].startswith("unimo data synth -o")

    run_demo(config, echo=lines.append, python=python)  # everything done: nothing reruns
    assert len(log.read_text().splitlines()) == len(names)
    assert sum("done already, skipped" in line for line in lines) == len(names)

    changed = DemoConfig(out=config.out, n_images=50, train_steps=7)
    run_demo(changed, echo=lines.append, python=python)  # the changed stage and all after it
    rerun = log.read_text().splitlines()[len(names) :]
    assert len(rerun) == len(names) - names.index("train")
    assert "--set steps=7" in rerun[0] and rerun[1].startswith("-m unimo_kit.cli.main eval")


def test_a_stage_that_runs_again_finds_none_of_its_earlier_outputs(tmp_path):
    """Every command resumes from what its output already holds (records by id, index
    blocks, features by image id), so after a change upstream (here the world's size) no
    stage may find what the earlier world left."""
    python, _ = _fake_python(tmp_path)
    config = DemoConfig(out=tmp_path / "demo", n_images=50, train_steps=5)
    run_demo(config, echo=lambda _: None, python=python)
    outputs = [path for stage in build_stages(config) for path in stage.outputs]
    assert len(outputs) >= len(build_stages(config))  # every stage names what it writes
    for path in outputs:  # what the stages would have written
        if path.suffix == ".jsonl":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text('{"id": "from the earlier world"}\n')
        else:
            path.mkdir(parents=True, exist_ok=True)
            (path / "old").write_text("")
    lines: list[str] = []
    run_demo(
        DemoConfig(out=config.out, n_images=60, train_steps=5), echo=lines.append, python=python
    )
    assert not [path for path in outputs if path.exists()]
    assert any("starts afresh: removing" in line and "world" in line for line in lines)


def test_an_edited_preset_retrains_from_scratch_and_reevaluates(tmp_path):
    python, log = _fake_python(tmp_path)
    preset = tmp_path / "my-preset.json"
    preset.write_text(json.dumps({"extends": "synth-small", "steps": 5}))
    config = DemoConfig(out=tmp_path / "demo", n_images=50, train_preset=str(preset))
    lines: list[str] = []
    run_demo(config, echo=lines.append, python=python)
    names = [s.name for s in build_stages(config)]
    (config.out / "run").mkdir()
    (config.out / "run" / "config.json").write_text("{}")  # what the first training left

    preset.write_text(json.dumps({"extends": "synth-small", "steps": 6}))  # same command line
    run_demo(config, echo=lines.append, python=python)
    rerun = log.read_text().splitlines()[len(names) :]
    assert [call.split()[2] for call in rerun] == ["train", "eval"]
    assert not (config.out / "run").exists()  # removed, not resumed under the new settings
    assert any("starts afresh" in line for line in lines)

    run_demo(config, echo=lines.append, python=python)  # unchanged since: nothing reruns
    assert len(log.read_text().splitlines()) == len(names) + 2


def test_a_killed_training_is_resumed_by_its_own_settings_and_removed_by_others(tmp_path):
    log = tmp_path / "calls.log"
    script = tmp_path / "python-killed-in-train"  # logs every stage; dies in train once
    script.write_text(
        f'#!/bin/sh\necho "$*" >> {log}\n'
        f'case "$*" in *" train "*) [ -e {tmp_path}/killed ] || '
        f"{{ touch {tmp_path}/killed; exit 9; }};; esac\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    preset = tmp_path / "my-preset.json"
    preset.write_text(json.dumps({"extends": "synth-small", "steps": 5}))
    config = DemoConfig(out=tmp_path / "demo", n_images=50, train_preset=str(preset))
    with pytest.raises(Exception, match="exit status 9"):
        run_demo(config, echo=lambda _: None, python=str(script))
    (config.out / "run").mkdir()  # the killed training's checkpoints
    run_demo(config, echo=lambda _: None, python=str(script))  # same settings: resumed
    assert (config.out / "run").is_dir()

    (tmp_path / "killed").unlink()
    preset.write_text(json.dumps({"extends": "synth-small", "steps": 6}))
    with pytest.raises(Exception, match="exit status 9"):
        run_demo(config, echo=lambda _: None, python=str(script))  # killed again, new settings
    assert not (config.out / "run").exists()  # the finished run of steps=5 went first
    (config.out / "run").mkdir()
    (config.out / "run" / "partial").write_text("")  # what the killed steps=6 run left
    preset.write_text(json.dumps({"extends": "synth-small", "steps": 7}))
    lines: list[str] = []
    run_demo(config, echo=lines.append, python=str(script))  # other settings: afresh
    assert not (config.out / "run").exists()
    assert any("starts afresh" in line for line in lines)


def test_an_unknown_preset_stops_the_demo_before_any_stage(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["demo", "-o", str(out), "--preset", "no-such-preset"])
    assert result.exit_code != 0 and "unknown training config 'no-such-preset'" in result.output
    assert not out.exists()


def test_folder_of_an_earlier_demo_version_is_refused_until_restart(tmp_path):
    from unimo_kit.demo import StaleDemoError, restart

    python, log = _fake_python(tmp_path)
    config = DemoConfig(out=tmp_path / "demo", n_images=50, train_steps=5)
    run_demo(config, echo=lambda line: None, python=python)
    marker = config.out / ".stages" / "rewrite.json"
    old = read_stage_record(marker)
    del old["version"]  # as written by version 1 (a flat marker, before manifests)
    marker.write_text(json.dumps(old))
    with pytest.raises(StaleDemoError, match=r"earlier version.*--no-resume"):
        run_demo(config, echo=lambda line: None, python=python)
    restart(config.out)
    assert not config.out.exists()
    run_demo(config, echo=lambda line: None, python=python)  # afresh: every stage runs
    assert len(log.read_text().splitlines()) == 2 * len(build_stages(config))
    (tmp_path / "mine").mkdir()
    with pytest.raises(StaleDemoError, match="does not look like a demo folder"):
        restart(tmp_path / "mine")


def test_failed_stage_stops_the_demo_with_a_clear_message(tmp_path):
    script = tmp_path / "failing-python"
    script.write_text("#!/bin/sh\nexit 3\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    config = DemoConfig(out=tmp_path / "demo")
    try:
        run_demo(config, echo=lambda _: None, python=str(script))
    except Exception as exc:
        assert "exit status 3" in str(exc)
    else:
        raise AssertionError("a failing stage must stop the demo")
    started = read_stage_record(config.out / ".stages" / "synth.json")
    assert started["finished"] is False  # recorded as begun, not as done
    assert [p.name for p in (config.out / ".stages").iterdir()] == ["synth.json"]


def test_report_includes_examples_and_results(tmp_path):
    out = tmp_path / "demo"
    world = out / "world"
    world.mkdir(parents=True)
    (world / "rewrites.jsonl").write_text(
        json.dumps(
            {
                "id": "p#0",
                "caption": "a red circle",
                "scene_graph": "( circle , is , red )",
                "positives": [{"type": "there-is", "text": "there is a red circle"}],
                "negatives": [{"type": "replace-att", "text": "a blue circle", "edits": []}],
            }
        )
        + "\n"
    )
    (world / "pairs.train.jsonl").write_text(
        json.dumps({"id": "p", "image": "p.png", "captions": ["a red circle"]}) + "\n"
    )
    (world / "retrieved.jsonl").write_text(
        json.dumps(
            {
                "id": "p",
                "texts": [{"id": "t", "text": "one red circle", "score": 0.9}],
                "images": [{"id": "i", "image": "i.png", "score": 0.8}],
                "negatives": [
                    {"pair_id": "q", "caption_index": 0, "text": "a red square", "score": 0.7}
                ],
            }
        )
        + "\n"
    )
    (out / "results").mkdir()
    (out / "results" / "results.md").write_text("# title\n\n## retrieval\n\n| a |\n")
    categories = {
        "add-att": {"accuracy": 0.9, "p_above_chance": 1e-9},
        "swap-att": {"accuracy": 0.55, "p_above_chance": 0.18},
    }
    row = {"label": "m", "name": "comp-token", "task": "compositional", "score": "token"}
    (out / "results" / "results.json").write_text(
        json.dumps({"rows": [{**row, "categories": categories}, {"task": "retrieval"}]})
    )
    text = write_report(out).read_text()
    assert (
        "- m, comp-token (token score): above chance on 1 of 2 categories; "
        "not on swap-att (55.0 %, p = 0.18)" in text
    )
    assert "negative (replace-att): a blue circle" in text
    assert "related text (0.90): one red circle" in text
    assert "### retrieval" in text and "# title" not in text


def test_demo_help():
    result = CliRunner().invoke(cli, ["demo", "--help"])
    assert result.exit_code == 0 and "REPORT.md" in result.output


def test_train_fingerprint_leaves_out_fields_at_their_defaults():
    """A field added to TrainConfig later, at its default, does not retrain finished runs;
    set to anything else, it does."""
    base = train_fingerprint("synth-small", ["seed=0"])
    assert train_fingerprint("synth-small", ["seed=0", "mirror_horizontal=0.0"]) == base
    assert train_fingerprint("synth-small", ["seed=0", "mirror_horizontal=0.5"]) != base
    assert train_fingerprint("synth-small", ["seed=1"]) != base


def _stop_on(text: str):
    """An ``echo`` that stops the demo (as a Ctrl-C would) at the first line holding ``text``."""

    def echo(line: str) -> None:
        if text in line:
            raise KeyboardInterrupt

    return echo


@pytest.mark.parametrize("stop_at", ["[8/8] eval", "starts afresh: removing"])
def test_a_stop_after_an_upstream_stage_reran_still_reruns_the_later_ones(tmp_path, stop_at):
    """Training reruns (steps changed); a Ctrl-C before evaluation's marker is rewritten (at
    its header, or while its old results are removed) must not leave it marked done."""
    python, log = _fake_python(tmp_path)
    config = DemoConfig(out=tmp_path / "demo", n_images=50, train_steps=5)
    run_demo(config, echo=lambda _: None, python=python)
    (config.out / "results").mkdir()
    (config.out / "results" / "results.json").write_text("{}")  # of the steps=5 model
    changed = DemoConfig(out=config.out, n_images=50, train_steps=7)
    assert not (config.out / "run").exists()  # so the first removal is eval's results/
    with pytest.raises(KeyboardInterrupt):
        run_demo(changed, echo=_stop_on(stop_at), python=python)
    assert not (config.out / ".stages" / "eval.json").exists()
    calls = len(log.read_text().splitlines())

    lines: list[str] = []
    run_demo(changed, echo=lines.append, python=python)
    rerun = log.read_text().splitlines()[calls:]
    assert rerun and rerun[-1].startswith("-m unimo_kit.cli.main eval")
    assert not any("] eval:" in line and "skipped" in line for line in lines)


def test_relative_and_absolute_out_are_the_same_run(tmp_path, monkeypatch):
    python, log = _fake_python(tmp_path)
    monkeypatch.chdir(tmp_path)
    run_demo(
        DemoConfig(out=Path("demo"), n_images=50, train_steps=5), echo=lambda _: None, python=python
    )
    names = [s.name for s in build_stages(DemoConfig())]
    for out in (tmp_path / "demo", Path("./demo"), Path("sub/../demo")):
        lines: list[str] = []
        run_demo(DemoConfig(out=out, n_images=50, train_steps=5), echo=lines.append, python=python)
        assert len(log.read_text().splitlines()) == len(names), out  # nothing reran
        assert sum("done already, skipped" in line for line in lines) == len(names)


def test_a_folder_made_with_relative_paths_by_an_earlier_build_is_still_done(tmp_path, monkeypatch):
    """Before paths were made absolute, markers held them as typed (``runs/demo/world``, as
    ``make demo`` wrote); such a finished folder, rerun the same way, is not redone."""
    python, log = _fake_python(tmp_path)
    monkeypatch.chdir(tmp_path)
    config = DemoConfig(out=Path("runs/demo"), n_images=50, train_steps=5)
    run_demo(config, echo=lambda _: None, python=python)
    absolute = str(tmp_path / "runs" / "demo")
    for marker in (tmp_path / "runs" / "demo" / ".stages").iterdir():  # as the old code wrote it
        record = read_stage_record(marker)
        argv = [word.replace(absolute, "runs/demo") for word in record["argv"]]
        assert not any(absolute in word for word in argv)
        if marker.stem == "train":  # its digest was of the relative data_dir, too
            settings = [argv[i + 1] for i, word in enumerate(argv) if word == "--set"]
            relative = train_fingerprint("synth-small", settings)
            assert relative != record["fingerprint"]
            record["fingerprint"] = relative
        record["argv"] = argv
        marker.write_text(json.dumps(record))
    train = read_stage_record(tmp_path / "runs/demo/.stages/train.json")
    assert "data_dir=runs/demo/world" in train["argv"]  # in the training fingerprint too
    names = [s.name for s in build_stages(config)]
    for out in (Path("runs/demo"), tmp_path / "runs" / "demo"):
        lines: list[str] = []
        run_demo(DemoConfig(out=out, n_images=50, train_steps=5), echo=lines.append, python=python)
        assert len(log.read_text().splitlines()) == len(names), out
        assert sum("done already, skipped" in line for line in lines) == len(names)
    elsewhere = tmp_path / "elsewhere"  # from another directory, and after a move
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    moved = tmp_path / "moved" / "demo"
    for out in (tmp_path / "runs" / "demo", moved):
        if out == moved:
            moved.parent.mkdir()
            (tmp_path / "runs" / "demo").rename(moved)
        lines = []
        run_demo(DemoConfig(out=out, n_images=50, train_steps=5), echo=lines.append, python=python)
        assert len(log.read_text().splitlines()) == len(names), out
        assert sum("done already, skipped" in line for line in lines) == len(names)
    moved.rename(tmp_path / "runs" / "demo")
    monkeypatch.chdir(tmp_path)
    run_demo(
        DemoConfig(out=Path("runs/demo"), n_images=50, train_steps=6),
        echo=lambda _: None,
        python=python,
    )
    rerun = log.read_text().splitlines()[len(names) :]  # a real change still reruns
    assert [call.split()[2] for call in rerun] == ["train", "eval"]


def test_stage_markers_are_resume_manifests(tmp_path):
    """Each stage's record is a resume manifest of the one format (docs/formats.md)."""
    from unimo_kit.utils.manifest import read_manifest

    python, _ = _fake_python(tmp_path)
    config = DemoConfig(out=tmp_path / "demo", n_images=50, train_steps=5)
    run_demo(config, echo=lambda _: None, python=python)
    for stage in build_stages(config):
        manifest = read_manifest(config.out / ".stages" / f"{stage.name}.json")
        assert manifest is not None and manifest.stage == f"demo {stage.name}"
        assert manifest.settings["finished"] is True
        assert manifest.settings["argv"] == stage.argv


@pytest.mark.parametrize("flag", ["--no-resume", "--restart"])
def test_no_resume_removes_the_demo_folder_and_restart_is_its_deprecated_spelling(
    tmp_path, monkeypatch, flag
):
    import unimo_kit.demo

    calls = []
    monkeypatch.setattr(unimo_kit.demo, "run_demo", lambda config, echo, **_: calls.append(config))
    out = tmp_path / "demo"
    (out / ".stages").mkdir(parents=True)
    (out / "world").mkdir()
    result = CliRunner().invoke(cli, ["demo", "-o", str(out), flag])
    assert result.exit_code == 0, result.output
    assert not out.exists() and len(calls) == 1
    assert ("deprecated" in result.output) == (flag == "--restart")
    kept = tmp_path / "kept"
    (kept / ".stages").mkdir(parents=True)
    assert CliRunner().invoke(cli, ["demo", "-o", str(kept)]).exit_code == 0
    assert kept.exists()  # resumed by default: nothing removed


def test_set_options_reach_train_and_its_fingerprint(tmp_path, monkeypatch):
    """``unimo demo --set KEY=VALUE`` (repeatable) goes to ``unimo train --set`` after seed and
    steps, and into the train stage's fingerprint: a changed value retrains."""
    import unimo_kit.demo

    calls = []
    monkeypatch.setattr(unimo_kit.demo, "run_demo", lambda config, echo, **_: calls.append(config))
    out = tmp_path / "demo"
    args = ["demo", "-o", str(out), "--steps", "9", "--set", "vocab=corpus", "--set", "lr=1e-3"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    (config,) = calls
    assert config.extra_train_args == ["vocab=corpus", "lr=1e-3"]
    train = next(stage for stage in build_stages(config) if stage.name == "train")
    sets = [train.argv[i + 1] for i, word in enumerate(train.argv) if word == "--set"]
    assert sets[-3:] == ["steps=9", "vocab=corpus", "lr=1e-3"]
    plain = next(s for s in build_stages(DemoConfig(out=out, train_steps=9)) if s.name == "train")
    assert train.fingerprint != plain.fingerprint


@pytest.mark.parametrize(
    ("item", "message"),
    [("vocab", "expected KEY=VALUE"), ("=corpus", "expected KEY=VALUE")],
)
def test_a_malformed_set_is_refused_by_the_cli(tmp_path, item, message):
    out = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["demo", "-o", str(out), "--set", item])
    assert result.exit_code == 2 and message in result.output
    assert not out.exists()


@pytest.mark.parametrize(
    ("item", "message"),
    [("no_such_key=1", "unknown TrainConfig fields"), ("vocab=bogus", "vocab must be one of")],
)
def test_a_set_train_rejects_stops_the_demo_before_any_stage(tmp_path, item, message):
    out = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["demo", "-o", str(out), "--set", item])
    assert result.exit_code != 0 and message in result.output
    assert not out.exists()


def test_each_stage_records_its_wall_and_cpu_seconds_and_the_load(tmp_path):
    """The marker holds the stage's process-tree CPU time (a busy child counts, an idle one
    does not) beside its wall time and the load average; REPORT.md shows all three."""
    log = tmp_path / "calls.log"
    script = tmp_path / "python-busy-in-synth"
    script.write_text(
        f'#!/bin/sh\necho "$*" >> {log}\n'
        'case "$*" in *" data synth "*) i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done;; '
        "esac\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    config = DemoConfig(out=tmp_path / "demo", n_images=50, train_steps=5)
    run_demo(config, echo=lambda _: None, python=str(script))
    busy = read_stage_record(config.out / ".stages" / "synth.json")
    idle = read_stage_record(config.out / ".stages" / "rewrite.json")
    assert busy["cpu_seconds"] > 0.1 > idle["cpu_seconds"]
    assert busy["cpu_seconds"] <= busy["seconds"] * (os.cpu_count() or 1) + 0.05
    assert len(busy["load_average"]) == 2 and min(busy["load_average"]) >= 0
    report = (config.out / "REPORT.md").read_text()
    assert "| stage | wall s | CPU s | load avg |" in report
    assert f"| synth | {busy['seconds']:.0f} | {busy['cpu_seconds']:.0f} |" in report


def test_a_folder_whose_markers_spell_the_output_the_old_way_is_still_done(tmp_path):
    """Before -o/--output was one option, synth and train took ``--out`` and eval batch
    ``--output-dir``; a finished folder whose markers record those commands is not redone,
    and a real change after it still reruns."""
    python, log = _fake_python(tmp_path)
    config = DemoConfig(out=tmp_path / "demo", n_images=50, train_steps=5)
    run_demo(config, echo=lambda _: None, python=python)
    old_flag = {"synth": "--out", "train": "--out", "eval": "--output-dir"}
    for name, flag in old_flag.items():
        marker = config.out / ".stages" / f"{name}.json"
        record = read_stage_record(marker)
        assert record["argv"].count("-o") == 1
        record["argv"] = [flag if word == "-o" else word for word in record["argv"]]
        marker.write_text(json.dumps(record))
    names = [s.name for s in build_stages(config)]
    lines: list[str] = []
    run_demo(config, echo=lines.append, python=python)
    assert len(log.read_text().splitlines()) == len(names)  # nothing reran
    assert sum("done already, skipped" in line for line in lines) == len(names)
    changed = DemoConfig(out=config.out, n_images=50, train_steps=6)
    run_demo(changed, echo=lines.append, python=python)
    rerun = log.read_text().splitlines()[len(names) :]
    assert [call.split()[2] for call in rerun] == ["train", "eval"]
    assert "-o" in rerun[0].split() and "--out" not in rerun[0].split()


def test_the_demo_takes_its_old_output_spelling_with_one_warning(tmp_path, monkeypatch):
    import unimo_kit.demo

    calls = []
    monkeypatch.setattr(unimo_kit.demo, "run_demo", lambda config, echo, **_: calls.append(config))
    out = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["demo", "--out", str(out), "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert result.output == "warning: --out is deprecated; use -o/--output\n"
    (config,) = calls
    assert config.out == out and config.seed == 3
    both = CliRunner().invoke(cli, ["demo", "--out", str(out), "-o", str(out)])
    assert both.exit_code == 2 and "--out is the old spelling of --output" in both.output


# ------------------------------------------------------------------ stages side by side (jobs)

STAGE_PATTERNS = (  # how a stub tells the stage from its argv (order matters)
    ('*" index build --texts "*', "index-texts"),
    ('*" index build --images "*', "index-images"),
    ('*" index mine "*', "mine"),
    ('*" data synth "*', "synth"),
    ('*" rewrite "*', "rewrite"),
    ('*" features "*', "features"),
    ('*" train "*', "train"),
    ('*" eval batch "*', "eval"),
)


def _stub(tmp_path, body: str = ""):
    """A stand-in interpreter that logs ``start NAME`` and ``end NAME`` around ``body`` (sh,
    with ``$name`` set and ``$dir`` the test's folder)."""
    log = tmp_path / "events.log"
    cases = "".join(f"  {pattern}) name={name};;\n" for pattern, name in STAGE_PATTERNS)
    script = tmp_path / "stub-python"
    script.write_text(
        f'#!/bin/sh\ndir={tmp_path}\ncase "$*" in\n{cases}esac\n'
        f'echo "start $name" >> {log}\ntouch "$dir/started-$name"\n{body}\n'
        f'echo "end $name" >> {log}\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script), log


def _events(log) -> list[str]:
    return log.read_text().splitlines()


def test_each_stage_needs_what_it_reads():
    needs = {stage.name: stage.after for stage in build_stages(DemoConfig())}
    assert needs == {
        "synth": (),
        "rewrite": ("synth",),
        "index-texts": ("synth",),
        "features": ("synth",),
        "index-images": ("features",),
        "mine": ("index-texts", "index-images"),
        "train": ("rewrite", "mine", "features"),
        "eval": ("train",),
    }


def test_with_two_jobs_independent_stages_overlap_and_none_starts_before_its_needs(tmp_path):
    # rewrite ends only once index-texts started: it must run beside it (10 s at most)
    wait = (
        'if [ "$name" = rewrite ]; then i=0; while [ ! -e "$dir/started-index-texts" ] '
        "&& [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; fi"
    )
    python, log = _stub(tmp_path, wait)
    config = DemoConfig(out=tmp_path / "demo", n_images=50, train_steps=5)
    lines: list[str] = []
    run_demo(config, echo=lines.append, python=python, jobs=2)
    events = _events(log)
    assert events.index("start index-texts") < events.index("end rewrite")
    assert events.index("start features") < events.index("end index-texts")  # longest first
    for stage in build_stages(config):
        for need in stage.after:
            assert events.index(f"end {need}") < events.index(f"start {stage.name}")
    logs = sorted(p.stem for p in (config.out / "logs").iterdir())
    assert logs == ["features", "index-images", "index-texts", "mine", "rewrite"]
    assert any(line == f"    output: {config.out / 'logs' / 'rewrite.log'}" for line in lines)
    commands = (config.out / "commands.sh").read_text().splitlines()[3:]
    assert [c.split()[1] for c in commands] == [
        "data", "rewrite", "index", "features", "index", "index", "train", "eval"
    ]  # fmt: skip
    cpu = read_stage_record(config.out / ".stages" / "rewrite.json")["cpu_seconds"]
    assert 0 <= cpu < 5


def test_one_job_runs_the_stages_one_after_another_in_the_listed_order(tmp_path):
    python, log = _stub(tmp_path)
    config = DemoConfig(out=tmp_path / "demo", n_images=50, train_steps=5)
    lines: list[str] = []
    run_demo(config, echo=lines.append, python=python, jobs=1)
    names = [stage.name for stage in build_stages(config)]
    assert _events(log) == [f"{word} {name}" for name in names for word in ("start", "end")]
    assert not (config.out / "logs").exists()
    assert not any("output:" in line or "started" in line for line in lines)


def test_a_kill_while_two_stages_run_resumes_both(tmp_path):
    """A Ctrl-C (SIGINT to the demo) while features and index-texts run: both are stopped and
    stay unfinished; the rerun resumes both and skips synth."""
    kill = (
        'if [ ! -e "$dir/killed" ]; then case "$name" in features) exec sleep 30;; '
        'index-texts) touch "$dir/killed"; kill -INT $PPID; exec sleep 30;; esac; fi'
    )
    python, _ = _stub(tmp_path, kill)
    config = DemoConfig(out=tmp_path / "demo", n_images=50, train_steps=5)
    with pytest.raises(KeyboardInterrupt):
        run_demo(config, echo=lambda _: None, python=python, jobs=2)
    for name in ("features", "index-texts"):
        assert read_stage_record(config.out / ".stages" / f"{name}.json")["finished"] is False
    (config.out / "world" / "features").mkdir(parents=True)  # what the killed run wrote
    lines: list[str] = []
    run_demo(config, echo=lines.append, python=python, jobs=2)
    assert sum("resuming the run that was stopped" in line for line in lines) == 2
    assert (config.out / "world" / "features").is_dir()  # kept, not removed
    assert any(line.startswith("[1/8] synth") and "skipped" in line for line in lines)


@pytest.mark.parametrize(
    ("change", "rerun"),
    [
        ({"sentence_negatives": 3}, ["rewrite", "train", "eval"]),
        ({"extractor": "effnet"}, ["features", "index-images", "mine", "train", "eval"]),
    ],
)
def test_a_stage_that_runs_again_reruns_its_dependants_only(tmp_path, change, rerun):
    python, log = _stub(tmp_path)
    config = DemoConfig(out=tmp_path / "demo", n_images=50, train_steps=5)
    run_demo(config, echo=lambda _: None, python=python, jobs=1)
    before = len(_events(log))
    lines: list[str] = []
    changed = DemoConfig(out=config.out, n_images=50, train_steps=5, **change)
    run_demo(changed, echo=lines.append, python=python, jobs=2)
    started = [event.split()[1] for event in _events(log)[before:] if event.startswith("start")]
    assert sorted(started) == sorted(rerun)
    skipped = {stage.name for stage in build_stages(config)} - set(rerun)
    assert sum("done already, skipped" in line for line in lines) == len(skipped)


def test_a_failing_stage_shows_its_log_and_lets_the_one_beside_it_finish(tmp_path):
    fail = 'if [ "$name" = rewrite ]; then echo "rewrite broke: no such caption" >&2; exit 3; fi'
    python, log = _stub(tmp_path, fail)
    config = DemoConfig(out=tmp_path / "demo", n_images=50, train_steps=5)
    lines: list[str] = []
    with pytest.raises(Exception, match=r"stage rewrite failed \(exit status 3\).*rewrite\.log"):
        run_demo(config, echo=lines.append, python=python, jobs=2)
    assert "    | rewrite broke: no such caption" in lines
    events = _events(log)
    assert "start train" not in events  # nothing needing it, nor anything else, starts
    features = read_stage_record(config.out / ".stages" / "features.json")
    assert features["finished"] is True  # ran beside it: finished and kept
    assert read_stage_record(config.out / ".stages" / "rewrite.json")["finished"] is False


def test_jobs_reach_the_demo_and_default_to_the_cores_at_most_two(tmp_path, monkeypatch):
    import unimo_kit.demo
    from unimo_kit.demo import default_jobs

    calls = []
    monkeypatch.setattr(unimo_kit.demo, "run_demo", lambda config, echo, jobs: calls.append(jobs))
    out = str(tmp_path / "demo")
    assert CliRunner().invoke(cli, ["demo", "-o", out, "--jobs", "1"]).exit_code == 0
    assert CliRunner().invoke(cli, ["demo", "-o", out]).exit_code == 0
    assert calls == [1, default_jobs()] and 1 <= default_jobs() <= 2
    refused = CliRunner().invoke(cli, ["demo", "-o", out, "--jobs", "0"])
    assert refused.exit_code == 2 and "Invalid value for '--jobs'" in refused.output
