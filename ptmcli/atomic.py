"""Writing a file so that readers see the old one or the new one, never a half-written one.

Every file ptm writes goes to a temporary name beside its destination (same file system, so the
final os.replace is atomic) and is renamed into place only once complete; a failure or an
interrupt removes the temporary file. `ptm zebrafy`'s no-clobber image writes (sinks/images.py) link
instead of renaming and keep their own code.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def temp_beside(destination: Path, mode_of: Path | None = None) -> Path:
    """A new empty file next to `destination`, with the mode a plain open() would give it (or
    `mode_of`'s, for a file that replaces another). mkstemp alone would make it private (0600)."""
    fd, name = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".tmp")
    try:
        if mode_of is not None:
            mode = os.stat(mode_of).st_mode & 0o777
        else:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    return Path(name)


@contextmanager
def replacing(destination: Path, mode_of: Path | None = None) -> Iterator[Path]:
    """Yield a temporary path to write; it becomes `destination` when the block completes."""
    tmp = temp_beside(destination, mode_of)
    try:
        yield tmp
        os.replace(tmp, destination)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
