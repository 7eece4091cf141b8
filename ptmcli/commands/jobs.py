"""Batch jobs: `ptm classify` with --output/--resume/--shard/--engine, and `ptm merge`."""

from __future__ import annotations

import signal
import sys
from dataclasses import asdict
from typing import Annotated

import typer

from ptmcli.errors import EXIT_OK, EXIT_SOME_FAILED, NoInputs, UsageProblem


class _StopOnSignal:
    """SIGTERM/SIGINT end the run after the batch in flight is written; a second ^C is immediate."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict = {}

    def _handle(self, signum, _frame) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self) -> "_StopOnSignal":
        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread (embedded use): leave signals alone
                pass
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def classify_job(
    paths: list[str],
    top: int,
    model: str,
    weights: str | None,
    device: str,
    batch_size: int,
    fmt: str,
    offline: bool,
    fail_fast: bool,
    with_errors: bool,
    output: str | None,
    resume: bool,
    force: bool,
    save_probs: bool,
    save_features: bool,
    shard: str | None,
    engine: str,
    actors: int | None,
    precision: str = "fp32",
    compile: bool = False,
    exact_decode: bool = False,
) -> int:
    """`ptm classify` for batch jobs; returns the exit code."""
    from ptmcli import __version__, startup
    from ptmcli.models import weights as weight_files
    from ptmcli.models.registry import get_classifier
    from ptmcli.pipeline.engines import ENGINES, classify_local
    from ptmcli.pipeline.shards import collect_keyed_inputs, parse_shard, select
    from ptmcli.sinks.console import ClassificationWriter, error_line, progress, transfer_progress
    from ptmcli.sinks.resultfiles import Row, RunInfo, check_output, open_results, output_kind

    if engine not in ENGINES:
        raise UsageProblem(f"--engine {engine!r} is not an engine", [f"use one of: {', '.join(ENGINES)}"])
    if (resume or force) and not output:
        raise UsageProblem("--resume and --force need --output FILE", ["e.g. --output results.h5 --resume"])
    if (save_probs or save_features) and (not output or output_kind(output) != "hdf5"):
        raise UsageProblem("--save-probs and --save-features need an HDF5 --output", ["e.g. --output results.h5"])
    if actors is not None and engine != "ray":
        raise UsageProblem("--actors is for --engine ray")
    shard_spec = parse_shard(shard) if shard else None
    out_path = check_output(output, resume, force) if output else None
    if engine == "ray":
        from ptmcli.pipeline.engines.ray_engine import _import_ray

        _import_ray()  # refuse before any work when Ray is missing

    inputs = collect_keyed_inputs(paths, sys.stdin)
    if not inputs:
        raise NoInputs("no images to classify", ["name image files or folders that hold images, or - for stdin"])
    mine = select(inputs, shard_spec)
    rows = [Row(entry.position, entry.item.path) for entry in mine]

    spec = get_classifier(model)
    with transfer_progress(f"downloading {spec.weights.filename}") as on_bytes:
        weights_path = weight_files.resolve(
            spec.weights, weights, offline=weight_files.offline_requested(offline), progress=on_bytes
        )
    categories = spec.categories()
    classifier = None
    if engine == "local":
        from ptmcli.models.classifier import Classifier
        from ptmcli.pipeline.device import resolve_device, resolve_precision

        torch_device = resolve_device(device)
        classifier = Classifier(spec, weights_path, torch_device, resolve_precision(precision, torch_device),
                                compile=compile, fast_decode=not exact_decode)
        feature_dim = classifier.feature_dim if save_features else None
    else:
        feature_dim = _feature_dim_without_weights(spec, len(categories)) if save_features else None

    info = RunInfo(
        model=spec.name,
        weights_file=weights_path.name,
        weights_sha256=weight_files.file_sha256(weights_path),
        # Precision and JPEG draft decoding change the numbers too: a resume must use the same.
        preprocess={**asdict(spec.preprocess), "precision": precision, "jpeg_draft": not exact_decode},
        top_k=min(top, len(categories)),
        categories=tuple(categories),
        save_probabilities=save_probs,
        feature_dim=feature_dim,
        shard=str(shard_spec) if shard_spec else "",
        inputs_total=len(inputs),
        ptm_version=__version__,
    )
    startup.loaded()
    results = open_results(out_path, rows, info, resume) if out_path else None
    todo = results.todo if results is not None else list(range(len(rows)))
    work = [(row, mine[row].item) for row in todo]

    if engine == "local":
        batches = classify_local(classifier, work, top, batch_size, save_probs, save_features)
    else:
        from ptmcli.pipeline.engines.ray_engine import classify_ray

        batches = classify_ray(spec.name, weights_path, device, work, categories, top, batch_size,
                               save_probs, save_features, actors, precision=precision,
                               fast_decode=not exact_decode)

    writer = None if results is not None else ClassificationWriter(fmt, sys.stdout, with_errors=with_errors)
    failed = 0
    with _StopOnSignal() as stop:
        try:
            with progress(len(work), "classifying", stdout_free=results is not None) as advance:
                for local_rows, output_batch in batches:
                    for result in output_batch.results:
                        if not result.ok:
                            error_line(result.error)
                            failed += 1
                    if results is not None:
                        results.write(local_rows, output_batch)
                    else:
                        writer.write(output_batch.results)
                    advance(len(local_rows))
                    if stop.signum is not None or (failed and fail_fast):
                        break
        except BaseException:
            if results is not None:
                results.abort()
            raise
        if results is not None:
            results.close()
        else:
            writer.close()
    if results is not None and not results.complete:
        sys.stderr.write(
            f"ptm: stopped; {out_path} holds the results so far: run the same command with --resume "
            "to finish it\n"
        )
    if stop.signum is not None:
        return 128 + stop.signum
    return EXIT_SOME_FAILED if failed else EXIT_OK


def _feature_dim_without_weights(spec, num_classes: int) -> int:
    """The embedding width, from the architecture alone (built on the meta device: no memory)."""
    from ptmcli.models.heads import feature_dim

    return feature_dim(spec)


def merge(
    sources: Annotated[list[str], typer.Argument(help="Result files of the shards (.h5, .jsonl, .csv or .tsv).", show_default=False)],
    output: Annotated[str, typer.Option("--output", "-o", help="The merged file (same kind as the sources).", show_default=False)],
    partial: Annotated[bool, typer.Option("--partial", help="Merge even if shards are missing or unfinished (their rows are left out or pending).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace --output if it exists.")] = False,
) -> None:
    """Join the result files of `ptm classify --shard K/N` runs into one file, in input order.

    HDF5 rows are copied (not linked as a virtual dataset): the merged file stands alone and equals the file one unsharded run writes.

    Refused: files made with other settings or inputs, missing or unfinished shards (unless --partial).

    Examples:

      ptm merge shard-*.h5 -o all.h5

      ptm merge part-*.jsonl -o all.jsonl
    """
    from pathlib import Path

    from ptmcli.sinks.merge import merge_results

    merge_results([Path(s) for s in sources], Path(output), partial=partial, force=force)
    raise typer.Exit(EXIT_OK)
