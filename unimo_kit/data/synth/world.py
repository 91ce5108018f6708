"""Generate the synthetic world: images, captions with gold graphs, splits with held-out
compositions, single-modal corpora, the compositional test set (layout in ``docs/synth.md``).

Everything is a function of the parameters: each scene, caption set and compositional item
draws from its own ``random.Random(derive_seed(seed, kind, id))``, so the same seed gives
byte-identical files whatever the number of workers.
"""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
import os
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unimo_kit.data.synth import scene as scene_module
from unimo_kit.data.synth.captions import (
    RELATION_TEMPLATES,
    TEMPLATES,
    Caption,
    available_templates,
    describe_scene,
    sample_caption,
)
from unimo_kit.data.synth.compositional import CATEGORIES, make_example
from unimo_kit.data.synth.render import save_scene_image
from unimo_kit.data.synth.scene import Scene, sample_scene
from unimo_kit.data.synth.vocab import (
    BACKGROUND,
    COLORS,
    PLURALS,
    RELATION_FORMS,
    RELATIONS,
    SHAPES,
    SIZES,
)
from unimo_kit.utils.jsonl import atomic_write, dumps
from unimo_kit.utils.seeding import derive_seed

GENERATOR_VERSION = 2  # bump when the same parameters would give different files
SPLITS = ("train", "val", "test")
PAIR_PREFIX, IMAGE_ONLY_PREFIX, TEXT_PREFIX = "syn", "img", "txt"
COMPOSITIONAL_PREFIX = "cmp"  # scenes rendered for the compositional test set only


@dataclass
class WorldSummary:
    """What :func:`generate_world` wrote (paths are absolute)."""

    out_dir: Path  # the world directory
    pairs: dict[str, Path]  # split -> pairs.<split>.jsonl
    texts: Path  # texts.jsonl, the text-only corpus
    images: Path  # images.jsonl, the image-only collection
    scenes: Path  # scenes.jsonl, gold scene per rendered image
    compositional: Path  # compositional.test.jsonl
    compositional_images: Path  # compositional.images.jsonl, its images beyond the test split
    factual_csv: Path  # captions.factual.csv
    world_json: Path  # world.json
    counts: dict[str, Any] = field(default_factory=dict)  # as in world.json["counts"]
    held_out: list[tuple[str, str]] = field(default_factory=list)  # (color, shape) pairs
    reused: bool = False  # True when an existing complete world was kept


def _names_any(compositions: frozenset[tuple[str, str]], *captions: Caption) -> bool:
    """Whether some caption names an object as one of the ``(colour, shape)`` compositions."""
    return any(
        (phrase.color, phrase.shape) in compositions
        for caption in captions
        for phrase in caption.plan.phrases
    )


def held_out_compositions(seed: int, n: int | None = None) -> list[tuple[str, str]]:
    """The seeded ``(color, shape)`` pairs kept out of training.

    Each shape gets at most one held-out colour and each colour at most one shape (a random
    matching), so every colour and every shape is still seen in training with others.

    Args:
        seed: the world seed.
        n: how many pairs (default: one per shape, 8 of the 64 pairs).
    """
    n = min(len(SHAPES), len(COLORS)) if n is None else n
    if not 0 <= n <= min(len(SHAPES), len(COLORS)):
        raise ValueError(f"n must be between 0 and {min(len(SHAPES), len(COLORS))}, got {n}")
    rng = random.Random(derive_seed(seed, "held-out"))
    colors = rng.sample(list(COLORS), len(COLORS))
    shapes = rng.sample(list(SHAPES), len(SHAPES))
    return sorted(zip(colors[:n], shapes[:n], strict=True))


def _world_paths(out: Path) -> dict[str, Any]:
    return {
        "pairs": {s: out / f"pairs.{s}.jsonl" for s in SPLITS},
        "texts": out / "texts.jsonl",
        "images": out / "images.jsonl",
        "scenes": out / "scenes.jsonl",
        "compositional": out / "compositional.test.jsonl",
        "compositional_images": out / "compositional.images.jsonl",
        "factual_csv": out / "captions.factual.csv",
        "world_json": out / "world.json",
    }


