"""ptm classify."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from ptmcli.commands.options import (
    ActorsOpt,
    BatchSizeOpt,
    CompileOpt,
    DeviceOpt,
    EngineOpt,
    FailFastOpt,
    Format,
    FormatOpt,
    OfflineOpt,
    PrecisionOpt,
    ReportOpt,
    RuntimeOpt,
    ShardOpt,
    WeightsOpt,
)
from ptmcli.models.registry import DEFAULT_CLASSIFIER


def classify(
    paths: Annotated[list[str], typer.Argument(help="Image and video files, folders (searched recursively), http(s) URLs, or - to read paths and URLs from stdin.", show_default=False)],
    top: Annotated[int, typer.Option("--top", "-k", min=1, max=1000, help="How many classes to show per image.")] = 5,
    model: Annotated[str, typer.Option("--model", "-m", help="Any name from `ptm models`.")] = DEFAULT_CLASSIFIER,
    weights: WeightsOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "fp32",
    runtime: RuntimeOpt = "auto",
    compile: CompileOpt = False,
    exact_decode: Annotated[bool, typer.Option("--exact-decode", help="Decode JPEGs at full size before resizing, exactly as torchvision; slower on large photos.")] = False,
    batch_size: BatchSizeOpt = 16,
    fmt: FormatOpt = Format.auto,
    offline: OfflineOpt = False,
    fail_fast: FailFastOpt = False,
    with_errors: Annotated[bool, typer.Option("--with-errors", help="Also print a row (status=error) for each failed input, so rows stay aligned with inputs.")] = False,
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Write results to FILE (.h5, .jsonl, .csv, .tsv) as they come: one row per input, in input order.", rich_help_panel="Batch jobs")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue --output: skip inputs done, retry failed ones.", rich_help_panel="Batch jobs")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --output.", rich_help_panel="Batch jobs")] = False,
    save_probs: Annotated[bool, typer.Option("--save-probs", help="Also store all class probabilities (HDF5 --output).", rich_help_panel="Batch jobs")] = False,
    save_features: Annotated[bool, typer.Option("--save-features", help="Also store the embedding the classifier layer reads (HDF5 --output).", rich_help_panel="Batch jobs")] = False,
    shard: ShardOpt = None,
    engine: EngineOpt = "local",
    actors: ActorsOpt = None,
    report: ReportOpt = None,
    every: Annotated[str, typer.Option("--every", help="Videos: classify a frame every N seconds (1s, 0.5s) or every N-th frame (10); one row per frame, with its time.")] = "1s",
) -> None:
    """Classify images (and frames of videos) with an ImageNet model (ResNet101 by default, as in the book).

    Examples:

      ptm classify bobby.jpg --top 5

      ptm classify photos/ --model efficientnet_lite0 --format jsonl > out.jsonl

      find . -name '*.jpg' | ptm classify - --format csv

      ptm classify big_folder/ --precision bf16 --compile --format jsonl > out.jsonl

      ptm classify photos/ -o results.h5 --resume --shard 3/8 --save-features

      ptm classify photos/ https://example.com/dog.jpg --report report.html

      ptm classify clip.mp4 --every 0.5s --format csv
    """
    from ptmcli.pipeline.classify import ClassifyOptions, run_classify

    options = ClassifyOptions(
        paths=tuple(paths), top=top, model=model, weights=weights, device=device, precision=precision,
        runtime=runtime, compile=compile, exact_decode=exact_decode, batch_size=batch_size, fmt=fmt.value, offline=offline,
        fail_fast=fail_fast, with_errors=with_errors, output=output, resume=resume, force=force,
        save_probs=save_probs, save_features=save_features, shard=shard, engine=engine, actors=actors,
        report=report, every=every,
    )
    raise typer.Exit(run_classify(options, sys.stdin, sys.stdout))

