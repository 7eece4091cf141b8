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

    @property
    def heading(self) -> str:
        return self.title or self.key


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


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
        stream.write(json.dumps([json_safe(r) for r in records], indent=2, ensure_ascii=False) + "\n")
    elif fmt == "jsonl":
        stream.writelines(json.dumps(json_safe(r), ensure_ascii=False) + "\n" for r in records)
    elif fmt == "table":
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        table = Table(title=Text(title) if title else None, title_justify="left", header_style="bold")
        for column in columns:
            table.add_column(column.heading, justify="right" if column.right else "left", overflow="fold")
        for record in records:
            if table_cells is not None:
                table.add_row(*table_cells(record))
            else:
                table.add_row(*(Text(_cell(record.get(c.key))) for c in columns))
        Console(file=stream).print(table)
    else:
        writer = csv_writer(stream, fmt)
        writer.writerow([c.key for c in columns])
        writer.writerows([[_cell(r.get(c.key)) for c in columns] for r in records])
    stream.flush()
