"""Batch rows: when a stored row may be reused (retrieval protocol, features store, extractor,
images folder), and config checks that fail before anything is evaluated."""

import json

import pytest

from unimo_kit.eval import retrieval
from unimo_kit.eval.batch import run_batch


def _config(tiny_world, checkpoint, **entry):
    return {
        "device": "cpu",
        "checkpoints": [
            {"label": "t", "path": str(checkpoint), "features": str(tiny_world / "features")}
            | entry
        ],
        "tasks": [{"task": "retrieval", "data": str(tiny_world / "pairs.test.jsonl"), "ks": [1]}],
    }


def test_rows_of_another_retrieval_protocol_are_recomputed(
    tiny_world, tiny_checkpoint, tmp_path, monkeypatch
):
    out, config = tmp_path / "out", _config(tiny_world, tiny_checkpoint)
    run_batch(config, out, log=lambda m: None, plots=False)
    messages = []
    run_batch(config, out, log=messages.append, plots=False)
    assert any("reused" in m for m in messages)
    monkeypatch.setattr(retrieval, "PROTOCOL", "another-protocol")
    messages = []
    rows = run_batch(config, out, log=messages.append, plots=False)
    assert not any("reused" in m for m in messages) and "i2t_r1" in rows[0]


def _copy_store(tiny_world, folder, scale):
    """A copy of the tiny features store with every token multiplied by ``scale``."""
    import numpy as np

    from unimo_kit.features import FeatureStore, FeatureStoreWriter

    source = FeatureStore(tiny_world / "features")
    with FeatureStoreWriter(folder, dict(source.meta), dtype="float32") as store:
        for image_id in source:
            item = source[image_id]
            store.add(image_id, (item["feats"] * scale).astype(np.float32), item["boxes"])
    return folder


@pytest.mark.parametrize("change", ["features", "extractor", "images"])
def test_rows_are_recomputed_when_the_visual_input_changes(
    change, tiny_world, tiny_checkpoint, tmp_path
):
    """Another features store (other contents), extractor or images folder: a fresh row, which
    records what it was made from."""
    out, config = tmp_path / "out", _config(tiny_world, tiny_checkpoint)
    first = run_batch(config, out, log=lambda m: None, plots=False)[0]
    assert first["features"] == str(tiny_world / "features") and first["features_sha256"]
    assert first["extractor"] is None and first["images"] is None
    if change == "features":
        store = _copy_store(tiny_world, tmp_path / "zeros", 0.0)
        config["checkpoints"][0]["features"] = str(store)
    elif change == "extractor":
        config["checkpoints"][0]["extractor"] = "effnet"  # unused: the store covers all images
    else:
        config["tasks"][0]["images"] = str(tiny_world / "images")
    messages = []
    second = run_batch(config, out, log=messages.append, plots=False)[0]
    assert not any("reused" in m for m in messages)
    assert second["row_id"] != first["row_id"]
    if change == "features":
        assert second["features"] == str(tmp_path / "zeros")
        assert second["features_sha256"] != first["features_sha256"]
    elif change == "extractor":
        assert second["extractor"] == "effnet"
    else:
        assert second["images"] == str(tiny_world / "images")
    csv_header = (out / "results.csv").read_text().splitlines()[0]
    assert "features,extractor,images" in csv_header and "features_sha256" in csv_header


def test_same_store_contents_elsewhere_reuses_rows(tiny_world, tiny_checkpoint, tmp_path):
    out, config = tmp_path / "out", _config(tiny_world, tiny_checkpoint)
    run_batch(config, out, log=lambda m: None, plots=False)
    config["checkpoints"][0]["features"] = str(_copy_store(tiny_world, tmp_path / "copy", 1.0))
    messages = []
    run_batch(config, out, log=messages.append, plots=False)
    assert any("reused" in m for m in messages)


