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

from ptmcli.errors import UsageProblem
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
    every: str = "1s"  # videos: which frames are classified (pixels/sampling.py)


@dataclass(frozen=True)
class _Checked:
    shard: object  # Shard | None
    output: Path | None
    report: Path | None = None
    every: object = None  # Every


def check_options(options: ClassifyOptions) -> _Checked:
    """Refuse contradictions and unusable outputs before any input is looked at (exit 2)."""
    from ptmcli.pipeline.engines import check_engine
    from ptmcli.pipeline.shards import parse_shard
    from ptmcli.pixels.sampling import parse_every
    from ptmcli.sinks.resultfile import check_output, output_kind

    if (options.resume or options.force) and not options.output:
        raise UsageProblem("--resume and --force need --output FILE", ["e.g. --output results.h5 --resume"])
    if (options.save_probs or options.save_features) and (
            not options.output or output_kind(options.output) != "hdf5"):
        raise UsageProblem("--save-probs and --save-features need an HDF5 --output", ["e.g. --output results.h5"])
    check_engine(options.engine, options.actors)
    every = parse_every(options.every)
    shard = parse_shard(options.shard) if options.shard else None
    output = check_output(options.output, options.resume, options.force) if options.output else None
    report = None
    if options.report:
        from ptmcli.sinks.report import check_report

        report = check_report(options.report)
    return _Checked(shard, output, report, every)


def run_classify(options: ClassifyOptions, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """Classify every input; returns the exit code (0, 1 some failed, 128+N stopped by signal N)."""
    from ptmcli import startup
    from ptmcli.pipeline.classification import ClassifyJob, padded_batch_size
    from ptmcli.pipeline.engines import open_engine
    from ptmcli.pipeline.run import Loop, run

    checked = check_options(options)
    inputs, mine, rows = _inputs(options, stdin, checked.shard, checked.every)
    spec, choice, backend = open_classifier(options, len(inputs))
    job = ClassifyJob(choice, top=options.top, batch_size=options.batch_size,
                      pad_to=padded_batch_size(options.batch_size, len(inputs)),
                      probabilities=options.save_probs, features=options.save_features,
                      fail_fast=options.fail_fast, categories=tuple(spec.categories()))
    engine = open_engine(options.engine, job, options.actors, backend)
    info = _run_info(options, checked, spec, choice, engine, len(inputs),
                     frame_times=any(entry.item.time is not None for entry in inputs))
    startup.loaded()

    sinks, todo = _open_sinks(options, checked, rows, info, stdout or sys.stdout)
    work = [(row, mine[row].item) for row in todo]
    # Closing the engine gives Ray's output back; an error before this point exits anyway.
    with closing(engine):
        outcome = run(engine.run(work), sinks,
                      Loop("classifying", len(work), options.fail_fast, stdout_free=checked.output is not None))
    if checked.output is not None and not sinks[0].complete:
        why = "stopped at the first failed input (--fail-fast)" if outcome.cut else "stopped"
        sys.stderr.write(f"ptm: {why}; {checked.output} holds the results so far: run the same command "
                         "with --resume to finish it\n")
    return outcome.exit_code


def _inputs(options: ClassifyOptions, stdin: TextIO | None, shard, every):
    """Every input (the whole list, a video as its sampled frames), this shard's, and one
    result row for each of those."""
    from ptmcli.models.weights import offline_requested
    from ptmcli.pipeline.inputs import collect, nothing_to_do, sample_videos
    from ptmcli.pipeline.shards import select
    from ptmcli.sinks.resultfile import Row

    inputs = collect(options.paths, stdin, offline=offline_requested(options.offline), videos=True)
    problem = nothing_to_do(inputs, "classify")
    if problem is not None:
        raise problem
    inputs = sample_videos(inputs, every)
    mine = select(inputs, shard)
    return inputs, mine, [Row(entry.position, entry.item.path, entry.item.time) for entry in mine]


def open_classifier(options: ClassifyOptions, inputs: int):
    """(spec, the choice made, the backend if choosing loaded it): the one call into the model layer."""
    from ptmcli.models.registry import get_classifier
    from ptmcli.pipeline.loading import open_model

    spec = get_classifier(options.model)
    choice, backend = open_model(spec, options.weights, options.offline, device=options.device,
                                 precision=options.precision, runtime=options.runtime, work=inputs,
                                 compile=options.compile, exact_decode=options.exact_decode,
                                 load=options.engine == "local")
    return spec, choice, backend


def _run_info(options: ClassifyOptions, checked: _Checked, spec, choice, engine, inputs_total: int,
              frame_times: bool = False):
    from ptmcli import __version__
    from ptmcli.models.heads import feature_dim
    from ptmcli.models.runtimes import label
    from ptmcli.sinks.resultfile import RunInfo

    categories = spec.categories()
    return RunInfo(
        model=spec.name,
        weights_file=choice.weights_path.name,
        weights_sha256=choice.weights_sha256,
        # Precision and JPEG draft decoding change the numbers too: a resume must use the same.
        preprocess={**asdict(spec.preprocess), "precision": options.precision,
                    "jpeg_draft": not options.exact_decode},
        top_k=min(options.top, len(categories)),
        categories=tuple(categories),
        save_probabilities=options.save_probs,
        feature_dim=(engine.backend.feature_dim if engine.backend is not None else feature_dim(spec))
        if options.save_features else None,
        shard=str(checked.shard) if checked.shard else "",
        inputs_total=inputs_total,
        ptm_version=__version__,
        device=engine.device,
        runtime=label(choice.runtime),
        precision=choice.precision,
        frame_times=frame_times,
    )


def _open_sinks(options: ClassifyOptions, checked: _Checked, rows, info, stdout: TextIO):
    """The sinks (the results file or the console first, then the report) and the rows to do."""
    from ptmcli.sinks.console import ConsoleSink
    from ptmcli.sinks.resultfile import open_results

    if checked.output is not None:
        sink = open_results(checked.output, rows, info, options.resume)
        todo = sink.todo
    else:
        sink = ConsoleSink(options.fmt, stdout, with_errors=options.with_errors, times=info.frame_times)
        todo = range(len(rows))
    if checked.report is None:
        return [sink], todo
    from ptmcli.sinks.readback import describe
    from ptmcli.sinks.report import ClassifyReport

    previous = sink.done_before() if checked.output is not None else {}
    provenance = [*describe(info.attrs()), ("engine", options.engine)]
    return [sink, ClassifyReport(checked.report, [row.path for row in rows], provenance, previous)], todo
