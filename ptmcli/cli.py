"""The Typer app: parse, call library code, render. No torch at module level (`ptm --help` is fast)."""

from __future__ import annotations

import os
import signal
import sys
from typing import Annotated, Optional

import typer

from ptmcli import __version__
from ptmcli.commands import classify as classify_cmds
from ptmcli.commands import export_hdf5 as export_hdf5_cmds
from ptmcli.commands import inspect_tensor as inspect_tensor_cmds
from ptmcli.commands import merge as merge_cmds
from ptmcli.commands import models as models_cmds
from ptmcli.commands import report as report_cmds
from ptmcli.commands import runtimes as runtimes_cmds
from ptmcli.commands import weights as weights_cmds
from ptmcli.commands import zebrafy as zebrafy_cmds
from ptmcli.errors import EXIT_CANNOT_START, PtmError
from ptmcli.pipeline.signals import Stopped

app = typer.Typer(
    name="ptm",
    help="Run the pretrained networks of 'Deep Learning with PyTorch' on your own files.\n\n"
    "Exit codes: 0 all good, 1 some inputs failed (the rest were processed), 2 could not start.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_debug = {"on": os.environ.get("PTM_DEBUG", "") not in ("", "0")}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ptm {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = None,
    debug: Annotated[bool, typer.Option(
        "--debug", help="Show Python tracebacks and what libraries ptm runs say (Ray); also PTM_DEBUG=1.")] = False,
) -> None:
    if debug:
        _debug["on"] = True
        os.environ["PTM_DEBUG"] = "1"  # library code (and Ray's workers) read it there


app.command("classify")(classify_cmds.classify)
app.command("models")(models_cmds.models)
app.command("inspect-tensor", cls=inspect_tensor_cmds.ViewOrderCommand)(inspect_tensor_cmds.inspect_tensor)
app.command("export-hdf5")(export_hdf5_cmds.export_hdf5)
app.command("zebrafy")(zebrafy_cmds.zebrafy)
app.add_typer(weights_cmds.app, name="weights")
app.command("merge")(merge_cmds.merge)
app.command("report")(report_cmds.report)
app.command("runtimes")(runtimes_cmds.runtimes)


def main() -> None:
    """Console entry point: maps every error a user can cause to one message and an exit code."""
    try:
        app()
    except PtmError as exc:
        if _debug["on"]:
            raise
        sys.stderr.write(f"ptm: error: {exc.message}\n")
        for hint in exc.hints:
            sys.stderr.write(f"  {hint}\n")
        sys.exit(exc.exit_code)
    except Stopped as exc:
        # Raised only where the output is one atomic file, so stopping left it as it was.
        sys.stderr.write(f"ptm: stopped by {signal.Signals(exc.signum).name}; the output was not written\n")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("ptm: interrupted\n")
        sys.exit(130)
    except BrokenPipeError:
        # The reader (head, less) went away: not an error of ours. Silence the flush at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)
    except Exception as exc:
        if _debug["on"]:
            raise
        sys.stderr.write(f"ptm: internal error: {type(exc).__name__}: {exc} (rerun with --debug for details)\n")
        sys.exit(EXIT_CANNOT_START)


def entry() -> None:
    """The `ptm` console script and `python -m ptmcli`: main(), then a fast exit."""
    from ptmcli import startup

    startup.starting()
    try:
        main()
    except SystemExit as exc:
        _exit_now(exc.code)
    _exit_now(0)


def _exit_now(code) -> None:
    """Exit without the interpreter's teardown once output is flushed.

    Unloading torch and its thread pools takes most of a second and does nothing for the user;
    every file ptm writes is closed (and renamed into place) before this point.
    """
    if code is None:
        code = 0
    elif not isinstance(code, int):
        sys.stderr.write(f"{code}\n")
        code = 1
    if "torch" not in sys.modules:
        sys.exit(code)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        pass
    os._exit(code)
