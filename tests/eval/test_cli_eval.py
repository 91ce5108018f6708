"""The eval commands through CliRunner: results, and one-line errors (no tracebacks) for a
missing / mismatched checkpoint and malformed test files."""

import json

import pytest
from click.testing import CliRunner

from unimo_kit.cli.main import cli


def invoke(*args):
    return CliRunner().invoke(cli, ["eval", *map(str, args)])


def test_compositional_cli(tiny_world, tiny_checkpoint, tmp_path):
    out = tmp_path / "r.json"
    result = invoke(
        "compositional",
        "--checkpoint",
        tiny_checkpoint,
        "--features",
        tiny_world / "features",
        "--data",
        tiny_world / "compositional.test.jsonl",
        "--device",
        "cpu",
        "-o",
        out,
    )
    assert result.exit_code == 0, result.output
    assert "replace-att" in result.output and "overall" in result.output
    doc = json.loads(out.read_text())
    assert doc["num_examples"] == 6 and set(doc["categories"]) == {"replace-att", "swap-att"}


def test_retrieval_cli(tiny_world, tiny_checkpoint, tmp_path):
    result = invoke(
        "retrieval",
        "--checkpoint",
        tiny_checkpoint,
        "--features",
        tiny_world / "features",
        "--pairs",
        tiny_world / "pairs.test.jsonl",
        "--ks",
        "1,5",
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    assert "6 images, 12 captions" in result.output and "rsum=" in result.output


def test_retrieval_cli_reports_shared_captions(tiny_world, tiny_checkpoint, tmp_path):
    records = [json.loads(line) for line in (tiny_world / "pairs.test.jsonl").open()]
    records[1]["captions"][0] = records[0]["captions"][0].upper()  # same caption, other image
    for r in records:
        r["image"] = str(tiny_world / r["image"])
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in records))
    args = ["retrieval", "--checkpoint", tiny_checkpoint, "--features", tiny_world / "features"]
    args += ["--pairs", pairs, "--device", "cpu", "-o", tmp_path / "r.json"]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert "1 caption(s) are shared by more than one image" in result.output
    assert json.loads((tmp_path / "r.json").read_text())["num_shared_captions"] == 1
    result = invoke(*args, "--own-captions-only")
    assert result.exit_code == 0, result.output
    assert "shared" not in result.output
    assert "num_shared_captions" not in json.loads((tmp_path / "r.json").read_text())


def test_missing_checkpoint_is_one_line(tiny_world, tmp_path):
    result = invoke(
        "compositional",
        "--checkpoint",
        tmp_path / "nope",
        "--data",
        tiny_world / "compositional.test.jsonl",
    )
    assert result.exit_code == 1
    assert f"checkpoint {tmp_path / 'nope'} does not exist" in result.output
    assert "Traceback" not in result.output


def test_folder_without_weights_hints_nested(tiny_world, tiny_checkpoint):
    result = invoke(
        "retrieval",
        "--checkpoint",
        tiny_checkpoint.parent,
        "--pairs",
        tiny_world / "pairs.test.jsonl",
    )
    assert result.exit_code == 1
    assert "no model.safetensors" in result.output and "did you mean" in result.output


