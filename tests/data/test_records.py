"""PairRecord / TextRecord / ImageRecord: validation messages and the path convention."""

import os
import pickle

import pytest

from unimo_kit.data import ImageRecord, MemberError, PairRecord, RecordError, TextRecord
from unimo_kit.data.records import relative_path, resolve_path


def pair(**overrides):
    d = {"id": "p1", "image": "images/p1.png", "captions": ["a red circle", "a circle"]}
    d.update(overrides)
    return {k: v for k, v in d.items() if v is not ...}


def test_pair_resolves_image_against_base_dir(tmp_path):
    record = PairRecord.from_dict(pair(split="train"), base_dir=tmp_path)
    assert record.image == os.path.join(str(tmp_path), "images", "p1.png")
    assert os.path.isabs(record.image)
    assert record.captions == ["a red circle", "a circle"]
    assert record.split == "train"
    assert record.scene_graphs is None
    assert record.meta == {}


def test_pair_to_dict_writes_paths_relative_to_output_dir(tmp_path):
    record = PairRecord.from_dict(pair(), base_dir=tmp_path / "data")
    assert record.to_dict(tmp_path / "data")["image"] == "images/p1.png"
    assert record.to_dict(tmp_path / "out")["image"] == "../data/images/p1.png"
    assert record.to_dict(tmp_path)["image"] == "data/images/p1.png"


def test_round_trip_keeps_optional_and_unknown_fields(tmp_path):
    d = pair(
        split="val",
        scene_graphs=["( circle , is , red )", "( circle )"],
        meta={"coco_id": 7},
        license="cc-by",
    )
    record = PairRecord.from_dict(d, base_dir=tmp_path)
    assert record.extra == {"license": "cc-by"}
    assert record.to_dict(tmp_path) == d


def test_to_dict_leaves_out_empty_optional_fields():
    d = PairRecord(id="x", image="x.png", captions=["c"]).to_dict()
    assert d == {"id": "x", "image": "x.png", "captions": ["c"]}


def test_integer_id_is_accepted_as_string():
    assert PairRecord.from_dict(pair(id=391895)).id == "391895"


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"id": ...}, "missing field 'id'"),
        ({"image": ...}, "missing field 'image'"),
        ({"captions": ...}, "missing field 'captions'"),
        ({"id": True}, "id must be a non-empty string, got bool True"),
        ({"id": ""}, "id must be a non-empty string"),
        ({"image": 3}, "image must be a non-empty string, got int 3"),
        ({"captions": []}, "captions must be a non-empty list of strings, got list []"),
        ({"captions": "a cat"}, "captions must be a non-empty list of strings, got str"),
        ({"captions": ["a cat", 5]}, "captions[1] must be a string, got int 5"),
        ({"captions": ["a cat", "  "]}, "captions[1] is empty"),
        ({"split": 1}, "split must be a string or null"),
        ({"meta": [1]}, "meta must be a JSON object, got list"),
        ({"scene_graphs": ["( a )"] * 3}, "scene_graphs has 3 entries for 2 captions"),
        ({"scene_graphs": ["( a )", None]}, "scene_graphs[1] must be a string, got null"),
    ],
)
def test_pair_validation_messages_name_file_and_line(overrides, message):
    with pytest.raises(RecordError) as info:
        PairRecord.from_dict(pair(**overrides), path="pairs.jsonl", line=12)
    text = str(info.value)
    assert text.startswith("pairs.jsonl:12: ")
    assert message in text
    assert info.value.line == 12 and info.value.path == "pairs.jsonl"


def test_non_object_is_rejected():
    with pytest.raises(RecordError, match="expected a JSON object, got list"):
        TextRecord.from_dict(["id", "text"], path="t.jsonl", line=3)


def test_text_record():
    record = TextRecord.from_dict({"id": "t1", "text": "two stars", "meta": {"src": "x"}})
    assert (record.id, record.text, record.meta) == ("t1", "two stars", {"src": "x"})
    assert record.to_dict() == {"id": "t1", "text": "two stars", "meta": {"src": "x"}}
    with pytest.raises(RecordError, match="text must be a non-empty string"):
        TextRecord.from_dict({"id": "t1", "text": ""})


def test_image_record(tmp_path):
    record = ImageRecord.from_dict({"id": "i1", "image": "a/b.png"}, base_dir=tmp_path)
    assert record.image == str(tmp_path / "a" / "b.png")
    assert record.to_dict(tmp_path / "a") == {"id": "i1", "image": "b.png"}
    with pytest.raises(RecordError, match="missing field 'image'"):
        ImageRecord.from_dict({"id": "i1"})


