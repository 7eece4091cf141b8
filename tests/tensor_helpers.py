"""Helpers for the inspect-tensor / export-hdf5 tests: the real `cli.main` in this process (fast),
and tensors written in every format ptm reads."""

from __future__ import annotations

import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)


def ptm_here(*args, stdin: str = "") -> Ran:
    """`ptm ARGS` through cli.main in this process: same parsing, errors and exit codes, no startup cost."""
    from ptmcli import cli

    out, err = io.StringIO(), io.StringIO()
    saved = sys.argv, sys.stdout, sys.stderr, sys.stdin
    sys.argv = ["ptm", *map(str, args)]
    sys.stdout, sys.stderr, sys.stdin = out, err, io.StringIO(stdin)
    code = 0
    try:
        cli.main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv, sys.stdout, sys.stderr, sys.stdin = saved
    return Ran(code, out.getvalue(), err.getvalue())


def write_tensor(t: torch.Tensor, path: Path, fmt: str) -> Path:
    """Save one tensor in `fmt`: torch (zip), torch-legacy, npy, npz, safetensors."""
    if fmt == "torch":
        torch.save(t, path)
    elif fmt == "torch-legacy":
        torch.save(t, path, _use_new_zipfile_serialization=False)
    elif fmt == "npy":
        with open(path, "wb") as fh:  # a file object: np.save would add ".npy" to a name
            np.save(fh, t.numpy())
    elif fmt == "npz":
        with open(path, "wb") as fh:
            np.savez(fh, x=t.numpy())
    elif fmt == "safetensors":
        from safetensors.torch import save_file

        save_file({"x": t.contiguous()}, str(path))
    else:  # pragma: no cover
        raise ValueError(fmt)
    return path


def assert_same(a: torch.Tensor, b: torch.Tensor) -> None:
    """Exact equality, dtype and shape included; NaNs equal NaNs."""
    assert a.dtype == b.dtype, (a.dtype, b.dtype)
    assert tuple(a.shape) == tuple(b.shape)
    torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)
    if a.dtype.is_floating_point:  # assert_close calls -0.0 equal to 0.0
        assert torch.equal(torch.signbit(a), torch.signbit(b))
