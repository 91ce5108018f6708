"""Shared fixtures of the evaluation tests: a tiny world made here (images, pairs, compositional
set, a features store), a random-init unimo-tiny checkpoint and a run folder with log.csv."""

import json
import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

FEAT_DIM = 16
COLORS = {
    "red": (220, 30, 30),
    "green": (30, 200, 30),
    "blue": (30, 30, 220),
    "yellow": (230, 220, 20),
    "gray": (128, 128, 128),
    "black": (5, 5, 5),
}


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    """DIR with images/, pairs.test.jsonl (2 captions per image), compositional.test.jsonl,
    features/ (a store keyed by image id, FEAT_DIM-d random tokens)."""
    from PIL import Image

    from unimo_kit.features import FeatureStoreWriter, grid_boxes

    root = tmp_path_factory.mktemp("world")
    (root / "images").mkdir()
    rng = np.random.default_rng(0)
    pairs, comp = [], []
    with FeatureStoreWriter(
        root / "features", {"extractor": "test", "dim": FEAT_DIM, "tokens": 4}, dtype="float32"
    ) as store:
        for i, (color, rgb) in enumerate(COLORS.items()):
            image_id = f"img-{i:03d}"
            Image.new("RGB", (32, 32), rgb).save(root / "images" / f"{image_id}.png")
            pairs.append(
                {
                    "id": image_id,
                    "image": f"images/{image_id}.png",
                    "split": "test",
                    "captions": [f"a {color} square", f"the square is {color}"],
                }
            )
            other = list(COLORS)[(i + 1) % len(COLORS)]
            comp.append(
                {
                    "id": f"c{i}",
                    "image": f"images/{image_id}.png",
                    "category": "replace-att" if i % 2 else "swap-att",
                    "positive": f"a {color} square",
                    "negatives": [f"a {other} square"],
                }
            )
            store.add(image_id, rng.normal(size=(4, FEAT_DIM)).astype(np.float32), grid_boxes(2, 2))
    for name, records in (("pairs.test.jsonl", pairs), ("compositional.test.jsonl", comp)):
        (root / name).write_text("".join(json.dumps(r) + "\n" for r in records))
    return root


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """runs/tiny: a random unimo-tiny checkpoint (visual_feat_dim=FEAT_DIM) in final/ and a
    log.csv with two loss columns."""
    import torch

    from unimo_kit.model import create_model, save_checkpoint

    run = tmp_path_factory.mktemp("runs") / "tiny"
    torch.manual_seed(0)
    model = create_model("unimo-tiny", visual_feat_dim=FEAT_DIM)
    save_checkpoint(model, run / "final")
    lines = ["step,lr,cmcl_loss,mlm_loss"]
    lines += [f"{s},0.001,{3 - s / 10:.3f},{5 - s / 20:.3f}" for s in range(0, 20, 2)]
    (run / "log.csv").write_text("\n".join(lines) + "\n")
    return run / "final"


@pytest.fixture(scope="session")
def second_checkpoint(tmp_path_factory):
    import torch

    from unimo_kit.model import create_model, save_checkpoint

    run = tmp_path_factory.mktemp("runs") / "tiny2"
    torch.manual_seed(1)
    save_checkpoint(create_model("unimo-tiny", visual_feat_dim=FEAT_DIM), run / "final")
    (run / "log.csv").write_text("step,cmcl_loss\n0,3.0\n10,2.0\n")
    return run / "final"
