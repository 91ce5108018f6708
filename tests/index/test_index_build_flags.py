"""``unimo index build --resume/--no-resume``: a build with other settings is refused naming
``--no-resume``, ``--no-resume`` builds afresh, and the old ``--overwrite`` still works, hidden,
with a deprecation warning."""

from __future__ import annotations

import json

from click.testing import CliRunner

from unimo_kit.cli.index import index


def _build(texts_file, spec, root, *extra):
    args = ["build", "--texts", str(texts_file), "--name", "t", "--root", str(root)]
    return CliRunner().invoke(index, [*args, "--encoder", spec, "--block-size", "128", *extra])


def test_no_resume_and_the_deprecated_overwrite(tmp_path, texts_file, tiny_spec):
    assert _build(texts_file, tiny_spec, tmp_path, "--type", "flat").exit_code == 0
    refused = _build(texts_file, tiny_spec, tmp_path, "--type", "hnsw")
    assert refused.exit_code == 1
    assert (
        'was made with other settings or inputs (index_type: "flat" -> "hnsw"); rerun with '
        "the same ones, or pass --no-resume to start afresh" in refused.output
    )
    again = _build(texts_file, tiny_spec, tmp_path, "--type", "hnsw", "--no-resume")
    assert again.exit_code == 0, again.output
    assert json.loads((tmp_path / "t" / "meta.json").read_text())["factory"] == "HNSW32"
    old = _build(texts_file, tiny_spec, tmp_path, "--type", "flat", "--overwrite")
    assert old.exit_code == 0, old.output
    assert "warning: --overwrite is deprecated for build; use --no-resume" in old.output
    assert json.loads((tmp_path / "t" / "meta.json").read_text())["factory"] == "Flat"
    help_text = CliRunner().invoke(index, ["build", "--help"]).output
    assert "--resume / --no-resume" in help_text and "--overwrite" not in help_text
