"""Text result files: JSON lines (.jsonl), CSV (.csv) and TSV (.tsv): write, read, resume, merge.

Appended and flushed line by line; a resumed run appends its rows and, when it completes,
rewrites the file in input order. A line cut off by a kill is dropped on --resume. Every line
read back is decoded by the row codec (resultrows.py), which checks each field: a damaged or
hand-edited line is refused with its line number, before anything is written.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Sequence

from ptmcli.atomic import replacing
from ptmcli.errors import OutputUnwritable
from ptmcli.results import BatchOutput, Classification
from ptmcli.sinks.formats import csv_reader, csv_writer
from ptmcli.sinks.records import json_record, wide_fields, wide_header
from ptmcli.sinks.resultrows import Damaged, Row, RunInfo, as_int, check, decoded, reading, write_failed

# (position in the whole input list, the result) of one line.
TextRow = tuple[int, Classification]


def text_record(fmt: str, position: int, result: Classification, top_k: int, times: bool = False):
    """A result as a JSON object (jsonl) or a list of fields (csv/tsv; with `times`, a column for
    video frames' times)."""
    if fmt == "jsonl":
        return {"input_index": position, **json_record(result)}
    return wide_fields(position, result, top_k, times)


def serialize(fmt: str, record) -> str:
    if fmt == "jsonl":
        return json.dumps(record, ensure_ascii=False) + "\n"
    buffer = io.StringIO()
    csv_writer(buffer, fmt).writerow(record)
    return buffer.getvalue()


def _line(fmt: str, position: int, result: Classification, top_k: int, times: bool = False) -> str:
    return serialize(fmt, text_record(fmt, position, result, top_k, times))


def _has_times(header: list[str] | None) -> bool:
    """Does a csv/tsv header have the frames' time column? (Files of photo runs, and files
    written before videos, have none.)"""
    return header is not None and header[2:3] == ["time"]


def _top_k_of(header: list[str]) -> int:
    return (len(header) - (5 if _has_times(header) else 4)) // 3


def _jsonl_rows(text: str) -> list[TextRow]:
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            record = json.loads(line)
        except ValueError:
            raise Damaged(f"{where} is not JSON") from None
        check(isinstance(record, dict) and {"input_index", "path", "status"} <= record.keys(),
              f"{where} is not a ptm result")
        predictions = record.get("predictions", [])
        check(isinstance(predictions, list), f"{where}: predictions is not a list")
        triples = []
        for rank, p in enumerate(predictions, start=1):
            check(isinstance(p, dict) and {"rank", "index", "label", "probability"} <= p.keys(),
                  f"{where}: prediction {rank} is not a ptm prediction")
            check(as_int(p["rank"], f"{where}: a rank", 1) == rank, f"{where}: predictions out of rank order")
            triples.append((p["index"], p["label"], p["probability"]))
        rows.append((as_int(record["input_index"], f"{where}: input_index"),
                     decoded(where, record["path"], record["status"], record.get("error"), triples,
                             record.get("time"))))
    return rows


def _wide_rows(text: str, fmt: str) -> tuple[list[TextRow], list[str] | None]:
    reader = csv_reader(io.StringIO(text, newline=""), fmt)
    header = next(reader, None)
    if header is None:
        return [], None
    times = _has_times(header)
    first = 5 if times else 4  # the first prediction's column
    check(len(header) >= first and (len(header) - first) % 3 == 0, "its header is not ptm's")
    check(header == wide_header(_top_k_of(header), times), "its header is not ptm's")
    rows = []
    for fields in reader:
        if not fields:
            continue
        where = f"line {reader.line_num}"
        check(len(fields) == len(header), f"{where} has {len(fields)} fields, the header {len(header)}")
        triples = [tuple(fields[c:c + 3]) for c in range(first, len(fields), 3) if fields[c] != ""]
        time = fields[2] if times else None
        rows.append((as_int(fields[0], f"{where}: input_index"),
                     decoded(where, fields[1], fields[first - 2], fields[first - 1], triples, time)))
    return rows, header


def read_rows(path: Path, fmt: str, top_k: int | None = None) -> tuple[list[TextRow], int, list[str] | None]:
    """(rows, byte length of the complete lines, csv/tsv header) of a results file, every field
    checked. A last line without its newline is what a killed writer leaves: it is not read."""
    data = path.read_bytes()
    complete = data.rfind(b"\n") + 1
    text = data[:complete].decode("utf-8", "surrogateescape")
    header = None
    if fmt == "jsonl":
        rows = _jsonl_rows(text)
    else:
        rows, header = _wide_rows(text, fmt)
    if top_k is not None:
        counts = {len(result.predictions) for _, result in rows if result.ok}
        if header is not None:
            counts.add(_top_k_of(header))
        other = next((n for n in sorted(counts) if n != top_k), None)
        if other is not None:
            raise OutputUnwritable(f"{path} holds {other} classes per input, this run {top_k}",
                                   ["rerun with the --top it was made with, or use another --output"])
    return rows, complete, header


def read_results(path: Path, fmt: str) -> tuple[dict, list[str], dict[int, Classification]]:
    """What `ptm report` shows: no provenance (text files record none), the rows in input order
    (the latest line of each position wins)."""
    rows, _, _ = read_rows(path, fmt)
    latest = dict(rows)
    order = sorted(latest)
    return {}, [latest[p].path for p in order], {row: latest[p] for row, p in enumerate(order)}


def open_results(path: Path, fmt: str, rows: Sequence[Row], info: RunInfo, resume: bool) -> "TextResults":
    return TextResults(path, fmt, rows, info, resume)


class TextResults:
    """A jsonl/csv/tsv results file, appended line by line, flushed per batch."""

    def __init__(self, path: Path, fmt: str, rows: Sequence[Row], info: RunInfo, resume: bool):
        self.path = path
        self.fmt = fmt
        self.rows = rows
        self.info = info
        self.written = 0
        self._done: dict[tuple, Classification] = {}
        self._rewrite = False
        self.times = info.frame_times  # csv/tsv: a time column (a file being resumed decides)
        mode = "w"
        if resume and path.exists():
            self._done = self._reopen()
            mode = "a"
        self.todo = [i for i, row in enumerate(rows) if row.key not in self._done]
        self._pending = set(self.todo)
        try:
            self._handle = open(path, mode, encoding="utf-8", errors="surrogateescape", newline="")
            if mode == "w" and fmt != "jsonl":
                self._handle.write(serialize(fmt, wide_header(info.top_k, self.times)))
                self._handle.flush()
        except OSError as exc:
            raise OutputUnwritable(f"cannot write {self.path} ({exc.strerror or exc})") from None

    def _reopen(self) -> dict[tuple, Classification]:
        """Read what an earlier run wrote (refusing a damaged file untouched); drop a cut-off line."""
        found, complete, header = read_rows(self.path, self.fmt, self.info.top_k)
        if header is not None:
            if self.times and not _has_times(header):
                raise OutputUnwritable(f"{self.path} has no column for video frames' times, and this run "
                                       "classifies video frames", ["use another --output for this run"])
            self.times = _has_times(header)
        latest = {result.key: result for _, result in found}
        self._rewrite = bool(found)
        try:
            with open(self.path, "r+b") as handle:
                handle.truncate(complete)
                if self.fmt != "jsonl" and complete == 0:
                    handle.write(serialize(self.fmt, wide_header(self.info.top_k, self.times)).encode())
        except OSError as exc:
            raise write_failed(self.path, exc, len(found)) from None
        return {p: result for p, result in latest.items() if result.ok}

    def write(self, local_rows: Sequence[int], batch: BatchOutput) -> None:
        text = "".join(_line(self.fmt, self.rows[row].position, result, self.info.top_k, self.times)
                       for row, result in zip(local_rows, batch.results))
        try:
            self._handle.write(text)
            self._handle.flush()
        except OSError as exc:
            raise write_failed(self.path, exc, self.written) from None
        self._pending.difference_update(local_rows)
        self.written += len(local_rows)

    @property
    def complete(self) -> bool:
        return not self._pending

    def done_before(self) -> dict:
        """{row: Classification} of the rows an earlier run classified (what --resume skips)."""
        return {i: self._done[row.key] for i, row in enumerate(self.rows) if row.key in self._done}

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
            raise write_failed(self.path, exc, self.written) from None
        if self.complete and self._rewrite:
            self._rewrite_in_order()

    def _rewrite_in_order(self) -> None:
        """One line per input, in input order (the latest line of each path wins)."""
        with reading(self.path, "resume"):
            found, _, _ = read_rows(self.path, self.fmt, self.info.top_k)
        latest = {result.key: result for _, result in found}
        k = self.info.top_k
        lines = [] if self.fmt == "jsonl" else [serialize(self.fmt, wide_header(k, self.times))]
        lines += [_line(self.fmt, row.position, latest[row.key], k, self.times) for row in self.rows]
        atomic_write_text(self.path, "".join(lines))


def merge_files(sources: list[Path], dest: Path, fmt: str, partial: bool = False) -> None:
    """The shards' lines in input order, one file; a damaged shard is named and nothing written."""
    merged: list[TextRow] = []
    header = None
    for source in sources:
        with reading(source, "merge"):
            found, _, source_header = read_rows(source, fmt)
        if fmt != "jsonl":
            if header is not None and source_header != header:
                raise OutputUnwritable(f"{source} has other columns than {sources[0]}",
                                       ["merge files made with the same --top"])
            header = source_header
        merged += found
    merged.sort(key=lambda pair: pair[0])
    for (a, _), (b, _) in zip(merged, merged[1:]):
        if a == b:
            raise OutputUnwritable(f"input {a} appears more than once",
                                   ["merge each shard once; an interrupted shard is put in order by --resume"])
    top_k = _top_k_of(header) if header else max((len(r.predictions) for _, r in merged), default=0)
    times = _has_times(header)
    lines = [] if fmt == "jsonl" else [serialize(fmt, header or wide_header(top_k))]
    lines += [_line(fmt, position, result, top_k, times) for position, result in merged]
    atomic_write_text(dest, "".join(lines))


def atomic_write_text(path: Path, text: str) -> None:
    try:
        with replacing(path) as tmp, open(tmp, "w", encoding="utf-8", errors="surrogateescape",
                                          newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise OutputUnwritable(f"could not write {path} ({exc.strerror or exc})",
                               ["free space, then rerun with --resume"]) from None
