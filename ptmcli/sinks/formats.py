"""The one output layer: one `--format` choice for every command, one picker, one CSV dialect
rule, one number and one byte formatter, and one renderer for listings.

`auto` is a table for people at a terminal and plain text in a pipe or file. What "plain text" is
depends on the command (tab-separated rows for listings, `key: value` lines for one tensor), but the
choice is made here, once. No torch, no Rich at import time.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from enum import Enum
from typing import Any, Iterable, Sequence, TextIO


class Format(str, Enum):
    auto = "auto"
    table = "table"
    text = "text"
    tsv = "tsv"
    csv = "csv"
    json = "json"
    jsonl = "jsonl"


FORMAT_HELP = ("auto: a table on a terminal, plain text (tab-separated) in a pipe or file; "
               "table, text, tsv, csv, json, jsonl force one.")


def isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def pick(requested: "Format | str", stream: TextIO, plain: str = "text") -> str:
    """The concrete format for `stream`: `auto` becomes `table` on a terminal, else plain text.

    `plain` names what plain text is for this output, when a command's plain text is one of the
    delimited formats (classify's rows are tsv): `text` then means the same thing.
    """
    name = requested.value if isinstance(requested, Format) else str(requested)
    if name == "auto":
        name = "table" if isatty(stream) else "text"
    return plain if name == "text" else name


def csv_writer(stream: TextIO, fmt: str):
    """A csv.writer in the dialect of `fmt`: comma for csv, tab for tsv and text."""
    return csv.writer(stream, dialect="excel" if fmt == "csv" else "excel-tab", lineterminator="\n")


def csv_reader(stream: Iterable[str], fmt: str):
    return csv.reader(stream, dialect="excel" if fmt == "csv" else "excel-tab")


def one_line(text: str) -> str:
    """Text for one field of one line: newlines (from file names, error messages) become spaces."""
    return text.replace("\n", " ").replace("\r", " ")


# --- numbers ------------------------------------------------------------------------------------

def probability_value(p: float) -> float:
    """A probability as JSON carries it: 6 significant digits (float32 holds about 7)."""
    return float(f"{p:.6g}")


def probability_text(p: float) -> str:
    """A probability in csv/tsv: 6 decimals."""
    return f"{p:.6f}"


def number_text(value: Any) -> str:
    """A number for people: 6 significant digits, floats always look like floats."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        text = f"{value:.6g}"
        return text + "." if text.lstrip("-").isdigit() else text
    return str(value)


def bytes_text(n: int | float) -> str:
    """A size for people, in binary units (what `ls -h` and `du -h` print)."""
    if n < 1024:
        return f"{int(n)} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        n /= 1024
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}"
    raise AssertionError("unreachable")


def json_safe(value: Any) -> Any:
    """Strict JSON: NaN and infinities become the strings "nan", "inf", "-inf"."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


# --- listings -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Column:
    key: str  # the record's key, and the header in text/tsv/csv
    title: str = ""  # the header in a table (default: the key)
    right: bool = False  # right-aligned in a table
    overflow: str = "fold"  # what a table does with a cell too wide for it (Rich's overflow)
    style: str | None = None  # a table column's Rich style

    @property
    def heading(self) -> str:
        return self.title or self.key


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def json_line(record: Any) -> str:
    """One record as one line of strict JSON (jsonl, streamed lists)."""
    return json.dumps(json_safe(record), ensure_ascii=False) + "\n"


def write_json(value: Any, stream: TextIO) -> None:
    """A whole JSON document, indented for people who read it."""
    stream.write(json.dumps(json_safe(value), indent=2, ensure_ascii=False) + "\n")


def rich_table(columns: Sequence[Column], title: str | None = None, **options: Any):
    """A Rich table with these columns (left or right aligned, folded when narrow)."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(title) if title else None, title_justify="left", header_style="bold", **options)
    for column in columns:
        table.add_column(column.heading, justify="right" if column.right else "left", overflow=column.overflow,
                         style=column.style)
    return table


def rich_grid(rows: Iterable[tuple[str, str]]):
    """`key  value` pairs as a borderless Rich grid, keys in bold."""
    from rich.table import Table
    from rich.text import Text

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for key, value in rows:
        grid.add_row(Text(key), Text(value))
    return grid


def print_rich(stream: TextIO, *renderables: Any) -> None:
    from rich.console import Console

    console = Console(file=stream)
    for renderable in renderables:
        console.print(renderable)


def aligned(rows: Sequence[Sequence[str]], right: Iterable[int] = ()) -> str:
    """Rows as space-padded columns two spaces apart (text for people that awk still splits), no
    trailing spaces."""
    right = set(right)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for r in rows:
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))]
        out.append("  ".join(cells).rstrip() + "\n")
    return "".join(out)


class RowStream:
    """Rows in one concrete format, written as they come and flushed, for long runs.

    json is one list, one record per line, closed by `close()` even after an interrupt, so it
    parses; jsonl is a record per line; csv/tsv/text are delimited rows under `header` (none when
    `header` is None); table prints each Rich table it is given.
    """

    def __init__(self, fmt: str, stream: TextIO, header: Sequence[str] | None = None):
        self.fmt = fmt
        self.stream = stream
        self.header = header
        self._started = False
        self._csv = csv_writer(stream, fmt) if fmt not in ("json", "jsonl", "table") else None

    def records(self, records: Iterable[Any]) -> None:
        for record in records:
            if self.fmt == "json":
                self.stream.write(("[\n  " if not self._started else ",\n  ") + json_line(record).rstrip("\n"))
                self._started = True
            else:
                self.stream.write(json_line(record))
        self.stream.flush()

    def rows(self, rows: Iterable[Sequence[Any]]) -> None:
        self._start_rows()
        self._csv.writerows(rows)
        self.stream.flush()

    def table(self, table: Any) -> None:
        print_rich(self.stream, table)
        self.stream.flush()

    def _start_rows(self) -> None:
        if not self._started and self.header is not None:
            self._csv.writerow(self.header)
        self._started = True

    def close(self) -> None:
        if self.fmt == "json":
            self.stream.write("\n]\n" if self._started else "[]\n")
        elif self._csv is not None:
            self._start_rows()
        self.stream.flush()


def write_listing(
    records: Sequence[dict],
    columns: Sequence[Column],
    fmt: "Format | str",
    stream: TextIO,
    *,
    title: str | None = None,
    table_cells: Any = None,
) -> None:
    """Records as a Rich table, tab-separated text (tsv), csv, a JSON list or JSON lines.

    `columns` are what the table and the delimited formats show; JSON carries every key of each
    record. `table_cells(record) -> list[str]` may give a table its own cells (markup, units).
    """
    fmt = pick(fmt, stream)
    if fmt == "json":
        write_json(list(records), stream)
    elif fmt == "jsonl":
        stream.writelines(json_line(r) for r in records)
    elif fmt == "table":
        from rich.text import Text

        table = rich_table(columns, title)
        for record in records:
            if table_cells is not None:
                table.add_row(*table_cells(record))
            else:
                table.add_row(*(Text(_cell(record.get(c.key))) for c in columns))
        print_rich(stream, table)
    else:
        out = RowStream(fmt, stream, [c.key for c in columns])
        out.rows([_cell(r.get(c.key)) for c in columns] for r in records)
    stream.flush()
