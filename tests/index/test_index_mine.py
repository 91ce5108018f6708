"""Mining retrieved.jsonl on a small synthetic world: exclusions, resume, shards, quality."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from unimo_kit.index.build import BuildConfig, build
from unimo_kit.index.mine import MineConfig, build_caption_index, mine
from unimo_kit.utils import Shard


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    from unimo_kit.data.synth import generate_world

    out = tmp_path_factory.mktemp("world")
    generate_world(out, n_images=40, image_size=96, n_texts=120, n_image_only=20, progress=False)
    return out


@pytest.fixture(scope="module")
def indexes(world, tiny_spec, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("indexes")
    train = world / "pairs.train.jsonl"
    # An image collection that holds the pairs' own images too, so self-exclusion is tested.
    own = world / "own_images.jsonl"
    lines = (world / "images.jsonl").read_text().splitlines()
    for pair in read(train):
        lines.append(json.dumps({"id": "copy-" + pair["id"], "image": pair["image"]}))
    own.write_text("\n".join(lines) + "\n")
    texts = BuildConfig(input=str(world / "texts.jsonl"), kind="texts", encoder=tiny_spec)
    images = BuildConfig(
        input=str(own), kind="images", encoder="timm:tf_efficientnet_lite0:random", batch_size=16
    )
    return {
        "texts": build(texts, root / "texts", progress=False),
        "images": build(images, root / "images", progress=False),
        "captions": build_caption_index(
            train, root / "captions", encoder=tiny_spec, progress=False
        ),
    }


def run(world, indexes, out, images=True, **kw):
    cfg = MineConfig(k=4, negatives=3, min_score=-1.0, max_score=0.999, chunk_size=7)
    return mine(
        world / "pairs.train.jsonl",
        out,
        text_index=indexes["texts"],
        image_index=indexes["images"] if images else None,
        negative_index=indexes["captions"],
        config=cfg,
        progress=False,
        **kw,
    )


def read(path) -> list[dict]:
    return [json.loads(line) for line in open(path)]


def pairs_of(world) -> dict[str, dict]:
    return {p["id"]: p for p in read(world / "pairs.train.jsonl")}


def test_records_follow_the_contract_and_exclude_the_pair(world, indexes, tmp_path):
    out = tmp_path / "retrieved.jsonl"
    stats = run(world, indexes, out)
    pairs = pairs_of(world)
    records = read(out)
    assert [r["id"] for r in records] == list(pairs) and stats["written"] == len(pairs)
    for r in records:
        pair = pairs[r["id"]]
        own = {" ".join(c.lower().split()) for c in pair["captions"]}
        own_image = (world / pair["image"]).resolve()
        assert 0 < len(r["texts"]) <= 4 and 0 < len(r["images"]) <= 4
        assert len(r["negatives"]) == 3
        for t in r["texts"]:
            assert set(t) == {"id", "text", "score"} and t["text"].lower() not in own
        scores = [t["score"] for t in r["texts"]]
        assert scores == sorted(scores, reverse=True) and max(scores) <= 0.999
        for im in r["images"]:
            assert set(im) == {"id", "image", "score"}
            path = (out.parent / im["image"]).resolve()
            assert path.is_file() and path != own_image, "own image returned"
        seen = set()
        for n in r["negatives"]:
            assert set(n) == {"pair_id", "caption_index", "text", "score"}
            assert n["pair_id"] != r["id"], "same-image caption used as a negative"
            assert n["text"].lower() not in own
            assert n["text"] == pairs[n["pair_id"]]["captions"][n["caption_index"]]
            assert n["pair_id"] not in seen
            seen.add(n["pair_id"])
        texts = [" ".join(n["text"].lower().split()) for n in r["negatives"]]
        assert len(set(texts)) == len(texts), "a shared caption kept twice"


def test_score_window_is_applied(world, indexes, tmp_path):
    out = tmp_path / "r.jsonl"
    cfg = MineConfig(k=4, negatives=0, min_score=0.5, max_score=0.9)
    mine(
        world / "pairs.train.jsonl",
        out,
        text_index=indexes["texts"],
        config=cfg,
        progress=False,
    )
    for r in read(out):
        assert all(0.5 <= t["score"] <= 0.9 for t in r["texts"])
        assert r["images"] == [] and r["negatives"] == []


def test_resume_after_a_torn_write_equals_one_run(world, indexes, tmp_path):
    full = tmp_path / "full.jsonl"
    run(world, indexes, full, images=False)
    part = tmp_path / "part.jsonl"
    lines = full.read_text().splitlines(keepends=True)
    part.write_text("".join(lines[:10]) + lines[10][:25])  # killed mid-line
    stats = run(world, indexes, part, images=False)
    assert stats["skipped_done"] == 10
    assert part.read_text() == full.read_text()


def test_shards_concatenate_to_the_full_output(world, indexes, tmp_path):
    full = tmp_path / "full.jsonl"
    run(world, indexes, full, images=False)
    parts = []
    for i in range(3):
        path = tmp_path / f"part{i}.jsonl"
        run(world, indexes, path, images=False, shard=Shard(i, 3))
        parts.append(path.read_text())
    assert "".join(parts) == full.read_text()


def test_cli_mine_builds_the_caption_index(world, indexes, tmp_path):
    from click.testing import CliRunner

    from unimo_kit.cli.index import index

    out = tmp_path / "cli" / "retrieved.jsonl"
    res = CliRunner().invoke(
        index,
        [
            "mine",
            "--pairs",
            str(world / "pairs.train.jsonl"),
            "--text-index",
            str(indexes["texts"]),
            "-o",
            str(out),
            "-k",
            "2",
            "--negatives",
            "2",
            "--min-score",
            "-1",
        ],
    )
    assert res.exit_code == 0, res.output
    assert (tmp_path / "cli" / "retrieved.jsonl.captions" / "meta.json").is_file()
    records = read(out)
    assert len(records) == len(pairs_of(world))
    assert all(len(r["negatives"]) == 2 and len(r["texts"]) == 2 for r in records)


# --------------------------------------------------------------------------- quality


def colour_shapes(graph: str, colours: set[str]) -> set[tuple[str, str]]:
    return {(s, a) for s, a in re.findall(r"\( (\w+) , is , (\w+) \)", graph) if a in colours}


@pytest.mark.slow
def test_mined_texts_share_the_scene_objects(tmp_path):
    """With the packaged all-MiniLM-L6-v2 on a 200-image world, mined text positives name a
    colour-shape pair of the image's gold scene far more often than random texts do."""
    from unimo_kit.data.synth import generate_world

    world = tmp_path / "world"
    generate_world(world, n_images=200, image_size=96, progress=False)
    texts = build(
        BuildConfig(input=str(world / "texts.jsonl"), kind="texts", encoder="st:all-MiniLM-L6-v2"),
        tmp_path / "texts",
        progress=False,
    )
    out = tmp_path / "retrieved.jsonl"
    pairs_path = world / "pairs.train.jsonl"
    mine(pairs_path, out, text_index=texts, config=MineConfig(k=5, negatives=0), progress=False)

    scenes = {s["id"]: s for s in read(world / "scenes.jsonl")}
    colours = {o["color"] for s in scenes.values() for o in s["objects"]}
    corpus = {
        t["id"]: colour_shapes(t["meta"]["scene_graph"], colours)
        for t in read(world / "texts.jsonl")
    }
    mined_hits = mined_total = 0
    random_rate = 0.0
    records = read(out)
    for r in records:
        scene = {(o["shape"], o["color"]) for o in scenes[r["id"]]["objects"]}
        mined_hits += sum(bool(corpus[t["id"]] & scene) for t in r["texts"])
        mined_total += len(r["texts"])
        random_rate += sum(bool(v & scene) for v in corpus.values()) / len(corpus)
    mined_rate = mined_hits / mined_total
    random_rate /= len(records)
    print(f"colour-shape overlap: mined {mined_rate:.3f}, random {random_rate:.3f}")
    assert mined_total >= 4 * len(records)
    assert mined_rate >= 0.35
    assert mined_rate >= 3 * random_rate


