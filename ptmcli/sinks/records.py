"""A classification as a JSON object or as delimited fields: one definition for stdout and files.

Probabilities are float32 underneath: JSON carries 6 significant digits, csv/tsv 6 decimals.
Text from users (paths) and from errors is kept to one line per field.
"""

from __future__ import annotations

from ptmcli.results import Classification
from ptmcli.sinks.formats import one_line, probability_text, probability_value


def json_record(result: Classification) -> dict:
    """{"path", "status": "ok", "predictions": [...]} or {"path", "status": "error", "error"}."""
    if not result.ok:
        return {"path": result.path, "status": "error", "error": one_line(result.error or "")}
    return {
        "path": result.path,
        "status": "ok",
        "predictions": [
            {"rank": p.rank, "index": p.index, "label": p.label, "probability": probability_value(p.probability)}
            for p in result.predictions
        ],
    }


def prediction_fields(result: Classification) -> list[list[str]]:
    """One row per prediction (path, status, rank, index, label, probability, error), or one row
    for a failed input: the long format stdout prints."""
    if not result.ok:
        return [[result.path, "error", "", "", "", "", one_line(result.error or "")]]
    return [[result.path, "ok", str(p.rank), str(p.index), p.label, probability_text(p.probability), ""]
            for p in result.predictions]


PREDICTION_COLUMNS = ("path", "status", "rank", "index", "label", "probability", "error")


def wide_header(top_k: int) -> list[str]:
    """The columns of a csv/tsv results file: one row per input, k predictions across."""
    header = ["input_index", "path", "status", "error"]
    for rank in range(1, top_k + 1):
        header += [f"class_{rank}", f"label_{rank}", f"probability_{rank}"]
    return header


def wide_fields(position: int, result: Classification, top_k: int) -> list[str]:
    fields = [str(position), result.path, result.status, one_line(result.error or "")]
    for p in result.predictions[:top_k]:
        fields += [str(p.index), p.label, probability_text(p.probability)]
    return fields + [""] * (len(wide_header(top_k)) - len(fields))
