"""Options shared by several commands, declared once."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ptmcli.models.device import DEVICE_HELP, PRECISION_HELP
from ptmcli.models.runtimes import RUNTIME_HELP
from ptmcli.sinks.formats import FORMAT_HELP, Format

DeviceOpt = Annotated[str, typer.Option("--device", "-d", help=DEVICE_HELP, envvar="PTM_DEVICE")]
WeightsOpt = Annotated[
    Optional[str],
    typer.Option("--weights", "-w", help="A local weights file (state dict); skips the search and any download."),
]
OfflineOpt = Annotated[
    bool, typer.Option("--offline", help="Never touch the network (also PTM_OFFLINE=1).")
]
FailFastOpt = Annotated[bool, typer.Option("--fail-fast", help="Stop at the first input that fails.")]
BatchSizeOpt = Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Images per forward pass.")]
FormatOpt = Annotated[Format, typer.Option("--format", "-f", help=FORMAT_HELP, case_sensitive=False)]
PrecisionOpt = Annotated[str, typer.Option("--precision", "-p", help=PRECISION_HELP, envvar="PTM_PRECISION")]
CompileOpt = Annotated[
    bool,
    typer.Option("--compile", help="torch.compile the model (Inductor, frozen weights): pays 15-60 s once per "
                 "process, then runs faster. For long runs."),
]
RuntimeOpt = Annotated[str, typer.Option("--runtime", "-r", help=RUNTIME_HELP, envvar="PTM_RUNTIME")]
_REPORT_HELP = (
    "Also write an HTML report (one file, opens from disk, no network): thumbnails of at most 256 px "
    "inline, or in a folder NAME_files/ beside it above 1000 thumbnails. Written when the run ends "
    "or is stopped; replaced if it exists."
)
ReportOpt = Annotated[Optional[str], typer.Option("--report", help=_REPORT_HELP, show_default=False)]
ShardOpt = Annotated[Optional[str], typer.Option(
    "--shard", help="K/N: process only shard K (1..N) of the inputs, for job arrays.", rich_help_panel="Batch jobs")]
EngineOpt = Annotated[str, typer.Option(
    "--engine", help="local (this process) or ray (a Ray cluster; pip install 'ptmcli\\[ray]').",
    rich_help_panel="Batch jobs")]
ActorsOpt = Annotated[Optional[int], typer.Option(
    "--actors", min=1, help="Ray: model copies (default: one per GPU, or half the CPUs).", rich_help_panel="Batch jobs")]
