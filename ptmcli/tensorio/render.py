"""Tensor summaries and export results -> every `--format` (sinks/formats.py picks the format).

- `table`: Rich panels and tables, for people at a terminal.
- `text`: `key: value` lines and space-aligned tables, with no colour or box drawing, so
  `grep stride` and `awk` work on it.
- `json`: the whole summary, strict (NaN and infinities become strings).
- `tsv`, `csv`, `jsonl`: rows for scripts: a container's entries, one row each; one tensor's fields
  as `field`/`value` rows (jsonl: the whole summary as one record).
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from typing import Any, Sequence, TextIO

from ptmcli.sinks.formats import (
    Column,
    Format,
    aligned,
    bytes_text,
    number_text,
    pick,
    print_rich,
    rich_grid,
    rich_table,
    write_json,
    write_listing,
)

# A container's entries as rows: the keys of each entry in the JSON output, the long value last.
ENTRY_COLUMNS = tuple(Column(key) for key in
                      ("name", "kind", "shape", "dtype", "numel", "nbytes", "storage_group", "value"))
FIELD_COLUMNS = (Column("field"), Column("value"))
EXPORT_COLUMNS = (Column("dataset"), Column("shape"), Column("dtype"), Column("stored_as", "stored as"),
                  Column("source"))


# --- values -------------------------------------------------------------------------------------

def shape_text(shape: Sequence[int] | None) -> str:
    if shape is None:
        return ""
    shape = tuple(shape)
    return f"({shape[0]},)" if len(shape) == 1 else "(" + ", ".join(map(str, shape)) + ")"


def preview_text(values: Any, preview_shape: Sequence[int] | None, shape: Sequence[int]) -> str:
    """Nested lists as aligned rows, with … where a dimension was cut short."""
    if preview_shape is None:
        return ""
    ndim = len(shape)
    cells: list[str] = []

    def collect(v, depth):
        if depth == ndim:
            cells.append(number_text(v) if not isinstance(v, str) else v)
        else:
            for x in v:
                collect(x, depth + 1)

    collect(values, 0)
    width = max((len(c) for c in cells), default=0)
    numeric = not any(isinstance(c, str) and c and not _looks_numeric(c) for c in cells)

    def fmt(v, depth, indent):
        if depth == ndim:
            text = number_text(v) if not isinstance(v, str) else v
            return text.rjust(width) if numeric else text
        parts = [fmt(x, depth + 1, indent + 1) for x in v]
        if preview_shape[depth] < shape[depth]:
            parts.append("…")
        if depth == ndim - 1:
            return "[" + ", ".join(parts) + "]"
        sep = "," + "\n" * (ndim - depth - 1) + " " * (indent + 1)
        return "[" + sep.join(parts) + "]"

    return fmt(values, 0, 0)


def _looks_numeric(text: str) -> bool:
    try:
        float(text.rstrip("."))
        return True
    except ValueError:
        return text in ("nan", "inf", "-inf", "—", "True", "False")


# --- inspect-tensor -----------------------------------------------------------------------------

def _tensor_fields(s) -> list[tuple[str, str]]:
    rows = [
        ("file", s.file),
        ("format", s.format),
    ]
    if s.key:
        rows.append(("key", s.key))
    rows += [
        ("shape", shape_text(s.shape)),
        ("dtype", s.dtype),
        ("element size", f"{s.element_size} bytes"),
        ("numel", f"{s.numel}"),
        ("bytes", f"{s.nbytes}"),
        ("stride", shape_text(s.stride)),
        ("storage offset", str(s.storage_offset)),
        ("storage size", f"{s.storage_size} elements"),
        ("contiguous", "yes" if s.contiguous else "no"),
        ("dim names", shape_text(tuple(n or "None" for n in s.names)).replace("'", "") if s.names else "—"),
        ("requires_grad", number_text(s.requires_grad)),
        ("device", s.device or "—"),
    ]
    for key, value in s.layout.items():
        rows.append((key, shape_text(value) if isinstance(value, tuple) else str(value)))
    if s.shares_storage_with:
        rows.append(("shares storage with", ", ".join(s.shares_storage_with)))
    for key, value in s.attrs.items():
        rows.append((f"attr {key}", str(value)))
    if s.stats is not None:
        st = s.stats
        rows += [
            ("min", number_text(st.min)),
            ("max", number_text(st.max)),
            ("mean", number_text(st.mean)),
            ("std", number_text(st.std)),
            ("nan", str(st.nan)),
            ("inf", f"{st.posinf + st.neginf}" + (f" (+inf {st.posinf}, -inf {st.neginf})"
                                                   if st.posinf or st.neginf else "")),
            ("zeros", str(st.zeros)),
        ]
    if s.note:
        rows.append(("note", s.note))
    return rows


def _entry_cells(e) -> list[str]:
    if e.kind == "tensor":
        return [e.name, shape_text(e.shape), e.dtype or "", str(e.numel), str(e.nbytes),
                f"#{e.storage_group}" if e.storage_group else ""]
    return [e.name, e.kind, "", "", "", e.value or ""]


def _container_head(s) -> list[tuple[str, str]]:
    values = sum(1 for e in s.entries if e.kind != "tensor")
    rows = [("file", s.file), ("format", s.format)]
    if s.key:
        rows.append(("key", s.key))
    rows += [
        ("entries", f"{s.tensors} tensors" + (f", {values} other" if values else "")),
        ("parameters", f"{s.total_params}"),
        ("bytes", f"{s.total_bytes}" + (f" ({s.storage_bytes} in distinct storage)"
                                        if s.storage_bytes != s.total_bytes else "")),
    ]
    for key, value in s.attrs.items():
        rows.append((f"attr {key}", str(value)))
    return rows


def _shared_lines(s) -> list[str]:
    lines = []
    for group in s.shared:
        how = "the same view (tied)" if group.same_view else "views of one storage"
        tied = "" if group.same_view or not group.tied else (
            "; same view: " + "; ".join(" = ".join(names) for names in group.tied))
        lines.append(f"#{group.group}  {group.storage_bytes} bytes, {how}: {', '.join(group.names)}{tied}")
    return lines


def render_inspect(summary, fmt: Format | str, stream: TextIO | None = None) -> None:
    stream = stream or sys.stdout
    fmt = pick(fmt, stream)
    if fmt == "json":
        write_json(summary.to_dict(), stream)
    elif fmt == "table":
        _rich_inspect(summary, stream)
    elif fmt in ("tsv", "csv", "jsonl"):
        _rows_inspect(summary, fmt, stream)
    else:
        _text_inspect(summary, stream)
    stream.flush()


def _rows_inspect(s, fmt: str, stream: TextIO) -> None:
    if s.kind == "container":
        write_listing([asdict(e) for e in s.entries], ENTRY_COLUMNS, fmt, stream)
    elif fmt == "jsonl":
        write_listing([s.to_dict()], FIELD_COLUMNS, fmt, stream)
    else:
        write_listing([{"field": k, "value": v} for k, v in _tensor_fields(s)], FIELD_COLUMNS, fmt, stream)


def _kv_lines(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows) + 1
    return "".join(f"{(k + ':').ljust(width)} {v}\n" for k, v in rows)


def _views_rows(views) -> list[list[str]]:
    rows = [["op", "size", "offset", "stride", "contiguous"]]
    for v in views:
        rows.append([v.op + (" (copy)" if v.copied else ""), shape_text(v.shape), str(v.storage_offset),
                     shape_text(v.stride), "yes" if v.contiguous else "no"])
    return rows


def _text_inspect(s, stream: TextIO) -> None:
    if s.kind == "tensor":
        stream.write(_kv_lines(_tensor_fields(s)))
        if s.views:
            stream.write("\nviews:\n")
            stream.write("".join("  " + line for line in aligned(_views_rows(s.views), {2}).splitlines(True)))
        if s.preview_shape is not None:
            stream.write("\npreview:\n")
            lines = preview_text(s.preview, s.preview_shape, s.shape).splitlines()
            stream.write("".join(("  " + line.rstrip() if line.strip() else "") + "\n" for line in lines))
        return
    stream.write(_kv_lines(_container_head(s)))
    if s.entries:
        rows = [["name", "shape", "dtype", "params", "bytes", "storage"]] + [_entry_cells(e) for e in s.entries]
        stream.write("\n" + aligned(rows, {3, 4}))
    if s.shared:
        stream.write("\nshared storage:\n" + "".join(f"  {line}\n" for line in _shared_lines(s)))


_VIEW_COLUMNS = tuple(Column(key, right=key == "offset", overflow="ellipsis")
                      for key in ("op", "size", "offset", "stride", "contiguous"))
_ENTRY_TABLE = (Column("name"), Column("shape"), Column("dtype"), Column("params", right=True),
                Column("bytes", right=True), Column("storage"))


def _rich_inspect(s, stream: TextIO) -> None:
    from rich.console import Group
    from rich.panel import Panel
    from rich.text import Text

    if s.kind == "tensor":
        parts: list = [rich_grid(_tensor_fields(s)[2:])]
        if s.views:
            views = rich_table(_VIEW_COLUMNS, "views")
            for row in _views_rows(s.views)[1:]:
                views.add_row(*map(Text, row))
            parts.append(views)
        if s.preview_shape is not None:
            parts.append(Text("preview", style="bold"))
            parts.append(Text(preview_text(s.preview, s.preview_shape, s.shape)))
        print_rich(stream, Panel(Group(*parts), title=Text(s.file + (f" [{s.key}]" if s.key else "")),
                                 subtitle=Text(s.format), title_align="left"))
        return
    shown: list = [rich_grid(_container_head(s))]
    if s.entries:
        table = rich_table(_ENTRY_TABLE)
        for e in s.entries:
            cells = _entry_cells(e)
            if e.kind == "tensor":
                cells[4] = bytes_text(e.nbytes)
            table.add_row(*map(Text, cells), style=None if e.kind == "tensor" else "dim")
        shown.append(table)
    if s.shared:
        shown.append(Text("shared storage", style="bold"))
        shown.extend(Text("  " + line) for line in _shared_lines(s))
    print_rich(stream, *shown)


# --- export-hdf5 --------------------------------------------------------------------------------

def render_export(result, fmt: Format | str, stream: TextIO | None = None) -> None:
    """The datasets written. No datasets, no listing (JSON still says what happened)."""
    stream = stream or sys.stdout
    fmt = pick(fmt, stream)
    if fmt == "json":
        write_json({"output": result.output, "written": result.written, "failed": result.failed,
                    "skipped": list(result.skipped), "datasets": [d.to_dict() for d in result.datasets]}, stream)
    elif fmt == "jsonl":
        write_listing([d.to_dict() for d in result.datasets], EXPORT_COLUMNS, fmt, stream)
    elif result.datasets:
        rows = [{"dataset": "/" + d.name, "shape": shape_text(d.shape), "dtype": d.dtype, "stored_as": d.stored_dtype,
                 "source": f"= /{d.link_to}" if d.link_to else _source_text(d)} for d in result.datasets]
        write_listing(rows, EXPORT_COLUMNS, fmt, stream, title=result.output)
    stream.flush()


def _source_text(d) -> str:
    return f"{d.source}:{d.source_key}" if d.source_key else d.source