def test_negatives_true_of_the_image_are_dropped_with_gold_scenes(world, indexes, tmp_path):
    """Captions of the nearest other images are often true of this image too; with the gold
    scenes (``scenes=``) no kept negative is, and pairs still get negatives."""
    from unimo_kit.data.scene_graph import SceneGraph
    from unimo_kit.data.synth import load_scenes, satisfies

    scenes = load_scenes(world / "scenes.jsonl")
    gold = {}  # caption -> its gold graph (captions of pairs carry their graphs)
    for pair in pairs_of(world).values():
        gold.update(zip(pair["captions"], pair["scene_graphs"], strict=True))

    def true_and_total(path):
        negs = [(r["id"], n["text"]) for r in read(path) for n in r["negatives"]]
        true = sum(satisfies(scenes[p], SceneGraph.from_factual(gold[t])) for p, t in negs)
        return true, len(negs)

    plain, checked = tmp_path / "plain.jsonl", tmp_path / "checked.jsonl"
    run(world, indexes, plain, images=False)
    run(world, indexes, checked, images=False, scenes=world / "scenes.jsonl")
    true_plain, _ = true_and_total(plain)
    true_checked, total_checked = true_and_total(checked)
    assert true_plain > 0  # the problem exists on this world
    assert true_checked == 0
    assert total_checked >= len(pairs_of(world))  # on average at least one negative per pair


