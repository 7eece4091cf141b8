"""Exported models in the user cache: built once per (model, weights, runtime and version,
precision), checked every time, rebuilt when damaged or stale, never trusted blindly.

    $XDG_CACHE_HOME/ptm/exports/<model>/<weights sha256[:16]>/<runtime>-<version>-<precision>/
        export.json        what was built from what, and the size and SHA-256 of every file
        model.onnx, ...    the runtime's files

An entry is built in a temporary folder beside its final place and renamed into place only when
complete, with `export.json` written last: a killed build leaves no entry, only a temporary folder
that the next build removes. Reading an entry checks its record against the key and every file's
size and SHA-256 (hashed once per size and mtime, as weight files are), so a truncated or edited
file is rebuilt, not loaded. A lock file keeps two processes from building the same entry at once.

Torch-free: finding and checking an entry imports nothing heavy; only building needs torch.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

from ptmcli.errors import PtmError

# Bumped when what is exported changes (graph outputs, preprocessing), so old entries are rebuilt.
EXPORT_FORMAT = 1
RECORD = "export.json"


@dataclass(frozen=True)
class ExportKey:
    model: str
    weights_sha256: str
    runtime: str
    runtime_version: str
    precision: str

    @property
    def folder_name(self) -> str:
        return f"{self.runtime}-{self.runtime_version}-{self.precision}"


@dataclass(frozen=True)
class Export:
    """A checked entry: its folder, and the record it was built with."""

    key: ExportKey
    folder: Path
    record: dict

    def file(self, name: str) -> Path:
        return self.folder / name


class ExportFailed(PtmError):
    """Building the runtime's files did not work (the runtime refused the model, disk full...)."""


def cache_root() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "ptm" / "exports"


def entry_folder(key: ExportKey) -> Path:
    return cache_root() / key.model / key.weights_sha256[:16] / key.folder_name


def _read_record(folder: Path) -> dict | None:
    try:
        record = json.loads((folder / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def find(key: ExportKey) -> Export | None:
    """The entry for `key` if it exists and every file checks out; None otherwise (build it)."""
    from ptmcli.models.weights import file_sha256

    folder = entry_folder(key)
    record = _read_record(folder)
    if record is None or record.get("format") != EXPORT_FORMAT or record.get("key") != asdict(key):
        return None
    files = record.get("files")
    if not isinstance(files, dict) or not files:
        return None
    for name, expected in files.items():
        path = folder / name
        try:
            if path.stat().st_size != expected.get("size") or file_sha256(path) != expected.get("sha256"):
                return None
        except (OSError, AttributeError):
            return None
    return Export(key, folder, record)


@contextmanager
def _build_lock(folder: Path) -> Iterator[None]:
    import fcntl

    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def build(key: ExportKey, make: Callable[[Path], dict], note: Callable[[str], None] | None = None) -> Export:
    """Build `key`'s entry with `make(folder) -> extra record fields`, unless another process just did.

    `make` writes the runtime's files into the (temporary) folder it is given.
    """
    from ptmcli.models.weights import remember_sha256, sha256_of

    folder = entry_folder(key)
    with _build_lock(folder):
        ready = find(key)
        if ready is not None:
            return ready
        for stale in folder.parent.glob(f".{folder.name}.*.tmp"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = folder.parent / f".{folder.name}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        started = time.perf_counter()
        try:
            extra = make(tmp)
            files = {p.name: {"size": p.stat().st_size, "sha256": sha256_of(p)}
                     for p in sorted(tmp.iterdir()) if p.is_file()}
            record = {"format": EXPORT_FORMAT, "key": asdict(key), "files": files,
                      "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                      "build_seconds": round(time.perf_counter() - started, 1), **extra}
            (tmp / RECORD).write_text(json.dumps(record, indent=1, sort_keys=True), encoding="utf-8")
            if folder.exists():
                shutil.rmtree(folder)
            os.rename(tmp, folder)
            remember_sha256({folder / name: entry["sha256"] for name, entry in files.items()})
        except OSError as exc:
            raise ExportFailed(f"cannot write the {key.runtime} files for {key.model} in {folder.parent} "
                               f"({exc.strerror or exc})", ["free some space, or set XDG_CACHE_HOME"]) from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if note is not None:
        note(f"built {key.runtime} {key.precision} files for {key.model} in {record['build_seconds']:.0f} s "
             f"({folder})")
    return Export(key, folder, record)


def entries(model: str, weights_sha256: str) -> list[Export]:
    """Every checked entry of one model and weights file (what `--runtime auto` chooses among)."""
    base = cache_root() / model / weights_sha256[:16]
    found = []
    try:
        names = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []
    for name in names:
        record = _read_record(base / name)
        if record is None or not isinstance(record.get("key"), dict):
            continue
        try:
            key = ExportKey(**record["key"])
        except TypeError:
            continue
        if key.model == model and key.weights_sha256 == weights_sha256:
            export = find(key)
            if export is not None:
                found.append(export)
    return found
