"""The rewrite stage: one line per caption, workers/shards/resume give identical output, bad
input is reported and loses nothing else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from unimo_kit.rewrite.edits import apply_edits
from unimo_kit.rewrite.negatives import NEGATIVE_TYPES
from unimo_kit.rewrite.pipeline import RewriteConfig, caption_problem, rewrite_file
from unimo_kit.rewrite.vocab import Vocabulary
from unimo_kit.utils import Shard

OPTIONS = {"per_type": 1, "sentence_negatives": 2, "progress": False}


@pytest.fixture(scope="module")
def pairs(world):
    return str(world.pairs["train"])


@pytest.fixture(scope="module")
def reference(pairs, parser, tmp_path_factory):
    """The uninterrupted single-process output (bytes) and its vocabulary."""
    out = tmp_path_factory.mktemp("ref") / "rewrites.jsonl"
    summary = rewrite_file(pairs, out, **OPTIONS)
    return out.read_bytes(), summary


def _lines(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.decode().splitlines()]


def test_one_line_per_caption_with_valid_edits(pairs, reference):
    data, summary = reference
    records = [json.loads(line) for line in Path(pairs).read_text().splitlines()]
    lines = _lines(data)
    assert [x["id"] for x in lines] == [
        f"{r['id']}#{i}" for r in records for i in range(len(r["captions"]))
    ]
    assert summary.written == len(lines) and summary.caption_errors == 0
    kinds = set()
    for line in lines:
        assert set(line) == {"id", "pair_id", "caption_index", "caption", "scene_graph",
                             "positives", "negatives", "sentence_negatives"}  # fmt: skip
        for n in line["negatives"]:
            assert apply_edits(line["caption"], n["edits"]) == n["text"]
            kinds.add(n["type"])
        assert all(s["pair_id"] != line["pair_id"] for s in line["sentence_negatives"])
        assert len(line["sentence_negatives"]) <= 2
        assert any(p["type"] == "same-image" for p in line["positives"])
    assert {"replace-obj", "replace-att", "replace-rel", "swap-att", "add-att"} <= kinds


def test_workers_give_identical_output(pairs, reference, tmp_path):
    out = tmp_path / "w2.jsonl"
    rewrite_file(pairs, out, workers=2, chunk_size=16, **OPTIONS)
    assert out.read_bytes() == reference[0]


@pytest.mark.parametrize("shared_vocab", [False, True])
def test_shards_concatenate_to_the_whole(pairs, reference, tmp_path, shared_vocab):
    vocab_path = tmp_path / "vocab.json"
    if shared_vocab:
        reference[1].vocab.save(vocab_path)
    parts = []
    for i in range(3):
        out = tmp_path / f"part{i}.jsonl"
        extra = {"vocab_path": str(vocab_path)} if shared_vocab else {}
        rewrite_file(pairs, out, shard=Shard(i, 3), **OPTIONS, **extra)
        parts.append(out.read_bytes())
    assert b"".join(parts) == reference[0]
    assert all(parts)


def test_resume_after_torn_tail_is_identical(pairs, reference, tmp_path):
    data = reference[0]
    out = tmp_path / "resumed.jsonl"
    cut = data.index(b"\n", len(data) // 2) + 40  # some lines, then half a line
    out.write_bytes(data[:cut])
    summary = rewrite_file(pairs, out, **OPTIONS)
    assert out.read_bytes() == data
    assert summary.skipped_done > 0 and summary.written < len(_lines(data))


def test_vocab_is_saved_and_deterministic(pairs, reference, tmp_path):
    rewrite_file(pairs, tmp_path / "a.jsonl", save_vocab=str(tmp_path / "v.json"), **OPTIONS)
    assert Vocabulary.load(tmp_path / "v.json") == reference[1].vocab


def test_bad_input_is_reported_and_loses_nothing_else(tmp_path, parser, capsys):
    path = tmp_path / "pairs.jsonl"
    lines = [
        {"id": "a", "image": "a.png", "captions": ["a red circle above a blue square", ""]},
        "this is not json",
        {"image": "b.png", "captions": ["no id here"]},
        {"id": "c", "image": "c.png", "captions": "not a list"},
        {"id": "d", "image": "d.png", "captions": ["a cat\x00 on a mat", "x" * 2000]},
        {"id": "e", "image": "e.png", "captions": ["красная машина на дороге", 7]},
        {"id": "f", "image": "f.png", "captions": ["two green stars next to a circle"]},
    ]
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n\n")
    out = tmp_path / "out.jsonl"
    summary = rewrite_file(path, out, progress=False)
    got = _lines(out.read_bytes())
    assert [x["id"] for x in got] == ["a#0", "a#1", "d#0", "d#1", "e#0", "e#1", "f#0"]
    errors = {x["id"]: x["error"] for x in got if "error" in x}
    assert set(errors) == {"a#1", "d#0", "d#1", "e#0", "e#1"}
    assert "empty" in errors["a#1"] and "control character U+0000" in errors["d#0"]
    assert "2000 characters" in errors["d#1"] and "English" in errors["e#0"]
    assert "string" in errors["e#1"]
    assert got[0]["negatives"] and got[-1]["negatives"]
    assert summary.record_errors == 3 and summary.caption_errors == 5
    err = capsys.readouterr().err
    assert f"{path}:2: invalid JSON" in err and f"{path}:3: missing or invalid id" in err
    with pytest.raises(Exception, match="invalid JSON"):
        rewrite_file(path, tmp_path / "strict.jsonl", progress=False, strict=True)


def test_line_that_is_not_utf8_is_reported_not_rewritten(tmp_path, parser, capsys):
    """A Latin-1 byte is reported as FILE:LINE and skipped, never rewritten as U+FFFD."""
    path = tmp_path / "pairs.jsonl"
    path.write_bytes(
        b'{"id": "a", "image": "a.png", "captions": ["a caf\xe9 with green chairs"]}\n'
        b'{"id": "b", "image": "b.png", "captions": ["a red circle above a star"]}\n'
    )
    out = tmp_path / "out.jsonl"
    summary = rewrite_file(path, out, output_format="factual", progress=False)
    assert [x["id"] for x in _lines(out.read_bytes())] == ["b#0"]
    assert summary.record_errors == 1
    assert f"{path}:1: not UTF-8 (byte 0xe9 at column 50)" in capsys.readouterr().err


def test_lone_surrogate_line_is_named_and_the_chunk_kept(tmp_path, parser, capsys):
    """A caption holding the JSON escape \\ud800 (valid JSON, not encodable) is named by
    FILE:LINE and skipped; the good records of the same chunk are all written (issue 20.7)."""
    path = tmp_path / "pairs.jsonl"
    path.write_text(
        '{"id": "a", "captions": ["a red circle above a star"]}\n'
        '{"id": "b", "captions": ["a cat \\ud800 on a mat"]}\n'
        '{"id": "c", "captions": ["a dog on a couch"]}\n',
        encoding="utf-8",
    )
    out = tmp_path / "out.jsonl"
    summary = rewrite_file(path, out, progress=False)
    assert [x["id"] for x in _lines(out.read_bytes())] == ["a#0", "c#0"]
    assert summary.record_errors == 1
    assert f"{path}:2: lone surrogate U+D800" in capsys.readouterr().err


def test_roundtrip_drops_are_counted_and_off_switch(tmp_path, pairs):
    """Every kept rewrite re-parses to its intended graph; --no-roundtrip keeps candidates the
    check would drop (so the check does something), and the drops are counted by type."""
    from unimo_kit.rewrite.parse_eval import tuple_set
    from unimo_kit.rewrite.parser import SceneGraphParser

    on = rewrite_file(pairs, tmp_path / "on.jsonl", progress=False, spares=1)
    off = rewrite_file(pairs, tmp_path / "off.jsonl", progress=False, spares=1, roundtrip=False)
    assert on.dropped and not off.dropped
    kept = {(x["id"], n["text"]) for x in _lines((tmp_path / "on.jsonl").read_bytes())
            for n in x["negatives"]}  # fmt: skip
    unchecked = {(x["id"], n["text"]) for x in _lines((tmp_path / "off.jsonl").read_bytes())
                 for n in x["negatives"]}  # fmt: skip
    assert kept < unchecked  # with one candidate per negative, dropped ones are not replaced
    assert len(unchecked) - len(kept) == sum(
        n for (kind, _), n in on.dropped.items() if kind in {k for k in NEGATIVE_TYPES}
    )
    parser = SceneGraphParser()
    assert all(tuple_set(parser.parse(text)) for _, text in sorted(kept)[:20])


def test_duplicate_pair_ids_are_reported_and_skipped(tmp_path, parser, capsys):
    """A repeated id is skipped with FILE:LINE (review finding 8): ids stay unique, shards and
    resume still agree with the whole run."""
    path = tmp_path / "pairs.jsonl"
    ids = ["a", "b", "a", "c", "b", "d"]
    captions = ["a red circle", "a blue star", "a green dog", "two cats", "a tree", "a cup"]
    path.write_text(
        "".join(
            json.dumps({"id": i, "image": "x.png", "captions": [c]}) + "\n"
            for i, c in zip(ids, captions, strict=True)
        )
    )
    options = {"output_format": "factual", "progress": False}
    out = tmp_path / "out.jsonl"
    summary = rewrite_file(path, out, **options)
    whole = out.read_bytes()
    assert [(x["id"], x["caption"]) for x in _lines(whole)] == [
        ("a#0", "a red circle"), ("b#0", "a blue star"), ("c#0", "two cats"), ("d#0", "a cup")
    ]  # fmt: skip
    assert summary.record_errors == 2
    err = capsys.readouterr().err
    assert f"{path}:3: duplicate id 'a' (first at line 1)" in err
    assert f"{path}:5: duplicate id 'b' (first at line 2)" in err
    parts = []
    for i in range(2):
        rewrite_file(path, tmp_path / f"part{i}.jsonl", shard=Shard(i, 2), **options)
        parts.append((tmp_path / f"part{i}.jsonl").read_bytes())
    assert b"".join(parts) == whole
    out.write_bytes(whole[: whole.index(b"\n") + 1])  # killed after the first line
    rewrite_file(path, out, **options)
    assert out.read_bytes() == whole


def test_factual_format(pairs, reference, tmp_path):
    out = tmp_path / "factual.jsonl"
    rewrite_file(pairs, out, output_format="factual", progress=False)
    got = _lines(out.read_bytes())
    full = _lines(reference[0])
    assert [set(x) for x in got] == [{"id", "pair_id", "caption_index", "caption",
                                      "scene_graph"}] * len(full)  # fmt: skip
    assert [x["scene_graph"] for x in got] == [x["scene_graph"] for x in full]


def test_config_validation_and_caption_problem():
    with pytest.raises(ValueError, match="unknown negative"):
        RewriteConfig(types=("nope",))
    with pytest.raises(ValueError, match="format"):
        RewriteConfig(output_format="xml")
    assert caption_problem("a dog") is None
    assert caption_problem("   ") == "empty caption"
    assert caption_problem("12 34") == "caption has no letters"


def test_parse_each_keeps_the_others_when_one_caption_breaks_the_parser(parser):
    from unimo_kit.rewrite.parser import SceneGraphParser

    class Fragile(SceneGraphParser):
        def __init__(self, inner):
            self.inner = inner

        def parse_many(self, texts):
            texts = list(texts)
            if "BOOM" in texts:
                raise RuntimeError("broken caption")
            return self.inner.parse_many(texts)

    graphs = Fragile(parser).parse_each(["a red circle", "BOOM", "a blue square"])
    assert [g.entities[0].name for g in (graphs[0], graphs[2])] == ["circle", "square"]
    assert isinstance(graphs[1], RuntimeError)


@pytest.mark.parametrize("graph_memory", [0, 256 * 2**20])
def test_pass_one_graphs_equal_a_fresh_parse(pairs, tmp_path, graph_memory):
    """One parse per caption: the graphs pass 1 keeps (in memory, or spilled to
    OUT.graphs.tmp) give the bytes of a run whose pass 2 parses every caption itself (with a
    given vocabulary there is no pass 1), and the spill file is gone afterwards."""
    options = {"per_type": 1, "progress": False}
    one = tmp_path / "one.jsonl"
    summary = rewrite_file(pairs, one, graph_memory=graph_memory, **options)
    summary.vocab.save(tmp_path / "v.json")
    two = tmp_path / "two.jsonl"
    rewrite_file(pairs, two, vocab_path=str(tmp_path / "v.json"), **options)
    assert one.read_bytes() == two.read_bytes() and one.stat().st_size > 0
    assert not (tmp_path / "one.jsonl.graphs.tmp").exists()


def test_graph_store_spills_in_order_and_ignores_a_stale_file(tmp_path):
    import pickle

    from unimo_kit.rewrite.pipeline import GraphStore

    path = tmp_path / "out.graphs.tmp"
    path.write_bytes(b"left by a killed run")
    store = GraphStore(str(path), memory_bytes=40)
    chunks = [[1, 2], ["a"], [], [{"x": 3}]]
    for chunk in chunks:
        store.add(pickle.dumps(chunk))
    assert store.spilled
    assert list(store.graphs()) == [1, 2, "a", {"x": 3}]
    store.close()
    assert not path.exists()
