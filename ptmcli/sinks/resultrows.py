"""What every results file shares: how a run is described (RunInfo), its rows, and the one row
codec that turns a result into stored fields and stored fields back into a result, checking
every field it reads.

The formats (hdf5_results.py, text_results.py) store the same fields: a row's position in the
whole input list, its path, "ok" or "error", the error text, and k predictions (class index,
label, probability). Everything read back goes through `decoded()`, so a damaged or hand-edited
file fails here, in ptm's words, and nowhere deeper. `reading()` is the boundary every reader of
results files runs under (ARCHITECTURE.md, "Hostile bytes").

Torch-free: `ptm merge` and `ptm report` use these modules without loading PyTorch.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from ptmcli.errors import OutputUnwritable, PtmError
from ptmcli.results import Classification, Prediction, frame_time
from ptmcli.sinks.formats import bytes_text

FORMAT_NAME = "ptm-classify"
FORMAT_VERSION = 1

PENDING, OK, ERROR = 0, 1, 2
STATUS_NAMES = {PENDING: "pending", OK: "ok", ERROR: "error"}

# Error messages are stored in fixed-size fields while a job runs (a variable-length string
# would live in HDF5's heap, which a killed process can leave half-written); longer ones are cut.
ERROR_BYTES = 1024


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
    frame_times: bool = False  # the inputs hold sampled video frames: every format has their time

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
    """One input of this run: its position in the whole input list and its path; for a sampled
    frame of a video, its time (seconds)."""

    position: int
    path: str
    time: float | None = None

    @property
    def key(self) -> tuple[str, float | None]:
        """What names the row in a results file (Classification.key)."""
        return self.path, self.time


# --- the boundary: a damaged results file is one line -------------------------------------------


class ResultsDamaged(OutputUnwritable):
    """A results file that is not what ptm wrote: damaged, cut short or edited (exit 2)."""


class Damaged(ValueError):
    """Raised by the checks below with ptm's words for what is wrong; `reading()` names the file."""


_HINTS = {
    "resume": ["it cannot be resumed: --force starts it over (its results are lost), or choose another --output"],
    "merge": ["run that shard again (with --force) and merge again; nothing was written"],
    "report": ["it is not a results file ptm wrote, or it was damaged after"],
}


@contextlib.contextmanager
def reading(path: Path, purpose: str) -> Iterator[None]:
    """Run a reader of `path`: ptm's own errors pass, anything else is one ResultsDamaged."""
    try:
        yield
    except PtmError:
        raise
    except Damaged as exc:
        raise ResultsDamaged(f"{path} is damaged ({exc})", _HINTS[purpose]) from exc
    except MemoryError as exc:
        raise ResultsDamaged(f"{path} is damaged (it claims more rows than memory holds)", _HINTS[purpose]) from exc
    except Exception as exc:
        text = (str(exc).strip().splitlines() or [""])[0][:200]
        raise ResultsDamaged(f"{path} is damaged or not a ptm results file ({type(exc).__name__}: {text})",
                             _HINTS[purpose]) from exc


def check(condition: bool, what: str) -> None:
    if not condition:
        raise Damaged(what)


def as_int(value, what: str, low: int = 0) -> int:
    """An integer field (a Python or NumPy int, or its decimal text), at least `low`."""
    if isinstance(value, (bool, float)) or (not hasattr(value, "__index__") and not isinstance(value, str)):
        raise Damaged(f"{what} is {value!r}, not a whole number")
    if isinstance(value, str):
        check(re.fullmatch(r"-?\d{1,18}", value.strip()) is not None, f"{what} is {value!r}, not a whole number")
    number = int(value)
    check(number >= low, f"{what} is {number}, below {low}")
    return number


def as_probability(value, what: str) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise Damaged(f"{what} is {value!r}, not a number") from None
    check((isinstance(value, (int, float)) and not isinstance(value, bool)) or hasattr(value, "dtype"),
          f"{what} is {value!r}, not a number")
    number = float(value)
    check(math.isfinite(number) and -1e-6 <= number <= 1 + 1e-6, f"{what} is {number}, not a probability")
    return number


def as_time(value, what: str) -> float | None:
    """A sampled frame's time (seconds, at least 0), or None: absent, empty, or NaN (a photo)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise Damaged(f"{what} is {value!r}, not a number") from None
    check((isinstance(value, (int, float)) and not isinstance(value, bool)) or hasattr(value, "dtype"),
          f"{what} is {value!r}, not a number")
    number = float(value)
    if math.isnan(number):
        return None
    check(math.isfinite(number) and 0 <= number < 1e9, f"{what} is {number}, not a time in a video")
    return frame_time(number)


def as_text(value, what: str) -> str:
    check(isinstance(value, str), f"{what} is {value!r}, not text")
    return value


def parse_shard_text(text: str) -> tuple[int, int] | None:
    """A file's `shard` attribute ("K/N", or "" for a whole run) as (K, N)."""
    if not text:
        return None
    match = re.fullmatch(r"(\d{1,9})/(\d{1,9})", text.strip())
    check(match is not None, f"its shard is {text!r}, not K/N")
    index, count = int(match.group(1)), int(match.group(2))
    check(1 <= index <= count, f"its shard is {text!r}: shard {index} of {count} does not exist")
    return index, count


# --- the row codec -------------------------------------------------------------------------------


def encode(text: str, limit: int | None = None) -> bytes:
    data = text.replace("\n", " ").replace("\r", " ").encode("utf-8", "surrogateescape")
    if limit is not None and len(data) > limit:
        data = data[:limit].decode("utf-8", "ignore").encode("utf-8")
    return data


def label_bytes(categories: Sequence[str]) -> int:
    return max([1, *(len(encode(c)) for c in categories)])


def decoded(where: str, path, status: str, error, predictions, time=None) -> Classification:
    """Stored fields -> a Classification, each field checked. `predictions` is (index, label,
    probability) per rank, in rank order; `time` a video frame's (None, "" or NaN for a photo);
    `where` names the row in messages ("line 3")."""
    path = as_text(path, f"{where}: the path")
    time = as_time(time, f"{where}: the time")
    check(status in ("ok", "error"), f"{where}: the status is {status!r}, not ok or error")
    if status == "error":
        return Classification(path, error=as_text(error or "", f"{where}: the error") or "failed", time=time)
    found = []
    for rank, (index, label, probability) in enumerate(predictions, start=1):
        found.append(Prediction(rank=rank, index=as_int(index, f"{where}: class {rank}"),
                                label=as_text(label, f"{where}: label {rank}"),
                                probability=as_probability(probability, f"{where}: probability {rank}")))
    return Classification(path, tuple(found), time=time)


def encoded(result: Classification, top_k: int) -> tuple[str, str, list[tuple[int, str, float]]]:
    """A Classification -> (status, error, [(index, label, probability)] of at most top_k)."""
    if not result.ok:
        return "error", result.error or "", []
    return "ok", "", [(p.index, p.label, p.probability) for p in result.predictions[:top_k]]


# --- checks before and while writing ----------------------------------------------------------------


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