# --------------------------------------------------------------------------- resume and cache


def cli_mine(pairs, out, text_index, *extra):
    from click.testing import CliRunner

    from unimo_kit.cli.index import index

    args = ["mine", "--pairs", str(pairs), "--text-index", str(text_index), "-o", str(out)]
    args += ["--min-score", "-1", *extra]
    return CliRunner().invoke(index, args)


def test_automatic_caption_index_is_rebuilt_when_the_pairs_change(world, indexes, tmp_path):
    """The automatic OUTPUT.captions/ is a cache of the pairs file: new content or another
    pairs path rebuild it; an unchanged rerun, a touched file and --no-resume reuse it."""
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text((world / "pairs.train.jsonl").read_text())
    out = tmp_path / "r.jsonl"
    meta = tmp_path / "r.jsonl.captions" / "meta.json"

    def negatives_point_into(path):
        captions = {p["id"]: p["captions"] for p in read(path)}
        negs = [n for r in read(out) for n in r["negatives"]]
        assert negs and all(n["text"] == captions[n["pair_id"]][n["caption_index"]] for n in negs)

    res = cli_mine(pairs, out, indexes["texts"], "-k", "1", "--negatives", "2")
    assert res.exit_code == 0, res.output
    negatives_point_into(pairs)
    built = meta.stat().st_mtime_ns
    out.unlink()
    assert cli_mine(pairs, out, indexes["texts"], "-k", "1", "--negatives", "2").exit_code == 0
    assert meta.stat().st_mtime_ns == built  # unchanged pairs: the cache is reused

    later = pairs.stat().st_mtime_ns + 5_000_000_000
    os.utime(pairs, ns=(later, later))  # the same bytes, a new modification time
    res = cli_mine(pairs, out, indexes["texts"], "-k", "3", "--negatives", "2", "--no-resume")
    assert res.exit_code == 0, res.output  # other settings, afresh: the cache is still good
    assert meta.stat().st_mtime_ns == built and "rebuilding" not in res.stderr

    edited = [{**p, "captions": [c + " today" for c in p["captions"]]} for p in read(pairs)]
    pairs.write_text("".join(json.dumps(p) + "\n" for p in edited))  # same path, new content
    out.unlink()
    res = cli_mine(pairs, out, indexes["texts"], "-k", "1", "--negatives", "2")
    assert res.exit_code == 0, res.output
    assert "changed since it was built" in res.stderr
    negatives_point_into(pairs)

    other = tmp_path / "other.jsonl"  # another pairs file into the same output
    other.write_text((world / "pairs.train.jsonl").read_text())
    out.unlink()
    res = cli_mine(other, out, indexes["texts"], "-k", "1", "--negatives", "2")
    assert res.exit_code == 0, res.output
    negatives_point_into(other)


