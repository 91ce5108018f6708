"""Streaming readers: our JSONL, COCO, Karpathy, CSV and webdataset tar shards."""

import inspect
import io
import json
import tarfile

import pytest

from unimo_kit.data import (
    ErrorReport,
    MemberError,
    PairRecord,
    RecordError,
    read_coco,
    read_csv,
    read_images,
    read_karpathy,
    read_pairs,
    read_texts,
    read_webdataset,
)


def write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def quiet():
    """An ErrorReport that collects without printing."""
    return ErrorReport(stream=io.StringIO())


# ---------------------------------------------------------------- our JSONL


@pytest.fixture
def pairs_file(tmp_path):
    return write_lines(
        tmp_path / "pairs.jsonl",
        [
            json.dumps({"id": "a", "image": "img/a.png", "captions": ["a cat"]}),
            '{"id": "b", "image": "img/b.png", "captions": ["a dog"',  # bad JSON
            json.dumps({"image": "img/c.png", "captions": ["x"]}),  # no id
            "",
            json.dumps({"id": "d", "image": "img/d.png", "captions": "a bird"}),  # wrong type
            json.dumps(["not", "an", "object"]),
            json.dumps({"id": "e", "image": "img/e.png", "captions": ["an emu", "a bird"]}),
        ],
    )


def test_read_pairs_reports_bad_lines_and_reads_the_rest(pairs_file, tmp_path):
    report = quiet()
    records = read_pairs(pairs_file, on_error=report)
    assert inspect.isgenerator(records)
    records = list(records)
    assert [r.id for r in records] == ["a", "e"]
    assert records[0].image == str(tmp_path / "img" / "a.png")
    assert records[1].captions == ["an emu", "a bird"]
    messages = [str(e) for e in report.errors]
    assert report.count == 4
    assert messages[0].startswith(f"{pairs_file}:2: invalid JSON")
    assert messages[1] == f"{pairs_file}:3: missing field 'id'"
    assert messages[2].startswith(
        f"{pairs_file}:5: captions must be a non-empty list of strings, got str"
    )
    assert messages[3] == f"{pairs_file}:6: expected a JSON object, got list"


def test_read_pairs_default_reporter_warns_on_stderr(pairs_file, capsys):
    assert [r.id for r in read_pairs(pairs_file)] == ["a", "e"]
    err = capsys.readouterr().err
    assert f"warning: skipped {pairs_file}:3: missing field 'id'" in err


def test_read_pairs_strict_raises_first_error(pairs_file):
    records = read_pairs(pairs_file, strict=True)
    assert next(records).id == "a"
    with pytest.raises(RecordError, match=r"pairs\.jsonl:2: invalid JSON"):
        next(records)


def test_read_pairs_strict_raises_on_validation_error(tmp_path):
    path = write_lines(tmp_path / "p.jsonl", [json.dumps({"id": "a", "image": "a.png"})])
    with pytest.raises(RecordError, match=r"p\.jsonl:1: missing field 'captions'"):
        list(read_pairs(path, strict=True))


def test_read_texts_and_images(tmp_path):
    texts = write_lines(
        tmp_path / "texts.jsonl",
        [json.dumps({"id": "t1", "text": "two stars"}), json.dumps({"id": "t2"})],
    )
    report = quiet()
    assert [t.text for t in read_texts(texts, on_error=report)] == ["two stars"]
    assert str(report.errors[0]) == f"{texts}:2: missing field 'text'"

    (tmp_path / "sub").mkdir()
    images = write_lines(
        tmp_path / "sub" / "images.jsonl",
        [json.dumps({"id": "i1", "image": "../x.png"}), json.dumps({"id": 2, "image": 5})],
    )
    report = quiet()
    got = list(read_images(images, on_error=report))
    assert [(i.id, i.image) for i in got] == [("i1", str(tmp_path / "x.png"))]
    assert "sub/images.jsonl:2: image must be a non-empty string" in str(report.errors[0])


# ---------------------------------------------------------------- COCO


def coco_doc():
    return {
        "images": [
            {"id": 1, "file_name": "000001.jpg"},
            {"id": 2, "file_name": "000002.jpg"},
            {"id": 3, "file_name": "000003.jpg"},  # no captions
        ],
        "annotations": [
            {"id": 10, "image_id": 2, "caption": "A dog runs. "},
            {"id": 11, "image_id": 1, "caption": "A cat sleeps."},
            {"id": 12, "image_id": 2, "caption": "A brown dog."},
            {"id": 13, "image_id": 9, "caption": "Nobody's image."},
            {"id": 14, "image_id": 1, "caption": ""},
        ],
    }


