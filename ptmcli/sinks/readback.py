"""Result files back into Classification objects for `ptm report`, and their provenance lines.
Torch-free; each format module reads its own files (resultfile.results_format chooses).
"""

from __future__ import annotations

import json
from pathlib import Path

from ptmcli.results import Classification
from ptmcli.sinks.resultfile import output_kind, reading, results_format


def read_results(path: Path) -> tuple[dict, list[str], dict[int, Classification]]:
    """(how it was made, every input's path in order, {row: result}) of any ptm results file.

    A text file records no provenance and only the rows that were done; an HDF5 file both. A
    damaged file is one ResultsDamaged line naming it (the reader boundary)."""
    with reading(path, "report"):
        return results_format(path).read_results(path, output_kind(path))


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
