"""HDF5 result files: opening and checking one, the final (compact) layout, and `ptm merge`.

Every HDF5 results file ptm reads goes through `checked()` first: the attributes and every
dataset a reader uses must have the types and shapes ptm writes, statuses and input positions
must be in range, and no dataset may claim far more bytes than the file could hold. After that,
what is left to fail is the data itself (a damaged chunk), which the reader boundary
(resultrows.reading) names as such.

The final layout is chunked, gzip-compressed and resizable; a working file is rewritten into it
(`compact`) when every input has a result, and `ptm merge` writes it from several shards.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from ptmcli.atomic import replacing
from ptmcli.errors import OutputUnwritable
from ptmcli.sinks.hdf5_child import read_in_child
from ptmcli.sinks.hdf5_text import check_attribute_types, check_text_heaps, check_text_lengths
from ptmcli.sinks.resultrows import (
    ERROR,
    FORMAT_NAME,
    FORMAT_VERSION,
    OK,
    PENDING,
    Damaged,
    as_int,
    as_text,
    check,
    parse_shard_text,
    reading,
)

if TYPE_CHECKING:
    import numpy as np

# Final layout: chunks of about this many bytes per dataset, gzip level 4 (readable everywhere).
_CHUNK_BYTES = 1 << 20
_COPY_BLOCK_BYTES = 32 << 20
# gzip inflates at most about 1032:1; a dataset claiming more bytes than that of the whole file
# is damage, and reading it would take memory a small file must not (ARCHITECTURE.md).
_MOST_INFLATION = 1100

ROW_COLUMNS = ("status", "error", "top_index", "top_label", "top_probability", "probabilities", "features")
_KINDS = {"status": "iu", "input_index": "iu", "top_index": "iu", "top_probability": "f",
          "probabilities": "f", "features": "f", "time": "f"}
_STRINGS = ("path", "error", "top_label", "classes")


def open_h5(path: Path, mode: str, trusted: bool = False, **kwargs):
    """An h5py.File; one opened to read, unless ptm has just written it (`trusted`), is read first
    in a child (hdf5_child.py): HDF5 crashes on some crafted bytes, and that must end there."""
    import h5py

    if mode == "r" and not trusted and path.is_file():
        read_in_child(path, _reads_of_readers)
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
        # Under the reader boundary (resultrows.reading), which names the file and says what to do.
        raise Damaged(f"cannot open it as HDF5: {text.splitlines()[0] if text else type(exc).__name__}") from None


def _reads_of_readers(path: Path) -> None:
    """What report, merge and --resume read (in the child): the checks, then every column, in
    blocks (they read whole columns, slices and rows of them: the same chunks and heaps)."""
    import h5py
    import numpy as np

    with h5py.File(path, "r", locking=False) as f:
        checked(f, path)
        for name in ("classes", "path", "time", *ROW_COLUMNS):
            if name in f:
                dataset = f[name]
                row_bytes = max(1, int(np.prod(dataset.shape[1:], dtype=np.int64))) * max(dataset.dtype.itemsize, 256)
                step = max(1, _COPY_BLOCK_BYTES // row_bytes)
                for start in range(0, dataset.shape[0], step):
                    dataset[start:start + step]


def read_info(f, path: Path) -> dict:
    attrs = {key: f.attrs[key] for key in f.attrs}
    if attrs.get("ptm_format") != FORMAT_NAME:
        raise OutputUnwritable(f"{path} is not a ptm classify results file",
                               ["choose another --output, or --force to replace it"])
    version = as_int(attrs.get("ptm_format_version", 0), "its ptm_format_version")
    if version > FORMAT_VERSION:
        raise OutputUnwritable(f"{path} was written by a newer ptm (format {version})", ["upgrade ptm"])
    return attrs


@dataclass(frozen=True)
class Checked:
    """What `checked()` read and found sound: plain attributes, the row count, two columns."""

    attrs: dict
    rows: int
    top_k: int
    status: "np.ndarray"
    input_index: "np.ndarray"


def checked(f, path: Path) -> Checked:
    """The file's attributes and layout, once they are what ptm writes (Damaged otherwise)."""
    import numpy as np

    check_text_heaps(path)
    check_attribute_types(f)
    attrs = read_info(f, path)
    for key in ("model", "weights_sha256", "preprocess", "shard", "layout"):
        as_text(attrs.get(key, ""), f"its {key} attribute")
    for key, value in attrs.items():
        # h5py reads bytes that are not UTF-8 with surrogates; merge could not write them back.
        check(not isinstance(value, str) or value.encode("utf-8", "replace").decode("utf-8") == value,
              f"its {key} attribute is not UTF-8 text")
    check(attrs.get("layout", "final") in ("working", "final"), f"its layout is {attrs.get('layout')!r}")
    parse_shard_text(attrs.get("shard", ""))
    top_k = as_int(attrs.get("top_k"), "its top_k attribute", 1)
    total = as_int(attrs.get("inputs_total", 0), "its inputs_total attribute")
    n = _check_datasets(f, path, top_k)
    status, positions = f["status"][...], f["input_index"][...]
    check(bool(np.isin(status, (PENDING, OK, ERROR)).all()), "a status is neither pending, ok nor error")
    check(bool((positions >= 0).all()) and (not total or bool((positions < total).all())),
          f"an input_index is outside 0..{max(total - 1, 0)}")
    check(len(np.unique(positions)) == n, "an input_index appears twice")
    plain = {key: (value.item() if hasattr(value, "item") else value) for key, value in attrs.items()}
    return Checked(plain, n, top_k, status, positions)