def _bad(**changes):
    """A config whose retrieval task, checkpoint or top level holds ``changes``."""
    config = {
        "checkpoints": [{"label": "t", "path": "run/final"}],
        "tasks": [
            {"task": "compositional", "data": "c.jsonl"},
            {"task": "retrieval", "data": "p.jsonl"},
        ],
    }
    for key, value in changes.items():
        where, _, field = key.partition("__")
        if where == "task":
            config["tasks"][1][field] = value
        elif where == "ckpt":
            config["checkpoints"][0][field] = value
        else:
            config[field] = value
    return config


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"task__k": [1]}, r"tasks\[1\]: unknown option\(s\) \['k'\] for a retrieval task"),
        ({"task__beams": 3}, r"tasks\[1\]: unknown option\(s\) \['beams'\]"),
        ({"task__ks": 5}, r"tasks\[1\]: 'ks' must be a non-empty list of positive integers"),
        ({"task__ks": [1, 0]}, r"tasks\[1\]: 'ks' must be"),
        ({"task__max_images": "2"}, r"tasks\[1\]: 'max_images' must be a positive integer"),
        ({"task__name": 3}, r"tasks\[1\]: 'name' must be a non-empty string"),
        ({"ckpt__path": 5}, r"checkpoints\[0\]: 'path' must be a non-empty string"),
        ({"ckpt__label": ["t"]}, r"checkpoints\[0\]: 'label' must be a non-empty string"),
        ({"ckpt__features": 1}, r"checkpoints\[0\]: 'features' must be"),
        ({"ckpt__group": {}}, r"checkpoints\[0\]: 'group' must be"),
        ({"ckpt__run_dir": 2}, r"checkpoints\[0\]: 'run_dir' must be"),
        ({"ckpt__seed": "0"}, r"checkpoints\[0\]: 'seed' must be an integer"),
        ({"top__batch_size": "big"}, r"'batch_size' must be a positive integer, got 'big'"),
    ],
)
def test_bad_task_options_and_types_are_one_line_errors(changes, message):
    from unimo_kit.eval.batch import parse_config
    from unimo_kit.eval.errors import EvalError

    with pytest.raises(EvalError, match=message) as info:
        parse_config(_bad(**changes))
    assert "\n" not in str(info.value)


def test_caption_and_compositional_options_are_checked():
    from unimo_kit.eval.batch import parse_config
    from unimo_kit.eval.errors import EvalError

    ok = {
        "checkpoints": [{"label": "t", "path": "run/final", "seed": 0}],
        "tasks": [
            {"task": "caption", "data": "p.jsonl", "beams": 3, "max_length": 20,
             "max_images": 5, "meteor": "no", "tokenizer": "simple"},
            {"task": "compositional", "data": "c.jsonl", "format": "jsonl", "score": "token"},
        ],
    }  # fmt: skip
    assert [t.options for t in parse_config(ok).tasks][1] == {"format": "jsonl", "score": "token"}
    for task, key, value in [
        (0, "beams", "3"),
        (0, "max_length", 0),
        (0, "meteor", True),
        (0, "tokenizer", "bert"),
        (1, "format", "csv"),
        (1, "ks", [1]),
    ]:
        bad = json.loads(json.dumps(ok))
        bad["tasks"][task][key] = value
        with pytest.raises(EvalError, match=rf"tasks\[{task}\]: .*'{key}'"):
            parse_config(bad)


def test_a_bad_later_task_fails_before_anything_runs(tiny_world, tiny_checkpoint, tmp_path):
    from unimo_kit.eval.errors import EvalError

    config = _config(tiny_world, tiny_checkpoint)
    config["tasks"].append({"task": "caption", "data": "p.jsonl", "beams": "3"})
    messages = []
    with pytest.raises(EvalError, match=r"tasks\[1\]: 'beams'"):
        run_batch(config, tmp_path / "out", log=messages.append, plots=False)
    assert messages == [] and not (tmp_path / "out" / "rows.jsonl").exists()


def test_batch_rows_count_skipped_compositional_items(tiny_world, tiny_checkpoint, tmp_path):
    items = [json.loads(line) for line in (tiny_world / "compositional.test.jsonl").open()]
    items[0]["negatives"] = [items[0]["positive"].upper()]
    for item in items:
        item["image"] = str(tiny_world / item["image"])
    data = tmp_path / "comp.jsonl"
    data.write_text("".join(json.dumps(item) + "\n" for item in items))
    config = _config(tiny_world, tiny_checkpoint)
    config["tasks"] = [{"task": "compositional", "data": str(data)}]
    (row,) = run_batch(config, None, log=lambda m: None, plots=False)
    assert row["num_examples"] == len(items) - 1 and row["skipped_records"] == 1
