import json

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
