import json

import pytest

from unimo_kit.utils import (
    ErrorReport,
    RecordError,
    ResumableJsonlWriter,
    atomic_write,
    count_lines,
    find_lone_surrogate,
    iter_jsonl,
    load_line,
)


def test_iter_jsonl_reports_bad_lines_and_keeps_the_rest(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"id": 1}\nnot json\n\n[1, 2]\n{"id": 2}\n')
    report = ErrorReport()
    records = list(iter_jsonl(path, on_error=report))
    assert [(line, r["id"]) for line, r in records] == [(1, 1), (5, 2)]
    assert report.count == 2
    assert [e.line for e in report.errors] == [2, 4]
    assert str(report.errors[0]).startswith(f"{path}:2: invalid JSON")
    assert "expected a JSON object, got list" in str(report.errors[1])
    assert "2 malformed record(s)" in report.summary()


def test_iter_jsonl_strict_stops_at_first_error(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"id": 1}\n{"id": \n{"id": 3}\n')
    with pytest.raises(RecordError) as info:
        list(iter_jsonl(path, strict=True))
    assert info.value.line == 2


def test_resumable_writer_drops_torn_tail_and_knows_done_ids(tmp_path):
    path = tmp_path / "out.jsonl"
    with ResumableJsonlWriter(path) as writer:
        writer.write({"id": "a", "x": 1})
        writer.write_many([{"id": "b", "x": 2}, {"id": "b", "x": 3}])
    with open(path, "a") as handle:  # a kill in the middle of a line
        handle.write('{"id": "c", "x"')
    writer = ResumableJsonlWriter(path)
    assert writer.done == {"a", "b"}
    writer.write({"id": "c", "x": 4})
    writer.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["id"] for r in lines] == ["a", "b", "b", "c"]
    assert count_lines(path) == 4


def test_resumable_writer_fresh_start(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text('{"id": "old"}\n')
    with ResumableJsonlWriter(path, resume=False) as writer:
        assert writer.done == set()
        writer.write({"id": "new"})
    assert path.read_text() == '{"id":"new"}\n'


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(path) as handle:
        handle.write("new")
        raise RuntimeError("boom")
    assert path.read_text() == "old"
    assert not (tmp_path / "f.txt.tmp").exists()
    with atomic_write(path) as handle:
        handle.write("new")
    assert path.read_text() == "new"


def test_record_error_survives_pickling():
    import pickle

    error = pickle.loads(pickle.dumps(RecordError("a.jsonl", 3, "bad")))
    assert (error.path, error.line, error.message, str(error)) == (
        "a.jsonl",
        3,
        "bad",
        "a.jsonl:3: bad",
    )


def test_iter_jsonl_reports_lines_that_are_not_utf8(tmp_path):
    """A Latin-1 byte is reported with file, line and column, not read as U+FFFD."""
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"id": 1, "c": "caf\xc3\xa9"}\n{"id": 2, "c": "caf\xe9"}\r\n{"id": 3}\r\n')
    report = ErrorReport(stream=open("/dev/null", "w"))  # noqa: SIM115
    records = list(iter_jsonl(path, on_error=report))
    assert [(line, r["id"]) for line, r in records] == [(1, 1), (3, 3)]
    assert records[0][1]["c"] == "café"
    assert [str(e) for e in report.errors] == [f"{path}:2: not UTF-8 (byte 0xe9 at column 20)"]
    with pytest.raises(RecordError, match=r":2: not UTF-8"):
        list(iter_jsonl(path, strict=True))


def test_iter_jsonl_reads_a_file_opening_with_a_byte_order_mark(tmp_path):
    """Editors that save "UTF-8 with BOM" put EF BB BF before the first record."""
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"id": 1}\n{"id": 2}\n')
    assert [r["id"] for _, r in iter_jsonl(path, strict=True)] == [1, 2]


def _three_lines(path, bad_line: bytes) -> None:
    """One good, one bad and one good line."""
    path.write_bytes(b'{"id": "a", "c": "caf\\u00e9"}\n' + bad_line + b'\n{"id": "c"}\n')


@pytest.mark.parametrize(
    ("bad_line", "where"),
    [
        (b'{"id": "b", "captions": ["x", "\\ud800 dog"]}', "U+D800 in captions[1] (character 1)"),
        (b'{"id": "b", "meta": {"note": "end \\uDFFF"}}', "U+DFFF in meta.note (character 5)"),
        (b'{"id": "b", "meta": {"\\udce9": 1}}', "U+DCE9 in a key of meta (character 1)"),
        (
            b'{"id": "\\ud83d"}',
            "U+D83D in id (character 1)",
        ),  # the first half of a pair, the second missing
    ],
)
def test_iter_jsonl_names_and_skips_a_lone_surrogate(tmp_path, bad_line, where):
    """``"\\ud800"`` is valid JSON but no UTF-8 writer or tokenizer takes its string."""
    path = tmp_path / "in.jsonl"
    _three_lines(path, bad_line)
    report = ErrorReport(stream=open("/dev/null", "w"))  # noqa: SIM115
    records = list(iter_jsonl(path, on_error=report))
    assert [(line, r["id"]) for line, r in records] == [(1, "a"), (3, "c")]
    assert records[0][1]["c"] == "café"
    assert [e.line for e in report.errors] == [2]
    assert str(report.errors[0]) == f"{path}:2: lone surrogate {where}: not encodable as UTF-8"
    with pytest.raises(RecordError, match=r":2: lone surrogate"):
        list(iter_jsonl(path, strict=True))


def test_a_surrogate_pair_escape_and_an_escaped_backslash_are_fine(tmp_path):
    """A full UTF-16 pair decodes to one code point; ``\\\\ud800`` is a backslash and text."""
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"id": "a", "c": "\\ud83d\\ude00"}\n{"id": "b", "c": "\\\\ud800"}\n')
    records = [r for _, r in iter_jsonl(path, strict=True)]
    assert [r["c"] for r in records] == ["\U0001f600", "\\ud800"]


def test_surrogates_encoded_as_utf8_bytes_are_not_utf8(tmp_path):
    """CESU-style bytes ED A0 80 are refused by the decoder, so no surrogate gets through."""
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"id": "a"}\n{"id": "\xed\xa0\x80"}\n')
    with pytest.raises(RecordError, match=r":2: not UTF-8 \(byte 0xed at column 9\)"):
        list(iter_jsonl(path, strict=True))


def test_load_line_is_the_check_of_one_line():
    assert load_line("f.jsonl", 1, b'{"id": 1}\n') == {"id": 1}
    assert load_line("f.jsonl", 1, b"[1]") == [1]  # the caller checks for an object
    with pytest.raises(RecordError, match=r"^f\.jsonl:4: invalid JSON"):
        load_line("f.jsonl", 4, b'{"id": ')
    with pytest.raises(RecordError, match=r"^f\.jsonl:5: lone surrogate U\+DC80 in \[0\]"):
        load_line("f.jsonl", 5, b'["\\udc80"]')


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            {"a": ["ok", {"b": ("x", "y\ud800")}]},
            "lone surrogate U+D800 in a[1].b[1] (character 2)",
        ),
        ("caf\udce9", "lone surrogate U+DCE9 (character 4)"),  # a surrogateescape'd byte
        ({"a": 1, "b": None, "c": 2.5, "d": True, "e": "\U0001f600"}, None),
        ({1: "x"}, None),  # non-string keys (not JSON, but a dict in memory)
    ],
)
def test_find_lone_surrogate(value, expected):
    problem = find_lone_surrogate(value)
    assert problem == (None if expected is None else f"{expected}: not encodable as UTF-8")
