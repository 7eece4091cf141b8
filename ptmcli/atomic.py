"""Writing a file so that readers see the old one or the new one, never a half-written one.

The one way ptm writes a file: to a temporary name beside its destination (same file system, so
the final rename is atomic), renamed into place only once complete; a failure or an interrupt
removes the temporary file. Three forms of the same thing:

- `writing(dest, "w", ...)`: an open file; flushed and fsynced, then renamed (most writers);
- `replacing(dest)`: a temporary path, for libraries that open files themselves (h5py, Pillow);
- `Pending(dest)`: the same as an object, `commit()` or `discard()` later, for a sink whose
  file lives for a whole run (export-hdf5).

`clobber=False` never replaces an existing destination, not even one that appeared while the
file was written: the temporary file is hard-linked to its name, which fails if the name exists
(FileExistsError). That is how `ptm zebrafy` writes its pictures.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator


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


class Pending:
    """A file being written at `path`, beside `destination`; `commit()` puts it in place."""

    def __init__(self, destination: Path, mode_of: Path | None = None, clobber: bool = True):
        self.destination = Path(destination)
        self.clobber = clobber
        self.path = temp_beside(self.destination, mode_of)

    def commit(self) -> None:
        try:
            if self.clobber:
                os.replace(self.path, self.destination)
                return
            try:
                os.link(self.path, self.destination)
            except FileExistsError:
                raise
            except OSError:
                # A file system without hard links: check, then rename (a narrow race, not a clobber).
                if os.path.lexists(self.destination):
                    raise FileExistsError(f"{self.destination} exists") from None
                os.replace(self.path, self.destination)
        finally:
            self.discard()

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


@contextmanager
def replacing(destination: Path, mode_of: Path | None = None, clobber: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; it becomes `destination` when the block completes."""
    pending = Pending(destination, mode_of, clobber)
    try:
        yield pending.path
    except BaseException:
        pending.discard()
        raise
    pending.commit()


@contextmanager
def writing(destination: Path, mode: str = "wb", clobber: bool = True, **open_args: Any) -> Iterator[IO]:
    """Yield an open file; on success it is flushed to disk and becomes `destination`."""
    with replacing(destination, clobber=clobber) as tmp, open(tmp, mode, **open_args) as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())
