"""Guards of build / train / merge: nothing a user names is deleted or overwritten by a
command that then fails, failed starts do not block the corrected command, changed inputs
are noticed, and shards that cannot make one index are refused or warned about."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from unimo_kit.index.build import (
    BuildConfig,
    InputChangedError,
    build,
    input_changed,
    merge_indexes,
    stale_build,
    train_quantizer,
)
from unimo_kit.index.encoders import EncoderError
from unimo_kit.index.factory import plan_index
from unimo_kit.index.store import IndexStore, IndexStoreError


def config(texts_file, spec, **kw) -> BuildConfig:
    base = BuildConfig(
        input=str(texts_file), kind="texts", encoder=spec, block_size=64, batch_size=16
    )
    return replace(base, **kw)


def write_texts(path: Path, texts: list[str], prefix: str = "t") -> Path:
    with open(path, "w") as handle:
        for i, text in enumerate(texts):
            handle.write(json.dumps({"id": f"{prefix}{i}", "text": text}) + "\n")
    return path


@pytest.fixture
def flat_shards(tmp_path, texts_file, tiny_spec) -> list[Path]:
    cfg = config(texts_file, tiny_spec, index_type="flat")
    return [
        build(replace(cfg, shard=f"{i}/2"), tmp_path / f"s{i}", progress=False) for i in range(2)
    ]


# --------------------------------------------------------------------------- merge (1, 9)


def test_merge_into_a_source_is_refused_and_the_source_kept(tmp_path, flat_shards):
    s0, s1 = flat_shards
    with pytest.raises(IndexStoreError, match="is or holds the source"):
        merge_indexes([s0, s1], s0, overwrite=True)
    with pytest.raises(IndexStoreError, match="is or holds the source"):
        merge_indexes([s0, s1], tmp_path, overwrite=True)  # a folder that holds the sources
    assert len(IndexStore.open(s0)) == 150 and list((s0 / "blocks").glob("*.npy"))


def test_failed_merge_keeps_the_old_output_and_leaves_nothing(tmp_path, texts_file, tiny_spec):
    cfg = config(texts_file, tiny_spec, index_type="hnsw", tune_recall=None)
    bare = [
        build(
            replace(cfg, shard=f"{i}/2", keep_embeddings=False), tmp_path / f"h{i}", progress=False
        )
        for i in range(2)
    ]
    for _ in range(2):  # the retry gets the same error, not "exists"
        with pytest.raises(IndexStoreError, match="no stored embeddings"):
            merge_indexes(bare, tmp_path / "m")
        assert not (tmp_path / "m").exists() and not (tmp_path / "m.tmp").exists()
    kept = [build(replace(cfg, shard=f"{i}/2"), tmp_path / f"k{i}", progress=False) for i in (0, 1)]
    merged = merge_indexes(kept[:1], tmp_path / "m")
    with pytest.raises(IndexStoreError, match="no stored embeddings"):
        merge_indexes(bare, merged, overwrite=True)
    assert len(IndexStore.open(merged)) == 150  # untouched
    merge_indexes(kept, merged, overwrite=True)
    assert len(IndexStore.open(merged)) == 300
    assert not (tmp_path / "m.tmp").exists() and not (tmp_path / "m.old").exists()


def test_merge_refuses_repeated_rows(tmp_path, flat_shards):
    s0, s1 = flat_shards
    with pytest.raises(IndexStoreError, match="listed twice"):
        merge_indexes([s0, s1, s0], tmp_path / "m")
    copy = tmp_path / "copy"
    shutil.copytree(s0, copy)
    with pytest.raises(IndexStoreError, match="both index shard 0/2"):
        merge_indexes([s0, copy, s1], tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_merge_warns_about_shards_that_are_not_one_input_in_order(
    tmp_path, flat_shards, tiny_spec, capsys
):
    s0, s1 = flat_shards
    merge_indexes([s0, s1], tmp_path / "ok")
    assert "warning" not in capsys.readouterr().err
    merge_indexes([s1, s0], tmp_path / "swapped")
    assert "shards 1/2, 0/2" in capsys.readouterr().err
    merge_indexes([s0], tmp_path / "half")
    assert "shards 0/2" in capsys.readouterr().err
    other = write_texts(tmp_path / "other.jsonl", ["a red star", "two blue circles"], "o")
    o = build(config(other, tiny_spec, index_type="flat"), tmp_path / "o", progress=False)
    merge_indexes([s0, s1, o], tmp_path / "mixed")
    assert "different inputs" in capsys.readouterr().err


def test_empty_shard_is_refused_with_the_row_count(tmp_path, tiny_spec):
    three = write_texts(tmp_path / "t3.jsonl", ["a red star", "a blue circle", "a green cross"])
    cfg = config(three, tiny_spec, index_type="flat", shard="0/4")
    with pytest.raises(IndexStoreError, match=r"shard 0/4 .* has 3 rows; use at most 3 shards"):
        build(cfg, tmp_path / "s0", progress=False)
    assert not (tmp_path / "s0").exists()
    assert len(IndexStore.open(build(replace(cfg, shard="1/4"), tmp_path / "s1"))) == 1


# --------------------------------------------------------------------------- train (2)


def test_train_refuses_an_existing_index_unless_overwrite(tmp_path, texts_file, tiny_spec):
    from unimo_kit.cli.index import _print_info

    index = build(config(texts_file, tiny_spec, index_type="flat"), tmp_path / "t", progress=False)
    cfg = config(texts_file, tiny_spec, index_type="ivf")
    with pytest.raises(IndexStoreError, match="not a trained quantizer; pass --overwrite"):
        train_quantizer(cfg, index, progress=False)
    assert len(IndexStore.open(index)) == 300  # untouched
    trained = train_quantizer(cfg, index, progress=False, overwrite=True)
    assert json.loads((trained / "meta.json").read_text())["kind"] == "trained"
    assert not (trained / "build.json").exists() and not (trained / "manifest.json").exists()
    train_quantizer(cfg, trained, progress=False)  # a trained quantizer is replaced freely
    _print_info(trained)  # no search_params: no KeyError
    with pytest.raises(IndexStoreError, match="not an index build"):
        build(config(texts_file, tiny_spec), trained, progress=False)


# --------------------------------------------------------------------------- failed starts (5)


class ImageOnly:
    spec = "fake:image"
    dim = 8
    modalities = ("image",)


def test_failed_starts_leave_nothing_that_blocks_the_corrected_build(
    tmp_path, texts_file, tiny_spec
):
    out = tmp_path / "t"
    cfg = config(texts_file, tiny_spec, index_type="flat")
    with pytest.raises(EncoderError, match=r"cannot load encoder 'st:/nonexistent/model'"):
        build(replace(cfg, encoder="st:/nonexistent/model"), out, progress=False)
    with pytest.raises(EncoderError, match="embeds image, not text"):
        build(replace(cfg, encoder="fake:image"), out, progress=False, encoder=ImageOnly())
    with pytest.raises(IndexStoreError, match="not a trained quantizer"):
        build(replace(cfg, trained=str(tmp_path / "nope")), out, progress=False)
    assert not out.exists()
    # a folder left by an older failed start: build.json, no finished block
    (out / "blocks").mkdir(parents=True)
    (out / "build.json").write_text(json.dumps({"encoder": "st:typo", "input": "x"}))
    assert len(IndexStore.open(build(cfg, out, progress=False))) == 300


def test_encoder_load_failure_is_one_cli_line(tmp_path, texts_file):
    from click.testing import CliRunner

    from unimo_kit.cli.index import index

    args = ["build", "--texts", str(texts_file), "--name", "t", "--root", str(tmp_path)]
    res = CliRunner().invoke(index, [*args, "--encoder", "st:/nonexistent/model"])
    assert res.exit_code == 1 and res.exception is not None
    assert res.output.startswith("Error: cannot load encoder") and res.output.count("\n") == 1


# --------------------------------------------------------------------------- changed input (4)


def test_overwrite_rebuilds_with_the_same_settings(tmp_path, texts_file, tiny_spec):
    cfg = config(texts_file, tiny_spec, index_type="flat")
    out = build(cfg, tmp_path / "t", progress=False)
    assert not input_changed(out)
    with open(texts_file, "a") as handle:
        handle.write(json.dumps({"id": "new1", "text": "a unicorn riding a bicycle"}) + "\n")
    assert input_changed(out)
    with pytest.raises(InputChangedError, match=r"other settings or inputs \(input texts changed"):
        build(cfg, out, progress=False)
    store = IndexStore.open(build(cfg, out, progress=False, overwrite=True))
    assert len(store) == 301 and store.records[-1]["id"] == "new1"
    assert not input_changed(out)
    assert not input_changed(tmp_path)  # no manifest: unknown, not changed
    build(replace(cfg, batch_size=3), out, progress=False)  # changes nothing: reused


def test_a_folder_of_another_stage_is_neither_built_into_nor_emptied(
    tmp_path, texts_file, tiny_spec
):
    """Another stage's folder (a features store: its manifest.json and meta.json) is not an
    index build, and is not emptied to become an embedding store."""
    folder = tmp_path / "features"
    folder.mkdir()
    record = {"manifest_version": 1, "stage": "features", "settings": {"dim": 8}, "inputs": {}}
    (folder / "manifest.json").write_text(json.dumps(record))
    (folder / "chunks.bin").write_text("keep me")
    with pytest.raises(IndexStoreError, match="exists and is not an index build"):
        build(config(texts_file, tiny_spec, index_type="flat"), folder, progress=False)
    (folder / "meta.json").write_text("{}")
    store_build = config(texts_file, tiny_spec, index_type="flat", embeddings=str(folder))
    with pytest.raises(IndexStoreError, match="without emptying it"):
        build(store_build, tmp_path / "t", progress=False)
    (folder / "meta.json").unlink()
    with pytest.raises(IndexStoreError, match="without emptying it"):
        build(store_build, tmp_path / "t", progress=False)
    assert (folder / "chunks.bin").read_text() == "keep me"


def test_stale_build_says_why_a_cached_index_cannot_be_reused(tmp_path, texts_file, tiny_spec):
    cfg = config(texts_file, tiny_spec, index_type="flat")
    out = build(cfg, tmp_path / "t", progress=False)
    assert stale_build(out, cfg) is None and stale_build(out, replace(cfg, batch_size=3)) is None
    assert stale_build(tmp_path, cfg) == "the folder holds no build"
    assert stale_build(out, replace(cfg, encoder="st:other")) == (
        f'it was built with other settings (encoder: "{tiny_spec}" -> "st:other")'
    )
    later = texts_file.stat().st_mtime_ns + 5_000_000_000
    os.utime(texts_file, ns=(later, later))
    assert stale_build(out, cfg) is None  # the same bytes
    with open(texts_file, "a") as handle:
        handle.write(json.dumps({"id": "new1", "text": "a unicorn"}) + "\n")
    assert stale_build(out, cfg) == f"{texts_file} changed since it was built"
    (out / "manifest.json").write_text("{")
    assert stale_build(out, cfg) == "the folder holds no readable build"


def test_an_input_touched_but_unchanged_is_not_stale(tmp_path, texts_file, tiny_spec):
    """A copy or a regeneration gives the same bytes a new modification time: sha256 decides."""
    cfg = config(texts_file, tiny_spec, index_type="flat")
    out = build(cfg, tmp_path / "t", progress=False)
    later = texts_file.stat().st_mtime_ns + 5_000_000_000
    os.utime(texts_file, ns=(later, later))
    assert not input_changed(out)
    build(cfg, out, progress=False)  # "already built", and the new time is stored
    saved = json.loads((out / "manifest.json").read_text())
    assert saved["inputs"]["texts"]["mtime_ns"] == later
    text = texts_file.read_text()
    texts_file.write_text(text.replace("a", "b", 1))  # same size, other bytes
    assert input_changed(out)


def test_resume_refuses_blocks_of_other_rows(tmp_path, texts_file, tiny_spec):
    cfg = config(texts_file, tiny_spec, index_type="flat")
    out = build(cfg, tmp_path / "t", progress=False)
    for name in ("meta.json", "index.faiss", "records.jsonl", "failed.jsonl"):
        (out / name).unlink()  # killed in block 2 of 5
    for block in sorted((out / "blocks").glob("*.npy"))[2:]:
        block.unlink()
    lines = Path(texts_file).read_text().splitlines()
    Path(texts_file).write_text("\n".join([json.dumps({"id": "new0", "text": "x"}), *lines]))
    with pytest.raises(IndexStoreError, match=r"other settings or inputs \(input texts changed"):
        build(cfg, out, progress=False)
    # a folder of an older unimo_kit whose build.json recorded nothing of its input: the
    # blocks themselves are checked against the rows the input gives now
    _as_old_folder(out, drop=("input_size", "input_mtime_ns", "input_sha256"))
    with pytest.raises(IndexStoreError, match="block 00000 holds other rows"):
        build(cfg, out, progress=False)
    store = IndexStore.open(build(cfg, out, progress=False, overwrite=True))
    assert len(store) == 301 and store.records[0]["id"] == "new0"


def _as_old_folder(out: Path, drop: tuple[str, ...] = ()) -> dict:
    """Make ``out`` a folder of the previous release: its manifest.json rewritten as the
    build.json that release wrote (settings and the input's stat at the top level)."""
    manifest = json.loads((out / "manifest.json").read_text())
    (fingerprint,) = manifest["inputs"].values()
    saved = {"format_version": 1, **manifest["settings"]}
    saved |= {"input_size": fingerprint["size"], "input_mtime_ns": fingerprint["mtime_ns"]}
    saved |= {"input_sha256": fingerprint["sha256"]}
    for key in drop:
        saved.pop(key)
    (out / "build.json").write_text(json.dumps(saved))
    (out / "manifest.json").unlink()
    return saved


def test_a_folder_of_an_older_release_resumes_once_through_its_build_json(
    tmp_path, texts_file, tiny_spec, capsys
):
    cfg = config(texts_file, tiny_spec, index_type="flat")
    out = build(cfg, tmp_path / "t", progress=False)
    assert not (out / "build.json").exists()  # manifest.json is the one record
    manifest = json.loads((out / "manifest.json").read_text())
    for name in ("meta.json", "index.faiss", "records.jsonl"):
        (out / name).unlink()  # killed in the final step
    before = {p.name: p.stat().st_mtime_ns for p in (out / "blocks").glob("*.npy")}
    _as_old_folder(out, drop=("max_build_seconds",))  # written before that option existed
    capsys.readouterr()
    assert len(IndexStore.open(build(cfg, out, progress=False))) == 300
    assert "read the build.json of an older unimo_kit" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in (out / "blocks").glob("*.npy")} == before
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert not (out / "build.json").exists()  # read, then replaced by manifest.json
    build(cfg, out, progress=False)
    assert "older unimo_kit" not in capsys.readouterr().err  # read once
    # a finished old folder is reused, and one of other settings refused the new way
    _as_old_folder(out)
    build(cfg, out, progress=False)
    assert "already built" in capsys.readouterr().err
    assert (out / "manifest.json").is_file()
    _as_old_folder(out)
    with pytest.raises(IndexStoreError, match=r'index_type: "flat" -> "hnsw"\); rerun'):
        build(replace(cfg, index_type="hnsw"), out, progress=False)
    assert not (out / "manifest.json").exists()  # a refused run writes nothing
    # an old build.json whose input then changed: refused as changed
    with open(texts_file, "a") as handle:
        handle.write(json.dumps({"id": "new1", "text": "a unicorn"}) + "\n")
    with pytest.raises(InputChangedError, match="input texts changed"):
        build(cfg, out, progress=False)


