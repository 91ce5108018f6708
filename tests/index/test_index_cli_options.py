"""How ``unimo index build / train / merge`` turn their options into a ``BuildConfig`` (the
shared ``--texts/--images/--captions``, ``--root``, ``--seed`` and ``--shard`` options): the
library calls are replaced by recorders, so nothing is embedded."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from unimo_kit.cli.index import index
from unimo_kit.index.build import DEFAULT_IMAGE_ENCODER, DEFAULT_TEXT_ENCODER, BuildConfig


@pytest.fixture
def calls(monkeypatch) -> list[dict]:
    """The library calls of the commands, recorded instead of run."""
    import importlib

    import unimo_kit.cli.index as cli_index

    engine_index = importlib.import_module("unimo_kit.engine.index")
    build = importlib.import_module("unimo_kit.index.build")  # the package exports build()
    recorded: list[dict] = []

    def record(name: str):
        def call(*args, **kwargs):
            recorded.append({"call": name, "args": args, **kwargs})
            return Path(args[1])

        return call

    monkeypatch.setattr(engine_index, "run_index_build", record("build"))
    monkeypatch.setattr(build, "train_quantizer", record("train"))
    monkeypatch.setattr(build, "merge_indexes", record("merge"))
    monkeypatch.setattr(cli_index, "_print_info", lambda folder: None)
    return recorded


@pytest.fixture
def corpus(tmp_path) -> Path:
    path = tmp_path / "texts.jsonl"
    path.write_text(json.dumps({"id": "t0", "text": "a red star"}) + "\n")
    return path


def _invoke(*args: str):
    return CliRunner().invoke(index, list(args), terminal_width=120)


def test_build_passes_each_option_to_its_config_field(calls, corpus, tmp_path):
    root = str(tmp_path / "idx")
    args = ["build", "--texts", str(corpus), "--name", "t", "--root", root, "--type", "flat"]
    args += ["--shard", "1/2", "--target-recall", "0.9", "--seed", "7", "--block-size", "32"]
    result = _invoke(*args, "--max-memory", "2G", "--no-keep-embeddings", "--no-resume")
    assert result.exit_code == 0, result.output
    (call,) = calls
    assert call["args"][1] == Path(root) / "t" and call["overwrite"] is True
    config = call["args"][0]
    assert config == BuildConfig(
        input=os.path.abspath(corpus),
        kind="texts",
        encoder=DEFAULT_TEXT_ENCODER,
        index_type="flat",
        max_memory="2G",
        block_size=32,
        shard="1/2",
        seed=7,
        tune_recall=0.9,
        keep_embeddings=False,
    )


def test_build_defaults_are_the_config_defaults(calls, corpus, tmp_path):
    result = _invoke("build", "--images", str(corpus), "--name", "i", "--root", str(tmp_path))
    assert result.exit_code == 0, result.output
    config = calls[0]["args"][0]
    defaults = BuildConfig(input=config.input, kind="images", encoder=DEFAULT_IMAGE_ENCODER)
    assert config == defaults and calls[0]["overwrite"] is False


def test_exactly_one_corpus_is_asked_for(calls, corpus):
    for given in ([], ["--texts", str(corpus), "--captions", str(corpus)]):
        result = _invoke("build", *given, "--name", "t")
        assert result.exit_code == 2
        assert "give exactly one of --texts, --images, --captions" in result.output
    assert calls == []


def test_train_and_merge_share_the_options(calls, corpus, tmp_path):
    root = str(tmp_path)
    train = ["train", "--captions", str(corpus), "--name", "q", "--root", root, "--seed", "3"]
    assert _invoke(*train, "--sample", "50").exit_code == 0
    merge = ["merge", "a", "b", "--name", "m", "--root", root, "--target-recall", "0.8"]
    assert _invoke(*merge).exit_code == 0
    trained, merged = calls
    assert trained["args"][0] == BuildConfig(
        input=os.path.abspath(corpus),
        kind="captions",
        encoder=DEFAULT_TEXT_ENCODER,
        index_type="ivf",
        seed=3,
    )
    assert trained["sample_size"] == 50 and trained["overwrite"] is False
    assert merged["args"][0] == [Path(root) / "a", Path(root) / "b"]
    assert merged["tune_recall"] == 0.8


def test_a_bad_shard_is_one_error_line(calls, corpus):
    result = _invoke("build", "--texts", str(corpus), "--name", "t", "--shard", "2/2")
    assert result.exit_code == 1 and result.output.startswith("Error: ")
    assert calls == []


def test_help_names_the_shared_options():
    text = _invoke("train", "--help").output
    assert "texts.jsonl to index" in text and "Folder of indexes." in text
    assert "--seed INTEGER" in text and "[default: 1234]" in text
    assert "--shard I/N" in _invoke("build", "--help").output
