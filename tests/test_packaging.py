"""The layout the product card fixes: packages, console script, a fast ``unimo --help``."""

import configparser
import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from unimo_kit.cli.main import SUBCOMMANDS, cli

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "spacy", "faiss", "open_clip", "sentence_transformers", "transformers", "timm")


def test_setup_cfg_lists_every_package():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    listed = set(config["options"]["packages"].split())
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for p in (ROOT / "unimo_kit").rglob("__init__.py")
    }
    on_disk.add("unimo_kit.cli")
    assert on_disk == listed


def test_cli_is_installed_under_the_library_namespace():
    import unimo_kit.cli

    assert Path(unimo_kit.cli.__file__).parent == ROOT / "cli"


def test_help_lists_every_stage():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0, result.output
    for name in ("rewrite", "index", "train", "eval", "data", "features", "env"):
        assert name in SUBCOMMANDS
        assert f"  {name} " in result.output


def test_help_and_library_import_stay_light():
    code = (
        "import sys, json\n"
        "from click.testing import CliRunner\n"
        "import unimo_kit, unimo_kit.utils, unimo_kit.data.scene_graph\n"
        "from unimo_kit.cli.main import cli\n"
        "r = CliRunner().invoke(cli, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_console_script_runs():
    exe = Path(sys.executable).parent / "unimo"
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True)
    assert "unimo" in out.stdout


def _names(requirements: list[str]) -> set[str]:
    """Distribution names of requirement strings (``faiss-cpu>=1.7`` -> ``faiss-cpu``)."""
    import re

    return {re.split(r"[<>=!~\[;\s]", r, maxsplit=1)[0].lower() for r in requirements}


def test_faiss_comes_from_exactly_one_extra():
    """faiss-cpu and faiss-gpu ship the same ``faiss`` module: neither is a base dependency,
    each is its own extra, both are pinned, and the dev venv installs the cpu one."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    faiss = {"faiss-cpu", "faiss-gpu"}
    assert not _names(project["dependencies"]) & faiss
    extras = project["optional-dependencies"]
    assert _names(extras["cpu"]) == {"faiss-cpu"}
    assert extras["gpu"] == ["faiss-gpu==1.15.1"]
    others = [reqs for name, reqs in extras.items() if name not in ("cpu", "gpu")]
    assert not any(_names(reqs) & faiss for reqs in others)
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    assert {"faiss-cpu==1.15.1", "faiss-gpu==1.15.1"} <= set(lines)
    # `make constraints` keeps the first 3 lines and adds pip freeze, which never sees faiss-gpu
    assert "faiss-gpu==1.15.1" in lines[:3]
    install = [line for line in (ROOT / "Makefile").read_text().splitlines() if "-e '.[" in line]
    assert len(install) == 1
    chosen = install[0].split("-e '.[")[1].split("]")[0].split(",")
    assert "cpu" in chosen and "gpu" not in chosen
