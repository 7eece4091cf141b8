"""The errors a user can cause. Library code raises these; the CLI turns them into messages.

Exit codes (documented in README): 0 all good, 1 some inputs failed while the rest were
processed, 2 the run could not start.
"""

from __future__ import annotations

import re

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_CANNOT_START = 2


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape_controls(text: str) -> str:
    """`text` with each control character escaped as Python writes it (`\\r`, `\\x1a`): names and
    bytes from a user's file (a pickle's module, an npz member) can never break a line of ptm's."""
    return _CONTROL.sub(lambda found: repr(found.group())[1:-1], text)


class PtmError(Exception):
    """A problem the user can fix: a one-line message and, optionally, lines saying how.

    Both are made one line each here, whatever text from a file they quote."""

    exit_code = EXIT_CANNOT_START

    def __init__(self, message: str, hints: list[str] | tuple[str, ...] = ()):
        message = escape_controls(message)
        super().__init__(message)
        self.message = message
        self.hints = tuple(escape_controls(hint) for hint in hints)


class UsageProblem(PtmError):
    """Options that contradict each other or are out of range."""


class NoInputs(PtmError):
    """Nothing to process."""


class UnknownModel(PtmError):
    """A model name ptm does not know."""


class WeightsNotFound(PtmError):
    """No weight file on this machine, and it could not (or must not) be downloaded."""


class WeightsInvalid(PtmError):
    """A weight file that is damaged, fails its hash, or does not fit the model."""


class DownloadFailed(PtmError):
    """A transfer that did not complete or did not verify."""


class DeviceUnavailable(PtmError):
    """A --device that this machine does not have."""


class OutputExists(PtmError):
    """An output that would be replaced without --force."""


class InputError(PtmError):
    """One input that could not be processed; the others still are."""

    exit_code = EXIT_SOME_FAILED


class OutputUnwritable(PtmError):
    """An output file that cannot be created or written (permissions, disk full), or that holds
    something other than what this run would write into it."""


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