def test_resume_refuses_blocks_whose_image_paths_changed(tmp_path, tiny_spec):
    """Caption and image rows are told apart by their image path too, not only id and text."""
    pairs = tmp_path / "pairs.jsonl"
    rows = [{"id": f"p{i}", "image": f"{i}.png", "captions": [f"caption {i}"]} for i in range(6)]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = BuildConfig(input=str(pairs), kind="captions", encoder=tiny_spec, block_size=2)
    cfg = replace(cfg, index_type="flat")
    out = build(cfg, tmp_path / "c", progress=False)
    for name in ("meta.json", "index.faiss", "records.jsonl"):
        (out / name).unlink(missing_ok=True)  # killed in block 2 of 3
    for block in sorted((out / "blocks").glob("*.npy"))[1:]:
        block.unlink()
    rows[0]["image"], rows[1]["image"] = rows[1]["image"], rows[0]["image"]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(IndexStoreError, match=r"other settings or inputs \(input pairs changed"):
        build(cfg, out, progress=False)
    _as_old_folder(out, drop=("input_size", "input_mtime_ns", "input_sha256"))
    with pytest.raises(IndexStoreError, match="block 00000 holds other rows"):
        build(cfg, out, progress=False)


# --------------------------------------------------------------------------- ivfpq, resume (10)


