"""The reader contract's one boundary for tensor files (ARCHITECTURE.md, "Hostile bytes").

Whatever a file's bytes make a library do while ptm sniffs, opens, walks, reads, summarises or
views it becomes one `InputError` naming the file, in ptm's words, with the library's text in
brackets. `open_tensor_file` applies it to sniffing and opening; `TensorFile.__exit__` to
everything done while the file is open. Code inside raises ptm's own errors where it knows
better words; nothing else needs a `try` for damage.
"""

from __future__ import annotations

from ptmcli.errors import InputError, PtmError
from ptmcli.tensorio.sniff import FORMAT_LABELS


def reason(exc: BaseException) -> str:
    """An unexpected exception from a damaged file as a short, one-line reason."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}"[:300] if first else type(exc).__name__


def as_ptm_error(path: str, fmt: str | None, exc: BaseException) -> BaseException:
    """`exc` as the error a user sees: ptm's own errors (and signals) unchanged."""
    if isinstance(exc, PtmError) or not isinstance(exc, Exception):
        return exc
    label = f"{FORMAT_LABELS[fmt]} file" if fmt in FORMAT_LABELS else "tensor file"
    if isinstance(exc, MemoryError):
        return InputError(f"{path}: not enough memory to read this {label}")
    if isinstance(exc, RecursionError):
        return InputError(f"{path}: this {label} is nested too deeply to read (a damaged or hostile file)")
    return InputError(f"{path}: cannot read this {label}: it is damaged or not what it claims to be "
                      f"({reason(exc)})")
