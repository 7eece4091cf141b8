"""Result files for batch jobs: what every kind shares, and the choice of kind.

Every file holds one row per input, in input order, and is written batch by batch, so a job that
is killed loses at most the batch in flight, and `--resume` carries on where it stopped. HDF5
(.h5) is in hdf5_results.py, JSON lines and CSV/TSV in text_results.py.

Torch-free: `ptm merge` uses these modules without loading PyTorch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ptmcli.atomic import temp_beside
from ptmcli.errors import OutputExists, OutputUnwritable, UsageProblem
from ptmcli.sinks.formats import bytes_text

FORMAT_NAME = "ptm-classify"
FORMAT_VERSION = 1

PENDING, OK, ERROR = 0, 1, 2
STATUS_NAMES = {PENDING: "pending", OK: "ok", ERROR: "error"}

# Error messages are stored in fixed-size fields while a job runs (a variable-length string
# would live in HDF5's heap, which a killed process can leave half-written); longer ones are cut.
ERROR_BYTES = 1024

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


@dataclass(frozen=True)
class RunInfo:
    """How the results were made: stored as attributes, checked on --resume and merge."""

    model: str
    weights_file: str
    weights_sha256: str
    preprocess: dict
    top_k: int
    categories: tuple[str, ...] = field(repr=False)
    save_probabilities: bool = False
    feature_dim: int | None = None
    shard: str = ""  # "K/N", or "" for a run over all inputs
    inputs_total: int = 0
    ptm_version: str = ""
    device: str = ""  # where the numbers were computed ("cpu", "cuda:0"): for people, never checked
    runtime: str = ""  # what computed them, with its version ("openvino 2026.4.1"): likewise
    precision: str = ""  # also inside `preprocess`, which --resume and merge check

    def attrs(self) -> dict:
        return {
            "ptm_format": FORMAT_NAME,
            "ptm_format_version": FORMAT_VERSION,
            "ptm_version": self.ptm_version,
            "device": self.device,
            "runtime": self.runtime,
            "precision": self.precision,
            "model": self.model,
            "weights_file": self.weights_file,
            "weights_sha256": self.weights_sha256,
            "preprocess": json.dumps(self.preprocess, sort_keys=True),
            "top_k": self.top_k,
            "shard": self.shard,
            "inputs_total": self.inputs_total,
        }


@dataclass(frozen=True)
class Row:
    """One input of this run: its position in the whole input list and its path."""

    position: int
    path: str


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


def check_free_space(path: Path, needed: int) -> None:
    try:
        stat = os.statvfs(path.parent)
    except (OSError, AttributeError):
        return
    free = stat.f_bavail * stat.f_frsize
    if needed > free:
        raise OutputUnwritable(
            f"not enough space for {path}: it needs about {bytes_text(needed)}, {bytes_text(free)} are free",
            ["free some space, or write to another disk with --output"],
        )


def write_failed(path: Path, exc: BaseException, done: int) -> OutputUnwritable:
    reason = getattr(exc, "strerror", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
    return OutputUnwritable(
        f"could not write {path} ({reason}); the {done:,} results written before are kept",
        ["free space (or fix the problem), then run the same command with --resume"],
    )


# --- rows of a batch as columns --------------------------------------------------------------


def encode(text: str, limit: int | None = None) -> bytes:
    data = text.replace("\n", " ").replace("\r", " ").encode("utf-8", "surrogateescape")
    if limit is not None and len(data) > limit:
        data = data[:limit].decode("utf-8", "ignore").encode("utf-8")
    return data


def label_bytes(categories: Sequence[str]) -> int:
    return max([1, *(len(encode(c)) for c in categories)])


def open_results(path: Path, rows: Sequence[Row], info: RunInfo, resume: bool):
    """An HDF5 or text results file for this run; `.todo` lists the rows still to compute."""
    kind = output_kind(path)
    if kind == "hdf5":
        from ptmcli.sinks.hdf5_results import Hdf5Results

        return Hdf5Results(path, rows, info, resume)
    if info.save_probabilities or info.feature_dim:
        raise UsageProblem("--save-probs and --save-features need an HDF5 --output (.h5)")
    from ptmcli.sinks.text_results import TextResults

    return TextResults(path, kind, rows, info, resume)
