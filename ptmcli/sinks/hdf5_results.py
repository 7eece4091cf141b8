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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

from ptmcli.atomic import replacing
from ptmcli.errors import OutputUnwritable
from ptmcli.results import BatchOutput
from ptmcli.sinks.resultfile import (
    ERROR,
    ERROR_BYTES,
    FORMAT_NAME,
    FORMAT_VERSION,
    OK,
    PENDING,
    STATUS_NAMES,
    Row,
    RunInfo,
    check_free_space,
    encode,
    label_bytes,
    write_failed,
)

if TYPE_CHECKING:
    import numpy as np

# Final layout: chunks of about this many bytes per dataset, gzip level 4 (readable everywhere).
_CHUNK_BYTES = 1 << 20
_COPY_BLOCK_BYTES = 32 << 20


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
        for j, p in enumerate(result.predictions[:k]):
            top_index[i, j] = p.index
            top_probability[i, j] = p.probability
            top_label[i, j] = encode(p.label)
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

    total = 8  # input_index
    for name, shape, dtype in _row_datasets(info, ERROR_BYTES):
        if name != "error":  # left as a hole unless the input fails
            total += int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    return total


def open_h5(path: Path, mode: str, **kwargs):
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


def read_info(f, path: Path) -> dict:
    attrs = {key: f.attrs[key] for key in f.attrs}
    if attrs.get("ptm_format") != FORMAT_NAME:
        raise OutputUnwritable(f"{path} is not a ptm classify results file",
                               ["choose another --output, or --force to replace it"])
    if int(attrs.get("ptm_format_version", 0)) > FORMAT_VERSION:
        raise OutputUnwritable(f"{path} was written by a newer ptm (format {attrs['ptm_format_version']})",
                               ["upgrade ptm"])
    return attrs


def describe_file(f) -> dict:
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


def mismatches(have: dict, want: dict) -> list[str]:
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
        wanted.setdefault(encode(row.path), []).append(i)
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
            check_free_space(path, needed)
            _create_working(path, rows, info)
        else:
            with open_h5(path, "r") as old:
                read_info(old, path)
                problems = mismatches(describe_file(old), _describe_run(info))
                if problems:
                    raise OutputUnwritable(
                        f"{path} holds results made differently from this run",
                        [*problems, "rerun with the options it was made with, or use another --output "
                         "(--force starts it over)"],
                    )
                same_rows = (
                    old["path"].shape[0] == len(rows)
                    and np.array_equal(old["input_index"][...], [r.position for r in rows])
                    and list(old["path"][...]) == [encode(r.path) for r in rows]
                )
                working = str(old.attrs.get("layout")) == "working"
                all_ok = bool((old["status"][...] == OK).all())
                if same_rows and not working and all_ok:
                    self._final_already = True  # nothing to redo: leave the file untouched
                elif not (same_rows and working):
                    # Other inputs, or failed rows to retry in a compressed file: copy the rows
                    # that are done into a new working file, in this run's order.
                    check_free_space(path, needed)
                    _create_working(path, rows, info, fill=lambda new: _copy_rows_by_path(old, new, rows))
            if same_rows and working:
                allocated = os.stat(path).st_blocks * 512
                check_free_space(path, max(0, needed - allocated))
        if self._final_already:
            self._status = np.full(len(rows), OK, dtype=np.uint8)
        else:
            self._file = open_h5(path, "r+")
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
            raise write_failed(self.path, exc, int((self._status != PENDING).sum())) from None
        self._status[np.asarray(local_rows, dtype=np.int64)] = columns["status"]
        self.written += len(local_rows)

    @property
    def complete(self) -> bool:
        return not (self._status == PENDING).any()

    def done_before(self) -> dict:
        """{row: Classification} of the rows an earlier run classified (what --resume skips).
        Call it before the first write."""
        import numpy as np

        from ptmcli.sinks.readback import h5_rows

        done = np.flatnonzero(self._status == OK)
        if self._file is not None:
            return h5_rows(self._file, done)
        with open_h5(self.path, "r") as f:
            return h5_rows(f, done)

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

    with open_h5(path, "r") as source:
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
