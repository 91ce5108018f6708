"""The options every stage spells the same way (``unimo_kit.cli.options``) and those the eval
commands share (``unimo_kit.cli._eval_common``): each decorator's flag, default, refusal of bad
values and deprecated alias; and a walk over every ``unimo`` command that finds each shared
flag made by its shared decorator, every output spelled ``-o/--output`` and each old spelling
of it still taken, with one warning."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

from unimo_kit.cli._eval_common import (
    checkpoint_option,
    extractor_option,
    features_option,
    results_option,
    scorer_options,
)
from unimo_kit.cli.options import (
    SharedOption,
    device_option,
    no_progress_option,
    output_option,
    resume_from,
    resume_option,
    seed_option,
    set_option,
    shard_option,
    strict_option,
    workers_option,
)


@click.command()
@resume_option("Keep the finished lines of OUT.", deprecated="--restart")
@strict_option("pair")
@no_progress_option
@workers_option("Processes.")
def stage(resume: bool, restart: bool, strict: bool, no_progress: bool, workers: int | None):
    resume = resume_from(resume, restart, "--restart")
    click.echo(f"resume={resume} strict={strict} progress={not no_progress}")
    if workers is not None:
        click.echo(f"workers={workers}")


@click.command()
@seed_option("Seed of the draws.", default=7)
@shard_option("Slice I/N of the input.")
@device_option
def drawn(seed: int, shard: str | None, device: str | None) -> None:
    click.echo(json.dumps({"seed": seed, "shard": shard, "device": device}))


def _run(*args: str):
    return CliRunner().invoke(stage, list(args))


def _drawn(*args: str) -> dict:
    result = CliRunner().invoke(drawn, list(args))
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_defaults_and_each_flag():
    assert _run().output == "resume=True strict=False progress=True\n"
    assert _run("--no-resume", "--strict", "--no-progress").output == (
        "resume=False strict=True progress=False\n"
    )
    assert _run("--resume").output.startswith("resume=True")


def test_the_old_spelling_starts_afresh_with_a_warning():
    result = _run("--restart")
    assert result.exit_code == 0
    assert "warning: --restart is deprecated; use --no-resume" in result.output
    assert "resume=False" in result.output
    assert "deprecated" not in _run().output
    both = _run("--resume", "--restart")  # the old flag wins: it asked for a fresh start
    assert "resume=False" in both.output and "deprecated" in both.output


def test_help_lists_the_one_pair_and_hides_the_old_spelling():
    text = _run("--help").output
    assert "--resume / --no-resume" in text and "[default: resume]" in text
    assert "Keep the finished lines of OUT." in text and "Stop at the first bad pair." in text
    assert "--restart" not in text and "No progress bars." in text


def test_without_an_old_spelling_there_is_no_hidden_flag():
    @click.command()
    @resume_option("Keep OUT.")
    def cmd(resume: bool) -> None:
        click.echo(resume)

    runner = CliRunner()
    assert runner.invoke(cmd, ["--no-resume"]).output == "False\n"
    refused = runner.invoke(cmd, ["--restart"])
    assert refused.exit_code == 2 and "No such option '--restart'" in refused.output


def test_flags_take_no_value():
    refused = _run("--strict=yes")
    assert refused.exit_code == 2 and "Option '--strict' does not take a value" in refused.output
    refused = _run("--no-progress", "1")
    assert refused.exit_code == 2 and "Got unexpected extra argument (1)" in refused.output


def test_strict_names_what_is_bad():
    @click.command()
    @strict_option()
    def cmd(strict: bool) -> None:
        click.echo(strict)

    assert "Stop at the first bad record." in CliRunner().invoke(cmd, ["--help"]).output


def test_workers_are_at_least_one():
    assert _run().output.count("workers") == 0  # None unless given: the stage picks
    assert _run("--workers", "3").output.endswith("workers=3\n")
    for bad in ("0", "-2"):
        refused = _run("--workers", bad)
        assert refused.exit_code == 2 and "Invalid value for '--workers'" in refused.output
        assert "x>=1" in refused.output
    refused = _run("--workers", "two")
    assert refused.exit_code == 2 and "'two' is not a valid integer" in refused.output


def test_seed_default_is_the_commands_and_shown():
    assert _drawn()["seed"] == 7
    assert _drawn("--seed", "-3")["seed"] == -3
    refused = CliRunner().invoke(drawn, ["--seed", "1.5"])
    assert refused.exit_code == 2 and "'1.5' is not a valid integer" in refused.output
    text = CliRunner().invoke(drawn, ["--help"]).output
    assert "Seed of the draws." in text and "[default: 7]" in text


def test_shard_is_the_text_parse_shard_reads():
    from unimo_kit.utils import parse_shard

    assert _drawn()["shard"] is None
    assert _drawn("--shard", "1/4")["shard"] == "1/4"
    assert "--shard I/N" in CliRunner().invoke(drawn, ["--help"]).output
    # the command refuses a bad slice through parse_shard, one line naming it
    with pytest.raises(ValueError, match=r"invalid shard 3/2: need 0 <= i < n"):
        parse_shard(_drawn("--shard", "3/2")["shard"])
    with pytest.raises(ValueError, match=r"invalid shard 'a/b': expected i/n"):
        parse_shard(_drawn("--shard", "a/b")["shard"])


def test_device_is_none_unless_given():
    assert _drawn()["device"] is None
    assert _drawn("--device", "cpu")["device"] == "cpu"
    text = CliRunner().invoke(drawn, ["--help"]).output
    assert "torch device (default: cuda when visible, else cpu)." in text


def test_where_names_the_command():
    assert resume_from(True, False, "--overwrite") is True
    assert resume_from(False, False, "--overwrite") is False
    runner = CliRunner()

    @click.command()
    def cmd() -> None:
        click.echo(resume_from(True, True, "--overwrite", " for build"))

    out = runner.invoke(cmd).output
    assert out == "warning: --overwrite is deprecated for build; use --no-resume\nFalse\n"


def test_set_items_are_key_value_pairs_in_order():
    @click.command()
    @set_option("Override a config field.")
    def cmd(overrides: list[str]) -> None:
        click.echo(json.dumps(overrides))

    runner = CliRunner()
    assert runner.invoke(cmd, []).output == "[]\n"
    given = runner.invoke(cmd, ["--set", "a=1", "--set", "b.c=x=y", "--set", "d="])
    assert json.loads(given.output) == ["a=1", "b.c=x=y", "d="]
    for bad in ("vocab", "=corpus", " =1"):
        refused = runner.invoke(cmd, ["--set", bad])
        assert refused.exit_code == 2 and f"expected KEY=VALUE, got {bad!r}" in refused.output
    assert "--set KEY=VALUE" in runner.invoke(cmd, ["--help"]).output


# ----------------------------------------------------------------- the eval commands' options


@click.command()
@scorer_options
@results_option
def scored(**kw) -> None:
    click.echo(json.dumps(kw, sort_keys=True))


def _scored(*args: str) -> dict:
    result = CliRunner().invoke(scored, list(args))
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_scorer_options_defaults():
    assert _scored() == {
        "batch_size": 64,
        "checkpoint": None,
        "device": None,
        "extractor": None,
        "features": None,
        "open_clip_spec": None,
        "output": None,
        "st_clip": None,
    }


def test_scorer_options_pass_their_values(tmp_path):
    given = _scored(
        "--checkpoint",
        "runs/x/final",
        "--features",
        str(tmp_path),
        "--extractor",
        "effnet",
        "--device",
        "cpu",
        "--batch-size",
        "8",
        "-o",
        str(tmp_path / "r.json"),
    )
    assert given["checkpoint"] == "runs/x/final" and given["features"] == str(tmp_path)
    assert (given["extractor"], given["device"], given["batch_size"]) == ("effnet", "cpu", 8)
    assert given["output"] == str(tmp_path / "r.json")
    assert _scored("--open-clip", "ViT-B-32:w.bin")["open_clip_spec"] == "ViT-B-32:w.bin"
    assert _scored("--st-clip", "clip-ViT-B-32")["st_clip"] == "clip-ViT-B-32"


def test_features_must_be_an_existing_folder_and_output_a_file(tmp_path):
    runner = CliRunner()
    missing = runner.invoke(scored, ["--features", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "Invalid value for '--features'" in missing.output
    assert "does not exist" in missing.output
    a_file = tmp_path / "f.txt"
    a_file.write_text("x")
    not_dir = runner.invoke(scored, ["--features", str(a_file)])
    assert not_dir.exit_code == 2 and "is a file" in not_dir.output
    to_dir = runner.invoke(scored, ["-o", str(tmp_path)])
    assert to_dir.exit_code == 2 and "Invalid value for '-o' / '--output'" in to_dir.output
    refused = runner.invoke(scored, ["--batch-size", "many"])
    assert refused.exit_code == 2 and "'many' is not a valid integer" in refused.output


def test_a_required_checkpoint_is_asked_for():
    @click.command()
    @checkpoint_option(required=True)
    @features_option
    @extractor_option
    def cmd(checkpoint: str, features: str | None, extractor: str | None) -> None:
        click.echo(f"{checkpoint} {features} {extractor}")

    runner = CliRunner()
    refused = runner.invoke(cmd, [])
    assert refused.exit_code == 2 and "Missing option '--checkpoint'" in refused.output
    assert runner.invoke(cmd, ["--checkpoint", "ck"]).output == "ck None None\n"
    text = " ".join(runner.invoke(cmd, ["--help"]).output.split())
    assert "unimo checkpoint folder (model.safetensors + config.json)." in text
    assert "default: the one named by the checkpoint's run" in text


# ----------------------------------------------------------------- the one output option


@click.command()
@output_option("Folder for everything.", folder=True, default="runs/x", deprecated="--out")
def folder_out(output: str) -> None:
    click.echo(f"output={output}")


@click.command()
@output_option("pairs.jsonl to write.", required=True, deprecated="--out")
def file_out(output: str) -> None:
    click.echo(f"output={output}")


def test_output_is_dash_o_or_dash_dash_output(tmp_path):
    runner = CliRunner()
    assert runner.invoke(folder_out, []).output == "output=runs/x\n"
    assert runner.invoke(folder_out, ["-o", "a"]).output == "output=a\n"
    assert runner.invoke(file_out, ["--output", "b.jsonl"]).output == "output=b.jsonl\n"
    missing = runner.invoke(file_out, [])
    assert missing.exit_code == 2 and "Missing option '-o' / '--output'" in missing.output
    (tmp_path / "f").write_text("")
    refused = runner.invoke(folder_out, ["-o", str(tmp_path / "f")])
    assert refused.exit_code == 2 and "is a file" in refused.output
    refused = runner.invoke(file_out, ["-o", str(tmp_path)])
    assert refused.exit_code == 2 and "is a directory" in refused.output
    text = runner.invoke(folder_out, ["--help"]).output
    assert "-o, --output DIR" in text and "[default: runs/x]" in text and "--out " not in text
    text = runner.invoke(file_out, ["--help"]).output
    assert "-o, --output FILE" in text and "[required]" in text


def test_the_old_output_spelling_stands_for_output_with_one_warning():
    runner = CliRunner()
    for command in (folder_out, file_out):  # a required --output is given by the old spelling
        result = runner.invoke(command, ["--out", "old"])
        assert result.exit_code == 0, result.output
        assert result.output == "warning: --out is deprecated; use -o/--output\noutput=old\n"
    for both in (["--out", "a", "-o", "b"], ["--output", "b", "--out", "a"]):
        refused = runner.invoke(file_out, both)
        assert refused.exit_code == 2
        assert "--out is the old spelling of --output: give one of them" in refused.output


def test_without_an_old_spelling_it_is_refused():
    @click.command()
    @output_option("results.json.")
    def cmd(output: str | None) -> None:
        click.echo(repr(output))

    assert CliRunner().invoke(cmd, []).output == "None\n"
    refused = CliRunner().invoke(cmd, ["--out", "x"])
    assert refused.exit_code == 2 and "No such option '--out'" in refused.output


# ----------------------------------------------------------------- every command, one spelling

# a flag spelled as the shared one is not, with the reason
OWN_MEANING = {
    ("finetune-clip", "--workers"): "DataLoader worker processes: 0 loads in the main process",
}

# commands without -o/--output, with the reason
NO_OUTPUT = {
    "env": "prints what is installed",
    "index info": "prints an index's meta.json",
    "index build": "writes the index --name under --root (indexes/NAME/), named, not a path",
    "index train": "writes the trained quantizer of index --name under --root",
    "index merge": "writes the merged index --name under --root",
}

# the old spellings of -o/--output each command still takes, hidden, for a release
OLD_OUTPUT = {
    "data convert": "--out",
    "data synth": "--out",
    "demo": "--out",
    "eval batch": "--output-dir",
    "features": "--out",
    "finetune-clip": "--out",
    "train": "--out",
}

# other ways to say "start afresh" than --no-resume: only where a whole index folder goes
OWN_FRESH_START = {
    ("index merge", "--overwrite"): "replaces a whole index folder",
    ("index train", "--overwrite"): "replaces a whole index folder",
}


def _commands(group: click.Group, prefix: tuple[str, ...] = ()):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        path = (*prefix, name)
        if isinstance(command, click.Group):
            yield from _commands(command, path)
        else:
            yield " ".join(path), command


def _every_command():
    from unimo_kit.cli.main import cli

    return list(_commands(cli))


def _shared_spelling(flag: str, option: click.Option) -> bool:
    """Whether ``option`` is what the shared decorator of ``flag`` makes."""
    if not isinstance(option, SharedOption):  # spelled by hand, however alike
        return False
    if flag == "--output":
        return option.opts == ["-o", "--output"] and isinstance(option.type, click.Path)
    if flag == "--resume":
        return option.secondary_opts == ["--no-resume"] and option.default is True
    if flag in ("--strict", "--no-progress"):
        wording = "Stop at the first bad " if flag == "--strict" else "No progress bars."
        return option.is_flag and bool(option.help) and option.help.startswith(wording)
    if flag == "--workers":
        return isinstance(option.type, click.IntRange) and option.type.min == 1
    if flag == "--seed":
        return option.type is click.INT and bool(option.show_default)
    if flag == "--set":
        return option.multiple and option.metavar == "KEY=VALUE" and option.name == "overrides"
    if flag == "--device":
        return option.default is None and option.help == (
            "torch device (default: cuda when visible, else cpu)."
        )
    return option.metavar == "I/N" and option.default is None  # --shard


SHARED_FLAGS = ("--output", "-o", "--resume", "--strict", "--no-progress", "--workers", "--seed")
SHARED_FLAGS += ("--device", "--shard", "--set")
OUTPUT_WORDS = ("--out", "--output-dir", "--out-dir", "--output-file", "--outdir")
FRESH_START_WORDS = ("--restart", "--overwrite", "--force", "--fresh", "--clean")


def test_every_command_spells_the_shared_options_the_shared_way():
    seen, odd = set(), []
    for path, command in _every_command():
        for option in command.params:
            for flag in SHARED_FLAGS:
                if flag not in option.opts or (path, flag) in OWN_MEANING:
                    continue
                seen.add(flag)
                if not _shared_spelling("--output" if flag == "-o" else flag, option):
                    odd.append(f"{path} {flag}")
    assert odd == []
    assert seen == set(SHARED_FLAGS)  # each shared flag is checked on some command


def test_every_output_is_dash_o_dash_dash_output():
    """A command writes its file or folder to -o/--output; an older spelling lives on only
    hidden, as the shared option's alias; a command without one says why."""
    without, odd, old = [], [], {}
    for path, command in _every_command():
        options = [p for p in command.params if isinstance(p, click.Option)]
        if not any("--output" in p.opts for p in options):
            without.append(path)
        for option in options:
            words = [w for w in option.opts if w in OUTPUT_WORDS]
            named_output = option.name in ("out", "out_dir", "outdir", "output", "output_dir")
            if words and not (option.hidden and isinstance(option, SharedOption)):
                odd.append(f"{path} {words[0]}")
            elif words:
                old[path] = words[0]
            elif named_output and option.opts != ["-o", "--output"]:
                odd.append(f"{path} {option.opts}")
    assert odd == []
    assert sorted(without) == sorted(NO_OUTPUT)
    assert old == OLD_OUTPUT


