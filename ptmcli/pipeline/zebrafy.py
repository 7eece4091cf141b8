"""`ptm zebrafy`: options -> inputs -> output plan -> decoded batches -> generator -> image sink.

Every output path is planned (and a bad `-o` or a name collision refused) before a model is
loaded. Same-size inputs share a forward pass; a batch that does not fit the device is retried
one input at a time.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Sequence, TextIO

from ptmcli.errors import EXIT_OK, EXIT_SOME_FAILED, OutputExists, UsageProblem
from ptmcli.models.registry import DEFAULT_GENERATOR
from ptmcli.pipeline.batching import prefetch_batches
from ptmcli.pipeline.classification import until_first_failure
from ptmcli.pipeline.inputs import InputItem
from ptmcli.results import Translation
from ptmcli.sinks.images import DEFAULT_NAME

if TYPE_CHECKING:
    from pathlib import Path

    from ptmcli.models.backends import BackendChoice
    from ptmcli.models.generator import GeneratorBackend

@dataclass(frozen=True, kw_only=True)
class ZebrafyOptions:
    paths: tuple[str, ...]
    output: str
    size: int = 256
    name: str = DEFAULT_NAME
    model: str = DEFAULT_GENERATOR
    weights: str | None = None
    device: str = "auto"
    precision: str = "fp32"
    runtime: str = "auto"
    compile: bool = False
    batch_size: int = 4
    side_by_side: bool = False
    force: bool = False
    skip_existing: bool = False
    offline: bool = False
    fail_fast: bool = False
    report: str | None = None


def plan(options: ZebrafyOptions, stdin: TextIO | None) -> list[tuple[InputItem, "Path"]]:
    """(input, output path) for every input to compute; torch-free, so mistakes surface at once."""
    from ptmcli.models.weights import offline_requested
    from ptmcli.pipeline.inputs import collect, nothing_to_do
    from ptmcli.sinks.images import plan_outputs

    if options.force and options.skip_existing:
        raise UsageProblem("--force and --skip-existing contradict each other", ["pick one"])
    inputs = collect(options.paths, stdin, offline=offline_requested(options.offline))
    problem = nothing_to_do(inputs, "zebrafy")
    if problem is not None:
        raise problem
    targets = plan_outputs([(entry.item, entry.root) for entry in inputs], options.output, options.name)
    jobs: list[tuple[InputItem, Path]] = []
    for entry, target in zip(inputs, targets):
        item = entry.item
        if not options.force and item.error is None and target.exists():
            if options.skip_existing:
                continue
            if len(inputs) == 1:
                raise OutputExists(f"{target} exists", ["pass --force to replace it"])
            item = InputItem(item.path, error=f"output {target} exists (pass --force to replace it)")
        jobs.append((item, target))
    return jobs


def translate_batches(zebra: "GeneratorBackend", items: Sequence[InputItem], batch_size: int,
                      fail_fast: bool = False) -> Iterator[list[Translation]]:
    """Translations batch by batch, in input order; failed inputs carry their error. With
    `fail_fast`, nothing after the first failed input is computed."""
    batches = prefetch_batches(items, zebra.prepare, batch_size, group_key=lambda p: p.rgb.shape)
    try:
        for batch in batches:
            failed = any(loaded.error is not None for loaded in batch)
            if fail_fast and failed:
                batch = until_first_failure(batch)
            good = [loaded for loaded in batch if loaded.error is None]
            outputs = zebra.translate_each([g.value for g in good], [g.item.path for g in good]) if good else []
            by_id = {id(loaded): value for loaded, value in zip(good, outputs)}
            results = []
            for loaded in batch:
                value = by_id.get(id(loaded))
                if loaded.error is not None:
                    results.append(Translation(loaded.item.path, error=loaded.error))
                elif isinstance(value, str):
                    results.append(Translation(loaded.item.path, error=value))
                else:
                    results.append(Translation(loaded.item.path, image=value, source=loaded.value.rgb,
                                               alpha=loaded.value.alpha))
            yield results
            if fail_fast and failed:
                return
    finally:
        batches.close()


def _provenance(options: ZebrafyOptions, choice: "BackendChoice") -> list[tuple[str, str]]:
    from ptmcli.models.runtimes import label

    recipe = choice.spec.preprocess
    low, high = recipe.pixel_range
    size = f"short side to {options.size} px (bilinear)" if options.size else "full resolution"
    return [("model", options.model), ("weights file", choice.weights_path.name),
            ("weights SHA-256", choice.weights_sha256),
            ("preprocessing", f"{size}; padded to a multiple of {recipe.side_multiple} px by reflection, cropped "
                              f"back; pixels scaled to [{low:g}, {high:g}]"),
            ("precision", choice.precision), ("device", choice.device), ("runtime", label(choice.runtime))]


def open_generator(options: ZebrafyOptions, inputs: list[str]) -> tuple["BackendChoice", "GeneratorBackend"]:
    """The generator for this run, its runtime chosen for the megapixels of `inputs`."""
    from ptmcli.models.registry import get_generator
    from ptmcli.pipeline.loading import open_model
    from ptmcli.pixels.translate import megapixels

    spec = get_generator(options.model)
    return open_model(spec, options.weights, options.offline, device=options.device, precision=options.precision,
                      runtime=options.runtime, work=megapixels(inputs, options.size, spec.preprocess),
                      compile=options.compile, short_side=options.size)


def run_zebrafy(options: ZebrafyOptions, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """Zebrafy every input; returns the exit code (0, 1 some failed, 128+N stopped by signal N)."""
    from ptmcli import startup
    from ptmcli.pipeline.signals import StopOnSignal
    from ptmcli.sinks.images import ImageSink
    from ptmcli.sinks.progress import error_line, progress

    report_path = None
    if options.report:
        from ptmcli.sinks.report import check_report

        report_path = check_report(options.report)
    jobs = plan(options, stdin)
    choice, zebra = open_generator(options, [item.path for item, _ in jobs if item.error is None])
    startup.loaded()

    sink = ImageSink(stdout or sys.stdout, side_by_side=options.side_by_side, replace=options.force)
    report = None
    if report_path is not None:
        from ptmcli.sinks.report import ZebrafyReport

        report = ZebrafyReport(report_path, len(jobs), _provenance(options, choice))
    failed = 0
    targets = iter([target for _, target in jobs])
    with StopOnSignal() as stop:
        batches = translate_batches(zebra, [item for item, _ in jobs], options.batch_size, options.fail_fast)
        try:
            with progress(len(jobs), "zebrafying") as advance:
                clock = time.monotonic()
                for batch in batches:
                    # Time per image: the batch's share of the wall time since the previous one.
                    now = time.monotonic()
                    each, clock = (now - clock) / max(1, len(batch)), now
                    for result in batch:
                        target = next(targets)
                        problem = sink.write(result, target) if result.ok else result.error
                        if problem is not None:
                            error_line(problem)
                            failed += 1
                        if report is not None:
                            if problem is None:
                                report.add(result.path, result.source, result.image, target, each)
                            else:
                                report.fail(result.path, problem)
                        advance(1)
                        if failed and options.fail_fast:
                            break
                    if stop.requested or (failed and options.fail_fast):
                        break
                batches.close()
        except BaseException:
            if report is not None:
                report.abort()
            raise
        if report is not None:
            report.close()
    if stop.requested:
        return stop.exit_code
    return EXIT_SOME_FAILED if failed else EXIT_OK
