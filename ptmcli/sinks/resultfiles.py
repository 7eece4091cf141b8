"""Result files for batch jobs: HDF5 (.h5), JSON lines (.jsonl), CSV (.csv) and TSV (.tsv).

Every file holds one row per input, in input order, and is written batch by batch, so a job that
is killed loses at most the batch in flight, and `--resume` carries on where it stopped.

HDF5 crash safety. A running job writes a *working* file: every dataset is allocated in full when
the file is created (contiguous, uncompressed), so writing a batch only overwrites bytes at fixed
places and never touches HDF5's own bookkeeping (chunk indexes, heaps, free space). Resizing or
rewriting compressed chunks does touch it, and a process killed in the middle of a flush can then
leave a file h5py cannot open, or rows marked done whose data never reached the disk (we measured
both). Each batch is committed in two steps: its data, flush, then its `status`, flush; a row says
"ok" only once its numbers are on disk. When every input has a result, the working file is
rewritten as the *final* file (chunked, gzip-compressed, resizable datasets) in a temporary file
that replaces it atomically. Both layouts have the same datasets, shapes and meaning.

Text files are appended and flushed line by line; a resumed run appends its rows and, when it
completes, rewrites the file in input order.

Torch-free: `ptm merge` uses this module without loading PyTorch.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

from ptmcli.atomic import replacing, temp_beside
from ptmcli.errors import OutputExists, OutputUnwritable, UsageProblem
from ptmcli.results import BatchOutput, Classification

if TYPE_CHECKING:
    import numpy as np

FORMAT_NAME = "ptm-classify"
FORMAT_VERSION = 1

PENDING, OK, ERROR = 0, 1, 2
STATUS_NAMES = {PENDING: "pending", OK: "ok", ERROR: "error"}

# Error messages are stored in fixed-size fields while a job runs (a variable-length string
# would live in HDF5's heap, which a killed process can leave half-written); longer ones are cut.
ERROR_BYTES = 1024

HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")
TEXT_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "tsv"}

# Final layout: chunks of about this many bytes per dataset, gzip level 4 (readable everywhere).
_CHUNK_BYTES = 1 << 20
_COPY_BLOCK_BYTES = 32 << 20


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

    def attrs(self) -> dict:
        return {
            "ptm_format": FORMAT_NAME,
            "ptm_format_version": FORMAT_VERSION,
            "ptm_version": self.ptm_version,
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


def _check_free_space(path: Path, needed: int) -> None:
    try:
        stat = os.statvfs(path.parent)
    except (OSError, AttributeError):
        return
    free = stat.f_bavail * stat.f_frsize
    if needed > free:
        raise OutputUnwritable(
            f"not enough space for {path}: it needs about {_size(needed)}, {_size(free)} are free",
            ["free some space, or write to another disk with --output"],
        )


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def _write_failed(path: Path, exc: BaseException, done: int) -> OutputUnwritable:
    reason = getattr(exc, "strerror", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
    return OutputUnwritable(
        f"could not write {path} ({reason}); the {done:,} results written before are kept",
        ["free space (or fix the problem), then run the same command with --resume"],
    )


# --- rows of a batch as columns --------------------------------------------------------------


def _encode(text: str, limit: int | None = None) -> bytes:
    data = text.replace("\n", " ").replace("\r", " ").encode("utf-8", "surrogateescape")
    if limit is not None and len(data) > limit:
        data = data[:limit].decode("utf-8", "ignore").encode("utf-8")
    return data


def _label_bytes(categories: Sequence[str]) -> int:
    return max([1, *(len(_encode(c)) for c in categories)])


def batch_columns(batch: BatchOutput, info: RunInfo) -> dict[str, "np.ndarray"]:
    """A batch as one array per dataset (failed rows: index -1, NaN, empty labels)."""
    import h5py
    import numpy as np

    n, k = len(batch.results), info.top_k
    status = np.array([OK if r.ok else ERROR for r in batch.results], dtype=np.uint8)
    top_index = np.full((n, k), -1, dtype=np.int32)
    top_probability = np.full((n, k), np.nan, dtype=np.float32)
    # Fixed-size UTF-8 strings: h5py converts NumPy bytes only when they carry its string dtype.
    top_label = np.zeros((n, k), dtype=h5py.string_dtype("utf-8", _label_bytes(info.categories)))
    for i, result in enumerate(batch.results):
        for j, p in enumerate(result.predictions[:k]):
            top_index[i, j] = p.index
            top_probability[i, j] = p.probability
            top_label[i, j] = _encode(p.label)
    columns = {
        "status": status,
        "error": np.array([_encode(r.error or "", ERROR_BYTES) for r in batch.results],
                          dtype=h5py.string_dtype("utf-8", ERROR_BYTES)),
        "top_index": top_index,
        "top_label": top_label,
        "top_probability": top_probability,
    }
    if info.save_probabilities:
        columns["probabilities"] = np.asarray(batch.probabilities, dtype=np.float32)
    if info.feature_dim:
        columns["features"] = np.asarray(batch.features, dtype=np.float32)
    return columns


def _runs(rows: Sequence[int]) -> Iterator[tuple[int, int, int]]:
    """(first row, end row, offset in `rows`) for each stretch of consecutive rows."""
    start = 0
    for i in range(1, len(rows) + 1):
        if i == len(rows) or rows[i] != rows[i - 1] + 1:
            yield rows[start], rows[i - 1] + 1, start
            start = i


# --- HDF5 -------------------------------------------------------------------------------------


def _row_datasets(info: RunInfo, error_bytes: int) -> list[tuple[str, tuple[int, ...], object]]:
    """(name, shape of one row, dtype) of every dataset written batch by batch."""
    import h5py
    import numpy as np

    k = info.top_k
    specs = [
        ("status", (), h5py.enum_dtype(dict(zip(STATUS_NAMES.values(), STATUS_NAMES.keys())), basetype="u1")),
        ("error", (), h5py.string_dtype("utf-8", max(1, error_bytes))),
        ("top_index", (k,), np.dtype(np.int32)),
        ("top_label", (k,), h5py.string_dtype("utf-8", _label_bytes(info.categories))),
        ("top_probability", (k,), np.dtype(np.float32)),
    ]
    if info.save_probabilities:
        specs.append(("probabilities", (len(info.categories),), np.dtype(np.float32)))
    if info.feature_dim:
        specs.append(("features", (info.feature_dim,), np.dtype(np.float32)))
    return specs


def _row_bytes(info: RunInfo) -> int:
    import numpy as np

    total = 8  # input_index
    for name, shape, dtype in _row_datasets(info, ERROR_BYTES):
        if name != "error":  # left as a hole unless the input fails
            total += int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    return total


def _open_h5(path: Path, mode: str, **kwargs):
    import h5py

    try:
        return h5py.File(path, mode, **kwargs)
    except OSError as exc:
        text = str(exc)
        if "lock" in text:
            raise OutputUnwritable(
                f"{path} is open in another process",
                ["wait for that run to end; to only look at a running job's file, open it with "
                 "h5py.File(path, 'r', locking=False)"],
            ) from None
        raise OutputUnwritable(
            f"cannot open {path} as HDF5 ({text.splitlines()[0] if text else type(exc).__name__})",
            ["if it is a damaged results file, rerun with --force to start it over"],
        ) from None


def _read_info(f, path: Path) -> dict:
    attrs = {key: f.attrs[key] for key in f.attrs}
    if attrs.get("ptm_format") != FORMAT_NAME:
        raise OutputUnwritable(f"{path} is not a ptm classify results file",
                               ["choose another --output, or --force to replace it"])
    if int(attrs.get("ptm_format_version", 0)) > FORMAT_VERSION:
        raise OutputUnwritable(f"{path} was written by a newer ptm (format {attrs['ptm_format_version']})",
                               ["upgrade ptm"])
    return attrs


def _describe_h5(f) -> dict:
    """What must agree between a file and a run (or between merged files)."""
    attrs = f.attrs
    return {
        "model": str(attrs.get("model")),
        "weights_sha256": str(attrs.get("weights_sha256")),
        "preprocess": str(attrs.get("preprocess")),
        "top_k": int(attrs.get("top_k", -1)),
        "probabilities": f["probabilities"].shape[1:] if "probabilities" in f else None,
        "features": f["features"].shape[1:] if "features" in f else None,
    }


def _describe_run(info: RunInfo) -> dict:
    return {
        "model": info.model,
        "weights_sha256": info.weights_sha256,
        "preprocess": info.attrs()["preprocess"],
        "top_k": info.top_k,
        "probabilities": (len(info.categories),) if info.save_probabilities else None,
        "features": (info.feature_dim,) if info.feature_dim else None,
    }


_OPTION_OF = {"model": "--model", "weights_sha256": "--weights", "preprocess": "--model, --precision or --exact-decode",
              "top_k": "--top", "probabilities": "--save-probs", "features": "--save-features"}


def _mismatch(have: dict, want: dict) -> list[str]:
    return [f"{key}: file has {have[key]!r}, this run {want[key]!r} ({_OPTION_OF[key]})"
            for key in want if have[key] != want[key]]


def _preallocated(f, name: str, shape: tuple, dtype) -> None:
    """A contiguous dataset whose space is reserved now and never moves (see module docstring)."""
    import h5py

    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)  # unwritten rows stay holes; they read as zeros
    f.create_dataset(name, shape, dtype=dtype, dcpl=dcpl)


def _vlen_bytes(texts: Sequence[str]) -> "np.ndarray":
    import numpy as np

    array = np.empty(len(texts), dtype=object)
    array[:] = [_encode(t) for t in texts]
    return array


def _write_header(f, info: RunInfo, rows: Sequence[Row], layout: str, complete: bool) -> None:
    import h5py
    import numpy as np

    for key, value in info.attrs().items():
        f.attrs[key] = value
    f.attrs["layout"] = layout
    f.attrs["complete"] = complete
    f.create_dataset("classes", data=_vlen_bytes(info.categories), dtype=h5py.string_dtype())
    if layout == "working":
        f.create_dataset("path", data=_vlen_bytes([r.path for r in rows]), dtype=h5py.string_dtype())
        f.create_dataset("input_index", data=np.array([r.position for r in rows], dtype=np.int64))


def _create_working(path: Path, rows: Sequence[Row], info: RunInfo,
                    fill: Callable[[object], None] | None = None) -> None:
    """Write a complete working file beside `path`, then move it into place."""
    import h5py

    try:
        with replacing(path) as tmp, h5py.File(tmp, "w", libver="earliest") as f:
            _write_header(f, info, rows, "working", complete=False)
            for name, shape, dtype in _row_datasets(info, ERROR_BYTES):
                _preallocated(f, name, (len(rows), *shape), dtype)
            if fill is not None:
                fill(f)
    except OSError as exc:
        raise OutputUnwritable(f"cannot create {path} ({exc.strerror or str(exc).splitlines()[0]})",
                               ["free some space or choose another --output"]) from None


def _copy_rows_by_path(old, new, rows: Sequence[Row]) -> None:
    """Copy the rows of `old` that are done ("ok") into `new`, where their paths are now."""
    import numpy as np

    old_status = old["status"][...]
    old_paths = old["path"][...]
    wanted: dict[bytes, list[int]] = {}
    for i, row in enumerate(rows):
        wanted.setdefault(_encode(row.path), []).append(i)
    pairs = sorted(
        (new_row, int(old_row))
        for old_row in np.flatnonzero(old_status == OK)
        for new_row in wanted.get(bytes(old_paths[old_row]), ())
    )
    # Error text is empty for rows that are ok: leave that field a hole.
    names = [name for name, _, _ in _row_datasets_of(new) if name != "error"]
    for start in range(0, len(pairs), 4096):
        chunk = pairs[start:start + 4096]
        new_rows = [p[0] for p in chunk]
        old_rows = np.array([p[1] for p in chunk], dtype=np.int64)
        low, high = int(old_rows.min()), int(old_rows.max()) + 1
        for name in names:
            values = old[name][low:high][old_rows - low]
            for first, end, offset in _runs(new_rows):
                new[name][first:end] = values[offset:offset + end - first]


def _row_datasets_of(f) -> list[tuple[str, tuple, object]]:
    return [(name, f[name].shape[1:], f[name].dtype) for name in
            ("status", "error", "top_index", "top_label", "top_probability", "probabilities", "features")
            if name in f]


class Hdf5Results:
    """A run's HDF5 results file: create or reopen, write batches, compact when complete."""

    def __init__(self, path: Path, rows: Sequence[Row], info: RunInfo, resume: bool):
        import numpy as np

        self.path = path
        self.rows = rows
        self.info = info
        self.written = 0
        self._file = None
        self._final_already = False
        needed = len(rows) * _row_bytes(info)
        if not (resume and path.exists()):
            _check_free_space(path, needed)
            _create_working(path, rows, info)
        else:
            with _open_h5(path, "r") as old:
                _read_info(old, path)
                problems = _mismatch(_describe_h5(old), _describe_run(info))
                if problems:
                    raise OutputUnwritable(
                        f"{path} holds results made differently from this run",
                        [*problems, "rerun with the options it was made with, or use another --output "
                         "(--force starts it over)"],
                    )
                same_rows = (
                    old["path"].shape[0] == len(rows)
                    and np.array_equal(old["input_index"][...], [r.position for r in rows])
                    and list(old["path"][...]) == [_encode(r.path) for r in rows]
                )
                working = str(old.attrs.get("layout")) == "working"
                all_ok = bool((old["status"][...] == OK).all())
                if same_rows and not working and all_ok:
                    self._final_already = True  # nothing to redo: leave the file untouched
                elif not (same_rows and working):
                    # Other inputs, or failed rows to retry in a compressed file: copy the rows
                    # that are done into a new working file, in this run's order.
                    _check_free_space(path, needed)
                    _create_working(path, rows, info, fill=lambda new: _copy_rows_by_path(old, new, rows))
            if same_rows and working:
                allocated = os.stat(path).st_blocks * 512
                _check_free_space(path, max(0, needed - allocated))
        if self._final_already:
            self._status = np.full(len(rows), OK, dtype=np.uint8)
        else:
            self._file = _open_h5(path, "r+")
            self._status = self._file["status"][...]
        self.todo: list[int] = [int(i) for i in np.flatnonzero(self._status != OK)]

    def write(self, local_rows: Sequence[int], batch: BatchOutput) -> None:
        import numpy as np

        columns = batch_columns(batch, self.info)
        f = self._file
        try:
            for name, values in columns.items():
                if name in ("status", "error"):
                    continue
                dataset = f[name]
                for start, stop, offset in _runs(local_rows):
                    dataset[start:stop] = values[offset:offset + stop - start]
            # Error text only where there is or was an error: the field stays a hole elsewhere.
            for i, row in enumerate(local_rows):
                if columns["status"][i] == ERROR or self._status[row] == ERROR:
                    f["error"][row] = columns["error"][i]
            f.flush()
            for start, stop, offset in _runs(local_rows):
                f["status"][start:stop] = columns["status"][offset:offset + stop - start]
            f.flush()
        except OSError as exc:
            raise _write_failed(self.path, exc, int((self._status != PENDING).sum())) from None
        self._status[np.asarray(local_rows, dtype=np.int64)] = columns["status"]
        self.written += len(local_rows)

    @property
    def complete(self) -> bool:
        return not (self._status == PENDING).any()

    def close(self) -> None:
        """Flush and close; when every row has a result, rewrite as the compact final file."""
        if self._file is not None:
            try:
                self._file.flush()
                self._file.close()
            except (OSError, ValueError):
                pass
            self._file = None
        if self.complete and not self._final_already:
            self._final_already = True
            try:
                compact(self.path)
            except OSError as exc:
                raise OutputUnwritable(
                    f"every result is in {self.path}, but compressing it failed "
                    f"({exc.strerror or str(exc).splitlines()[0]})",
                    ["the file is complete and readable as it is; free space and run the same "
                     "command with --resume to compress it"],
                ) from None

    def abort(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except (OSError, ValueError):
                pass
            self._file = None


def compact(path: Path) -> None:
    """Rewrite a working file as a final one (chunked, compressed), atomically."""
    import numpy as np

    with _open_h5(path, "r") as source:
        if str(source.attrs.get("layout")) != "working":
            return
        attrs = {key: source.attrs[key] for key in source.attrs}
        n = source["status"].shape[0]
        plan = MergePlan([source], np.zeros(n, dtype=np.int64), np.arange(n, dtype=np.int64))
        write_final(path, attrs, plan)


@dataclass
class MergePlan:
    """Row i of the result comes from row `rows[i]` of file `sources[files[i]]`."""

    sources: list
    files: "np.ndarray"
    rows: "np.ndarray"


def _final_dataset(f, name: str, n: int, row_shape: tuple, dtype) -> None:
    import numpy as np

    row_bytes = max(1, int(np.prod(row_shape, dtype=np.int64)) * (np.dtype(dtype).itemsize or 16))
    chunk_rows = max(1, min(max(n, 1), _CHUNK_BYTES // row_bytes))
    f.create_dataset(
        name, (n, *row_shape), dtype=dtype, chunks=(chunk_rows, *row_shape), maxshape=(None, *row_shape),
        compression="gzip", compression_opts=4, shuffle=np.dtype(dtype).kind in "fiu",
    )


def write_final(dest: Path, attrs: dict, plan: MergePlan, complete: bool = True) -> None:
    """Write rows chosen by `plan` into a final-layout file at `dest` (via a temporary file)."""
    import h5py
    import numpy as np

    first = plan.sources[0]
    n = len(plan.rows)
    names = [name for name in ("status", "error", "top_index", "top_label", "top_probability",
                               "probabilities", "features") if name in first]
    longest_error = 1
    for source in plan.sources:
        failed = np.flatnonzero(source["status"][...] == ERROR)
        if len(failed):
            longest_error = max(longest_error, max(len(bytes(e).rstrip(b"\0")) for e in source["error"][failed]))
    with replacing(dest) as tmp, h5py.File(tmp, "w", libver="earliest") as out:
        for key, value in attrs.items():
            out.attrs[key] = value
        out.attrs["layout"] = "final"
        out.create_dataset("classes", data=first["classes"][...], dtype=h5py.string_dtype())
        _final_dataset(out, "path", n, (), h5py.string_dtype())
        _final_dataset(out, "input_index", n, (), np.dtype(np.int64))
        for name in names:
            dtype = first[name].dtype
            if name == "error":
                dtype = h5py.string_dtype("utf-8", longest_error)
            _final_dataset(out, name, n, first[name].shape[1:], dtype)
        row_bytes = sum(int(np.prod(first[nm].shape[1:], dtype=np.int64)) * first[nm].dtype.itemsize
                        for nm in names) + 64
        block = max(1, _COPY_BLOCK_BYTES // row_bytes)
        pending = False
        for a in range(0, n, block):
            b = min(n, a + block)
            columns = _gather(plan, a, b, ["path", "input_index", *names])
            status = columns["status"]
            pending |= bool((status == PENDING).any())
            not_ok = status != OK
            columns["error"] = np.where(status == ERROR, columns["error"], b"").astype(
                h5py.string_dtype("utf-8", longest_error))
            columns["top_index"][not_ok] = -1
            columns["top_label"][not_ok] = b""
            columns["top_probability"][not_ok] = np.nan
            for name in ("probabilities", "features"):
                if name in columns:
                    columns[name][not_ok] = np.nan
            for name, values in columns.items():
                out[name][a:b] = values
        out.attrs["complete"] = complete and not pending


def _gather(plan: MergePlan, a: int, b: int, names: list[str]) -> dict:
    import numpy as np

    files, rows = plan.files[a:b], plan.rows[a:b]
    columns: dict = {}
    for index, source in enumerate(plan.sources):
        mask = files == index
        if not mask.any():
            continue
        wanted = rows[mask]
        low, high = int(wanted.min()), int(wanted.max()) + 1
        for name in names:
            values = source[name][low:high][wanted - low]
            if name not in columns:
                columns[name] = np.empty((b - a, *values.shape[1:]), dtype=values.dtype)
            elif values.dtype.itemsize > columns[name].dtype.itemsize:
                # Fixed-size strings: files differ in width (the longest error of each shard).
                columns[name] = columns[name].astype(values.dtype)
            columns[name][mask] = values
    return columns


# --- text -----------------------------------------------------------------------------------


def _text_header(fmt: str, top_k: int) -> list[str]:
    header = ["input_index", "path", "status", "error"]
    for rank in range(1, top_k + 1):
        header += [f"class_{rank}", f"label_{rank}", f"probability_{rank}"]
    return header


def _round(p: float) -> float:
    return float(f"{p:.6g}")


def text_record(fmt: str, position: int, result: Classification, top_k: int):
    """A result as a JSON object (jsonl) or a list of fields (csv/tsv)."""
    if fmt == "jsonl":
        record = {"input_index": position, **result.to_dict()}
        if "predictions" in record:
            record["predictions"] = [{**p, "probability": _round(p["probability"])} for p in record["predictions"]]
        if "error" in record:
            record["error"] = record["error"].replace("\n", " ").replace("\r", " ")
        return record
    fields = [str(position), result.path, result.status,
              (result.error or "").replace("\n", " ").replace("\r", " ")]
    for p in result.predictions[:top_k]:
        fields += [str(p.index), p.label, f"{p.probability:.6f}"]
    return fields + [""] * (len(_text_header(fmt, top_k)) - len(fields))


def _serialize(fmt: str, record) -> str:
    if fmt == "jsonl":
        return json.dumps(record, ensure_ascii=False) + "\n"
    buffer = io.StringIO()
    csv.writer(buffer, dialect="excel" if fmt == "csv" else "excel-tab", lineterminator="\n").writerow(record)
    return buffer.getvalue()


def read_text_records(path: Path, fmt: str, top_k: int | None = None) -> tuple[list, int]:
    """Records of a jsonl/csv/tsv results file, and the byte length of its complete lines.

    A last line without its newline is what a killed writer leaves: it is not counted.
    """
    data = path.read_bytes()
    complete = data.rfind(b"\n") + 1
    text = data[:complete].decode("utf-8", "surrogateescape")
    records: list = []
    try:
        if fmt == "jsonl":
            for number, line in enumerate(text.splitlines(), 1):
                if line.strip():
                    record = json.loads(line)
                    if not isinstance(record, dict) or not {"input_index", "path", "status"} <= record.keys():
                        raise ValueError(f"line {number} is not a ptm result")
                    records.append(record)
        else:
            reader = csv.reader(io.StringIO(text, newline=""), dialect="excel" if fmt == "csv" else "excel-tab")
            header = next(reader, None)
            if header is not None:
                if header[:4] != ["input_index", "path", "status", "error"]:
                    raise ValueError("its header is not ptm's")
                if top_k is not None and header != _text_header(fmt, top_k):
                    raise OutputUnwritable(
                        f"{path} holds {(len(header) - 4) // 3} classes per input, this run {top_k}",
                        ["rerun with the --top it was made with, or use another --output"],
                    )
                records = [row for row in reader if row]
    except (ValueError, json.JSONDecodeError, csv.Error) as exc:
        raise OutputUnwritable(f"{path} is not a ptm {fmt} results file ({exc})",
                               ["choose another --output, or --force to replace it"]) from None
    return records, complete


def _record_fields(fmt: str, record) -> tuple[int, str, str]:
    if fmt == "jsonl":
        return int(record["input_index"]), record["path"], record["status"]
    return int(record[0]), record[1], record[2]


def _with_position(fmt: str, record, position: int):
    if fmt == "jsonl":
        return {**record, "input_index": position}
    return [str(position), *record[1:]]


class TextResults:
    """A jsonl/csv/tsv results file, appended line by line, flushed per batch."""

    def __init__(self, path: Path, fmt: str, rows: Sequence[Row], info: RunInfo, resume: bool):
        self.path = path
        self.fmt = fmt
        self.rows = rows
        self.info = info
        self.written = 0
        self._failed = 0
        done_paths: set[str] = set()
        self._rewrite = False
        if resume and path.exists():
            records, complete = read_text_records(path, fmt, info.top_k)
            if fmt == "jsonl" and info.top_k:
                for record in records:
                    if record.get("status") == "ok" and len(record.get("predictions", ())) != info.top_k:
                        raise OutputUnwritable(
                            f"{path} holds {len(record['predictions'])} classes per input, this run {info.top_k}",
                            ["rerun with the --top it was made with, or use another --output"])
            latest = {}
            for record in records:
                _, record_path, status = _record_fields(fmt, record)
                latest[record_path] = status
            done_paths = {p for p, status in latest.items() if status == "ok"}
            self._rewrite = bool(records)
            try:
                with open(path, "r+b") as handle:
                    handle.truncate(complete)
                    if fmt != "jsonl" and complete == 0:
                        handle.write(_serialize(fmt, _text_header(fmt, info.top_k)).encode())
            except OSError as exc:
                raise _write_failed(path, exc, len(records)) from None
            mode = "a"
        else:
            mode = "w"
        self.todo = [i for i, row in enumerate(rows) if row.path not in done_paths]
        self._pending = set(self.todo)
        try:
            self._handle = open(path, mode, encoding="utf-8", errors="surrogateescape", newline="")
            if mode == "w" and fmt != "jsonl":
                self._handle.write(_serialize(fmt, _text_header(fmt, info.top_k)))
                self._handle.flush()
        except OSError as exc:
            raise OutputUnwritable(f"cannot write {path} ({exc.strerror or exc})") from None

    def write(self, local_rows: Sequence[int], batch: BatchOutput) -> None:
        text = "".join(
            _serialize(self.fmt, text_record(self.fmt, self.rows[row].position, result, self.info.top_k))
            for row, result in zip(local_rows, batch.results)
        )
        try:
            self._handle.write(text)
            self._handle.flush()
        except OSError as exc:
            raise _write_failed(self.path, exc, self.written) from None
        self._pending.difference_update(local_rows)
        self.written += len(local_rows)

    @property
    def complete(self) -> bool:
        return not self._pending

    def abort(self) -> None:
        try:
            self._handle.close()
        except OSError:
            pass

    def close(self) -> None:
        try:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
        except OSError as exc:
            raise _write_failed(self.path, exc, self.written) from None
        if self.complete and self._rewrite:
            rewrite_text_in_order(self.path, self.fmt, self.rows, self.info.top_k)


def rewrite_text_in_order(path: Path, fmt: str, rows: Sequence[Row], top_k: int) -> None:
    """One line per input, in input order (the latest line of each path wins)."""
    records, _ = read_text_records(path, fmt, top_k)
    latest = {}
    for record in records:
        latest[_record_fields(fmt, record)[1]] = record
    lines = [] if fmt == "jsonl" else [_serialize(fmt, _text_header(fmt, top_k))]
    lines += [_serialize(fmt, _with_position(fmt, latest[row.path], row.position)) for row in rows]
    _atomic_write_text(path, "".join(lines))


def _atomic_write_text(path: Path, text: str) -> None:
    try:
        with replacing(path) as tmp, open(tmp, "w", encoding="utf-8", errors="surrogateescape",
                                          newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise OutputUnwritable(f"could not write {path} ({exc.strerror or exc})",
                               ["free space, then rerun with --resume"]) from None


# --- entry point ---------------------------------------------------------------------------------


def open_results(path: Path, rows: Sequence[Row], info: RunInfo, resume: bool):
    """An HDF5 or text results file for this run; `.todo` lists the rows still to compute."""
    kind = output_kind(path)
    if kind == "hdf5":
        return Hdf5Results(path, rows, info, resume)
    if info.save_probabilities or info.feature_dim:
        raise UsageProblem("--save-probs and --save-features need an HDF5 --output (.h5)")
    return TextResults(path, kind, rows, info, resume)
