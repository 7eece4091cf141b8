"""Results as frozen dataclasses of plain values: renderers and their tests never need torch."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ptmcli.errors import UsageProblem

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Prediction:
    rank: int
    index: int
    label: str
    probability: float


@dataclass(frozen=True)
class Classification:
    """The top-k predictions for one input, or why there are none."""

    path: str
    predictions: tuple[Prediction, ...] = ()
    error: str | None = None
    time: float | None = None  # a sampled frame of a video: its time in seconds (frame_time)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def status(self) -> str:
        return "ok" if self.ok else "error"

    @property
    def key(self) -> tuple[str, float | None]:
        """What names a row of a results file: the path, and for a video's frame its time."""
        return self.path, self.time


# Frame times are kept to the microsecond: every format writes and reads back the same number,
# and (path, time) names a row on --resume and in merges.
def frame_time(seconds: float | None) -> float | None:
    return None if seconds is None else round(float(seconds), 6)


@dataclass(frozen=True)
class BatchOutput:
    """One batch of results (classifications, translations, ...) and, when asked for, the numbers
    behind classifications.

    `probabilities` (all classes) and `features` (the embedding the classifier layer reads) have
    one row per entry of `results`; rows of failed inputs are NaN. Both are NumPy float32 arrays.
    """

    results: list
    probabilities: object = None
    features: object = None

    def head(self, n: int) -> "BatchOutput":
        """The first `n` results, and their rows of the numbers."""
        return BatchOutput(self.results[:n],
                           None if self.probabilities is None else self.probabilities[:n],
                           None if self.features is None else self.features[:n])


@dataclass(frozen=True)
class VideoStream:
    """What a video's writer needs to know of its source: where the frames came from (for its
    audio), their clock, and the rate to announce."""

    path: str
    time_base: tuple[int, int]  # (numerator, denominator) of the frames' time stamps
    frame_rate: tuple[int, int] | None  # average, as the container gives it; None if it gives none
    frames: int | None = None  # how many the container announces (an estimate)
    has_audio: bool = False
    start: float | None = None  # --start and --duration, in seconds: the audio is cut to match
    end: float | None = None


@dataclass(frozen=True)
class FrameStamp:
    """Which frame of a video a translation is: its place, its time stamp and how long it shows."""

    index: int  # 0 for the first frame written
    pts: int  # in stream.time_base units, as in the source
    duration: float  # seconds until the next frame (the last: its own duration)
    last: bool
    stream: VideoStream
    skipped: int = 0  # on the last frame: damaged packets left out of the whole video

    @property
    def seconds(self) -> float:
        return self.pts * self.stream.time_base[0] / self.stream.time_base[1]


@dataclass(frozen=True)
class Translation:
    """The generator's output for one input (uint8 HWC RGB at the processed size), or why not.
    For a video, one frame of it (`frame`); its results come in order, the last marked."""

    path: str
    image: "np.ndarray | None" = None
    source: "np.ndarray | None" = None  # the input as processed, for side-by-side views
    alpha: "np.ndarray | None" = None
    error: str | None = None
    frame: FrameStamp | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


# A shard is a value result files record and merge checks, so it lives here, below the sinks;
# which inputs belong to it is pipeline/shards.py.
@dataclass(frozen=True)
class Shard:
    index: int  # 1-based, as people count job-array tasks
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not match:
        raise UsageProblem(f"--shard {text!r} is not K/N", ["e.g. --shard 3/8 for the third of eight jobs"])
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 1 <= index <= count:
        hints = [f"K counts from 1 to N: --shard 1/{max(count, 1)} .. {max(count, 1)}/{max(count, 1)}"]
        if index == 0:
            hints.append("for 0-based task ids (Kubernetes JOB_COMPLETION_INDEX, SLURM --array=0-...) "
                         "use --shard $((ID + 1))/N")
        raise UsageProblem(f"--shard {text}: shard {index} of {count} does not exist", hints)
    return Shard(index, count)
