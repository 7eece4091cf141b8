"""Tensor values, NumPy scalars and HDF5 attributes as plain Python: what summaries and JSON carry."""

from __future__ import annotations

from typing import Any

from ptmcli.tensorio.items import is_torch_tensor


def format_complex(value: complex) -> str:
    return f"{value.real:g}{value.imag:+g}j"


def to_python(values) -> Any:
    """A tensor or array -> nested lists of JSON-friendly numbers, bools and strings."""
    import numpy as np

    if is_torch_tensor(values):
        import torch

        if values.dtype in (torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2, torch.float8_e4m3fnuz,
                            torch.float8_e5m2fnuz):
            values = values.to(torch.float32)
        elif values.dtype == torch.complex32:
            values = values.to(torch.complex64)
        elif values.dtype in (torch.uint16, torch.uint32, torch.uint64):
            values = values.numpy()  # torch's tolist() lacks these unsigned types
        if is_torch_tensor(values):
            raw = values.tolist()
            return _map_nested(raw, lambda v: format_complex(v) if isinstance(v, complex) else v)
    array = np.asarray(values)
    if array.dtype.names or array.dtype.kind == "O":
        # Records and variable-length values: element by element (tolist would give raw tuples).
        def nested(a, depth):
            if depth == array.ndim:
                return plain(a)
            return [nested(a[i], depth + 1) for i in range(a.shape[0])]

        return nested(array if array.ndim else array[()], 0)
    return _map_nested(array.tolist(), plain)


def _map_nested(value, fn):
    if isinstance(value, list):
        return [_map_nested(v, fn) for v in value]
    return fn(value)


def plain(value, limit: int = 16):
    """An HDF5 attribute or NumPy value as JSON-friendly Python values, shortened."""
    import numpy as np

    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.void) and value.dtype.names:
        return {name: plain(value[name]) for name in value.dtype.names}
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return plain(value[()])
        flat = [plain(v) for v in value.reshape(-1)[:limit]]
        return flat if value.size <= limit else flat + ["…"]
    if isinstance(value, np.generic):
        return plain(value.item())
    if isinstance(value, complex):
        return format_complex(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def value_repr(value: Any, limit: int = 80) -> str:
    """A checkpoint's non-tensor value (epoch, config) for one cell of a listing."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
