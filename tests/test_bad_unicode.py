"""A string that cannot be encoded as UTF-8 (a lone surrogate: the JSON escape ``"\\ud800"``,
or a byte that is not UTF-8) must not stop a stage: its line is named (``FILE:LINE: ...``) and
skipped, every other record kept. One test per stage's reader, each fed a good, a bad and a
good record (issue 20, item 7; the rewrite and index stages have their own tests)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from unimo_kit.utils import ErrorReport, RecordError

BAD = "a dog \ud800 on a couch"  # json.dumps writes it as the valid escape "\ud800"


def quiet() -> ErrorReport:
    return ErrorReport(stream=io.StringIO())


def save_png(path: Path, value: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), color=(value, value, value)).save(path)
    return path


def write_lines(path: Path, records: list[dict]) -> Path:
    """One JSON line per record, ASCII-escaped as most writers do (so ``\\ud800`` stays JSON)."""
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    assert "\\ud800" in path.read_text(encoding="utf-8")
    return path


def pairs_file(folder: Path) -> Path:
    images = [save_png(folder / "images" / f"{i}.png", 40 * i) for i in range(3)]
    return write_lines(
        folder / "pairs.jsonl",
        [
            {"id": "good-1", "image": f"images/{images[0].name}", "captions": ["a cat"]},
            {"id": "bad", "image": f"images/{images[1].name}", "captions": ["a bird", BAD]},
            {"id": "good-2", "image": f"images/{images[2].name}", "captions": ["a red car"]},
        ],
    )


def assert_named(errors: list[RecordError], path: Path, where: str = "2") -> None:
    assert len(errors) == 1, [str(e) for e in errors]
    assert str(errors[0]).startswith(f"{path}:{where}: lone surrogate U+D800")


# --------------------------------------------------------------------------- unimo data convert


def test_data_convert_jsonl_names_and_skips_the_line(tmp_path):
    from unimo_kit.data import convert, read_pairs

    src = pairs_file(tmp_path)
    errors: list[RecordError] = []
    summary = convert("jsonl", src, tmp_path / "out" / "pairs.jsonl", on_error=errors.append)
    assert [p.id for p in read_pairs(tmp_path / "out" / "pairs.jsonl", strict=True)] == [
        "good-1",
        "good-2",
    ]
    assert (summary.written, summary.malformed) == (2, 1)
    assert_named(errors, src)


def test_unimo_data_convert_cli_reports_the_line(tmp_path):
    from unimo_kit.cli.main import cli

    src = pairs_file(tmp_path)
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(cli, ["data", "convert", "jsonl", str(src), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert f"{src}:2: lone surrogate U+D800 in captions[1]" in result.output
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == [
        "good-1",
        "good-2",
    ]


def test_data_convert_coco_skips_the_annotation(tmp_path):
    from unimo_kit.data import convert

    for i in range(3):
        save_png(tmp_path / f"{i}.jpg", i)
    doc = {
        "images": [{"id": i, "file_name": f"{i}.jpg"} for i in range(3)],
        "annotations": [
            {"id": 10, "image_id": 0, "caption": "a cat"},
            {"id": 11, "image_id": 1, "caption": BAD},
            {"id": 12, "image_id": 2, "caption": "a red car"},
        ],
    }
    src = tmp_path / "captions.json"
    src.write_text(json.dumps(doc), encoding="utf-8")
    errors: list[RecordError] = []
    summary = convert("coco", src, tmp_path / "pairs.jsonl", on_error=errors.append)
    lines = (tmp_path / "pairs.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["0", "2"]
    assert summary.written == 2
    # the annotation is named; image 1 is then left without captions, and says so
    assert str(errors[0]).startswith(f"{src}:annotations[1]: lone surrogate U+D800 in caption")
    assert "has no captions" in str(errors[1]) and len(errors) == 2


def test_data_convert_karpathy_skips_the_sentence(tmp_path):
    from unimo_kit.data import convert

    doc = {
        "dataset": "coco",
        "images": [
            {"filename": "0.jpg", "cocoid": 0, "split": "test", "sentences": [{"raw": "a cat"}]},
            {
                "filename": "1.jpg",
                "cocoid": 1,
                "split": "test",
                "sentences": [{"raw": BAD}, {"raw": "a bird"}],
            },
            {"filename": "2\udce9.jpg", "cocoid": 2, "split": "test", "sentences": [{"raw": "x"}]},
            {"filename": "3.jpg", "cocoid": 3, "split": "test", "sentences": [{"raw": "a car"}]},
        ],
    }
    src = tmp_path / "dataset_coco.json"
    src.write_text(json.dumps(doc), encoding="utf-8")
    errors: list[RecordError] = []
    convert("karpathy", src, tmp_path / "pairs.jsonl", on_error=errors.append)
    records = [json.loads(line) for line in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    assert [(r["id"], r["captions"]) for r in records] == [
        ("0", ["a cat"]),
        ("1", ["a bird"]),
        ("3", ["a car"]),
    ]
    assert [str(e).split(": lone")[0] for e in errors] == [
        f"{src}:images[1].sentences[0]",
        f"{src}:images[2]",
    ]


def test_data_convert_webdataset_skips_the_sample(tmp_path):
    from unimo_kit.data import convert

    def png(value: int) -> bytes:
        buffer = io.BytesIO()
        Image.new("RGB", (4, 4), color=(value, 0, 0)).save(buffer, format="PNG")
        return buffer.getvalue()

    shard = tmp_path / "shard-000.tar"
    members = []
    for i, meta in enumerate([{"n": 0}, {"note": BAD}, {"n": 2}]):
        members += [
            (f"s{i}.png", png(i)),
            (f"s{i}.txt", f"caption {i}".encode()),
            (f"s{i}.json", json.dumps(meta).encode()),
        ]
    with tarfile.open(shard, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    errors: list[RecordError] = []
    summary = convert("webdataset", shard, tmp_path / "out" / "pairs.jsonl", on_error=errors.append)
    lines = (tmp_path / "out" / "pairs.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["s0", "s2"]
    assert summary.written == 2
    assert_named(errors, shard, where="s1: .json member")


def test_data_convert_csv_reports_surrogate_bytes_as_not_utf8(tmp_path):
    """ED A0 80 is U+D800 written as UTF-8 bytes, which strict UTF-8 refuses."""
    from unimo_kit.data import convert

    for i in range(3):
        save_png(tmp_path / f"{i}.png", i)
    src = tmp_path / "pairs.csv"
    src.write_bytes(b"filepath,title\n0.png,a cat\n1.png,a \xed\xa0\x80 dog\n2.png,a red car\n")
    errors: list[RecordError] = []
    summary = convert("csv", src, tmp_path / "pairs.jsonl", on_error=errors.append)
    assert summary.written == 2
    assert len(errors) == 1 and str(errors[0]).startswith(f"{src}:3: not UTF-8 (byte 0xed")


# --------------------------------------------------------------------------- unimo features


@pytest.mark.parametrize("kind", ["images", "pairs"])
def test_features_names_and_skips_the_line(tmp_path, kind, capsys):
    pytest.importorskip("torch")
    from unimo_kit.features import FeatureStore
    from unimo_kit.features.extract import extract_features
    from unimo_kit.features.extractors import ImageExtractor, grid_boxes

    class MeanColour(ImageExtractor):
        """One token per image: its mean colour (no model)."""

        name, dim, tokens, image_size = "mean-colour", 3, 1, 8

        def forward(self, pixels):
            return pixels.mean(dim=(2, 3))[:, None, :], grid_boxes(1, 1)  # (B, 1, 3)

    if kind == "pairs":
        src = pairs_file(tmp_path)
    else:
        for i in range(3):
            save_png(tmp_path / "images" / f"{i}.png", 40 * i)
        src = write_lines(
            tmp_path / "images.jsonl",
            [
                {"id": "good-1", "image": "images/0.png"},
                {"id": "bad \ud800", "image": "images/1.png"},
                {"id": "good-2", "image": "images/2.png"},
            ],
        )
    report = extract_features(src, tmp_path / "features", extractor=MeanColour(), progress=False)
    assert sorted(FeatureStore(tmp_path / "features").ids()) == ["good-1", "good-2"]
    assert (report.written, report.records_skipped) == (2, 1)
    assert f"{src}:2: lone surrogate U+D800" in capsys.readouterr().err


# --------------------------------------------------------------------------- unimo train


@pytest.mark.parametrize(
    "bad_line",
    [b'{"id": "bad", "text": "\\ud800"}', b'{"id": "bad", "text": "caf\xe9"}'],
    ids=["lone-surrogate", "not-utf8"],
)
def test_train_jsonl_lines_name_and_skip_the_line(tmp_path, bad_line):
    pytest.importorskip("torch")
    from unimo_kit.train.data import JsonlLines

    path = tmp_path / "texts.jsonl"
    path.write_bytes(b'{"id": "a", "text": "a cat"}\n' + bad_line + b'\n{"id": "c", "text": "x"}\n')
    errors: list[RecordError] = []
    lines = JsonlLines(path, lambda record, _: str(record["id"]), on_error=errors.append)
    assert lines.keys == ["a", "c"]
    assert [e.line for e in errors] == [2]


# --------------------------------------------------------------------------- unimo eval


def test_eval_compositional_reader_names_and_skips_the_line(tmp_path):
    from unimo_kit.eval.compositional import read_compositional_jsonl

    path = write_lines(
        tmp_path / "comp.jsonl",
        [
            {"image": "0.png", "positive": "a red car", "negatives": ["a blue car"]},
            {"image": "1.png", "positive": "a cat", "negatives": [BAD]},
            {"image": "2.png", "positive": "a dog", "negatives": ["a cat"]},
        ],
    )
    errors: list[RecordError] = []
    examples = list(read_compositional_jsonl(path, on_error=errors.append))
    assert [e.positive for e in examples] == ["a red car", "a dog"]
    assert_named(errors, path)


def test_eval_vqa_reader_names_and_skips_the_line(tmp_path, capsys):
    from unimo_kit.eval.vqa import read_vqa_jsonl

    path = write_lines(
        tmp_path / "vqa.jsonl",
        [
            {"image": "0.png", "question": "what colour?", "answer": "red"},
            {"image": "1.png", "question": BAD, "answer": "blue"},
            {"image": "2.png", "question": "what shape?", "answer": "circle"},
        ],
    )
    assert [e.answer for e in read_vqa_jsonl(path)] == ["red", "circle"]
    assert f"{path}:2: lone surrogate U+D800 in question" in capsys.readouterr().err


def test_eval_pairs_readers_name_and_skip_the_line(tmp_path):
    """Retrieval and captioning read test pairs through read_pairs / load_references."""
    from unimo_kit.eval.caption import load_references

    src = pairs_file(tmp_path)
    errors: list[RecordError] = []
    references = load_references(src, on_error=errors.append)
    assert [(image_id, captions) for image_id, _, captions in references] == [
        ("good-1", ["a cat"]),
        ("good-2", ["a red car"]),
    ]
    assert_named(errors, src)
