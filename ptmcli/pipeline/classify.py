"""`ptm classify`, the one path: options -> inputs -> (shard, resume) -> batches -> model -> sinks.

Whether results go to the terminal or to a file, whether the work runs here or on Ray, whether it
is a fresh run, a resumed one or a shard of a job array: the same steps run in the same order,
with the same padding, so every one of them computes the same numbers.
"""

from __future__ import annotations

import sys
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TextIO

from ptmcli.errors import EXIT_OK, EXIT_SOME_FAILED, UsageProblem
from ptmcli.models.registry import DEFAULT_CLASSIFIER


@dataclass(frozen=True, kw_only=True)
class ClassifyOptions:
    """What the user asked for, as given on the command line (checked by `check_options`)."""

    paths: tuple[str, ...]
    top: int = 5
    model: str = DEFAULT_CLASSIFIER
    weights: str | None = None
    device: str = "auto"
    precision: str = "fp32"
    runtime: str = "auto"
    compile: bool = False
    exact_decode: bool = False
    batch_size: int = 16
    fmt: str = "auto"
    offline: bool = False
    fail_fast: bool = False
    with_errors: bool = False
    output: str | None = None
    resume: bool = False
    force: bool = False
    save_probs: bool = False
    save_features: bool = False
    shard: str | None = None
    engine: str = "local"
    actors: int | None = None
    report: str | None = None


@dataclass(frozen=True)
class _Checked:
    shard: object  # Shard | None
    output: Path | None
    report: Path | None = None


def check_options(options: ClassifyOptions) -> _Checked:
    """Refuse contradictions and unusable outputs before any input is looked at (exit 2)."""
    from ptmcli.pipeline.engines import check_engine
    from ptmcli.pipeline.shards import parse_shard
    from ptmcli.sinks.resultfile import check_output, output_kind

    if (options.resume or options.force) and not options.output:
        raise UsageProblem("--resume and --force need --output FILE", ["e.g. --output results.h5 --resume"])
    if (options.save_probs or options.save_features) and (
            not options.output or output_kind(options.output) != "hdf5"):
        raise UsageProblem("--save-probs and --save-features need an HDF5 --output", ["e.g. --output results.h5"])
    check_engine(options.engine, options.actors)
    shard = parse_shard(options.shard) if options.shard else None
    output = check_output(options.output, options.resume, options.force) if options.output else None
    report = None
    if options.report:
        from ptmcli.sinks.report import check_report

        report = check_report(options.report)
    return _Checked(shard, output, report)


def run_classify(options: ClassifyOptions, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """Classify every input; returns the exit code (0, 1 some failed, 128+N stopped by signal N)."""
    from ptmcli import __version__, startup
    from ptmcli.models import weights as weight_files
    from ptmcli.models.registry import get_classifier
    from ptmcli.models.runtimes import label
    from ptmcli.pipeline.classification import padded_batch_size
    from ptmcli.pipeline.engines import open_engine
    from ptmcli.pipeline.inputs import collect, nothing_to_do
    from ptmcli.pipeline.loading import open_model
    from ptmcli.pipeline.shards import select
    from ptmcli.pipeline.signals import StopOnSignal
    from ptmcli.sinks.console import ConsoleSink
    from ptmcli.sinks.progress import error_line, progress
    from ptmcli.sinks.resultfile import Row, RunInfo, open_results

    stdout = stdout or sys.stdout
    checked = check_options(options)
    inputs = collect(options.paths, stdin, offline=weight_files.offline_requested(options.offline))
    problem = nothing_to_do(inputs, "classify")
    if problem is not None:
        raise problem
    mine = select(inputs, checked.shard)
    rows = [Row(entry.position, entry.item.path) for entry in mine]

    spec = get_classifier(options.model)
    choice, backend = open_model(spec, options.weights, options.offline, device=options.device,
                                 precision=options.precision, runtime=options.runtime, work=len(inputs),
                                 compile=options.compile, exact_decode=options.exact_decode,
                                 load=options.engine == "local")
    weights_path, weights_sha256 = choice.weights_path, choice.weights_sha256
    engine = open_engine(options.engine, choice, options.actors, backend)
    categories = engine.categories
    info = RunInfo(
        model=spec.name,
        weights_file=weights_path.name,
        weights_sha256=weights_sha256,
        # Precision and JPEG draft decoding change the numbers too: a resume must use the same.
        preprocess={**asdict(spec.preprocess), "precision": options.precision,
                    "jpeg_draft": not options.exact_decode},
        top_k=min(options.top, len(categories)),
        categories=tuple(categories),
        save_probabilities=options.save_probs,
        feature_dim=engine.feature_dim() if options.save_features else None,
        shard=str(checked.shard) if checked.shard else "",
        inputs_total=len(inputs),
        ptm_version=__version__,
        device=engine.device,
        runtime=label(choice.runtime),
        precision=choice.precision,
    )
    startup.loaded()

    if checked.output is not None:
        sink = open_results(checked.output, rows, info, options.resume)
        todo = sink.todo
    else:
        sink = ConsoleSink(options.fmt, stdout, with_errors=options.with_errors)
        todo = range(len(rows))
    report = None
    if checked.report is not None:
        from ptmcli.sinks.readback import describe
        from ptmcli.sinks.report import ClassifyReport

        previous = sink.done_before() if checked.output is not None else {}
        provenance = [*describe(info.attrs()), ("engine", options.engine)]
        report = ClassifyReport(checked.report, [row.path for row in rows], provenance, previous)
    sinks = [sink] if report is None else [sink, report]
    work = [(row, mine[row].item) for row in todo]
    batches = engine.run(work, top=options.top, batch_size=options.batch_size,
                         pad_to=padded_batch_size(options.batch_size, len(inputs)),
                         probabilities=options.save_probs, features=options.save_features,
                         fail_fast=options.fail_fast)

    failed = 0
    # Closing the engine gives Ray's output back; an error before this point exits anyway.
    with StopOnSignal() as stop, closing(batches), closing(engine):
        try:
            with progress(len(work), "classifying", stdout_free=checked.output is not None) as advance:
                for local_rows, output in batches:
                    for result in output.results:
                        if not result.ok:
                            error_line(result.error)
                            failed += 1
                    for each in sinks:
                        each.write(local_rows, output)
                    advance(len(local_rows))
                    if stop.requested or (failed and options.fail_fast):
                        break
        except BaseException:
            for each in sinks:
                each.abort()
            raise
        try:
            sink.close()
        except BaseException:
            if report is not None:
                report.abort()  # the report of what was done is still worth having
            raise
        if report is not None:
            report.close()
    if checked.output is not None and not sink.complete:
        why = "stopped at the first failed input (--fail-fast)" if failed and options.fail_fast else "stopped"
        sys.stderr.write(f"ptm: {why}; {checked.output} holds the results so far: run the same command "
                         "with --resume to finish it\n")
    if stop.requested:
        return stop.exit_code
    return EXIT_SOME_FAILED if failed else EXIT_OK