def test_resume_under_other_settings_is_refused(world, indexes, tmp_path):
    out = tmp_path / "r.jsonl"
    pairs = world / "pairs.train.jsonl"
    res = cli_mine(pairs, out, indexes["texts"], "-k", "2", "--negatives", "0")
    assert res.exit_code == 0, res.output
    manifest = json.loads((tmp_path / "r.jsonl.manifest.json").read_text())
    assert manifest["stage"] == "index mine" and manifest["settings"]["k"] == 2
    assert manifest["inputs"]["pairs"]["path"] == str(pairs.resolve())
    res = cli_mine(pairs, out, indexes["texts"], "-k", "1", "--negatives", "0")
    assert res.exit_code == 1
    assert "was made with other settings or inputs (k: 2 -> 1)" in res.output
    assert "pass --no-resume to start afresh" in res.output
    assert max(len(r["texts"]) for r in read(out)) == 2  # untouched
    # the chunk size changes no record: a resume with another is accepted
    res = cli_mine(pairs, out, indexes["texts"], "-k", "2", "--negatives", "0", "--chunk-size", "3")
    assert res.exit_code == 0, res.output
    res = cli_mine(pairs, out, indexes["texts"], "-k", "1", "--negatives", "0", "--no-resume")
    assert res.exit_code == 0, res.output
    assert max(len(r["texts"]) for r in read(out)) == 1


