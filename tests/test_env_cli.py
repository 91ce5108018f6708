import json
import sys

from click.testing import CliRunner

from unimo_kit.cli.main import cli


def test_env_json_reports_every_resource():
    result = CliRunner().invoke(cli, ["env", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert set(report["resources"]) == {
        "spacy_pipeline",
        "wordnet",
        "sentence_model",
        "image_cnn",
        "open_clip",
        "faiss",
        "torch",
    }
    assert all(entry["found"] for entry in report["resources"].values())


def test_env_text_output():
    result = CliRunner().invoke(cli, ["env"])
    assert result.exit_code == 0
    assert "ok       spacy_pipeline" in result.output


def test_env_reports_a_package_that_cannot_be_imported(monkeypatch):
    """Installed (its metadata is there) but not importable, as with a broken torchvision
    under timm and open_clip: MISSING with the install hint, and exit 1 (make venv's check)."""
    monkeypatch.setitem(sys.modules, "timm", None)  # makes `import timm` raise ImportError
    monkeypatch.setitem(sys.modules, "open_clip", None)
    result = CliRunner().invoke(cli, ["env"])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    image_cnn = next(line for line in lines if "image_cnn" in line)
    assert image_cnn.split()[0] == "MISSING" and image_cnn.endswith("pip install timm")
    open_clip = next(line for line in lines if " open_clip " in line)
    assert open_clip.split()[0] == "MISSING"
    assert "open_clip cannot be imported" in open_clip
    assert open_clip.endswith("pip install open-clip-torch")