def test_only_resume_says_start_afresh():
    odd = []
    for path, command in _every_command():
        for option in command.params:
            for word in set(option.opts) & set(FRESH_START_WORDS):
                if (path, word) in OWN_FRESH_START:
                    continue
                if not (option.hidden and isinstance(option, SharedOption)):
                    odd.append(f"{path} {word}")  # a visible second spelling of --no-resume
    assert odd == []


@pytest.mark.parametrize("path", sorted(OLD_OUTPUT))
def test_each_old_output_spelling_still_reaches_the_command(path, tmp_path):
    """The command's own output options, under a stand-in body: the old spelling gives
    ``output`` and warns once; ``-o`` does not warn."""
    command = dict(_every_command())[path]
    params = [p for p in command.params if p.name == "output" or OLD_OUTPUT[path] in p.opts]
    seen = {}
    stand_in = click.Command(path, params=params, callback=lambda **kw: seen.update(kw))
    target = str(tmp_path / "out")
    result = CliRunner().invoke(stand_in, [OLD_OUTPUT[path], target])
    assert result.exit_code == 0, result.output
    assert seen == {"output": target}
    assert result.output == f"warning: {OLD_OUTPUT[path]} is deprecated; use -o/--output\n"
    result = CliRunner().invoke(stand_in, ["-o", target])
    assert result.exit_code == 0 and result.output == "" and seen == {"output": target}


