"""Result files back into Classification objects: for the report of a resumed run (the rows an
earlier run did) and for `ptm report`. Torch-free; reads what hdf5_results.py and
text_results.py write.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from ptmcli.results import Classification, Prediction
from ptmcli.sinks.resultfile import ERROR, OK, PENDING, output_kind


def h5_rows(f, rows: Iterable[int] | None = None) -> dict[int, Classification]:
    """{row: Classification} for the rows of an open results file that have a result."""
    import numpy as np

    status = f["status"][...]
    wanted = np.flatnonzero(status != PENDING) if rows is None else np.array(
        [r for r in rows if status[r] != PENDING], dtype=np.int64)
    if not len(wanted):
        return {}
    paths = f["path"].asstr()[...]
    # Whole columns, then pick: one read per dataset however scattered the rows are.
    index, label = f["top_index"][...], f["top_label"].asstr()[...]
    probability, error = f["top_probability"][...], f["error"].asstr()[...]
    found = {}
    for row in (int(r) for r in wanted):
        if status[row] == OK:
            predictions = tuple(
                Prediction(rank=j + 1, index=int(index[row, j]), label=str(label[row, j]),
                           probability=float(probability[row, j]))
                for j in range(index.shape[1]) if index[row, j] >= 0)
            found[row] = Classification(str(paths[row]), predictions)
        elif status[row] == ERROR:
            found[row] = Classification(str(paths[row]), error=str(error[row]) or "failed")
    return found


def text_result(fmt: str, record) -> Classification:
    """One jsonl object or csv/tsv row (wide format) of a results file."""
    if fmt == "jsonl":
        if record.get("status") != "ok":
            return Classification(record["path"], error=record.get("error") or "failed")
        return Classification(record["path"], tuple(
            Prediction(rank=int(p["rank"]), index=int(p["index"]), label=p["label"],
                       probability=float(p["probability"])) for p in record["predictions"]))
    path, status, error = record[1], record[2], record[3]
    if status != "ok":
        return Classification(path, error=error or "failed")
    fields = record[4:]
    predictions = tuple(
        Prediction(rank=j // 3 + 1, index=int(fields[j]), label=fields[j + 1], probability=float(fields[j + 2]))
        for j in range(0, len(fields) - 2, 3) if fields[j] != "")
    return Classification(path, predictions)


def read_results(path: Path) -> tuple[dict, list[str], dict[int, Classification]]:
    """(how it was made, every input's path in order, {row: result}) of any ptm results file.

    A text file records no provenance and only the rows that were done; an HDF5 file both.
    """
    kind = output_kind(path)
    if kind == "hdf5":
        from ptmcli.sinks.hdf5_results import open_h5, read_info

        with open_h5(path, "r", locking=False) as f:
            attrs = read_info(f, path)
            found = h5_rows(f)
            paths = [str(p) for p in f["path"].asstr()[...]]
        info = {key: (value.item() if hasattr(value, "item") else value) for key, value in attrs.items()}
        return info, paths, found
    from ptmcli.sinks.text_results import read_text_records

    records, _ = read_text_records(path, kind)
    latest: dict[int, Classification] = {}
    for record in records:
        position = int(record["input_index"] if kind == "jsonl" else record[0])
        latest[position] = text_result(kind, record)
    order = sorted(latest)
    return {}, [latest[p].path for p in order], {row: latest[p] for row, p in enumerate(order)}


def describe(info: dict) -> list[tuple[str, str]]:
    """A results file's attributes as the report's provenance lines."""
    if not info:
        return [("provenance", "not recorded (a text results file; HDF5 files record it)")]
    preprocess = info.get("preprocess", "{}")
    try:
        settings = json.loads(preprocess)
    except (TypeError, ValueError):
        settings = {}
    return [
        ("model", str(info.get("model", ""))),
        ("weights file", str(info.get("weights_file", ""))),
        ("weights SHA-256", str(info.get("weights_sha256", ""))),
        ("preprocessing", str(preprocess)),
        ("precision", str(settings.get("precision", ""))),
        ("device", str(info.get("device", ""))),
        # Files written before runtimes existed were computed by PyTorch.
        ("runtime", str(info.get("runtime", "")) or "torch"),
        ("shard", str(info.get("shard", "")) or "all inputs"),
    ]