@pytest.mark.parametrize(
    "cls, known",
    [
        (PairRecord, {"id": "a", "image": "x.png", "captions": ["a dog"], "split": "val"}),
        (TextRecord, {"id": "a", "text": "a dog"}),
        (ImageRecord, {"id": "a", "image": "x.png"}),
    ],
)
def test_every_type_reads_checks_and_writes_the_same_way(tmp_path, cls, known):
    """The shared from_dict / to_dict: the type itself comes back, unknown fields follow the
    known ones on writing (a known field is never overwritten by them), a line that is not an
    object or lacks an id is refused at its FILE:LINE, and an empty meta is left out."""
    d = {"zz": 1, **known, "meta": {}, "source": {"x": 2}}
    record = cls.from_dict(d, base_dir=tmp_path, path="in.jsonl", line=7)
    assert type(record) is cls and record.extra == {"zz": 1, "source": {"x": 2}}
    written = record.to_dict(tmp_path)
    assert written == {**known, "zz": 1, "source": {"x": 2}}
    assert list(written) == [*known, "zz", "source"]
    record.extra["id"] = "other"  # an unknown field cannot shadow a known one
    assert record.to_dict(tmp_path)["id"] == "a"
    with pytest.raises(RecordError, match=r"^in\.jsonl:7: expected a JSON object, got str"):
        cls.from_dict("a dog", path="in.jsonl", line=7)
    with pytest.raises(RecordError, match=r"^in\.jsonl:7: missing field 'id'"):
        cls.from_dict({k: v for k, v in known.items() if k != "id"}, path="in.jsonl", line=7)


def test_relative_path_does_not_confuse_sibling_prefixes(tmp_path):
    (tmp_path / "b").mkdir()
    assert relative_path(str(tmp_path / "bc" / "x.png"), tmp_path / "b") == "../bc/x.png"
    assert relative_path(str(tmp_path / "b" / "x.png"), tmp_path / "b") == "x.png"
    assert relative_path(str(tmp_path / "b" / "x.png"), tmp_path) == "b/x.png"


def test_urls_and_absolute_paths_are_kept(tmp_path):
    url = "https://example.org/cat.jpg"
    assert resolve_path(url, tmp_path) == url
    assert relative_path(url, tmp_path) == url
    assert resolve_path("/data/x.png", tmp_path) == "/data/x.png"
    assert resolve_path("x.png", None) == "x.png"


def test_member_error_formats_position_instead_of_line():
    error = MemberError("shard-0.tar", "000123", "no caption", 4)
    assert str(error) == "shard-0.tar:000123: no caption"
    assert isinstance(error, RecordError) and error.line == 4 and error.where == "000123"
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error) and copy.where == "000123"


def test_absolute_paths_and_urls_are_written_as_they_are(tmp_path):
    """Docs: "absolute paths are kept as they are" when a record is written (finding 10)."""
    for cls in (PairRecord, ImageRecord):
        d = {"id": "a", "image": "/data/coco/x.jpg"}
        if cls is PairRecord:
            d["captions"] = ["a dog"]
        record = cls.from_dict(d, base_dir=tmp_path / "in")
        assert record.image == "/data/coco/x.jpg"
        assert record.to_dict(tmp_path / "out" / "sub")["image"] == "/data/coco/x.jpg"
        url = cls.from_dict({**d, "image": "https://example.org/c.jpg"}, base_dir=tmp_path)
        assert url.to_dict(tmp_path / "out")["image"] == "https://example.org/c.jpg"
        relative = cls.from_dict({**d, "image": "x.jpg"}, base_dir=tmp_path / "in")
        assert relative.to_dict(tmp_path / "out")["image"] == "../in/x.jpg"
        assert relative == cls.from_dict({**d, "image": str(tmp_path / "in" / "x.jpg")})


def test_caption_id_is_pair_hash_index():
    from unimo_kit.data.records import caption_id

    assert caption_id("img7", 0) == "img7#0"
    assert caption_id("a#b", 12) == "a#b#12"


def test_caption_key_treats_case_and_whitespace_variants_as_one_caption():
    from unimo_kit.data.records import caption_key

    assert caption_key("  A  red\tcircle ") == caption_key("a red circle")
    assert caption_key("a red circle") != caption_key("a red square")
