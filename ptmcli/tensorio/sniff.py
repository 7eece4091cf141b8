"""Which tensor format a file is, from its first bytes (and a zip's member names).

The extension never decides: `torch.save` files are called .pt, .pth, .t or anything else, and a
renamed .npy is still a .npy. A bare pickle is refused here, before anything could unpickle it.
"""

from __future__ import annotations

import os
import zipfile

from ptmcli.errors import InputError, unreadable
from ptmcli.models.pickles import pickle_imports

# Format names (the keys of readers.READERS) and how messages and summaries call them.
FORMAT_LABELS = {
    "torch": "PyTorch (zip)",
    "torch-legacy": "PyTorch (legacy)",
    "npy": "NumPy .npy",
    "npz": "NumPy .npz",
    "safetensors": "safetensors",
    "hdf5": "HDF5",
}

# torch.save's legacy format starts with a pickled magic number: LONG1 0x1950a86a20f9469cfc6c.
_TORCH_LEGACY_MAGIC = bytes.fromhex("8a0a6cfc9c46f9206aa85019")
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
def detect_format(path: str) -> str:
    """The format of a file that must be a tensor file; anything else is an InputError."""
    fmt = sniff_format(path)
    if fmt is None:
        with open(path, "rb") as fh:
            head = fh.read(8)
        if not head:
            raise InputError(f"{path}: empty file")
        raise InputError(
            f"{path}: not a tensor file ptm can read (PyTorch, NumPy .npy/.npz, safetensors or HDF5); "
            f"it starts with {head!r}"
        )
    return fmt


def sniff_format(path: str) -> str | None:
    """Like detect_format, but None for content that is no tensor format at all (an image, text).

    Files that look like a tensor format but are damaged or refused still raise InputError.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
    except OSError as exc:
        raise unreadable(path, exc) from None
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(_HDF5_SIGNATURE) or _hdf5_with_userblock(path):
        return "hdf5"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return _zip_kind(path)
    if head[:1] == b"\x80" and _TORCH_LEGACY_MAGIC in head[:32]:
        return "torch-legacy"
    if len(head) >= 9 and head[8:9] == b"{":
        return "safetensors"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        raise InputError(_pickle_refusal(path))
    return None


def _hdf5_with_userblock(path: str) -> bool:
    # HDF5 may put its signature at 512, 1024, 2048, ... after a user block.
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            offset = 512
            while offset + 8 <= size and offset <= 1 << 20:
                fh.seek(offset)
                if fh.read(8) == _HDF5_SIGNATURE:
                    return True
                offset *= 2
    except OSError:
        return False
    return False


def _zip_kind(path: str) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except Exception as exc:  # noqa: BLE001 - export-hdf5 sniffs here first, outside readers' boundary
        # BadZipFile, OSError, ValueError, EOFError, NotImplementedError ("zip file version 20.9")...
        raise InputError(f"{path}: a zip archive (PyTorch or .npz) that is truncated or damaged ({exc})") from None
    if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        return "torch"
    if names and all(n.endswith(".npy") for n in names):
        return "npz"
    if not names:
        return "npz"  # np.savez() with no arrays
    raise InputError(f"{path}: a zip archive, but neither a PyTorch file nor a NumPy .npz")


def _pickle_refusal(path: str) -> str:
    imports = pickle_imports(path)
    what = f"; unpickling it would import {', '.join(imports)}" if imports else ""
    return (f"{path}: refused: a Python pickle, not a tensor file{what}. ptm never unpickles "
            "arbitrary objects, since that can run code")
