"""ptm classify."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from ptmcli.commands.options import (
    BatchSizeOpt,
    CompileOpt,
    DeviceOpt,
    FailFastOpt,
    Format,
    FormatOpt,
    OfflineOpt,
    PrecisionOpt,
    WeightsOpt,
)
from ptmcli.errors import EXIT_OK, EXIT_SOME_FAILED, NoInputs
from ptmcli.models.registry import DEFAULT_CLASSIFIER


def classify(
    paths: Annotated[list[str], typer.Argument(help="Image files, folders (searched recursively), or - to read paths from stdin.", show_default=False)],
    top: Annotated[int, typer.Option("--top", "-k", min=1, max=1000, help="How many classes to show per image.")] = 5,
    model: Annotated[str, typer.Option("--model", "-m", help="Any name from `ptm models`.")] = DEFAULT_CLASSIFIER,
    weights: WeightsOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "fp32",
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
    shard: Annotated[Optional[str], typer.Option("--shard", help="K/N: classify only shard K (1..N) of the inputs, for job arrays.", rich_help_panel="Batch jobs")] = None,
    engine: Annotated[str, typer.Option("--engine", help="local (this process) or ray (a Ray cluster; pip install 'ptmcli\\[ray]').", rich_help_panel="Batch jobs")] = "local",
    actors: Annotated[Optional[int], typer.Option("--actors", min=1, help="Ray: model copies (default: one per GPU, or half the CPUs).", rich_help_panel="Batch jobs")] = None,
) -> None:
    """Classify images with an ImageNet model (ResNet101 by default, as in the book).

    Examples:

      ptm classify bobby.jpg --top 5

      ptm classify photos/ --model efficientnet_lite0 --format jsonl > out.jsonl

      find . -name '*.jpg' | ptm classify - --format csv

      ptm classify big_folder/ --precision bf16 --compile --format jsonl > out.jsonl

      ptm classify photos/ -o results.h5 --resume --shard 3/8 --save-features
    """
    if output or resume or force or save_probs or save_features or shard or engine != "local" or actors:
        from ptmcli.commands.jobs import classify_job

        raise typer.Exit(classify_job(
            paths, top, model, weights, device, batch_size, fmt.value, offline, fail_fast, with_errors,
            output, resume, force, save_probs, save_features, shard, engine, actors,
            precision=precision, compile=compile, exact_decode=exact_decode,
        ))

    from ptmcli import startup
    from ptmcli.models import weights as weight_files
    from ptmcli.models.classifier import Classifier
    from ptmcli.models.registry import get_classifier
    from ptmcli.pipeline.device import resolve_device, resolve_precision
    from ptmcli.pipeline.inputs import collect_inputs
    from ptmcli.sinks.console import ClassificationWriter, error_line, progress, transfer_progress

    items = list(collect_inputs(paths, sys.stdin))
    if not items:
        raise NoInputs("no images to classify", ["name image files or folders that hold images, or - for stdin"])
    spec = get_classifier(model)
    torch_device = resolve_device(device)
    dtype = resolve_precision(precision, torch_device)
    with transfer_progress(f"downloading {spec.weights.filename}") as on_bytes:
        weights_path = weight_files.resolve(
            spec.weights, weights, offline=weight_files.offline_requested(offline), progress=on_bytes
        )
    classifier = Classifier(spec, weights_path, torch_device, dtype, compile=compile, fast_decode=not exact_decode)
    if compile:
        classifier.use_fixed_batch(min(batch_size, len(items)))
    startup.loaded()

    writer = ClassificationWriter(fmt.value, sys.stdout, with_errors=with_errors)
    failed = 0
    with progress(len(items), "classifying") as advance:
        for batch in classifier.classify(items, top=top, batch_size=batch_size):
            for result in batch:
                if not result.ok:
                    error_line(result.error)
                    failed += 1
            writer.write(batch)
            advance(len(batch))
            if failed and fail_fast:
                break
    writer.close()
    raise typer.Exit(EXIT_SOME_FAILED if failed else EXIT_OK)

