"""Text result files: JSON lines (.jsonl), CSV (.csv) and TSV (.tsv).

Appended and flushed line by line; a resumed run appends its rows and, when it completes,
rewrites the file in input order. A line cut off by a kill is dropped on --resume.
"""

from __future__ import annotations

import csv
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
from ptmcli.sinks.resultfile import Row, RunInfo, write_failed


def text_record(fmt: str, position: int, result: Classification, top_k: int):
    """A result as a JSON object (jsonl) or a list of fields (csv/tsv)."""
    if fmt == "jsonl":
        return {"input_index": position, **json_record(result)}
    return wide_fields(position, result, top_k)


def serialize(fmt: str, record) -> str:
    if fmt == "jsonl":
        return json.dumps(record, ensure_ascii=False) + "\n"
    buffer = io.StringIO()
    csv_writer(buffer, fmt).writerow(record)
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
            reader = csv_reader(io.StringIO(text, newline=""), fmt)
            header = next(reader, None)
            if header is not None:
                if header[:4] != ["input_index", "path", "status", "error"]:
                    raise ValueError("its header is not ptm's")
                if top_k is not None and header != wide_header(top_k):
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
        self._done_records: dict = {}
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
            self._done_records = {_record_fields(fmt, r)[1]: r for r in records
                                  if _record_fields(fmt, r)[1] in done_paths}
            self._rewrite = bool(records)
            try:
                with open(path, "r+b") as handle:
                    handle.truncate(complete)
                    if fmt != "jsonl" and complete == 0:
                        handle.write(serialize(fmt, wide_header(info.top_k)).encode())
            except OSError as exc:
                raise write_failed(path, exc, len(records)) from None
            mode = "a"
        else:
            mode = "w"
        self.todo = [i for i, row in enumerate(rows) if row.path not in done_paths]
        self._pending = set(self.todo)
        try:
            self._handle = open(path, mode, encoding="utf-8", errors="surrogateescape", newline="")
            if mode == "w" and fmt != "jsonl":
                self._handle.write(serialize(fmt, wide_header(info.top_k)))
                self._handle.flush()
        except OSError as exc:
            raise OutputUnwritable(f"cannot write {path} ({exc.strerror or exc})") from None

    def write(self, local_rows: Sequence[int], batch: BatchOutput) -> None:
        text = "".join(
            serialize(self.fmt, text_record(self.fmt, self.rows[row].position, result, self.info.top_k))
            for row, result in zip(local_rows, batch.results)
        )
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
        from ptmcli.sinks.readback import text_result

        return {i: text_result(self.fmt, self._done_records[row.path]) for i, row in enumerate(self.rows)
                if row.path in self._done_records}

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
            rewrite_text_in_order(self.path, self.fmt, self.rows, self.info.top_k)


def rewrite_text_in_order(path: Path, fmt: str, rows: Sequence[Row], top_k: int) -> None:
    """One line per input, in input order (the latest line of each path wins)."""
    records, _ = read_text_records(path, fmt, top_k)
    latest = {}
    for record in records:
        latest[_record_fields(fmt, record)[1]] = record
    lines = [] if fmt == "jsonl" else [serialize(fmt, wide_header(top_k))]
    lines += [serialize(fmt, _with_position(fmt, latest[row.path], row.position)) for row in rows]
    atomic_write_text(path, "".join(lines))


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