# ----------------------------------------------------------------- a light ``unimo eval --help``


def test_eval_help_imports_no_task_module_nor_numpy():
    import subprocess
    import sys

    code = (
        "import sys, json\n"
        "from click.testing import CliRunner\n"
        "from unimo_kit.cli.main import cli\n"
        "r = CliRunner().invoke(cli, ['eval', '--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(json.dumps(sorted(m for m in sys.modules if m == 'numpy' or m == 'torch'\n"
        "    or (m.startswith('unimo_kit.eval.') and m != 'unimo_kit.eval.registry'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_the_eval_package_still_offers_its_names():
    import unimo_kit.eval as evaluation
    from unimo_kit.eval.batch import run_batch
    from unimo_kit.eval.scorers import UnimoScorer

    assert evaluation.run_batch is run_batch and evaluation.UnimoScorer is UnimoScorer
    assert set(evaluation.__all__) <= set(dir(evaluation))
    with pytest.raises(AttributeError, match="has no attribute 'nothing_here'"):
        evaluation.nothing_here  # noqa: B018


def test_data_synth_force_is_the_old_spelling_of_no_resume(tmp_path):
    from unimo_kit.cli.main import cli

    runner = CliRunner()
    args = ["data", "synth", "-o", str(tmp_path), "--n-images", "12", "--no-progress"]
    assert runner.invoke(cli, args).exit_code == 0
    kept = runner.invoke(cli, args)
    assert kept.exit_code == 0 and "already holds this world" in kept.output
    for again in ("--no-resume", "--force"):
        made = runner.invoke(cli, [*args, again])
        assert made.exit_code == 0, made.output
        assert "already holds" not in made.output and "held out:" in made.output
        warned = "warning: --force is deprecated; use --no-resume" in made.output
        assert warned == (again == "--force")