def test_mismatched_checkpoint(tiny_world, tiny_checkpoint, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.safetensors").write_bytes((tiny_checkpoint / "model.safetensors").read_bytes())
    config = json.loads((tiny_checkpoint / "config.json").read_text())
    config["hidden_size"] = 128  # weights are 64 wide
    (bad / "config.json").write_text(json.dumps(config))
    result = invoke(
        "compositional", "--checkpoint", bad, "--data", tiny_world / "compositional.test.jsonl"
    )
    assert result.exit_code == 1
    assert "does not match its config.json" in result.output
    assert "Traceback" not in result.output


def test_corrupt_weights(tiny_world, tiny_checkpoint, tmp_path):
    bad = tmp_path / "corrupt"
    bad.mkdir()
    (bad / "model.safetensors").write_bytes(b"not a safetensors file" * 4)
    (bad / "config.json").write_text((tiny_checkpoint / "config.json").read_text())
    result = invoke("retrieval", "--checkpoint", bad, "--pairs", tiny_world / "pairs.test.jsonl")
    assert result.exit_code == 1 and "not a readable safetensors file" in result.output


def test_feature_store_of_other_dim(tiny_world, tmp_path):
    import torch

    from unimo_kit.model import create_model, save_checkpoint

    torch.manual_seed(0)
    ckpt = save_checkpoint(create_model("unimo-tiny", visual_feat_dim=8), tmp_path / "c8")
    result = invoke(
        "compositional",
        "--checkpoint",
        ckpt,
        "--features",
        tiny_world / "features",
        "--data",
        tiny_world / "compositional.test.jsonl",
    )
    assert result.exit_code == 1
    assert "16-d visual features but the checkpoint expects visual_feat_dim=8" in result.output


@pytest.mark.parametrize("strict", [False, True])
def test_malformed_test_file(tiny_world, tiny_checkpoint, tmp_path, strict):
    data = tmp_path / "comp.jsonl"
    good = (tiny_world / "compositional.test.jsonl").read_text().splitlines()[0]
    good = json.loads(good)
    good["image"] = str(tiny_world / good["image"])
    data.write_text(json.dumps(good) + "\n" + '{"image": "x.png", "positive": 3}\n')
    args = [
        "compositional",
        "--checkpoint",
        tiny_checkpoint,
        "--features",
        tiny_world / "features",
        "--data",
        data,
        "--device",
        "cpu",
    ]
    result = invoke(*args, *(["--strict"] if strict else []))
    assert "Traceback" not in result.output
    if strict:
        assert result.exit_code == 1
        assert f"{data}:2: positive must be a non-empty string" in result.output
    else:
        assert result.exit_code == 0, result.output
        assert f"skipped {data}:2:" in result.output
        assert "1 malformed record(s) skipped" in result.output


def test_all_lines_bad_is_an_error(tiny_checkpoint, tmp_path):
    data = tmp_path / "empty.jsonl"
    data.write_text("[1, 2]\n")
    result = invoke("compositional", "--checkpoint", tiny_checkpoint, "--data", data)
    assert result.exit_code == 1 and "no valid examples" in result.output


def test_malformed_pairs_strict(tiny_checkpoint, tiny_world, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"id": "a", "image": "a.png"}\n')
    result = invoke(
        "retrieval",
        "--checkpoint",
        tiny_checkpoint,
        "--features",
        tiny_world / "features",
        "--pairs",
        pairs,
        "--strict",
    )
    assert result.exit_code == 1 and f"{pairs}:1: missing field 'captions'" in result.output


def test_batch_bad_config_names_line(tmp_path):
    config = tmp_path / "c.json"
    config.write_text('{"checkpoints": [\n  {"label": "a",}\n]}')
    result = invoke("batch", config, "-o", tmp_path / "out")
    assert result.exit_code == 1 and f"{config}:2: invalid JSON" in result.output


def test_batch_bad_option_type_is_one_line(tmp_path):
    config = tmp_path / "c.json"
    task = {"task": "retrieval", "data": "p.jsonl", "ks": 5}
    config.write_text(json.dumps({"checkpoints": [{"label": "a", "path": "x"}], "tasks": [task]}))
    result = invoke("batch", config, "-o", tmp_path / "out")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output == (
        f"Error: {config}: tasks[0]: 'ks' must be a non-empty list of positive integers, got 5\n"
    )


def test_no_scorer_named(tiny_world):
    result = invoke("compositional", "--data", tiny_world / "compositional.test.jsonl")
    assert result.exit_code == 1 and "exactly one model" in result.output


def test_help_is_fast_and_has_examples():
    result = CliRunner().invoke(cli, ["eval", "batch", "--help"])
    assert result.exit_code == 0 and "unimo eval batch ablation.json" in result.output
    assert "--resume / --no-resume" in result.output  # the one flag pair of every stage


def test_vqa_cli_errors(tmp_path):
    result = invoke("vqa", "--data", "jsonl")
    assert result.exit_code == 2 and "--data jsonl needs --train and --test" in result.output
    result = invoke("vqa", "--checkpoint", tmp_path / "missing")
    assert result.exit_code == 1 and "does not exist" in result.output
    result = invoke("vqa", "--set", "hidden_size")
    assert result.exit_code == 2 and "KEY=VALUE" in result.output


@pytest.mark.parametrize(("flags", "resume"), [([], True), (["--no-resume"], False)])
def test_batch_resumes_by_default_and_no_resume_recomputes(tmp_path, monkeypatch, flags, resume):
    import unimo_kit.eval.batch

    seen = {}
    monkeypatch.setattr(unimo_kit.eval.batch, "run_batch", lambda *a, **kw: seen.update(kw) or [])
    config = tmp_path / "batch.json"
    config.write_text("{}")
    result = CliRunner().invoke(
        cli, ["eval", "batch", str(config), "-o", str(tmp_path / "o"), *flags]
    )
    assert result.exit_code == 0, result.output
    assert seen["resume"] is resume


@pytest.mark.parametrize(
    ("flags", "seed", "device"), [([], 0, None), (["--seed", "3", "--device", "cpu"], 3, "cpu")]
)
def test_vqa_seed_and_device_reach_the_config(tmp_path, monkeypatch, flags, seed, device):
    import unimo_kit.eval.vqa

    seen = {}

    def fake_train(train, test, config):
        seen["config"] = config
        return {"accuracy": 1.0, "accuracy_by_type": {}, "num_test": 1} | {
            "total_seconds": 0.0,
            "cpu_seconds": 0.0,
        }

    monkeypatch.setattr(unimo_kit.eval.vqa, "train_vqa", fake_train)
    monkeypatch.setattr(unimo_kit.eval.vqa, "read_vqa_jsonl", lambda path: [path])
    data = tmp_path / "q.jsonl"
    data.write_text("{}\n")
    result = invoke("vqa", "--data", "jsonl", "--train", data, "--test", data, *flags)
    assert result.exit_code == 0, result.output
    assert (seen["config"].seed, seen["config"].device) == (seed, device)
    refused = invoke("vqa", "--seed", "x")
    assert refused.exit_code == 2 and "'x' is not a valid integer" in refused.output
