"""The training loop of docs/generators.md runs as written, for a few steps, on a tiny random
open_clip model and a fixture of 8 pairs (only its settings line is replaced)."""

from __future__ import annotations

import ast
import json
import re
import runpy
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")
from PIL import Image  # noqa: E402

DOC = Path(__file__).resolve().parents[2] / "docs" / "generators.md"
SETTINGS = 'MODEL, PRETRAINED, BATCH, STEPS = "ViT-B-32", "openai", 64, 1000'
TINY = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 16},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def training_block() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) == 1, "docs/generators.md should hold one python block"
    assert SETTINGS in blocks[0], "the settings line the test replaces has changed"
    return blocks[0]


def test_docs_training_loop_runs(tmp_path, monkeypatch, capsys):
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg/unimo-doc-clip.json").write_text(json.dumps(TINY))
    open_clip.add_model_config(tmp_path / "cfg")
    (tmp_path / "img").mkdir()
    pairs, rewrites = [], []
    for i in range(8):
        Image.new("RGB", (40, 40), (30 * i, 255 - 30 * i, 0)).save(tmp_path / f"img/{i}.png")
        pairs.append({"id": str(i), "image": f"img/{i}.png", "captions": [f"a red cube {i}"]})
        negatives = [{"type": "swap-att", "text": f"a blue cube {i}"}] * (i % 2)  # some have none
        rewrites.append({"id": f"{i}#0", "negatives": negatives, "positives": []})
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    (tmp_path / "rewrites.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rewrites))
    code = training_block().replace(
        SETTINGS, 'MODEL, PRETRAINED, BATCH, STEPS = "unimo-doc-clip", None, 4, 3'
    )
    (tmp_path / "example.py").write_text(code)
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    namespace = runpy.run_path(str(tmp_path / "example.py"))
    assert namespace["step"] == 3 and namespace["epoch"] == 2  # 2 batches per epoch
    assert "step 3 loss" in capsys.readouterr().out
    assert torch.isfinite(namespace["loss"])
    assert namespace["per_image"].shape[1] > namespace["per_image"].shape[0]  # negatives added


def _dataset_call(code: str) -> str:
    """The ``dataset = HardNegativeDataset(...)`` and ``DataLoader(...)`` lines of a block."""
    tree = ast.parse(code)
    calls = [
        ast.get_source_segment(code, node)
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and node.targets[0].id in ("dataset", "loader")
    ]
    return "\n".join(calls)


def test_readme_example_is_the_docs_example():
    readme = (DOC.parents[1] / "README.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S)
              if "unimo_kit.generators" in b]  # fmt: skip
    assert len(blocks) == 1 and len(blocks[0].strip().splitlines()) <= 15
    docs = _dataset_call(training_block()).replace("MODEL", '"ViT-B-32"').replace("BATCH", "64")
    assert _dataset_call(blocks[0]) == docs
