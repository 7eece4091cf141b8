"""Result files for batch jobs: the one place that chooses the kind of file, by its suffix.

Every file holds one row per input, in input order, and is written batch by batch, so a job that
is killed loses at most the batch in flight, and `--resume` carries on where it stopped. Each kind
is one module that writes, reads (checking every field), resumes and merges: HDF5 (.h5) in
hdf5_results.py (and hdf5_final.py), JSON lines and CSV/TSV in text_results.py. What they share
(RunInfo, Row, the row codec, the reader boundary) is resultrows.py.

Torch-free: `ptm merge` uses these modules without loading PyTorch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from ptmcli.atomic import temp_beside
from ptmcli.errors import OutputExists, OutputUnwritable, UsageProblem
from ptmcli.sinks.resultrows import (  # noqa: F401 - the names callers import from here
    ERROR,
    ERROR_BYTES,
    FORMAT_NAME,
    FORMAT_VERSION,
    OK,
    PENDING,
    STATUS_NAMES,
    ResultsDamaged,
    Row,
    RunInfo,
    reading,
)

HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")
TEXT_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "tsv"}



def output_kind(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix in HDF5_SUFFIXES:
        return "hdf5"
    if suffix in TEXT_SUFFIXES:
        return TEXT_SUFFIXES[suffix]
    raise UsageProblem(
        f"--output {path}: unknown kind of file {suffix!r}",
        ["name it .h5 (HDF5, the only kind that can hold --save-probs/--save-features), "
         ".jsonl, .csv or .tsv"],
    )


# --- checks before any work ----------------------------------------------------------------


def check_output(path_text: str, resume: bool, force: bool) -> Path:
    """Refuse early (exit 2) what would fail later: a folder, no permission, an existing file."""
    path = Path(path_text)
    output_kind(path)
    if path.is_dir():
        raise OutputUnwritable(f"--output {path} is a directory", ["name a file, e.g. results.h5"])
    if path.exists() and not resume and not force:
        raise OutputExists(
            f"{path} already exists",
            ["--resume continues it (inputs already done are skipped, failed ones retried)",
             "--force replaces it; or choose another --output"],
        )
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        temp_beside(path).unlink()  # can a file be created there at all?
    except OSError as exc:
        raise OutputUnwritable(
            f"cannot write {path}: {exc.strerror or exc}", ["choose a folder you can write to"]
        ) from None
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise OutputUnwritable(f"cannot write {path}: permission denied", ["check its permissions"])
    return path


def results_format(path: str | Path):
    """The module that writes, reads, resumes and merges this kind of file (chosen by suffix)."""
    if output_kind(path) == "hdf5":
        from ptmcli.sinks import hdf5_results

        return hdf5_results
    from ptmcli.sinks import text_results

    return text_results


def open_results(path: Path, rows: Sequence[Row], info: RunInfo, resume: bool):
    """An HDF5 or text results file for this run; `.todo` lists the rows still to compute.

    On --resume, a file that is damaged is refused (ResultsDamaged, exit 2) and left as it is."""
    kind = output_kind(path)
    if kind != "hdf5" and (info.save_probabilities or info.feature_dim):
        raise UsageProblem("--save-probs and --save-features need an HDF5 --output (.h5)")
    with reading(path, "resume"):
        return results_format(path).open_results(path, kind, rows, info, resume)