def _summary(out: Path, world: dict[str, Any], reused: bool) -> WorldSummary:
    return WorldSummary(
        out_dir=out,
        **_world_paths(out),
        counts=world["counts"],
        held_out=[tuple(p) for p in world["held_out"]],
        reused=reused,
    )


def _complete_world(out: Path, params: dict[str, Any]) -> dict[str, Any] | None:
    """world.json of ``out`` if it was made with ``params`` and its files are all there."""
    path = out / "world.json"
    if not path.exists():
        return None
    try:
        world = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if world.get("params") != params:
        return None
    paths = _world_paths(out)
    files = [*paths["pairs"].values(), *(v for k, v in paths.items() if k != "pairs")]
    if not all(p.exists() for p in files):
        return None
    return world


def _pad(n: int) -> int:
    return max(6, len(str(max(n - 1, 0))))


def _split_of(seed: int, n: int, val_fraction: float, test_fraction: float) -> list[str]:
    n_val, n_test = round(n * val_fraction), round(n * test_fraction)
    if n_val + n_test >= n and n > 0:
        raise ValueError(
            f"val ({n_val}) + test ({n_test}) images leave no training images out of {n}"
        )
    order = list(range(n))
    random.Random(derive_seed(seed, "splits")).shuffle(order)
    split = ["train"] * n
    for i in order[:n_val]:
        split[i] = "val"
    for i in order[n_val : n_val + n_test]:
        split[i] = "test"
    return split


def _render_one(job: tuple[dict[str, Any], str]) -> None:
    record, path = job
    save_scene_image(Scene.from_json(record), path)


def _render_all(scenes: list[Scene], out: Path, workers: int, progress: bool) -> None:
    from tqdm.auto import tqdm

    jobs = [(s.to_json(), str(out / s.image)) for s in scenes if s.image]
    bar = tqdm(total=len(jobs), desc="rendering", unit="img", disable=not progress)
    try:
        if workers <= 1:
            for job in jobs:
                _render_one(job)
                bar.update()
        else:
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                for _ in pool.imap_unordered(_render_one, jobs, chunksize=32):
                    bar.update()
    finally:
        bar.close()


def _remove_stale_images(image_dir: Path, keep: set[str]) -> None:
    """Remove images of an earlier, different world (``syn-*``/``img-*``/``cmp-*`` not in
    ``keep``)."""
    for prefix in (PAIR_PREFIX, IMAGE_ONLY_PREFIX, COMPOSITIONAL_PREFIX):
        for path in image_dir.glob(f"{prefix}-*.png"):
            if path.name not in keep:
                path.unlink()


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    with atomic_write(path) as handle:
        handle.writelines(dumps(r) + "\n" for r in records)