def _check_datasets(f, path: Path, top_k: int) -> int:
    import h5py
    import numpy as np

    limit = _MOST_INFLATION * max(path.stat().st_size, 1) + (1 << 20)
    names = ("path", "input_index", "time", "classes", *ROW_COLUMNS)
    for name in names:
        optional = name in ("probabilities", "features", "time")  # time: runs with video frames
        if optional and name not in f:
            continue
        check(name in f and isinstance(f[name], h5py.Dataset), f"it has no dataset {name!r}")
        dataset = f[name]
        if name in _STRINGS:
            check(h5py.check_string_dtype(dataset.dtype) is not None, f"{name} does not hold text")
        else:
            check(dataset.dtype.kind in _KINDS[name], f"{name} holds {dataset.dtype}, not numbers of its kind")
        check(int(np.prod(dataset.shape, dtype=np.int64)) * dataset.dtype.itemsize <= limit,
              f"{name} claims {dataset.shape} rows, more than the file holds")
    for name in ("path", "classes"):
        check_text_lengths(f[name], path)
    n = f["status"].shape[0] if f["status"].ndim == 1 else -1
    check(n >= 0, "status is not one value per row")
    wanted = {"path": (n,), "input_index": (n,), "error": (n,), "top_index": (n, top_k),
              "top_label": (n, top_k), "top_probability": (n, top_k), **({"time": (n,)} if "time" in f else {})}
    classes = f["classes"].shape
    check(len(classes) == 1, "classes is not a list")
    if "probabilities" in f:
        wanted["probabilities"] = (n, classes[0])
    if "features" in f:
        check(f["features"].ndim == 2, "features is not one row per input")
        wanted["features"] = (n, f["features"].shape[1])
    for name, shape in wanted.items():
        check(f[name].shape == shape, f"{name} has shape {f[name].shape}, not {shape}")
    return n


# --- the final layout ---------------------------------------------------------------------------


@dataclass
class MergePlan:
    """Row i of the result comes from row `rows[i]` of file `sources[files[i]]`."""

    sources: list
    files: "np.ndarray"
    rows: "np.ndarray"
    purpose: str = "merge"  # what a damaged source is named for (resultrows.reading)


def compact(path: Path) -> None:
    """Rewrite a working file as a final one (chunked, compressed), atomically."""
    import numpy as np

    with open_h5(path, "r", trusted=True) as source:  # written by this run, or read before it
        if str(source.attrs.get("layout")) != "working":
            return
        attrs = {key: source.attrs[key] for key in source.attrs}
        n = source["status"].shape[0]
        plan = MergePlan([source], np.zeros(n, dtype=np.int64), np.arange(n, dtype=np.int64), "resume")
        write_final(path, attrs, plan)


