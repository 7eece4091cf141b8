"""`ptm zebrafy`: options -> inputs -> (shard) -> output plan -> engine -> image sink (+ report).

Every output path is planned (and a bad `-o` or a name collision refused) before a model is
loaded. The batches come from pipeline/translation.py, on the local engine or on Ray, and the one
run loop (pipeline/run.py) writes them.
"""

from __future__ import annotations

import sys
from contextlib import closing
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TextIO

from ptmcli.errors import OutputExists, UsageProblem
from ptmcli.models.registry import DEFAULT_GENERATOR
from ptmcli.pipeline.inputs import InputItem
from ptmcli.pipeline.translation import translate_batches
from ptmcli.sinks.images import DEFAULT_NAME

if TYPE_CHECKING:
    from pathlib import Path

    from ptmcli.models.backends import BackendChoice
    from ptmcli.models.generator import GeneratorBackend
    from ptmcli.pixels.video import Clip

__all__ = ["ZebrafyOptions", "plan", "run_zebrafy", "translate_batches"]  # translate_batches: its old home

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
    shard: str | None = None
    engine: str = "local"
    actors: int | None = None
    # Videos: which part (seconds, or a number of frames), and the encoder's quality (CRF).
    start: float = 0.0
    duration: float | None = None
    frames: int | None = None
    crf: int | None = None

    def clip(self) -> "Clip":
        from ptmcli.pixels.video import Clip

        return Clip(short_side=self.size, start=self.start, duration=self.duration, frames=self.frames)


def parse_seconds(option: str, text: str) -> float:
    """`90`, `1.5`, `01:30` or `1:02:03.5` -> seconds."""
    parts = text.strip().split(":")
    try:
        if len(parts) > 3 or not all(parts):
            raise ValueError
        seconds = 0.0
        for part in parts:
            seconds = seconds * 60 + float(part)
        if seconds < 0 or seconds != seconds or seconds == float("inf"):
            raise ValueError
    except ValueError:
        raise UsageProblem(f"{option} {text!r} is not a time", ["give seconds (12.5) or MM:SS (1:30)"]) from None
    return seconds


def plan(options: ZebrafyOptions, stdin: TextIO | None) -> list[tuple[InputItem, "Path"]]:
    """(input, output path) for every input to compute; torch-free, so mistakes surface at once."""
    from ptmcli.models.weights import offline_requested
    from ptmcli.pipeline.inputs import collect, nothing_to_do
    from ptmcli.pipeline.shards import in_shard, parse_shard
    from ptmcli.sinks.images import plan_outputs

    if options.force and options.skip_existing:
        raise UsageProblem("--force and --skip-existing contradict each other", ["pick one"])
    shard = parse_shard(options.shard) if options.shard else None
    inputs = collect(options.paths, stdin, offline=offline_requested(options.offline), videos=True)
    problem = nothing_to_do(inputs, "zebrafy")
    if problem is not None:
        raise problem
    video_pattern = None if options.name == DEFAULT_NAME else options.name
    targets = plan_outputs([(entry.item, entry.root) for entry in inputs], options.output, options.name, video_pattern)
    jobs: list[tuple[InputItem, Path]] = []
    for entry, target in zip(inputs, targets):
        if not in_shard(entry.key, shard):
            continue  # every output is planned (and collisions refused) over the whole list
        item = _checked(entry.item, target)
        if not options.force and item.error is None and target.exists():
            if options.skip_existing:
                continue
            if len(inputs) == 1:
                raise OutputExists(f"{target} exists", ["pass --force to replace it"])
            item = replace(item, error=f"output {target} exists (pass --force to replace it)")
        jobs.append((item, target))
    return jobs


def _checked(item: InputItem, target: "Path") -> InputItem:
    """The item, failed when it cannot go to `target` or when it is a video and PyAV is missing."""
    from ptmcli.sinks.images import target_problem

    if item.error is not None:
        return item
    problem = target_problem(item, target)
    if problem is None and item.video and _missing_pyav():
        from ptmcli.pixels.video import NO_PYAV

        problem = NO_PYAV
    return item if problem is None else replace(item, error=problem)


