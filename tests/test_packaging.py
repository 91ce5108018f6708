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