def test_read_coco_groups_captions_by_image(tmp_path):
    path = tmp_path / "captions.json"
    path.write_text(json.dumps(coco_doc()))
    report = quiet()
    records = list(read_coco(path, images_root=tmp_path / "val2017", on_error=report))
    assert [(r.id, r.captions) for r in records] == [
        ("1", ["A cat sleeps."]),
        ("2", ["A dog runs.", "A brown dog."]),
    ]
    assert records[1].image == str(tmp_path / "val2017" / "000002.jpg")
    assert records[1].meta == {"source": "coco", "coco_id": 2, "annotation_ids": [10, 12]}
    assert [str(e) for e in report.errors] == [
        f"{path}:annotations[3]: image_id 9 is not in 'images'",
        f"{path}:annotations[4]: caption must be a non-empty string, got ''",
        f"{path}:images[2]: image 3 (000003.jpg) has no captions",
    ]


def test_read_coco_default_root_and_strict(tmp_path):
    path = tmp_path / "captions.json"
    path.write_text(json.dumps(coco_doc()))
    with pytest.raises(MemberError, match=r"annotations\[3\]: image_id 9"):
        list(read_coco(path, strict=True))
    doc = coco_doc()
    doc["annotations"] = doc["annotations"][:3]
    doc["images"] = doc["images"][:2]
    path.write_text(json.dumps(doc))
    assert next(read_coco(path, strict=True)).image == str(tmp_path / "000001.jpg")


def test_read_coco_rejects_other_json(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"images": []}))
    with pytest.raises(RecordError, match="not a COCO captions file: no top-level 'annotations'"):
        list(read_coco(path))
    path.write_text("{oops")
    with pytest.raises(RecordError, match=r"x\.json:1: invalid JSON"):
        list(read_coco(path))


# ---------------------------------------------------------------- Karpathy


def karpathy_doc():
    def image(imgid, split, cocoid=None, n=2, filepath="val2014"):
        d = {
            "filepath": filepath,
            "filename": f"COCO_{imgid:06d}.jpg",
            "imgid": imgid,
            "split": split,
            "sentids": list(range(imgid * 10, imgid * 10 + n)),
            "sentences": [
                {"raw": f"Caption {j} of {imgid}.", "tokens": ["caption"]} for j in range(n)
            ],
        }
        if cocoid is not None:
            d["cocoid"] = cocoid
        return d

    images = [
        image(0, "train", 100),
        image(1, "restval", 101),
        image(2, "test", 102, n=5),
        {"filename": "bad.jpg", "split": "val", "sentences": []},
        image(4, "val", 104),
    ]
    return {"dataset": "coco", "images": images}


def test_read_karpathy(tmp_path):
    path = tmp_path / "dataset_coco.json"
    path.write_text(json.dumps(karpathy_doc()))
    report = quiet()
    records = list(read_karpathy(path, images_root=tmp_path / "coco", on_error=report))
    assert [(r.id, r.split, len(r.captions)) for r in records] == [
        ("100", "train", 2),
        ("101", "restval", 2),
        ("102", "test", 5),
        ("104", "val", 2),
    ]
    assert records[0].captions == ["Caption 0 of 0.", "Caption 1 of 0."]
    assert records[0].image == str(tmp_path / "coco" / "val2014" / "COCO_000000.jpg")
    assert records[0].meta == {
        "source": "karpathy",
        "dataset": "coco",
        "imgid": 0,
        "cocoid": 100,
        "sentids": [0, 1],
    }
    assert [str(e) for e in report.errors] == [f"{path}:images[3]: image bad.jpg has no sentences"]


def test_read_karpathy_skips_only_the_bad_sentence(tmp_path):
    """One blank sentence costs that sentence, not the image (as in the COCO reader)."""
    doc = karpathy_doc()
    doc["images"][0]["sentences"].insert(1, {"raw": " "})
    doc["images"][0]["sentids"].insert(1, 99)
    doc["images"][1]["sentences"] = [{"raw": ""}, {"tokens": []}]
    path = tmp_path / "dataset_coco.json"
    path.write_text(json.dumps(doc))
    report = quiet()
    records = list(read_karpathy(path, on_error=report))
    assert [r.id for r in records] == ["100", "102", "104"]
    assert records[0].captions == ["Caption 0 of 0.", "Caption 1 of 0."]
    assert records[0].meta["sentids"] == [0, 1]
    assert [str(e) for e in report.errors] == [
        f"{path}:images[0].sentences[1]: raw must be a non-empty string, got ' '",
        f"{path}:images[1].sentences[0]: raw must be a non-empty string, got ''",
        f"{path}:images[1].sentences[1]: raw must be a non-empty string, got None",
        f"{path}:images[1]: image COCO_000001.jpg has no usable sentences",
        f"{path}:images[3]: image bad.jpg has no sentences",
    ]
    with pytest.raises(MemberError, match=r"images\[0\]\.sentences\[1\]"):
        list(read_karpathy(path, strict=True))


