"""The generated synthetic world: files, gold graphs vs pixels, held-out compositions,
compositional negatives, determinism, resume and the CLI."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from unimo_kit.cli.main import cli
from unimo_kit.data.scene_graph import SceneGraph
from unimo_kit.data.synth import (
    BACKGROUND,
    CATEGORIES,
    COLORS,
    PLURALS,
    RELATION_FORMS,
    SHAPES,
    SINGULARS,
    WorldSummary,
    generate_world,
    held_out_compositions,
    load_scenes,
    satisfies,
)
from unimo_kit.utils.jsonl import RecordError

FILL = {"circle": 0.785, "oval": 0.785, "square": 1.0, "rectangle": 1.0, "triangle": 0.5,
        "diamond": 0.5, "star": 0.40, "heart": 0.61}  # fmt: skip
"""Share of its box each shape fills."""


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def all_pairs(world: WorldSummary) -> list[dict]:
    return [p for split in ("train", "val", "test") for p in read_jsonl(world.pairs[split])]


def graph_compositions(factual: str) -> set[tuple[str, str]]:
    """(color, shape) pairs a graph states."""
    graph = SceneGraph.from_factual(factual)
    out = set()
    for entity in graph.entities:
        shape = {p: s for s, p in PLURALS.items()}.get(entity.name, entity.name)
        out |= {(a.text, shape) for a in entity.attributes if a.text in COLORS}
    return out


def text_mentions(text: str, color: str, shape: str) -> bool:
    """Whether a caption says the colour of a shape (attributively or predicatively)."""
    noun = rf"(?:{shape}|{PLURALS[shape]})"
    attributive = rf"\b{color} (?:(?:small|large) )?{noun}\b"
    predicative = rf"\b{noun} (?:that |which )?(?:is|are) (?:(?:small|large) and )?{color}\b"
    return bool(re.search(attributive, text) or re.search(predicative, text))


def test_layout_and_counts(synth_world: WorldSummary) -> None:
    out = synth_world.out_dir
    for name in ("texts.jsonl", "images.jsonl", "scenes.jsonl", "compositional.test.jsonl"):
        assert (out / name).is_file()
    world = json.loads(synth_world.world_json.read_text())
    counts = world["counts"]
    assert counts["images"] == {"train": 104, "val": 16, "test": 40}
    assert counts["texts"] == len(read_jsonl(synth_world.texts)) == 320
    assert counts["image_only"] == len(read_jsonl(synth_world.images)) == 80
    assert world["held_out"] == [list(p) for p in held_out_compositions(7)]
    pairs = all_pairs(synth_world)
    assert len(pairs) == 160
    for pair in pairs:
        assert (out / pair["image"]).is_file()
        assert len(pair["captions"]) == len(pair["scene_graphs"]) == 5
        assert len(set(pair["captions"])) == 5
    for record in read_jsonl(synth_world.images):
        assert (out / record["image"]).is_file()
    with open(synth_world.factual_csv, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 800
    assert set(rows[0]) == {"image_id", "caption", "scene_graph"}
    by_id: dict[str, list[tuple[str, str]]] = {}
    for row in rows:
        by_id.setdefault(row["image_id"], []).append((row["caption"], row["scene_graph"]))
    for pair in pairs:
        assert by_id[pair["id"]] == list(zip(pair["captions"], pair["scene_graphs"], strict=True))
    assert any("," in row["caption"] for row in rows)  # list captions survive csv quoting


def test_every_gold_graph_is_true_of_its_scene(synth_world: WorldSummary) -> None:
    scenes = load_scenes(synth_world.scenes)
    assert len(scenes) == 160 + 80
    for pair in all_pairs(synth_world):
        scene = scenes[pair["id"]]
        assert scene.split == pair["split"] and scene.image == pair["image"]
        for caption, factual in zip(pair["captions"], pair["scene_graphs"], strict=True):
            assert satisfies(scene, SceneGraph.from_factual(factual)), (pair["id"], caption)
            # every noun and adjective of the graph is in the caption's words
            words = set(caption.replace(",", " ").split())
            for entity in SceneGraph.from_factual(factual).entities:
                assert entity.name in words
                assert all(a.text in words or a.text.isdigit() for a in entity.attributes)


def test_pixels_show_the_scene(synth_world: WorldSummary) -> None:
    scenes = load_scenes(synth_world.scenes)
    for scene in scenes.values():
        image = Image.open(synth_world.out_dir / scene.image).convert("RGB")
        assert image.size == (scene.width, scene.height) == (224, 224)
        boxes = [o.bbox for o in scene.objects]
        for obj in scene.objects:
            assert image.getpixel(obj.center) == COLORS[obj.color], (scene.id, obj)
            x1, y1, x2, y2 = obj.bbox
            assert 0 <= x1 < x2 < 224 and 0 <= y1 < y2 < 224
            # the shape reaches every side of its box: its colour is on each edge line
            fill = COLORS[obj.color]
            assert any(image.getpixel((x1, y)) == fill for y in range(y1, y2 + 1))
            assert any(image.getpixel((x2, y)) == fill for y in range(y1, y2 + 1))
            assert any(image.getpixel((x, y1)) == fill for x in range(x1, x2 + 1))
            assert any(image.getpixel((x, y2)) == fill for x in range(x1, x2 + 1))
            # the shape, by the share of its box it fills (analytic areas, up to pixel rounding)
            box = np.asarray(image)[y1 : y2 + 1, x1 : x2 + 1]  # (h, w, 3)
            filled = (box == fill).all(axis=-1).mean()
            assert abs(filled - FILL[obj.shape]) < 0.03, (scene.id, obj, filled)
            if obj.shape == "triangle":  # point up: the bottom row is full, the top is not
                assert image.getpixel((x1 + 1, y2)) == fill != image.getpixel((x1 + 1, y1))
            width, height = x2 - x1, y2 - y1
            assert (width > 1.5 * height) if obj.shape in ("oval", "rectangle") else width == height
            assert width == (58 if obj.size == "large" else 34)
        for i, a in enumerate(boxes):
            for b in boxes[i + 1 :]:
                assert a[2] < b[0] or b[2] < a[0] or a[3] < b[1] or b[3] < a[1]
        # outside every box only background
        colors = image.getcolors(maxcolors=64)
        assert colors is not None and len(colors) <= len(scene.objects) + 1
        inside = {
            (x, y) for x1, y1, x2, y2 in boxes for x in range(x1, x2 + 1) for y in range(y1, y2 + 1)
        }
        for x in range(0, 224, 7):
            for y in range(0, 224, 7):
                if (x, y) not in inside:
                    assert image.getpixel((x, y)) == BACKGROUND


def test_held_out_compositions_never_in_training(synth_world: WorldSummary) -> None:
    held = set(synth_world.held_out)
    assert len(held) == 8
    assert len({c for c, _ in held}) == len({s for _, s in held}) == 8
    scenes = load_scenes(synth_world.scenes)
    for scene in scenes.values():
        if scene.split in ("train", "image-only"):
            assert not scene.compositions() & held, scene.id
        else:
            assert scene.compositions() & held, scene.id  # val/test: at least one
    texts = [(p["captions"], p["scene_graphs"]) for p in read_jsonl(synth_world.pairs["train"])]
    texts += [([t["text"]], [t["meta"]["scene_graph"]]) for t in read_jsonl(synth_world.texts)]
    for captions, graphs in texts:
        for caption, factual in zip(captions, graphs, strict=True):
            assert not graph_compositions(factual) & held, caption
            assert not any(text_mentions(caption, c, s) for c, s in held), caption
    # and the test captions do talk about them
    test_pairs = read_jsonl(synth_world.pairs["test"])
    mentioned = sum(
        any(graph_compositions(g) & held for g in p["scene_graphs"]) for p in test_pairs
    )
    assert mentioned >= 0.8 * len(test_pairs)


def test_text_mentions_helper() -> None:
    assert text_mentions("a small red circle", "red", "circle")
    assert text_mentions("the circles are red", "red", "circle")
    assert text_mentions("a circle that is small and red", "red", "circle")
    assert not text_mentions("a red star and a circle", "red", "circle")


def test_compositional_negatives_are_false_and_differ(synth_world: WorldSummary) -> None:
    scenes = load_scenes(synth_world.scenes)
    world = json.loads(synth_world.world_json.read_text())
    items = read_jsonl(synth_world.compositional)
    n_test = world["counts"]["images"]["test"]
    for category in CATEGORIES:
        made = world["counts"]["compositional"][category]
        assert made + world["counts"]["compositional_skipped"][category] == n_test
        assert made == sum(item["category"] == category for item in items)
        assert made >= n_test // 2, category
    for item in items:
        scene = scenes[item["id"].rsplit("-", 2)[0]]
        assert scene.split == "test" and item["image"] == scene.image
        assert satisfies(scene, SceneGraph.from_factual(item["positive_graph"]))
        assert len(item["negatives"]) == len(item["negative_graphs"]) == 1
        negative = item["negatives"][0]
        assert negative != item["positive"]
        assert not satisfies(scene, SceneGraph.from_factual(item["negative_graphs"][0])), item
        pos_words, neg_words = item["positive"].split(), negative.split()
        if item["category"].startswith(("replace", "swap")):
            assert len(pos_words) == len(neg_words) or item["category"] == "replace-rel"
        if item["category"].startswith("swap"):  # same words in other places ("a"/"an" aside)
            articles = {"a", "an"}
            kept = [sorted(w for w in ws if w not in articles) for ws in (pos_words, neg_words)]
            assert kept[0] == kept[1]
        if item["category"].startswith("add"):
            assert len(neg_words) > len(pos_words)
    # subset: "held-out" exactly when a gold graph names a held-out colour-shape composition
    held = {tuple(pair) for pair in world["held_out"]}
    for item in items:
        graphs = [item["positive_graph"], *item["negative_graphs"]]
        named = {
            (attribute.text, SINGULARS.get(entity.name, entity.name))
            for graph in graphs
            for entity in SceneGraph.from_factual(graph).entities
            for attribute in entity.attributes
        }
        assert item["subset"] == ("held-out" if named & held else "seen"), item
    assert {item["subset"] for item in items} == {"held-out", "seen"}


def test_same_seed_same_bytes_other_seed_other_world(tmp_path: Path) -> None:
    kwargs = {"n_images": 30, "n_texts": 20, "n_image_only": 10, "progress": False}
    a = generate_world(tmp_path / "a", seed=1, workers=1, **kwargs)
    b = generate_world(tmp_path / "b", seed=1, workers=2, **kwargs)
    c = generate_world(tmp_path / "c", seed=2, workers=1, **kwargs)
    files_a = sorted(p.relative_to(a.out_dir) for p in a.out_dir.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b.out_dir) for p in b.out_dir.rglob("*") if p.is_file())
    assert files_a == files_b and len(files_a) == 10 + 40
    for rel in files_a:
        assert (a.out_dir / rel).read_bytes() == (b.out_dir / rel).read_bytes(), rel
    assert a.pairs["train"].read_bytes() != c.pairs["train"].read_bytes()
    assert a.texts.read_bytes() != c.texts.read_bytes()
    assert (a.out_dir / "images/syn-000000.png").read_bytes() != (
        c.out_dir / "images/syn-000000.png"
    ).read_bytes()


def test_compositional_images_enlarge_only_the_compositional_set(tmp_path: Path) -> None:
    kwargs = {"seed": 3, "n_images": 30, "n_texts": 10, "n_image_only": 5, "progress": False}
    base = generate_world(tmp_path / "base", **kwargs)
    more = generate_world(tmp_path / "more", n_compositional_images=12, **kwargs)
    changed = {"compositional.test.jsonl", "compositional.images.jsonl", "scenes.jsonl",
               "world.json"}  # fmt: skip
    base_files = sorted(p.relative_to(base.out_dir) for p in base.out_dir.rglob("*") if p.is_file())
    for rel in base_files:
        if str(rel) not in changed:
            assert (base.out_dir / rel).read_bytes() == (more.out_dir / rel).read_bytes(), rel
    assert base.compositional_images.read_text() == ""
    assert base.counts["compositional_images"] == 0
    assert more.counts["compositional_images"] == 12

    listed = read_jsonl(more.compositional_images)
    assert [r["id"] for r in listed] == [f"cmp-{i:06d}" for i in range(12)]
    assert all((more.out_dir / r["image"]).is_file() for r in listed)
    scenes = load_scenes(more.scenes)
    assert all(scenes[r["id"]].split == "compositional" for r in listed)
    held = {tuple(p) for p in more.held_out}
    for r in listed:  # drawn as test scenes: each holds a held-out composition
        assert any((o.color, o.shape) in held for o in scenes[r["id"]].objects)

    # the test images' items first, unchanged; then those of the new scenes, checked
    before = base.compositional.read_text().splitlines()
    after = more.compositional.read_text().splitlines()
    assert after[: len(before)] == before and len(after) > len(before) + 12 * 3
    for item in map(json.loads, after[len(before) :]):
        scene = scenes[Path(item["image"]).stem]
        assert scene.split == "compositional"
        assert satisfies(scene, SceneGraph.from_factual(item["positive_graph"]))
        assert not satisfies(scene, SceneGraph.from_factual(item["negative_graphs"][0]))
    assert sum(more.counts["compositional"].values()) == len(after)
    with pytest.raises(ValueError, match="must not be negative"):
        generate_world(tmp_path / "bad", n_compositional_images=-1, **kwargs)


def test_resume_skips_a_complete_world_and_force_regenerates(tmp_path: Path) -> None:
    kwargs = {"n_images": 20, "n_texts": 5, "n_image_only": 4, "progress": False}
    first = generate_world(tmp_path, seed=0, **kwargs)
    assert not first.reused
    image = tmp_path / "images" / "syn-000003.png"
    image.write_bytes(b"scribbled")
    again = generate_world(tmp_path, seed=0, **kwargs)
    assert again.reused and again.counts == first.counts
    assert image.read_bytes() == b"scribbled"  # kept as is: the world was not regenerated
    forced = generate_world(tmp_path, seed=0, force=True, **kwargs)
    assert not forced.reused and image.read_bytes().startswith(b"\x89PNG")
    smaller = generate_world(tmp_path, seed=0, **{**kwargs, "n_images": 10})  # other params
    assert not smaller.reused
    assert not (tmp_path / "images" / "syn-000015.png").exists()  # stale images removed


def test_load_scenes_reports_the_bad_line(tmp_path: Path, synth_world: WorldSummary) -> None:
    lines = synth_world.scenes.read_text().splitlines()[:3]
    path = tmp_path / "scenes.jsonl"
    path.write_text("\n".join([lines[0], '{"id": "x"}', lines[2]]) + "\n")
    with pytest.raises(RecordError, match=r"scenes.jsonl:2: not a scene record"):
        load_scenes(path)
    assert len(load_scenes(path, strict=False)) == 2


def test_caption_variety(synth_world: WorldSummary) -> None:
    captions = [c for p in all_pairs(synth_world) for c in p["captions"]]
    world = json.loads(synth_world.world_json.read_text())
    assert sum(n > 0 for n in world["counts"]["templates"].values()) >= 10
    joined = "\n".join(captions)
    for needle in ("there is", "there are", " and ", " that is ", " which is ", ", "):
        assert needle in joined, needle
    forms = [f for fs in RELATION_FORMS.values() for f in fs]
    assert sum(f" {f} " in joined for f in forms) >= 8
    assert any(re.search(rf"\b(two|three|four) \w* ?\w* ?{PLURALS[s]}\b", joined) for s in SHAPES)
    assert len(set(captions)) > 0.7 * len(captions)


def test_cli_synth(tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["data", "synth", "-o", str(tmp_path), "--n-images", "12", "--no-progress"]
    result = runner.invoke(cli, [*args, "--seed", "5"])
    assert result.exit_code == 0, result.output
    assert "held out:" in result.output and (tmp_path / "world.json").exists()
    result = runner.invoke(cli, [*args, "--seed", "5"])
    assert result.exit_code == 0 and "already holds this world" in result.output
    result = runner.invoke(cli, [*args, "--seed", "5", "--compositional-images", "3"])
    assert result.exit_code == 0 and "(3 images beyond the test split)" in result.output
    result = runner.invoke(cli, [*args, "--test-fraction", "1.5"])
    assert result.exit_code != 0 and "test_fraction must be in [0, 1)" in result.output
    refused = runner.invoke(cli, [*args, "--workers", "0"])  # the shared --workers: N >= 1
    assert refused.exit_code == 2 and "Invalid value for '--workers'" in refused.output
    result = runner.invoke(cli, [*args, "--seed", "5", "--workers", "2"])
    assert result.exit_code == 0 and "held out:" in result.output, result.output


def test_world_files_read_strictly_with_the_data_readers(synth_world: WorldSummary) -> None:
    from unimo_kit.data import read_images, read_pairs, read_texts

    for split in ("train", "val", "test"):
        pairs = list(read_pairs(synth_world.pairs[split], strict=True))
        assert pairs and all(p.split == split and Path(p.image).is_file() for p in pairs)
        assert all(len(p.scene_graphs or []) == len(p.captions) for p in pairs)
    assert len(list(read_texts(synth_world.texts, strict=True))) == 320
    images = list(read_images(synth_world.images, strict=True))
    assert len(images) == 80 and all(Path(i.image).is_file() for i in images)
