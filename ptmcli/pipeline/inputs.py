"""Paths, folders and stdin -> input items, in the order the user named them. Torch-free."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, TextIO

from ptmcli.errors import InputError

# Lower-cased; matched against the suffix in any case (.JPG, .Jpeg, ...).
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".ppm", ".pgm",
     ".pbm", ".pnm", ".tga", ".ico", ".jfif", ".avif", ".heic", ".heif", ".dib", ".pcx", ".sgi"}
)


@dataclass(frozen=True)
class InputItem:
    """One input as the user named it; `error` is set when it cannot even be looked at."""

    path: str
    error: str | None = None


def _walk_images(folder: Path) -> Iterator[Path]:
    # Sorted at each level so the order is stable across runs and machines.
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            if Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                yield Path(root) / name


def collect_inputs(args: Iterable[str], stdin: TextIO | None = None) -> Iterator[InputItem]:
    """Expand files, folders (recursively) and `-` (paths from stdin, one a line) into items.

    Named files are kept whatever their extension (the content decides); folders contribute only
    files with an image extension. Missing paths become items with an error, so they are reported
    in order with the others.
    """
    for arg in args:
        if arg == "-":
            for line in stdin if stdin is not None else sys.stdin:
                line = line.rstrip("\r\n")
                if line:
                    yield from collect_inputs([line])
            continue
        path = Path(arg)
        if path.is_dir():
            yield from (InputItem(str(p)) for p in _walk_images(path))
        elif path.exists():
            yield InputItem(arg)
        else:
            yield InputItem(arg, error="no such file or directory")


def unreadable(path: str, exc: OSError) -> InputError:
    """The one-line reason a user's file could not be opened or read."""
    if isinstance(exc, FileNotFoundError):
        reason = "no such file"
    elif isinstance(exc, IsADirectoryError):
        reason = "is a directory"
    elif isinstance(exc, PermissionError):
        reason = "permission denied"
    else:
        reason = f"cannot read ({exc.strerror or exc})"
    return InputError(f"{path}: {reason}")
