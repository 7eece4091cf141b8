"""An untrusted HDF5 file's reads done first in a forked child, so that what the HDF5 C library
does on crafted bytes (a segmentation fault, gigabytes of memory, a loop) ends there and ptm says
one line instead of dying.

Why a child and not only checks of the bytes: h5py's errors are catchable, HDF5's crashes are not,
and HDF5 trusts what the file says in more places than ptm can check without parsing the format
itself (lengths in attributes, object headers, B-trees, heaps: fuzz/README.md, "Findings"). The
raw checks (hdf5_text.py) stay, for their precise words and for values, which only this process
reads; the child is the net under them, for what nobody has found yet.

Why a fork and not a fresh interpreter: a fork costs 2 ms with h5py loaded (28 ms with torch),
a fresh `python -c "import h5py"` 190 ms. The child reads the file a second time (page cache warm):
on a loaded 2-core machine `ptm report` of 100 to 100,000 rows took 20-130 ms more (about 4% at
100,000 rows), `merge` 10-120 ms, `inspect-tensor` 40-100 ms, and walking a file of 2,000
datasets twice about 1 s (fuzz/README.md). A user would rather wait that than see a crash.

Where there is no fork (Windows), the reads run in this process only, as before.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Callable

from ptmcli.sinks.resultrows import Damaged

# The child may take this much memory above what this process holds when it forks: ptm reads a
# results file in blocks of 32 MB, and a tensor file's metadata is small; more is a length the
# file claims and does not hold (a 27 KB file asked for 4 GB).
MOST_CHILD_BYTES = 1 << 30
_MEMORY = 3  # the child's exit status when its reads ran out of that memory


def seconds_for(path: Path) -> float:
    """How long the child may read: 5 s, and a second for each MB (a slow disk reads ~50 MB/s)."""
    return 5.0 + path.stat().st_size / (1 << 20)


def read_in_child(path: Path, reads: Callable[[Path], None]) -> None:
    """Run `reads(path)` in a child first; Damaged if HDF5 crashed, ran out of memory or did not
    finish there. A Python exception in the child is left to this process, which does the same
    reads next and says what is wrong in ptm's words."""
    if not hasattr(os, "fork"):
        return
    import select
    import warnings

    seconds = seconds_for(path)
    readable, writable = os.pipe()
    with _no_h5py_call_in_flight(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Python 3.12+: fork with threads
        pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(readable)
        os._exit(_child(path, reads))
    os.close(writable)
    ended = False
    try:
        # The pipe's write end closes when the child ends, however it ends.
        ended = bool(select.select([readable], [], [], seconds)[0])
    finally:
        os.close(readable)
        if not ended:  # too slow, or this process was interrupted while it waited
            os.kill(pid, 9)
        _, status = os.waitpid(pid, 0)
    if not ended:
        raise Damaged(f"HDF5 did not finish reading it in {seconds:.0f} s")
    if os.WIFSIGNALED(status):
        raise Damaged(f"HDF5 crashed reading it with {_signal_name(os.WTERMSIG(status))}")
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == _MEMORY:
        raise Damaged(f"reading it takes more than {MOST_CHILD_BYTES >> 30} GB of memory: "
                      "a length it claims is damaged")


def out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` is an allocation that failed (in the child: one past its bound). A reader
    that shows what it can of a damaged file and passes over an odd part must re-raise these:
    the child's bound is what keeps this process from taking the gigabytes the file claims."""
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or ("alloc" in text and "mem" in text)  # HDF5's words


def _signal_name(number: int) -> str:
    import signal

    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _child(path: Path, reads: Callable[[Path], None]) -> int:
    """In the child: HDF5's crash is the child's death by its signal (no handler, no report), its
    memory is bounded; the exit status says which of the rest happened."""
    try:
        import gc

        gc.disable()  # a collection would touch, and so copy, every page of the parent's objects
        _quiet()
        _bound_memory(MOST_CHILD_BYTES + path.stat().st_size)
        reads(path)
    except Damaged:
        return 0  # the parent finds the same damage, and says it in ptm's words
    except Exception as exc:  # noqa: BLE001 - the parent does these reads next and words the error
        return _MEMORY if out_of_memory(exc) else 0
    except BaseException:  # noqa: BLE001 - nothing may escape a forked child
        return 1
    return 0


def _quiet() -> None:
    """No output from the child, and the default action for fatal signals: a handler the parent
    installed (faulthandler, libFuzzer's crash report) would report the parent's crash."""
    import faulthandler
    import signal

    faulthandler.disable()
    for name in ("SIGSEGV", "SIGBUS", "SIGABRT", "SIGFPE", "SIGILL"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)


def _bound_memory(extra: int) -> None:
    try:
        import resource

        with open("/proc/self/statm") as handle:
            size = int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = size + extra if hard == resource.RLIM_INFINITY else min(size + extra, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, OSError, ValueError):
        pass  # no /proc (macOS): the child's memory is not bounded there


@contextlib.contextmanager
def _no_h5py_call_in_flight():
    """Fork while holding h5py's global lock: a thread inside h5py at that moment would leave it
    locked in the child, which would then wait for it forever."""
    try:
        from h5py._objects import phil
    except ImportError:
        yield
        return
    with phil:
        yield
