"""ptm zebrafy: the book's CycleGAN horse -> zebra generator on your photos."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from ptmcli.commands.options import (
    ActorsOpt,
    CompileOpt,
    DeviceOpt,
    EngineOpt,
    FailFastOpt,
    OfflineOpt,
    PrecisionOpt,
    ReportOpt,
    RuntimeOpt,
    ShardOpt,
    WeightsOpt,
)
from ptmcli.models.registry import DEFAULT_GENERATOR
from ptmcli.sinks.images import DEFAULT_NAME


def zebrafy(
    paths: Annotated[list[str], typer.Argument(help="Image or video files, folders (searched recursively), http(s) URLs, or - to read paths and URLs from stdin.", show_default=False)],
    output: Annotated[str, typer.Option("--output", "-o", help="OUT.png|.jpg|.webp for one photo; OUT.mp4|.webm|.mkv|.gif|.webp for one video; a folder (OUTDIR/) for several.", show_default=False)],
    size: Annotated[int, typer.Option("--size", "-s", min=0, help="Resize the short side to N pixels first (the book: 256); 0 keeps full resolution.")] = 256,
    name: Annotated[str, typer.Option("--name", help="Output file name in the -o folder; {stem} and {ext} are the input's, {frame} a video's frame number ('{stem}_{frame:05d}.png': a folder of frames). Videos default to {stem}_zebra.mp4.")] = DEFAULT_NAME,
    model: Annotated[str, typer.Option("--model", "-m", help="horse2zebra (the book's file) or horse2zebra_cyclegan (the CycleGAN project's).")] = DEFAULT_GENERATOR,
    weights: WeightsOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "fp32",
    runtime: RuntimeOpt = "auto",
    compile: CompileOpt = False,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Same-size images per forward pass (large images always go one at a time).")] = 4,
    side_by_side: Annotated[bool, typer.Option("--side-by-side", help="Write the input and the output next to each other.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace existing output files.")] = False,
    skip_existing: Annotated[bool, typer.Option("--skip-existing", help="Quietly skip inputs whose output exists (resume a batch job).")] = False,
    offline: OfflineOpt = False,
    fail_fast: FailFastOpt = False,
    report: ReportOpt = None,
    shard: ShardOpt = None,
    engine: EngineOpt = "local",
    actors: ActorsOpt = None,
    start: Annotated[str, typer.Option("--start", help="Videos: begin at this time (seconds, or MM:SS, HH:MM:SS).")] = "0",
    duration: Annotated[Optional[str], typer.Option("--duration", help="Videos: translate this long (seconds, or MM:SS).", show_default=False)] = None,
    frames: Annotated[Optional[int], typer.Option("--frames", min=1, help="Videos: translate at most N frames.", show_default=False)] = None,
    crf: Annotated[Optional[int], typer.Option("--crf", min=0, max=63, help="Videos: the encoder's quality, lower is better (H.264: 0-51, default 18; VP9: 0-63, default 31).", show_default=False)] = None,
) -> None:
    """Turn horses into zebras with the book's CycleGAN generator (chapter 2.2).

    Prints one line per written file on stdout: input, a tab, output.

    Examples:

      ptm zebrafy horse.jpg -o zebra.png

      ptm zebrafy photos/ -o zebras/ --size 512 --side-by-side

      ptm zebrafy big.jpg -o big_zebra.jpg --size 0 --device cpu

      ptm zebrafy photos/ -o zebras/ --precision bf16 --runtime openvino

      ptm zebrafy photos/ -o zebras/ --report zebras.html

      ptm zebrafy photos/ -o zebras/ --shard 3/8 --skip-existing

      ptm zebrafy photos/ -o zebras/ --engine ray --actors 4

      ptm zebrafy ride.mp4 -o ride_zebra.mp4    (or .webm, .gif; --start 10 --duration 3 for a piece)

      ptm zebrafy ride.mp4 -o frames/ --name '{stem}_{frame:05d}.png' --frames 50
    """
    from ptmcli.pipeline.zebrafy import ZebrafyOptions, parse_seconds, run_zebrafy

    options = ZebrafyOptions(
        paths=tuple(paths), output=output, size=size, name=name, model=model, weights=weights, device=device,
        precision=precision, runtime=runtime, compile=compile, batch_size=batch_size, side_by_side=side_by_side, force=force,
        skip_existing=skip_existing, offline=offline, fail_fast=fail_fast, report=report,
        shard=shard, engine=engine, actors=actors, start=parse_seconds("--start", start),
        duration=None if duration is None else parse_seconds("--duration", duration), frames=frames, crf=crf,
    )
    raise typer.Exit(run_zebrafy(options, sys.stdin, sys.stdout))