def generate_world(
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
    n_images: int = 2000,
    image_size: int = 224,
    captions_per_image: int = 5,
    n_texts: int | None = None,
    n_image_only: int | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    n_compositional_images: int = 0,
    workers: int | None = None,
    progress: bool = True,
    force: bool = False,
) -> WorldSummary:
    """Generate (or reuse) the synthetic world in ``out_dir``.

    Args:
        out_dir: directory to write (created if needed).
        seed: global seed; the same parameters give byte-identical files.
        n_images: captioned images (all splits).
        image_size: image side in pixels (at least 96).
        captions_per_image: captions per image (distinct, from varied templates).
        n_texts: text-only descriptions (default ``2 * n_images``).
        n_image_only: uncaptioned images (default ``n_images // 2``).
        val_fraction: share of captioned images in val (each holds a held-out composition).
        test_fraction: share in test (same).
        n_compositional_images: further unseen scenes, drawn as test scenes are (each holds a
            held-out composition), rendered only to enlarge the compositional test set: its
            items for the test images come first and are the same whatever this number;
            those of these scenes (ids ``cmp-*``) follow. Their images are listed in
            ``compositional.images.jsonl`` (``unimo features`` takes it like images.jsonl).
            About 6.6 items per scene: 100 test images give ~87 items of the rarest
            categories, whose accuracy is then known to about ±10 points.
        workers: render processes (default: up to 4 when there are 500+ images, else 1).
            Does not change the output.
        progress: show a progress bar (stderr) while rendering.
        force: regenerate even if ``out_dir`` holds a complete world with these parameters.

    Returns:
        Paths and counts; ``reused=True`` when an existing world was kept.
    """
    if n_images < 1:
        raise ValueError(f"n_images must be at least 1, got {n_images}")
    if image_size < 96:
        raise ValueError(f"image_size must be at least 96 pixels, got {image_size}")
    if captions_per_image < 1:
        raise ValueError(f"captions_per_image must be at least 1, got {captions_per_image}")
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {value}")
    n_texts = 2 * n_images if n_texts is None else n_texts
    n_image_only = n_images // 2 if n_image_only is None else n_image_only
    if n_texts < 0 or n_image_only < 0 or n_compositional_images < 0:
        raise ValueError("n_texts, n_image_only and n_compositional_images must not be negative")
    out = Path(out_dir).resolve()
    params = {
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "n_images": n_images,
        "image_size": image_size,
        "captions_per_image": captions_per_image,
        "n_texts": n_texts,
        "n_image_only": n_image_only,
        "val_fraction": val_fraction,
        "test_fraction": test_fraction,
        "n_compositional_images": n_compositional_images,
    }
    if not force:
        world = _complete_world(out, params)
        if world is not None:
            return _summary(out, world, reused=True)
    (out / "images").mkdir(parents=True, exist_ok=True)

    held_out = held_out_compositions(seed)
    held = frozenset(held_out)
    pad = _pad(max(n_images, n_image_only, n_texts, n_compositional_images))

    # 1. captioned scenes, by split
    splits = _split_of(seed, n_images, val_fraction, test_fraction)
    pair_scenes: list[Scene] = []
    pairs: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    csv_rows: list[tuple[str, str, str]] = []
    template_counts: Counter[str] = Counter()
    for index, split in enumerate(splits):
        image_id = f"{PAIR_PREFIX}-{index:0{pad}d}"
        rng = random.Random(derive_seed(seed, "pair", image_id))
        scene = sample_scene(
            rng, image_id, size=image_size, held_out=held, include_held_out=split != "train"
        )
        scene.image, scene.split = f"images/{image_id}.png", split
        captions = describe_scene(scene, rng, captions_per_image)
        template_counts.update(c.plan.template for c in captions)
        pairs[split].append(
            {
                "id": image_id,
                "image": scene.image,
                "captions": [c.text for c in captions],
                "split": split,
                "scene_graphs": [c.factual for c in captions],
            }
        )
        csv_rows += [(image_id, c.text, c.factual) for c in captions]
        pair_scenes.append(scene)

    # 2. image-only collection (no held-out compositions)
    image_only: list[Scene] = []
    for index in range(n_image_only):
        image_id = f"{IMAGE_ONLY_PREFIX}-{index:0{pad}d}"
        rng = random.Random(derive_seed(seed, "image-only", image_id))
        scene = sample_scene(rng, image_id, size=image_size, held_out=held)
        scene.image, scene.split = f"images/{image_id}.png", "image-only"
        image_only.append(scene)

    # 3. text-only corpus: one description of each of n_texts unseen scenes
    texts: list[dict[str, Any]] = []
    for index in range(n_texts):
        text_id = f"{TEXT_PREFIX}-{index:0{pad}d}"
        rng = random.Random(derive_seed(seed, "text", text_id))
        scene = sample_scene(rng, text_id, size=image_size, held_out=held)
        caption = None
        while caption is None:
            templates = available_templates(scene)
            relational = [t for t in templates if t in RELATION_TEMPLATES]
            pool = relational if relational and rng.random() < 0.4 else templates
            caption = sample_caption(scene, rng, rng.choice(pool))
        texts.append(
            {"id": text_id, "text": caption.text, "meta": {"scene_graph": caption.factual}}
        )

    # 4. compositional test set from the gold test scenes, then from scenes drawn for it alone
    compositional_scenes: list[Scene] = []
    for index in range(n_compositional_images):
        image_id = f"{COMPOSITIONAL_PREFIX}-{index:0{pad}d}"
        rng = random.Random(derive_seed(seed, "compositional-scene", image_id))
        scene = sample_scene(rng, image_id, size=image_size, held_out=held, include_held_out=True)
        scene.image, scene.split = f"images/{image_id}.png", "compositional"
        compositional_scenes.append(scene)
    items: list[dict[str, Any]] = []
    made: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    test_scenes = [s for s in pair_scenes if s.split == "test"]
    for scene in test_scenes + compositional_scenes:
        for category in CATEGORIES:
            rng = random.Random(derive_seed(seed, "compositional", scene.id, category))
            example = make_example(scene, category, rng)
            if example is None:
                skipped[category] += 1
                continue
            positive, negative = example
            made[category] += 1
            items.append(
                {
                    "id": f"{scene.id}-{category}",
                    "image": scene.image,
                    "category": category,
                    "positive": positive.text,
                    "negatives": [negative.text],
                    "positive_graph": positive.factual,
                    "negative_graphs": [negative.factual],
                    "subset": "held-out" if _names_any(held, positive, negative) else "seen",
                }
            )

    # 5. images, then files (world.json last: its presence marks a complete world)
    all_scenes = pair_scenes + image_only + compositional_scenes
    _remove_stale_images(out / "images", {Path(s.image).name for s in all_scenes if s.image})
    if workers is None:
        workers = min(4, os.cpu_count() or 1) if len(all_scenes) >= 500 else 1
    _render_all(all_scenes, out, workers, progress)

    paths = _world_paths(out)
    for split in SPLITS:
        _write_jsonl(paths["pairs"][split], pairs[split])
    _write_jsonl(paths["texts"], texts)
    _write_jsonl(paths["images"], [{"id": s.id, "image": s.image} for s in image_only])
    _write_jsonl(paths["scenes"], [s.to_json() for s in all_scenes])
    _write_jsonl(paths["compositional"], items)
    _write_jsonl(
        paths["compositional_images"],
        [{"id": s.id, "image": s.image} for s in compositional_scenes],
    )
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["image_id", "caption", "scene_graph"])
    writer.writerows(csv_rows)
    with atomic_write(paths["factual_csv"]) as handle:
        handle.write(buffer.getvalue())

    world = {
        "format": "unimo-synth-world",
        "params": params,
        "vocabulary": {
            "shapes": list(SHAPES),
            "plurals": PLURALS,
            "colors": {name: list(rgb) for name, rgb in COLORS.items()},
            "background": list(BACKGROUND),
            "sizes": list(SIZES),
            "relations": list(RELATIONS),
            "relation_forms": {k: list(v) for k, v in RELATION_FORMS.items()},
            "templates": list(TEMPLATES),
        },
        "geometry": {
            "grid": scene_module.GRID,
            "cell_margin": scene_module.CELL_MARGIN,
            "max_jitter": scene_module.MAX_JITTER,
            "radius": scene_module.RADIUS,
            "margin": scene_module.MARGIN,
            "next_to_gap": scene_module.NEXT_TO_GAP,
        },
        "held_out": [list(p) for p in held_out],
        "counts": {
            "images": {s: len(pairs[s]) for s in SPLITS},
            "captions": {s: sum(len(p["captions"]) for p in pairs[s]) for s in SPLITS},
            "templates": {t: template_counts.get(t, 0) for t in TEMPLATES},
            "texts": len(texts),
            "image_only": len(image_only),
            "compositional_images": len(compositional_scenes),
            "compositional": {c: made.get(c, 0) for c in CATEGORIES},
            "compositional_skipped": {c: skipped.get(c, 0) for c in CATEGORIES},
        },
    }
    with atomic_write(paths["world_json"]) as handle:
        handle.write(json.dumps(world, indent=2) + "\n")
    return _summary(out, world, reused=False)
