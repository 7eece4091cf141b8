"""Writers: exact text for each format, streamed per batch, errors only when asked."""

from __future__ import annotations

import io
import json

from ptmcli.results import BatchOutput, Classification, Prediction
from ptmcli.sinks.console import ConsoleSink, pick_format

OK = Classification("a.jpg", (Prediction(1, 207, "golden retriever", 0.9412345678),
                              Prediction(2, 208, "Labrador retriever", 0.025)))
BAD = Classification("b.jpg", error="b.jpg: cannot decode image (truncated)")


def written(fmt: str, with_errors: bool = False, batches=((OK, BAD),)) -> str:
    out = io.StringIO()
    writer = ConsoleSink(fmt, out, with_errors=with_errors)
    for batch in batches:
        writer.write(range(len(batch)), BatchOutput(list(batch)))
    writer.close()
    return out.getvalue()


def test_tsv_exact():
    assert written("tsv") == (
        "path\tstatus\trank\tindex\tlabel\tprobability\terror\n"
        "a.jpg\tok\t1\t207\tgolden retriever\t0.941235\t\n"
        "a.jpg\tok\t2\t208\tLabrador retriever\t0.025000\t\n"
    )


def test_csv_with_errors_keeps_alignment():
    lines = written("csv", with_errors=True).splitlines()
    assert lines[-1] == "b.jpg,error,,,,,b.jpg: cannot decode image (truncated)"


def test_jsonl_one_object_per_image():
    [record] = [json.loads(line) for line in written("jsonl").splitlines()]
    assert record == {
        "path": "a.jpg", "status": "ok",
        "predictions": [
            {"rank": 1, "index": 207, "label": "golden retriever", "probability": 0.941235},
            {"rank": 2, "index": 208, "label": "Labrador retriever", "probability": 0.025},
        ],
    }


def test_json_streams_a_valid_list_across_batches():
    text = written("json", with_errors=True, batches=((OK,), (BAD,), ()))
    assert [r["status"] for r in json.loads(text)] == ["ok", "error"]
    assert json.loads(written("json", batches=())) == []


def test_auto_is_tsv_off_a_terminal():
    assert pick_format("auto", io.StringIO()) == "tsv"


def test_table_names_each_file_once():
    text = written("table")
    assert text.count("a.jpg") == 1 and "golden retriever" in text and "94.12%" in text
