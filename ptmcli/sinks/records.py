"""A classification as a JSON object or as delimited fields: one definition for stdout and files.

Probabilities are float32 underneath: JSON carries 6 significant digits, csv/tsv 6 decimals.
Text from users (paths) and from errors is kept to one line per field.
"""

from __future__ import annotations

from ptmcli.results import Classification
from ptmcli.sinks.formats import one_line, probability_text, probability_value


def time_text(time: float | None) -> str:
    """A sampled frame's time as csv/tsv write it (microseconds, as results files key rows)."""
    return "" if time is None else f"{time:.6f}"


def _named(result: Classification) -> dict:
    return {"path": result.path} if result.time is None else {"path": result.path, "time": result.time}


def json_record(result: Classification) -> dict:
    """{"path", "status": "ok", "predictions": [...]} or {"path", "status": "error", "error"};
    a video's sampled frame has its "time" (seconds) after its path."""
    if not result.ok:
        return {**_named(result), "status": "error", "error": one_line(result.error or "")}
    return {
        **_named(result),
        "status": "ok",
        "predictions": [
            {"rank": p.rank, "index": p.index, "label": p.label, "probability": probability_value(p.probability)}
            for p in result.predictions
        ],
    }


def prediction_fields(result: Classification, times: bool = False) -> list[list[str]]:
    """One row per prediction (path, status, rank, index, label, probability, error), or one row
    for a failed input: the long format stdout prints. With `times` (a run with video frames),
    each frame's time follows its path."""
    named = [result.path, time_text(result.time)] if times else [result.path]
    if not result.ok:
        return [[*named, "error", "", "", "", "", one_line(result.error or "")]]
    return [[*named, "ok", str(p.rank), str(p.index), p.label, probability_text(p.probability), ""]
            for p in result.predictions]


PREDICTION_COLUMNS = ("path", "status", "rank", "index", "label", "probability", "error")


def prediction_columns(times: bool = False) -> tuple[str, ...]:
    return ("path", "time", *PREDICTION_COLUMNS[1:]) if times else PREDICTION_COLUMNS


def wide_header(top_k: int, times: bool = False) -> list[str]:
    """The columns of a csv/tsv results file: one row per input, k predictions across; with
    `times` (a run with video frames), a "time" column after the path."""
    header = ["input_index", "path", *(["time"] if times else []), "status", "error"]
    for rank in range(1, top_k + 1):
        header += [f"class_{rank}", f"label_{rank}", f"probability_{rank}"]
    return header


def wide_fields(position: int, result: Classification, top_k: int, times: bool = False) -> list[str]:
    fields = [str(position), result.path, *([time_text(result.time)] if times else []), result.status,
              one_line(result.error or "")]
    for p in result.predictions[:top_k]:
        fields += [str(p.index), p.label, probability_text(p.probability)]
    return fields + [""] * (len(wide_header(top_k, times)) - len(fields))
