"""`unimo index search`: the --queries file (JSONL by name or content, bad records reported
as FILE:LINE) and the -k range."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from index_texts import make_texts

from unimo_kit.cli.index import index
from unimo_kit.index.build import BuildConfig, build


@pytest.fixture(scope="module")
def text_index(tiny_spec, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("search")
    texts = folder / "texts.jsonl"
    texts.write_text(
        "".join(json.dumps({"id": f"t{i}", "text": t}) + "\n" for i, t in enumerate(make_texts(30)))
    )
    config = BuildConfig(input=str(texts), kind="texts", encoder=tiny_spec, index_type="flat")
    return build(config, folder / "idx", progress=False)


def search(text_index, *args):
    return CliRunner().invoke(index, ["search", str(text_index), *args])


def test_unusable_query_records_are_reported_by_line(text_index, tmp_path):
    queries = tmp_path / "q.jsonl"
    queries.write_text(
        '{"id": "a", "text": "a red star"}\n'
        '{"id": "b", "caption": "a blue circle"}\n'
        "not json\n"
        '{"id": "c", "text": null}\n'
        '{"id": "d", "text": " "}\n'
        '{"text": "two stars", "id": 7}\n'
    )
    res = search(text_index, "--queries", str(queries), "-k", "1")
    assert res.exit_code == 0, res.output
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert [line["query"]["id"] for line in lines] == ["a", "7"]
    assert f'{queries}:2: no "text" or "image" field' in res.stderr
    assert f"{queries}:3: invalid JSON" in res.stderr
    assert f'{queries}:4: "text" must be a non-empty string, got null' in res.stderr
    assert f"{queries}:5: \"text\" must be a non-empty string, got ' '" in res.stderr
    assert "4 malformed record(s) skipped" in res.stderr


def test_a_file_without_usable_queries_is_an_error(text_index, tmp_path):
    queries = tmp_path / "q.jsonl"
    queries.write_text('{"id": "a", "caption": "a red star"}\n{"id": "b", "query": "x"}\n')
    res = search(text_index, "--queries", str(queries))
    assert res.exit_code == 1
    assert f"Error: no usable queries in {queries} (2 lines skipped)" in res.output
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n")
    res = search(text_index, "--queries", str(blank))
    assert res.exit_code == 1 and "no usable queries" in res.output


def test_jsonl_is_recognised_by_content(text_index, tmp_path):
    as_json = tmp_path / "q.json"
    as_json.write_text('\n{"id": "a", "text": "a red star"}\n')
    res = search(text_index, "--queries", str(as_json), "-k", "1")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["query"] == {"id": "a", "text": "a red star"}
    plain = tmp_path / "q.txt"
    plain.write_text("a red star\n\ntwo blue circles\n")
    res = search(text_index, "--queries", str(plain), "-k", "1")
    assert [json.loads(line)["query"] for line in res.stdout.splitlines()] == [
        {"id": "line1", "text": "a red star"},
        {"id": "line3", "text": "two blue circles"},
    ]
    plain.write_bytes(b"a red star\ncaf\xe9 au lait\n")  # line 2 is Latin-1, not UTF-8
    res = search(text_index, "--queries", str(plain), "-k", "1")
    assert res.exit_code == 0, res.output
    assert [json.loads(line)["query"]["id"] for line in res.stdout.splitlines()] == ["line1"]
    assert f"{plain}:2: not UTF-8 (byte 0xe9 at column 4)" in res.stderr


@pytest.mark.parametrize("k", ["0", "-1"])
def test_k_must_be_positive(text_index, k):
    res = search(text_index, "--text", "a red star", "-k", k)
    assert res.exit_code == 2 and "Invalid value for '-k'" in res.output