def test_read_karpathy_split_filter_and_restval(tmp_path):
    path = tmp_path / "dataset_coco.json"
    path.write_text(json.dumps(karpathy_doc()))
    train = read_karpathy(path, split="train", restval_to_train=True, on_error=quiet())
    assert [r.id for r in train] == ["100", "101"]
    assert [r.id for r in read_karpathy(path, split="train", on_error=quiet())] == ["100"]


def test_read_karpathy_flickr_ids_from_file_names(tmp_path):
    doc = {
        "dataset": "flickr30k",
        "images": [
            {
                "filename": "1000092795.jpg",
                "imgid": 0,
                "split": "train",
                "sentences": [{"raw": "Two young guys."}],
            },
        ],
    }
    path = tmp_path / "dataset_flickr30k.json"
    path.write_text(json.dumps(doc))
    (record,) = read_karpathy(path, images_root=tmp_path / "flickr30k-images")
    assert record.id == "1000092795"
    assert record.image == str(tmp_path / "flickr30k-images" / "1000092795.jpg")


# ---------------------------------------------------------------- CSV


def test_read_csv_merges_consecutive_rows_of_one_image(tmp_path):
    path = write_lines(
        tmp_path / "train.csv",
        [
            "filepath,title,url",
            "imgs/a.jpg,a cat,http://x/a",
            "imgs/a.jpg,a sleeping cat,http://x/a",
            'imgs/b.jpg,"a dog, running",http://x/b',
            "imgs/c.jpg,,http://x/c",  # empty caption
            "imgs/d.jpg,a bird",  # too few fields
            "imgs/a.jpg,a cat again,http://x/a",  # not adjacent: a second pair "imgs/a"
        ],
    )
    report = quiet()
    records = list(read_csv(path, on_error=report))
    assert [(r.id, r.captions) for r in records] == [
        ("imgs/a", ["a cat", "a sleeping cat"]),
        ("imgs/b", ["a dog, running"]),
        ("imgs/a", ["a cat again"]),
    ]
    assert records[0].image == str(tmp_path / "imgs" / "a.jpg")
    assert records[0].meta == {"source": "csv", "url": "http://x/a"}
    assert [str(e) for e in report.errors] == [
        f"{path}:5: empty caption (column 'title')",
        f"{path}:6: row has no value for column 'url' (too few fields)",
    ]
    with pytest.raises(RecordError, match=r"train\.csv:5: empty caption"):
        list(read_csv(path, strict=True))


def test_read_csv_tsv_columns_and_ids(tmp_path):
    path = write_lines(
        tmp_path / "data.tsv",
        ["key\timage\tcaption", "k1\t/abs/a.png\tone", "k2\tb.png\ttwo"],
    )
    records = list(
        read_csv(path, img_key="image", caption_key="caption", id_key="key", images_root="/r")
    )
    assert [(r.id, r.image, r.captions) for r in records] == [
        ("k1", "/abs/a.png", ["one"]),
        ("k2", "/r/b.png", ["two"]),
    ]


def test_read_csv_missing_column_is_fatal_with_a_hint(tmp_path):
    path = write_lines(tmp_path / "x.csv", ["path,caption", "a.jpg,a cat"])
    with pytest.raises(RecordError) as info:
        list(read_csv(path))
    assert str(info.value) == (
        f"{path}:1: no column 'filepath' in the header (columns: path, caption); "
        "name the img column with --csv-img-key or the separator with --csv-sep"
    )


def test_read_csv_with_a_byte_order_mark(tmp_path):
    """Excel's "CSV UTF-8" starts with a BOM; the first column is still found."""
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbffilepath,title\na.jpg,a dog\n")
    (record,) = read_csv(path)
    assert (record.id, record.captions) == ("a", ["a dog"])