def test_ivfpq_on_too_few_vectors_is_refused_before_embedding(tmp_path, texts_file, tiny_spec):
    with pytest.raises(ValueError, match="at least 256 vectors, but there are 30"):
        plan_index(30, 32, index_type="ivfpq")
    with pytest.raises(ValueError, match="raise max_memory"):
        plan_index(30, 32, index_type="auto", max_memory=100)
    assert ",PQ" in plan_index(256, 32, index_type="ivfpq").factory
    cfg = config(texts_file, tiny_spec, index_type="ivfpq")
    with pytest.raises(ValueError, match="there are 150"):
        build(replace(cfg, shard="0/2"), tmp_path / "pq", progress=False)
    assert not (tmp_path / "pq").exists()


def test_resume_takes_new_final_step_settings(tmp_path, texts_file, tiny_spec):
    cfg = config(texts_file, tiny_spec, index_type="flat")
    out = build(cfg, tmp_path / "t", progress=False)
    for name in ("meta.json", "index.faiss", "records.jsonl"):
        (out / name).unlink()  # e.g. the final step failed
    before = {p.name: p.stat().st_mtime_ns for p in (out / "blocks").glob("*.npy")}
    new = replace(cfg, index_type="hnsw", batch_size=8, tune_recall=None, max_memory="1G")
    store = IndexStore.open(build(new, out, progress=False))
    assert store.meta["factory"].startswith("HNSW")
    assert {p.name: p.stat().st_mtime_ns for p in (out / "blocks").glob("*.npy")} == before
    assert json.loads((out / "manifest.json").read_text())["settings"]["index_type"] == "hnsw"
    (out / "meta.json").unlink()
    with pytest.raises(IndexStoreError, match=r"\(block_size: 64 -> 32\); rerun"):
        build(replace(new, block_size=32), out, progress=False)
    ids = [r["id"] for r in store.records]
    assert ids == sorted(ids) and len(np.unique(ids)) == 300
