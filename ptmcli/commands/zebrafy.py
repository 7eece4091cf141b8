"""ptm zebrafy: the book's CycleGAN horse -> zebra generator on your photos."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from ptmcli.commands.options import CompileOpt, DeviceOpt, FailFastOpt, OfflineOpt, PrecisionOpt, WeightsOpt
from ptmcli.errors import EXIT_OK, EXIT_SOME_FAILED, NoInputs, OutputExists
from ptmcli.models.registry import DEFAULT_GENERATOR

DEFAULT_NAME = "{stem}_zebra.png"


def zebrafy(
    paths: Annotated[list[str], typer.Argument(help="Image files, folders (searched recursively), or - to read paths from stdin.", show_default=False)],
    output: Annotated[str, typer.Option("--output", "-o", help="OUT.png|.jpg|.webp for one input; a folder (OUTDIR/) for several.", show_default=False)],
    size: Annotated[int, typer.Option("--size", "-s", min=0, help="Resize the short side to N pixels first (the book: 256); 0 keeps full resolution.")] = 256,
    name: Annotated[str, typer.Option("--name", help="Output file name in the -o folder; {stem} and {ext} are the input's.")] = DEFAULT_NAME,
    model: Annotated[str, typer.Option("--model", "-m", help="horse2zebra (the book's file) or horse2zebra_cyclegan (the CycleGAN project's).")] = DEFAULT_GENERATOR,
    weights: WeightsOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "fp32",
    compile: CompileOpt = False,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Same-size images per forward pass (large images always go one at a time).")] = 4,
    side_by_side: Annotated[bool, typer.Option("--side-by-side", help="Write the input and the output next to each other.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace existing output files.")] = False,
    skip_existing: Annotated[bool, typer.Option("--skip-existing", help="Quietly skip inputs whose output exists (resume a batch job).")] = False,
    offline: OfflineOpt = False,
    fail_fast: FailFastOpt = False,
) -> None:
    """Turn horses into zebras with the book's CycleGAN generator (chapter 2.2).

    Prints one line per written file on stdout: input, a tab, output.

    Examples:

      ptm zebrafy horse.jpg -o zebra.png

      ptm zebrafy photos/ -o zebras/ --size 512 --side-by-side

      ptm zebrafy big.jpg -o big_zebra.jpg --size 0 --device cpu

      ptm zebrafy photos/ -o zebras/ --precision bf16
    """
    from ptmcli import startup
    from ptmcli.models import weights as weight_files
    from ptmcli.models.registry import get_generator
    from ptmcli.pipeline.device import resolve_device, resolve_precision
    from ptmcli.pipeline.inputs import InputItem, collect_inputs
    from ptmcli.sinks.console import error_line, progress, transfer_progress
    from ptmcli.sinks.images import compose, output_format, plan_outputs, write_image

    sourced = []
    for arg in paths:
        root = Path(arg) if arg != "-" and Path(arg).is_dir() else None
        sourced.extend((item, root) for item in collect_inputs([arg], sys.stdin))
    if not sourced:
        raise NoInputs("no images to zebrafy", ["name image files or folders that hold images, or - for stdin"])
    if force and skip_existing:
        from ptmcli.errors import UsageProblem

        raise UsageProblem("--force and --skip-existing contradict each other", ["pick one"])
    targets = plan_outputs(sourced, output, name)

    jobs: list[tuple[InputItem, Path]] = []
    for (item, _), target in zip(sourced, targets):
        if not force and item.error is None and target.exists():
            if skip_existing:
                continue
            if len(sourced) == 1:
                raise OutputExists(f"{target} exists", ["pass --force to replace it"])
            item = InputItem(item.path, error=f"output {target} exists (pass --force to replace it)")
        jobs.append((item, target))

    weight = get_generator(model).weights
    torch_device = resolve_device(device)
    dtype = resolve_precision(precision, torch_device)
    with transfer_progress(f"downloading {weight.filename}") as on_bytes:
        weights_path = weight_files.resolve(
            weight, weights, offline=weight_files.offline_requested(offline), progress=on_bytes
        )
    from ptmcli.models.cyclegan import Zebrafier

    zebra = Zebrafier(weights_path, torch_device, short_side=size, label=f"the {weight.name} generator",
                      dtype=dtype, compile=compile)
    startup.loaded()

    # A plain `kill` should clean up like Ctrl-C: temp files removed, no half-written output.
    signal.signal(signal.SIGTERM, _interrupt)
    failed = 0
    targets_in_order = iter([target for _, target in jobs])
    with progress(len(jobs), "zebrafying") as advance:
        for batch in zebra.run([item for item, _ in jobs], batch_size=batch_size):
            for result in batch:
                target = next(targets_in_order)
                if result.ok:
                    fmt = output_format(target)
                    picture = compose(result.image, fmt, result.source if side_by_side else None, result.alpha)
                    try:
                        write_image(picture, target, fmt, replace=force)
                    except OutputExists as exc:
                        error_line(f"{result.path}: output {exc.message} (pass --force to replace it)")
                        failed += 1
                    except OSError as exc:
                        error_line(f"{result.path}: cannot write {target}: {exc.strerror or exc}")
                        failed += 1
                    else:
                        sys.stdout.write(f"{result.path}\t{target}\n")
                        sys.stdout.flush()
                else:
                    error_line(result.error)
                    failed += 1
                advance(1)
                if failed and fail_fast:
                    break
            if failed and fail_fast:
                break
    raise typer.Exit(EXIT_SOME_FAILED if failed else EXIT_OK)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt
