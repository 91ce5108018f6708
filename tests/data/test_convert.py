"""convert(): sources to pairs.jsonl and back; the `unimo data convert` command."""

import io
import json
import tarfile

import pytest
from click.testing import CliRunner
from PIL import Image

from unimo_kit.cli.main import cli
from unimo_kit.data import (
    ErrorReport,
    ImageError,
    PairRecord,
    RecordError,
    convert,
    read_coco,
    read_pairs,
    write_records,
)


def quiet():
    return ErrorReport(stream=io.StringIO())


def save_png(path, value=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), color=(value, value, value)).save(path)
    return path


@pytest.fixture
def source(tmp_path):
    """A pairs.jsonl with real images, one split each, scene graphs and unknown fields."""
    src = tmp_path / "src"
    records = [
        PairRecord(
            id=f"p{i}",
            image=str(save_png(src / "images" / f"p{i}.png", 10 * i)),
            captions=[f"caption {i}", f"another caption {i}"],
            split=["train", "val", "test"][i % 3],
            scene_graphs=["( circle )", "( square )"] if i == 0 else None,
            meta={"n": i},
            extra={"license": "cc0"} if i == 1 else {},
        )
        for i in range(5)
    ]
    write_records(src / "pairs.jsonl", records)
    return src / "pairs.jsonl", records


def test_jsonl_round_trip_to_another_directory(source, tmp_path):
    path, records = source
    out = tmp_path / "elsewhere" / "deeper" / "pairs.jsonl"
    summary = convert("jsonl", path, out, progress=False)
    assert summary.written == 5 and summary.captions == 10 and summary.skipped == 0
    assert list(read_pairs(out, strict=True)) == records
    first = json.loads(out.read_text().splitlines()[0])
    assert first["image"] == "../../src/images/p0.png"


def test_round_trip_through_a_symlinked_output_directory(source, tmp_path):
    path, records = source
    (tmp_path / "real" / "data").mkdir(parents=True)
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "link").symlink_to(tmp_path / "real")
    out = tmp_path / "a" / "b" / "link" / "data" / "pairs.jsonl"
    convert("jsonl", path, out, progress=False)
    assert list(read_pairs(out, strict=True)) == records
    # The relative path also holds for tools that do not normalise it first.
    image = json.loads(out.read_text().splitlines()[0])["image"]
    assert image == "../../src/images/p0.png"
    assert (out.parent / image).is_file()


def test_absolute_csv_and_jsonl_paths_stay_absolute(tmp_path):
    """An absolute image path in the source is written absolute, a relative one relative."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "abs.csv").write_text("filepath,title\n/data/coco/x.jpg,a dog\nrel/y.jpg,a cat\n")
    out = tmp_path / "out" / "sub" / "pairs.jsonl"
    convert("csv", src / "abs.csv", out, progress=False)
    again = tmp_path / "again" / "pairs.jsonl"
    convert("jsonl", out, again, progress=False)
    for path in (out, again):
        images = [json.loads(line)["image"] for line in path.read_text().splitlines()]
        assert images[0] == "/data/coco/x.jpg"
        assert not images[1].startswith("/")
        assert (path.parent / images[1]).resolve() == (src / "rel" / "y.jpg").resolve()


def test_coco_round_trip(tmp_path):
    doc = {
        "images": [{"id": i, "file_name": f"{i:06d}.jpg"} for i in range(3)],
        "annotations": [
            {"id": 10 + j, "image_id": j % 3, "caption": f"caption {j}"} for j in range(7)
        ],
    }
    coco = tmp_path / "annotations" / "captions_val2017.json"
    coco.parent.mkdir()
    coco.write_text(json.dumps(doc))
    out = tmp_path / "data" / "coco.jsonl"
    summary = convert("coco", [coco], out, images_root=tmp_path / "val2017", split="val")
    assert summary.written == 3 and summary.captions == 7
    expected = list(read_coco(coco, images_root=tmp_path / "val2017"))
    for record in expected:
        record.split = "val"
    assert list(read_pairs(out, strict=True)) == expected
    assert json.loads(out.read_text().splitlines()[0])["image"] == "../val2017/000000.jpg"


def test_split_filter_duplicates_and_summary(source, tmp_path):
    path, _ = source
    out = tmp_path / "train.jsonl"
    summary = convert("jsonl", [path, path], out, split="train", progress=False)
    assert [r.id for r in read_pairs(out)] == ["p0", "p3"]
    assert summary.other_split == 6 and summary.duplicates == 2
    assert summary.duplicate_ids == ["p0", "p3"]
    lines = summary.lines()
    assert lines[0] == f"wrote 2 pairs (4 captions) to {out}"
    assert "skipped 2 duplicate id(s): p0, p3" in lines
    assert "left out 6 pair(s) of other splits" in lines


def test_check_images_leaves_out_missing_and_corrupt(source, tmp_path):
    path, _ = source
    (path.parent / "images" / "p1.png").unlink()
    (path.parent / "images" / "p2.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "checked.jsonl"
    summary = convert("jsonl", path, out, check_images=True, progress=False)
    assert [r.id for r in read_pairs(out)] == ["p0", "p3", "p4"]
    assert summary.bad_images == 2
    assert (summary.images.ok, summary.images.missing, summary.images.corrupt) == (3, 1, 1)
    with pytest.raises(ImageError, match=r"p1\.png: missing image"):
        convert("jsonl", path, tmp_path / "strict.jsonl", check_images=True, strict=True)


def test_malformed_records_are_counted_and_strict_leaves_output_untouched(source, tmp_path):
    path, _ = source
    lines = path.read_text().splitlines()
    lines.insert(2, '{"id": "broken", "image": "x.png"}')
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.jsonl"
    report = quiet()
    summary = convert("jsonl", path, out, on_error=report, progress=False)
    assert summary.written == 5 and summary.malformed == 1 and report.count == 1
    assert str(summary.errors[0]) == f"{path}:3: missing field 'captions'"
    before = out.read_bytes()
    with pytest.raises(RecordError, match=r":3: missing field 'captions'"):
        convert("jsonl", path, out, strict=True, progress=False)
    assert out.read_bytes() == before
    assert not out.with_name("out.jsonl.tmp").exists()


def make_shard(path, members):
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def png_bytes(value):
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), color=(value, 0, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_webdataset_extracts_images_next_to_output(tmp_path):
    shard = make_shard(
        tmp_path / "shard-0.tar",
        [
            ("000.png", png_bytes(1)),
            ("000.txt", b"a red square"),
            ("001.png", png_bytes(2)),  # no caption
            ("002.png", png_bytes(3)),
            ("002.txt", b"a dark square"),
        ],
    )
    out = tmp_path / "data" / "wds.jsonl"
    summary = convert("webdataset", [shard], out, check_images=True, on_error=quiet())
    assert summary.written == 2 and summary.malformed == 1
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(d["id"], d["image"], d["captions"]) for d in lines] == [
        ("000", "images/shard-0/000.png", ["a red square"]),
        ("002", "images/shard-0/002.png", ["a dark square"]),
    ]
    image = Image.open(out.parent / "images" / "shard-0" / "002.png")
    assert image.getpixel((0, 0)) == (3, 0, 0)


# ---------------------------------------------------------------- CLI


def run(*args):
    return CliRunner().invoke(cli, ["data", "convert", *map(str, args)])


def test_cli_csv_with_summary(tmp_path):
    csv_path = tmp_path / "train.tsv"
    csv_path.write_text("image\tcaption\na.jpg\tone\na.jpg\ttwo\nb.jpg\t\nc.jpg\tthree\n")
    out = tmp_path / "pairs.jsonl"
    result = run(
        "csv", csv_path, "-o", out, "--csv-img-key", "image", "--csv-caption-key", "caption"
    )
    assert result.exit_code == 0, result.output
    assert f"wrote 2 pairs (3 captions) to {out}" in result.output
    assert "skipped 1 malformed source record(s)" in result.output
    assert f"warning: skipped {csv_path}:4: empty caption (column 'caption')" in result.output
    assert [(r.id, r.captions) for r in read_pairs(out)] == [
        ("a", ["one", "two"]),
        ("c", ["three"]),
    ]


def test_cli_strict_exit_code_and_message(source, tmp_path):
    path, _ = source
    with open(path, "a") as handle:
        handle.write('{"id": "bad", "image": "x.png", "captions": []}\n')
    out = tmp_path / "out.jsonl"
    result = run("jsonl", path, "-o", out, "--strict")
    assert result.exit_code == 1
    assert (
        f"Error: {path}:6: captions must be a non-empty list of strings, got list [] "
        "(--strict: nothing written)"
    ) in result.output
    assert not out.exists()
    result = run("jsonl", path, "-o", out)
    assert result.exit_code == 0 and "wrote 5 pairs" in result.output


def test_cli_check_images_reports_counts(source, tmp_path):
    path, _ = source
    (path.parent / "images" / "p4.png").unlink()
    result = run("jsonl", path, "-o", tmp_path / "o.jsonl", "--check-images")
    assert result.exit_code == 0, result.output
    assert "images: 4 ok, 1 missing (" in result.output
    assert "skipped 1 pair(s) with missing or corrupt images" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--csv-sep", ","], "--csv-sep applies only to the csv format"),
        (["--images-root", "x"], "--images-root does not apply to jsonl inputs"),
        (["--restval-to-train"], "--restval-to-train applies only to the karpathy format"),
    ],
)
def test_cli_rejects_options_of_other_formats(source, tmp_path, args, message):
    path, _ = source
    result = run("jsonl", path, "-o", tmp_path / "o.jsonl", *args)
    assert result.exit_code == 2 and message in result.output


def test_cli_help_has_an_example():
    result = run("--help")
    assert result.exit_code == 0
    assert "unimo data convert karpathy dataset_coco.json" in result.output
