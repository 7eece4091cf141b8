"""HDF5 result files (.h5): crash-safe while a job runs, compact when it is done.

HDF5 crash safety. A running job writes a *working* file: every dataset is allocated in full when
the file is created (contiguous, uncompressed), so writing a batch only overwrites bytes at fixed
places and never touches HDF5's own bookkeeping (chunk indexes, heaps, free space). Resizing or
rewriting compressed chunks does touch it, and a process killed in the middle of a flush can then
leave a file h5py cannot open, or rows marked done whose data never reached the disk (we measured
both). Each batch is committed in two steps: its data, flush, then its `status`, flush; a row says
"ok" only once its numbers are on disk. When every input has a result, the working file is
rewritten as the *final* file (chunked, gzip-compressed, resizable datasets) in a temporary file
that replaces it atomically. Both layouts have the same datasets, shapes and meaning.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence

from ptmcli.atomic import replacing
from ptmcli.errors import OutputUnwritable
from ptmcli.results import BatchOutput, Classification, frame_time
from ptmcli.sinks.hdf5_final import (  # noqa: F401 - merge and compact are this format's too
    ROW_COLUMNS,
    checked,
    compact,
    describe_file,
    merge_files,
    mismatches,
    open_h5,
)
from ptmcli.sinks.resultrows import (
    ERROR,
    ERROR_BYTES,
    OK,
    PENDING,
    STATUS_NAMES,
    Row,
    RunInfo,
    check_free_space,
    decoded,
    encode,
    encoded,
    label_bytes,
    reading,
    write_failed,
)

if TYPE_CHECKING:
    import numpy as np

def batch_columns(batch: BatchOutput, info: RunInfo) -> dict[str, "np.ndarray"]:
    """A batch as one array per dataset (failed rows: index -1, NaN, empty labels)."""
    import h5py
    import numpy as np

    n, k = len(batch.results), info.top_k
    status = np.array([OK if r.ok else ERROR for r in batch.results], dtype=np.uint8)
    top_index = np.full((n, k), -1, dtype=np.int32)
    top_probability = np.full((n, k), np.nan, dtype=np.float32)
    # Fixed-size UTF-8 strings: h5py converts NumPy bytes only when they carry its string dtype.
    top_label = np.zeros((n, k), dtype=h5py.string_dtype("utf-8", label_bytes(info.categories)))
    for i, result in enumerate(batch.results):
        for j, (index, label, probability) in enumerate(encoded(result, k)[2]):
            top_index[i, j] = index
            top_probability[i, j] = probability
            top_label[i, j] = encode(label)
    columns = {
        "status": status,
        "error": np.array([encode(r.error or "", ERROR_BYTES) for r in batch.results],
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
        ("top_label", (k,), h5py.string_dtype("utf-8", label_bytes(info.categories))),
        ("top_probability", (k,), np.dtype(np.float32)),
    ]
    if info.save_probabilities:
        specs.append(("probabilities", (len(info.categories),), np.dtype(np.float32)))
    if info.feature_dim:
        specs.append(("features", (info.feature_dim,), np.dtype(np.float32)))
    return specs


def _row_bytes(info: RunInfo) -> int:
    import numpy as np

    total = 16 if info.frame_times else 8  # input_index (and time)
    for name, shape, dtype in _row_datasets(info, ERROR_BYTES):
        if name != "error":  # left as a hole unless the input fails
            total += int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    return total


def _describe_run(info: RunInfo) -> dict:
    return {
        "model": info.model,
        "weights_sha256": info.weights_sha256,
        "preprocess": info.attrs()["preprocess"],
        "top_k": info.top_k,
        "probabilities": (len(info.categories),) if info.save_probabilities else None,
        "features": (info.feature_dim,) if info.feature_dim else None,
    }


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
    array[:] = [encode(t) for t in texts]
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
        if info.frame_times:  # a video's sampled frame: its time in seconds; NaN for a photo
            f.create_dataset("time", data=_times(rows), dtype=np.float64)


def _times(rows: Sequence[Row]) -> "np.ndarray":
    import numpy as np

    return np.array([np.nan if r.time is None else r.time for r in rows], dtype=np.float64)


def _keys(f) -> list[tuple[bytes, float | None]]:
    """(path, time) of every row of an open results file: what names a row on --resume."""
    import math

    paths = [bytes(p) for p in f["path"][...]]
    times = [None] * len(paths) if "time" not in f else [None if math.isnan(t) else frame_time(t)
                                                         for t in f["time"][...].tolist()]
    return list(zip(paths, times))


def _row_key(row: Row) -> tuple[bytes, float | None]:
    return encode(row.path), row.time


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
    old_keys = _keys(old)
    wanted: dict[tuple, list[int]] = {}
    for i, row in enumerate(rows):
        wanted.setdefault(_row_key(row), []).append(i)
    pairs = sorted(
        (new_row, int(old_row))
        for old_row in np.flatnonzero(old_status == OK)
        for new_row in wanted.get(old_keys[old_row], ())
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
    return [(name, f[name].shape[1:], f[name].dtype) for name in ROW_COLUMNS if name in f]


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
        self._done: dict[tuple, Classification] = {}
        needed = len(rows) * _row_bytes(info)
        if not (resume and path.exists()):
            check_free_space(path, needed)
            _create_working(path, rows, info)
        else:
            self._reopen(needed)
        if self._final_already:
            self._status = np.full(len(rows), OK, dtype=np.uint8)
        else:
            self._file = open_h5(path, "r+")
            self._status = self._file["status"][...]
        self.todo: list[int] = [int(i) for i in np.flatnonzero(self._status != OK)]

    def _reopen(self, needed: int) -> None:
        """Check what an earlier run wrote, keep its results, and carry on in a working file.

        Everything is read and checked before anything is written: a damaged file is refused
        (resultrows.reading names it) and left as it was."""
        import numpy as np

        path, rows = self.path, self.rows
        with open_h5(path, "r") as old:
            found = checked(old, path)
            problems = mismatches(describe_file(old), _describe_run(self.info))
            if problems:
                raise OutputUnwritable(
                    f"{path} holds results made differently from this run",
                    [*problems, "rerun with the options it was made with, or use another --output "
                     "(--force starts it over)"],
                )
            old_keys = _keys(old)
            done = h5_rows(old, np.flatnonzero(found.status == OK))
            self._done = {old_keys[row]: result for row, result in done.items()}
            same_rows = (found.rows == len(rows) and np.array_equal(found.input_index, [r.position for r in rows])
                         and old_keys == [_row_key(r) for r in rows] and ("time" in old) == self.info.frame_times)
            working = found.attrs.get("layout") == "working"
            if same_rows and not working and bool((found.status == OK).all()):
                self._final_already = True  # nothing to redo: leave the file untouched
            elif not (same_rows and working):
                # Other inputs, or failed rows to retry in a compressed file: copy the rows
                # that are done into a new working file, in this run's order.
                check_free_space(path, needed)
                _create_working(path, rows, self.info, fill=lambda new: _copy_rows_by_path(old, new, rows))
        if same_rows and working:
            allocated = os.stat(path).st_blocks * 512
            check_free_space(path, max(0, needed - allocated))

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
            raise write_failed(self.path, exc, int((self._status != PENDING).sum())) from None
        self._status[np.asarray(local_rows, dtype=np.int64)] = columns["status"]
        self.written += len(local_rows)

    @property
    def complete(self) -> bool:
        return not (self._status == PENDING).any()

    def done_before(self) -> dict:
        """{row: Classification} of the rows an earlier run classified (what --resume skips).
        Call it before the first write."""
        return {i: self._done[key] for i, key in enumerate(_row_key(r) for r in self.rows)
                if self._status[i] == OK and key in self._done}

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
                with reading(self.path, "resume"):
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


def h5_rows(f, rows: Iterable[int] | None = None) -> dict[int, Classification]:
    """{row: Classification} for the rows of an open, checked results file that have a result;
    every field goes through the row codec."""
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
    times = f["time"][...] if "time" in f else None
    found = {}
    for row in (int(r) for r in wanted):
        triples = [(index[row, j], label[row, j], probability[row, j])
                   for j in range(index.shape[1]) if index[row, j] >= 0]
        found[row] = decoded(f"row {row}", str(paths[row]), STATUS_NAMES[int(status[row])], str(error[row]), triples,
                             None if times is None else float(times[row]))
    return found


def read_results(path: Path, kind: str = "hdf5") -> tuple[dict, list[str], dict[int, Classification]]:
    """(how it was made, every input's path in order, {row: result}), every field checked."""
    with open_h5(path, "r", locking=False) as f:
        found = checked(f, path)
        results = h5_rows(f)
        paths = [str(p) for p in f["path"].asstr()[...]]
    return found.attrs, paths, results


def open_results(path: Path, kind: str, rows: Sequence[Row], info: RunInfo, resume: bool) -> Hdf5Results:
    return Hdf5Results(path, rows, info, resume)
