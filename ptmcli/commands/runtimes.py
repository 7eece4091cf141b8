"""ptm runtimes: what computes forward passes on this machine, and how fast it measured."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from ptmcli.commands.options import Format, FormatOpt, OfflineOpt, PrecisionOpt, WeightsOpt


def runtimes(
    measure: Annotated[bool, typer.Option("--measure", help="Export --model for every installed runtime and time "
                                          "each now (what a big job does on its first run).")] = False,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="The model to measure (with --measure), "
                                                 "e.g. resnet101 or horse2zebra.")] = None,
    weights: WeightsOpt = None,
    precision: PrecisionOpt = "fp32",
    offline: OfflineOpt = False,
    fmt: FormatOpt = Format.auto,
) -> None:
    """List the runtimes (installed or not), the precisions each offers on this CPU, and what was
    measured here; `--runtime auto` picks by those measurements.

    Examples:

      ptm runtimes

      ptm runtimes --measure --model resnet101

      ptm runtimes --measure --model horse2zebra --precision bf16
    """
    from ptmcli.errors import UsageProblem
    from ptmcli.models.runtimes.cpu import cpu_features
    from ptmcli.models.runtimes.listing import runtime_records
    from ptmcli.sinks.formats import Column, write_listing

    if measure:
        if not model:
            raise UsageProblem("--measure needs --model NAME", ["e.g. ptm runtimes --measure --model resnet101"])
        from ptmcli.pipeline.loading import measure_runtimes

        measure_runtimes(model, weights, offline, precision)
    elif model or weights:
        raise UsageProblem("--model and --weights are for --measure", ["e.g. ptm runtimes --measure --model resnet101"])
    columns = [Column("runtime"), Column("installed"), Column("version"), Column("precisions", "on this CPU"),
               Column("measured", "measured here")]
    write_listing(runtime_records(), columns, fmt, sys.stdout, title=f"CPU: {cpu_features().summary()}")