def _missing_pyav() -> bool:
    import importlib.util

    return importlib.util.find_spec("av") is None


def _work_size(jobs: list[tuple[InputItem, "Path"]], options: ZebrafyOptions) -> int:
    """What the progress bar counts: a photo is one, a video its frames (as its header says)."""
    from ptmcli.pixels.video import estimate_frames

    clip = options.clip()
    return sum(estimate_frames(item.path, clip) if item.video and item.error is None else 1 for item, _ in jobs)


def _even_rows(jobs: list[tuple[InputItem, "Path"]]) -> frozenset[int]:
    from ptmcli.sinks.images import frame_file
    from ptmcli.sinks.video import needs_even_sides

    return frozenset(row for row, (item, target) in enumerate(jobs)
                     if item.video and frame_file(target, 0) == target and needs_even_sides(target))


def _provenance(options: ZebrafyOptions, choice: "BackendChoice", engine) -> list[tuple[str, str]]:
    from ptmcli.models.runtimes import label

    recipe = choice.spec.preprocess
    low, high = recipe.pixel_range
    size = f"short side to {options.size} px (bilinear)" if options.size else "full resolution"
    return [("model", options.model), ("weights file", choice.weights_path.name),
            ("weights SHA-256", choice.weights_sha256),
            ("preprocessing", f"{size}; padded to a multiple of {recipe.side_multiple} px by reflection, cropped "
                              f"back; pixels scaled to [{low:g}, {high:g}]"),
            ("precision", choice.precision), ("device", engine.device), ("engine", options.engine),
            ("runtime", label(choice.runtime))]


def open_generator(options: ZebrafyOptions,
                   inputs: list[InputItem]) -> tuple["BackendChoice", "GeneratorBackend | None"]:
    """The generator for this run, its runtime chosen for the megapixels of `inputs` (None on Ray:
    the actors open it): the one call into the model layer."""
    from ptmcli.models.registry import get_generator
    from ptmcli.pipeline.loading import open_model
    from ptmcli.pixels.translate import megapixels
    from ptmcli.pixels.video import estimate_work

    spec = get_generator(options.model)
    photos = [item.path for item in inputs if not item.video]
    work = megapixels(photos, options.size, spec.preprocess) + sum(
        estimate_work(item.path, options.clip())[1] for item in inputs if item.video)
    return open_model(spec, options.weights, options.offline, device=options.device, precision=options.precision,
                      runtime=options.runtime, work=work,
                      compile=options.compile, short_side=options.size, load=options.engine == "local")


def run_zebrafy(options: ZebrafyOptions, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """Zebrafy every input; returns the exit code (0, 1 some failed, 128+N stopped by signal N)."""
    from ptmcli import startup
    from ptmcli.pipeline.engines import check_engine, open_engine
    from ptmcli.pipeline.run import Loop, run
    from ptmcli.pipeline.translation import ZebrafyJob
    from ptmcli.sinks.images import ImageSink

    report_path = None
    if options.report:
        from ptmcli.sinks.report import check_report

        report_path = check_report(options.report)
    check_engine(options.engine, options.actors)
    jobs = plan(options, stdin)
    choice, zebra = open_generator(options, [item for item, _ in jobs if item.error is None])
    job = ZebrafyJob(choice, options.batch_size, options.fail_fast, options.clip(), _even_rows(jobs))
    engine = open_engine(options.engine, job, options.actors, zebra)
    startup.loaded()

    from ptmcli.sinks.progress import note_line

    targets = [target for _, target in jobs]
    sinks = [ImageSink(stdout or sys.stdout, targets, side_by_side=options.side_by_side, replace=options.force,
                       fail_fast=options.fail_fast, crf=options.crf, notify=note_line)]
    if report_path is not None:
        from ptmcli.sinks.report import ZebrafyReport

        sinks.append(ZebrafyReport(report_path, len(jobs), _provenance(options, choice, engine), targets))
    with closing(engine):
        outcome = run(engine.run([(row, item) for row, (item, _) in enumerate(jobs)]), sinks,
                      Loop("zebrafying", _work_size(jobs, options), options.fail_fast, stdout_free=False))
    return outcome.exit_code
