"""Parser metric: tuple sets, hand-computed scores, CSV reading with malformed rows, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from unimo_kit.cli.eval_parse import parse as parse_command
from unimo_kit.data.scene_graph import SceneGraph
from unimo_kit.rewrite.parse_eval import evaluate_parser, read_factual_csv, tuple_set
from unimo_kit.utils import ErrorReport, RecordError


class TableParser:
    """A stand-in parser answering from a caption -> FACTUAL table (no spaCy)."""

    def __init__(self, table: dict[str, str]):
        self.table = table

    def parse_many(self, texts):
        for text in texts:
            graph = SceneGraph.from_factual(self.table.get(text, ""))
            graph.text = text
            yield graph


def test_tuple_set_kinds_and_lemmas() -> None:
    got = tuple_set("( Dogs , is , Brown ) , ( dogs , sit on , benches ) , ( tennis  balls )")
    assert got == {
        ("dog",),
        ("dog", "brown"),
        ("bench",),
        ("dog", "sit on", "bench"),
        ("tennis ball",),
    }
    # graph and string forms agree
    graph = SceneGraph.from_factual("( circle , is , red ) , ( circle , left of , star )")
    assert tuple_set(graph) == tuple_set(graph.to_factual())
    assert tuple_set("") == set()


@pytest.mark.parametrize(
    "bad", ["( a , b )", "( a , is , b , c )", "no tuple here", "( , is , b )"]
)
def test_tuple_set_rejects_malformed(bad: str) -> None:
    with pytest.raises(ValueError):
        tuple_set(bad)


def test_scores_hand_computed() -> None:
    gold = [
        ("c1", "( dog , is , brown ) , ( dog , on , bed )"),  # dog, bed, 1 attr, 1 rel
        ("c2", "( cat )"),  # 1 tuple
        ("c3", ""),  # empty gold
    ]
    table = {
        # dog, bed, (dog, brown) right; (dog, in, bed) wrong: tp=3 of pred 4, gold 4
        "c1": "( dog , is , brown ) , ( dog , in , bed )",
        "c2": "( cat )",  # exact
        "c3": "",  # empty and empty: F1 1.0, exact
    }
    scores = evaluate_parser(gold, TableParser(table), worst=2)
    assert scores.n_captions == 3
    f1_c1 = 2 * 3 / (4 + 4)
    assert scores.mean_f1 == pytest.approx((f1_c1 + 1.0 + 1.0) / 3)
    assert scores.exact_match == pytest.approx(2 / 3)
    assert (scores.overall.tp, scores.overall.n_pred, scores.overall.n_gold) == (4, 5, 5)
    objects = scores.kinds["objects"]
    assert (objects.tp, objects.n_pred, objects.n_gold) == (3, 3, 3)
    relations = scores.kinds["relations"]
    assert (relations.tp, relations.n_pred, relations.n_gold) == (0, 1, 1)
    assert relations.precision == 0.0 and relations.f1 == 0.0
    assert scores.kinds["attributes"].f1 == 1.0
    assert scores.worst[0].caption == "c1" and scores.worst[0].f1 == pytest.approx(f1_c1)
    assert len(scores.worst) == 2


def test_empty_prediction_against_gold_scores_zero() -> None:
    scores = evaluate_parser([("c", "( dog )")], TableParser({}))
    assert scores.mean_f1 == 0.0 and scores.exact_match == 0.0


def write_csv(path: Path, rows: list[str]) -> Path:
    path.write_text("image_id,caption,scene_graph\n" + "".join(r + "\n" for r in rows))
    return path


def test_read_csv_reports_malformed_rows(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "gold.csv",
        [
            '1,a red cup,"( cup , is , red )"',
            "2,only two fields",
            '3,a dog,"( dog )",extra',
            '4,"a multi\nline caption","( caption )"',
            '5,a cat,"( cat )"',
        ],
    )
    report = ErrorReport(stream=open("/dev/null", "w"))  # noqa: SIM115
    rows = list(read_factual_csv(path, on_error=report))
    assert [(c, line) for c, _, line in rows] == [
        ("a red cup", 2),
        ("a multi\nline caption", 5),
        ("a cat", 7),
    ]
    assert [e.line for e in report.errors] == [3, 4]
    assert all(str(e).startswith(f"{path}:") for e in report.errors)
    with pytest.raises(RecordError, match=r"gold.csv:3:"):
        list(read_factual_csv(path))


def test_read_csv_bom_and_rows_that_are_not_utf8(tmp_path: Path) -> None:
    """A BOM is skipped; a row with a Latin-1 byte is one FILE:LINE error, the rest is read."""
    path = tmp_path / "gold.csv"
    path.write_bytes(
        b'\xef\xbb\xbfcaption,scene_graph\na cup,"( cup )"\ncaf\xe9,"( cafe )"\na cat,"( cat )"\n'
    )
    report = ErrorReport(stream=open("/dev/null", "w"))  # noqa: SIM115
    rows = list(read_factual_csv(path, on_error=report))
    assert [(c, line) for c, _, line in rows] == [("a cup", 2), ("a cat", 4)]
    assert [str(e) for e in report.errors] == [
        f"{path}:3: not UTF-8 (byte 0xe9 in column 'caption')"
    ]


def test_evaluate_reports_unparsable_graph_with_line(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "gold.csv", ['1,a dog,"( dog , brown )"', '2,a cat,"( cat )"'])
    errors: list[RecordError] = []
    scores = evaluate_parser(
        read_factual_csv(path),
        TableParser({"a cat": "( cat )"}),
        on_error=errors.append,
        source=str(path),
    )
    assert scores.n_captions == 1 and scores.n_errors == 1 and scores.mean_f1 == 1.0
    assert errors[0].line == 2 and str(errors[0]).startswith(f"{path}:2:")


def test_cli_parse(tmp_path: Path) -> None:
    gold = write_csv(
        tmp_path / "gold.csv",
        [
            '1,a red cup on a table,"( cup , is , red ) , ( cup , on , table )"',
            '2,two dogs,"( dogs , is , 2 )"',
            '3,broken,"( a , b )"',
            "4,short",
        ],
    )
    out = tmp_path / "scores.json"
    runner = CliRunner()
    result = runner.invoke(parse_command, [str(gold), "--json", "-o", str(out), "--errors", "1"])
    assert result.exit_code == 0, result.output
    payload = json.loads(out.read_text())
    assert payload["n_captions"] == 2
    assert payload["n_errors"] == 1  # the unparsable graph; the short row is a CSV error
    assert payload["mean_f1"] == 1.0 and payload["exact_match"] == 1.0
    assert set(payload) >= {"objects", "attributes", "relations", "overall", "worst"}
    assert f"{gold}:4:" in result.output and f"{gold}:5:" in result.output  # warnings
    table = runner.invoke(parse_command, [str(gold), "--errors", "2"])
    assert table.exit_code == 0
    assert "mean per-caption tuple F1: 100.00" in table.output
    assert "gold: ( cup , is , red )" in table.output
    strict = runner.invoke(parse_command, [str(gold), "--strict"])
    assert strict.exit_code != 0 and f"{gold}:4:" in strict.output