def test_read_csv_reports_rows_that_are_not_utf8_and_keeps_the_rest(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"filepath,title\na.jpg,a dog\nb.jpg,a caf\xe9\nc.jpg,a cat\n")
    report = quiet()
    records = list(read_csv(path, on_error=report))
    assert [r.id for r in records] == ["a", "c"]
    assert [str(e) for e in report.errors] == [f"{path}:3: not UTF-8 (byte 0xe9 in column 'title')"]
    path.write_bytes(b"file\xe9path,title\na.jpg,a dog\n")
    with pytest.raises(RecordError, match=r"latin1\.csv:1: not UTF-8 \(byte 0xe9 in the header\)"):
        list(read_csv(path))


def test_coco_file_that_is_not_utf8_is_one_error(tmp_path):
    path = tmp_path / "coco.json"
    path.write_bytes(b'{"images": [],\n"annotations": [{"caption": "caf\xe9"}]}')
    with pytest.raises(RecordError, match=r"coco\.json:2: not UTF-8 \(byte 0xe9\)"):
        list(read_coco(path))


# ---------------------------------------------------------------- webdataset


def add_member(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def make_shard(path, samples):
    with tarfile.open(path, "w") as tar:
        for name, data in samples:
            add_member(tar, name, data)
    return path


def test_read_webdataset(tmp_path):
    shard = make_shard(
        tmp_path / "shard-000.tar",
        [
            ("s/000001.jpg", b"JPEGBYTES1"),
            ("s/000001.txt", b" a red circle \n"),
            ("s/000001.json", json.dumps({"width": 64}).encode()),
            ("s/000002.png", b"PNGBYTES2"),
            ("s/000002.cls", b"3"),  # no caption
            ("s/000003.txt", b"caption without image"),
            ("s/000004.webp", b"WEBP4"),
            ("s/000004.txt", b"a blue star"),
        ],
    )
    report = quiet()
    images_dir = tmp_path / "out" / "images"
    records = list(read_webdataset([shard], images_dir=images_dir, on_error=report))
    assert [(r.id, r.captions) for r in records] == [
        ("s/000001", ["a red circle"]),
        ("s/000004", ["a blue star"]),
    ]
    first = images_dir / "shard-000" / "s" / "000001.jpg"
    assert records[0].image == str(first)
    assert first.read_bytes() == b"JPEGBYTES1"
    assert (images_dir / "shard-000" / "s" / "000004.webp").read_bytes() == b"WEBP4"
    assert records[0].meta == {"width": 64, "shard": "shard-000.tar", "key": "s/000001"}
    assert [str(e) for e in report.errors] == [
        f"{shard}:s/000002: no caption (.txt member) among s/000002.png, s/000002.cls",
        f"{shard}:s/000003: no image member (.jpg/.jpeg/.png/.webp) among s/000003.txt",
    ]
    with pytest.raises(MemberError, match="s/000002: no caption"):
        list(read_webdataset(shard, images_dir=images_dir, strict=True))


def test_read_webdataset_truncated_shard_keeps_earlier_samples(tmp_path):
    shard = make_shard(
        tmp_path / "full.tar",
        [
            (f"{i:04d}.{ext}", f"{ext}{i}".encode() * 200)
            for i in range(3)
            for ext in ("png", "txt")
        ],
    )
    cut = tmp_path / "cut.tar"
    member = 512 + 1024  # header + 800 data bytes padded to 512-byte blocks
    cut.write_bytes(shard.read_bytes()[: 4 * member + 600])  # inside the third sample
    report = quiet()
    records = list(read_webdataset(cut, images_dir=tmp_path / "img", on_error=report))
    assert [r.id for r in records] == ["0000", "0001"]
    assert report.count == 1
    assert "unreadable or truncated tar" in str(report.errors[0])
    assert str(report.errors[0]).startswith(f"{cut}:0002.")


def test_read_webdataset_rejects_unsafe_keys(tmp_path):
    shard = make_shard(tmp_path / "evil.tar", [("../x.png", b"x"), ("../x.txt", b"c")])
    report = quiet()
    assert list(read_webdataset(shard, images_dir=tmp_path / "img", on_error=report)) == []
    assert "is not a safe relative path" in str(report.errors[0])
    assert not (tmp_path / "x.png").exists()


def test_records_are_pair_records(tmp_path):
    path = write_lines(tmp_path / "t.csv", ["filepath,title", "a.jpg,x"])
    assert isinstance(next(read_csv(path)), PairRecord)