def test_resume_on_edited_pairs_is_refused(world, indexes, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text((world / "pairs.train.jsonl").read_text())
    out = tmp_path / "r.jsonl"
    res = cli_mine(pairs, out, indexes["texts"], "-k", "2", "--negatives", "0")
    assert res.exit_code == 0, res.output
    lines = pairs.read_text().splitlines(keepends=True)
    pairs.write_text("".join(lines[:-1]))  # the same path, other content
    res = cli_mine(pairs, out, indexes["texts"], "-k", "2", "--negatives", "0")
    assert res.exit_code == 1
    assert "other settings or inputs (input pairs changed (" in res.output
    assert "pass --no-resume" in res.output


def test_library_resume_checks_indexes_and_config(world, indexes, tmp_path):
    from unimo_kit.index.mine import MineSettingsError

    out = tmp_path / "r.jsonl"
    run(world, indexes, out, images=False)
    with pytest.raises(MineSettingsError, match="image_index: null -> "):
        run(world, indexes, out, images=True)
    cfg = MineConfig(k=4, negatives=3, min_score=-1.0, max_score=0.5, chunk_size=7)
    with pytest.raises(MineSettingsError, match=r"max_score: 0\.999 -> 0\.5"):
        mine(world / "pairs.train.jsonl", out, text_index=indexes["texts"], config=cfg)


def test_a_changed_scenes_file_is_refused_on_resume(world, tmp_path):
    """The gold scenes decide which negatives are kept: their content, not only their path,
    is in the resume manifest."""
    from unimo_kit.index.mine import MineSettingsError, check_resume, run_manifest

    scenes = tmp_path / "scenes.jsonl"
    scenes.write_text('{"id": "x"}\n')  # only its bytes matter to the manifest
    out = tmp_path / "r.jsonl"
    pairs, cfg = world / "pairs.train.jsonl", MineConfig()
    check_resume(out, run_manifest(pairs, config=cfg, scenes=scenes))
    out.write_text('{"id": "p"}\n')  # one record written
    check_resume(out, run_manifest(pairs, config=cfg, scenes=scenes))  # same scenes: resumes
    scenes.write_text(scenes.read_text() + '{"id": "another"}\n')
    with pytest.raises(MineSettingsError, match=r"input scenes changed"):
        check_resume(out, run_manifest(pairs, config=cfg, scenes=scenes))


def test_what_is_mined_is_one_set_of_keywords(world, tmp_path):
    """mine, mine_with_captions and run_manifest take the MineRun keywords: the defaults are
    filled in once (an empty call is the explicit defaults), and a misspelt keyword is refused
    by every one of them before anything is read or written."""
    from unimo_kit.index.mine import mine_run, mine_with_captions, run_manifest

    pairs, out = world / "pairs.train.jsonl", tmp_path / "r.jsonl"
    assert mine_run() == {
        "text_index": None,
        "image_index": None,
        "negative_index": None,
        "config": MineConfig(),
        "shard": Shard(),
        "scenes": None,
    }
    explicit = run_manifest(pairs, config=MineConfig(), shard=Shard(), text_index=None)
    assert run_manifest(pairs) == explicit
    assert run_manifest(pairs, text_index="t").settings["text_index"] == os.path.abspath("t")
    for call in (mine, mine_with_captions):
        with pytest.raises(TypeError, match=r"unknown mining keyword\(s\) \['txt_index'\]"):
            call(pairs, out, txt_index="t", progress=False)
    with pytest.raises(TypeError, match="txt_index"):
        run_manifest(pairs, txt_index="t")
    assert not out.exists()


def test_an_old_settings_file_is_read_once(world, indexes, tmp_path):
    """An output whose settings a run before the manifest kept in OUTPUT.settings.json: its
    settings still decide the resume, then the manifest replaces the file."""
    from unimo_kit.index.mine import MineSettingsError

    out = tmp_path / "r.jsonl"
    run(world, indexes, out, images=False)
    lines = out.read_bytes().splitlines(keepends=True)
    manifest = json.loads((tmp_path / "r.jsonl.manifest.json").read_text())
    old = {"pairs": manifest["inputs"]["pairs"]["path"], "pairs_sha256": "0" * 64}
    old.update(manifest["settings"])  # as the older file held it, with other pairs bytes
    (tmp_path / "r.jsonl.manifest.json").unlink()
    Path(f"{out}.settings.json").write_text(json.dumps(old))
    with pytest.raises(MineSettingsError, match=r"input pairs changed \(000000000000 -> "):
        run(world, indexes, out, images=False)
    old["pairs_sha256"] = manifest["inputs"]["pairs"]["sha256"]
    Path(f"{out}.settings.json").write_text(json.dumps(old))
    out.write_bytes(b"".join(lines[:3]))  # killed after three pairs
    assert run(world, indexes, out, images=False)["skipped_done"] == 3
    assert not Path(f"{out}.settings.json").exists()
    assert len(out.read_bytes().splitlines()) == len(lines)


@pytest.mark.parametrize("option", [["-k", "-1"], ["--negatives", "-2"], ["--chunk-size", "0"]])
def test_mine_counts_are_validated(world, indexes, tmp_path, option):
    res = cli_mine(world / "pairs.train.jsonl", tmp_path / "r.jsonl", indexes["texts"], *option)
    assert res.exit_code == 2 and "Invalid value" in res.output
    assert not (tmp_path / "r.jsonl").exists()


def test_a_pair_with_a_lone_surrogate_is_named_and_skipped(world, indexes, tmp_path, capsys):
    lines = (world / "pairs.train.jsonl").read_text().splitlines()
    bad = json.loads(lines[2])
    bad["captions"] = ["caf\ud800 sign"]  # json.dumps writes the valid escape "\ud800"
    lines[2] = json.dumps(bad)
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("\n".join(lines) + "\n")
    out = tmp_path / "retrieved.jsonl"
    cfg = MineConfig(k=2, negatives=2, min_score=-1.0, chunk_size=5)
    stats = mine(
        pairs,
        out,
        text_index=indexes["texts"],
        negative_index=indexes["captions"],
        config=cfg,
        progress=False,
    )
    assert f"{pairs}:3:" in capsys.readouterr().err
    assert stats["malformed"] == 1 and stats["written"] == len(lines) - 1
    assert bad["id"] not in {r["id"] for r in read(out)}
