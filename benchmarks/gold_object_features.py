"""An oracle visual side for the synthetic world: each image's visual tokens are its gold objects.

Writes a copy of a ``unimo data synth`` world (every file linked, not copied) whose
``features/`` store holds, per image, one token per gold object: one-hot colour, shape and size,
with the object's exact box. A model trained on it has a perfect visual side, so what it still
gets wrong is not the CNN features' fault (docs/RESULTS.md, ninth session: direction is not).

    python benchmarks/gold_object_features.py --world runs/demo/world --out runs/gold-world
    unimo train --config synth-small --out runs/gold --set data_dir=runs/gold-world
    python benchmarks/probe_direction.py --world runs/gold-world runs/gold/final
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from unimo_kit.features import FeatureStoreWriter


def gold_tokens(scene: dict, vocabulary: dict) -> tuple[np.ndarray, np.ndarray]:
    """(objects, F) one-hot colour + shape + size features and (objects, 5) normalised boxes."""
    colours, shapes, sizes = list(vocabulary["colors"]), vocabulary["shapes"], vocabulary["sizes"]
    dim = len(colours) + len(shapes) + len(sizes)
    feats = np.zeros((len(scene["objects"]), dim), np.float32)
    boxes = np.zeros((len(scene["objects"]), 5), np.float32)
    width, height = scene["width"], scene["height"]
    for k, obj in enumerate(scene["objects"]):
        feats[k, colours.index(obj["color"])] = 1.0
        feats[k, len(colours) + shapes.index(obj["shape"])] = 1.0
        feats[k, len(colours) + len(shapes) + sizes.index(obj["size"])] = 1.0
        x1, y1, x2, y2 = obj["bbox"]
        box = [x1 / width, y1 / height, x2 / width, y2 / height]
        boxes[k] = [*box, (box[2] - box[0]) * (box[3] - box[1])]
    return feats, boxes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", required=True, type=Path, help="a `unimo data synth` folder")
    parser.add_argument("--out", required=True, type=Path, help="the gold-token world to write")
    args = parser.parse_args()
    vocabulary = json.loads((args.world / "world.json").read_text())["vocabulary"]
    args.out.mkdir(parents=True, exist_ok=True)
    for path in args.world.iterdir():
        target = args.out / path.name
        if path.name != "features" and not target.exists():
            target.symlink_to(path.resolve())
    dim = len(vocabulary["colors"]) + len(vocabulary["shapes"]) + len(vocabulary["sizes"])
    meta = {"extractor": "gold-objects", "dim": dim}
    with FeatureStoreWriter(args.out / "features", meta, dtype="float32", resume=False) as store:
        for line in (args.world / "scenes.jsonl").read_text(encoding="utf-8").splitlines():
            scene = json.loads(line)
            store.add(scene["id"], *gold_tokens(scene, vocabulary))
    print(f"gold-token world: {args.out} ({store.written} images, {dim}-d tokens)")


if __name__ == "__main__":
    main()