def _final_dataset(f, name: str, n: int, row_shape: tuple, dtype) -> None:
    import numpy as np

    row_bytes = max(1, int(np.prod(row_shape, dtype=np.int64)) * (np.dtype(dtype).itemsize or 16))
    chunk_rows = max(1, min(max(n, 1), _CHUNK_BYTES // row_bytes))
    f.create_dataset(
        name, (n, *row_shape), dtype=dtype, chunks=(chunk_rows, *row_shape), maxshape=(None, *row_shape),
        compression="gzip", compression_opts=4, shuffle=np.dtype(dtype).kind in "fiu",
    )


@contextlib.contextmanager
def _source(plan: MergePlan, source) -> Iterator[None]:
    with reading(Path(source.filename), plan.purpose):
        yield


def _longest_error(plan: MergePlan) -> int:
    import numpy as np

    longest = 1
    for source in plan.sources:
        with _source(plan, source):
            failed = np.flatnonzero(source["status"][...] == ERROR)
            if len(failed):
                longest = max(longest, max(len(bytes(e).rstrip(b"\0")) for e in source["error"][failed]))
    return longest


def write_final(dest: Path, attrs: dict, plan: MergePlan, complete: bool = True) -> None:
    """Write rows chosen by `plan` into a final-layout file at `dest` (via a temporary file)."""
    import h5py
    import numpy as np

    first = plan.sources[0]
    n = len(plan.rows)
    names = [name for name in ROW_COLUMNS if name in first]
    longest_error = _longest_error(plan)
    with replacing(dest) as tmp, h5py.File(tmp, "w", libver="earliest") as out:
        for key, value in attrs.items():
            out.attrs[key] = value
        out.attrs["layout"] = "final"
        with _source(plan, first):
            classes = first["classes"][...]
        out.create_dataset("classes", data=classes, dtype=h5py.string_dtype())
        _final_dataset(out, "path", n, (), h5py.string_dtype())
        _final_dataset(out, "input_index", n, (), np.dtype(np.int64))
        keys = ["path", "input_index", *(["time"] if "time" in first else [])]
        if "time" in first:
            _final_dataset(out, "time", n, (), np.dtype(np.float64))
        for name in names:
            dtype = h5py.string_dtype("utf-8", longest_error) if name == "error" else first[name].dtype
            _final_dataset(out, name, n, first[name].shape[1:], dtype)
        row_bytes = sum(int(np.prod(first[nm].shape[1:], dtype=np.int64)) * first[nm].dtype.itemsize
                        for nm in names) + 64
        block = max(1, _COPY_BLOCK_BYTES // row_bytes)
        pending = False
        for a in range(0, n, block):
            b = min(n, a + block)
            columns = _gather(plan, a, b, [*keys, *names])
            pending |= bool((columns["status"] == PENDING).any())
            _blank_unfinished(columns, longest_error)
            for name, values in columns.items():
                out[name][a:b] = values
        out.attrs["complete"] = complete and not pending


def _blank_unfinished(columns: dict, longest_error: int) -> None:
    """Rows without a result carry no numbers; rows that are ok carry no error text."""
    import h5py
    import numpy as np

    status = columns["status"]
    not_ok = status != OK
    columns["error"] = np.where(status == ERROR, columns["error"], b"").astype(
        h5py.string_dtype("utf-8", longest_error))
    columns["top_index"][not_ok] = -1
    columns["top_label"][not_ok] = b""
    columns["top_probability"][not_ok] = np.nan
    for name in ("probabilities", "features"):
        if name in columns:
            columns[name][not_ok] = np.nan


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
            with _source(plan, source):
                values = source[name][low:high][wanted - low]
            if name not in columns:
                columns[name] = np.empty((b - a, *values.shape[1:]), dtype=values.dtype)
            elif values.dtype.itemsize > columns[name].dtype.itemsize:
                # Fixed-size strings: files differ in width (the longest error of each shard).
                columns[name] = columns[name].astype(values.dtype)
            columns[name][mask] = values
    return columns


# --- ptm merge ------------------------------------------------------------------------------------


def merge_files(sources: list[Path], dest: Path, kind: str = "hdf5", partial: bool = False) -> None:
    """Shards -> one final-layout file in input order; every shard is checked before writing."""
    with contextlib.ExitStack() as stack:
        files, found = [], []
        for source in sources:
            with reading(source, "merge"):
                f = stack.enter_context(open_h5(source, "r"))
                found.append(checked(f, source))
            files.append(f)
        _same_runs(files, sources, found)
        have, missing = _shard_numbers(sources, found, partial)
        unfinished = [(s, int((c.status == PENDING).sum())) for s, c in zip(sources, found)]
        unfinished = [(s, left) for s, left in unfinished if left]
        if unfinished and not partial:
            source, left = unfinished[0]
            raise OutputUnwritable(f"{source} is unfinished ({left:,} inputs not classified yet)",
                                   ["rerun its shard with --resume, or --partial to merge it as it is"])
        plan = _plan(files, found, partial)
        attrs = {key: files[0].attrs[key] for key in files[0].attrs}
        attrs["shard"] = "" if not missing else f"{'+'.join(map(str, have))}/{len(have) + len(missing)}"
        write_final(dest, attrs, plan, complete=not missing and not unfinished)


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


_OPTION_OF = {"model": "--model", "weights_sha256": "--weights", "preprocess": "--model, --precision or --exact-decode",
              "top_k": "--top", "probabilities": "--save-probs", "features": "--save-features"}


def mismatches(have: dict, want: dict) -> list[str]:
    return [f"{key}: file has {have[key]!r}, this run {want[key]!r} ({_OPTION_OF[key]})"
            for key in want if have[key] != want[key]]


def _same_runs(files: list, sources: list[Path], found: list[Checked]) -> None:
    base = describe_file(files[0])
    for f, source in zip(files[1:], sources[1:]):
        problems = mismatches(describe_file(f), base)
        if problems:
            raise OutputUnwritable(f"{source} was made differently from {sources[0]}",
                                   [p.replace("this run", str(sources[0])) for p in problems])
    totals = sorted({c.attrs.get("inputs_total", 0) for c in found})
    if len(totals) > 1:
        raise OutputUnwritable(f"these files are shards of different input lists ({', '.join(map(str, totals))} "
                               "inputs)", ["run every shard over the same inputs"])


def _shard_numbers(sources: list[Path], found: list[Checked], partial: bool) -> tuple[list[int], list[int]]:
    """(shard numbers here, shard numbers missing), refusing a mix that cannot be one run."""
    shards = [parse_shard_text(c.attrs.get("shard", "")) for c in found]
    if len(found) > 1 and None in shards:
        raise OutputUnwritable(f"{sources[shards.index(None)]} is not a shard (it was made without --shard)")
    counts = {count for _, count in filter(None, shards)}
    if len(counts) > 1:
        raise OutputUnwritable(f"these files split the inputs into different numbers of shards ({sorted(counts)})")
    have = sorted(index for index, _ in filter(None, shards))
    if len(set(have)) != len(have):
        twice = sorted({k for k in have if have.count(k) > 1})
        raise OutputUnwritable(f"shard {twice[0]} is named twice")
    missing = sorted(set(range(1, counts.pop() + 1)) - set(have)) if counts else []
    if missing and not partial:
        raise OutputUnwritable(
            f"shard{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))} "
            f"of {len(have) + len(missing)} missing",
            ["run them and merge again, or --partial to merge what is here"],
        )
    return have, missing


def _plan(files: list, found: list[Checked], partial: bool) -> MergePlan:
    import numpy as np

    positions = [c.input_index for c in found]
    which = np.concatenate([np.full(len(p), i, dtype=np.int64) for i, p in enumerate(positions)])
    rows = np.concatenate([np.arange(len(p), dtype=np.int64) for p in positions])
    merged = np.concatenate(positions)
    order = np.argsort(merged, kind="stable")
    doubled = np.flatnonzero(np.diff(merged[order]) == 0)
    if len(doubled):
        raise OutputUnwritable(f"input {int(merged[order][doubled[0]])} appears in more than one file",
                               ["merge each shard once, from runs over the same inputs"])
    total = found[0].attrs.get("inputs_total", 0)
    if not partial and len(merged) != total:
        raise OutputUnwritable(f"the files hold {len(merged):,} of {total:,} inputs",
                               ["merge every shard, or --partial"])
    return MergePlan(files, which[order], rows[order])
