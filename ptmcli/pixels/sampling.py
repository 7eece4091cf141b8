"""Which frames of a video are classified (`--every 1s`, `--every 10`), and their crops.

A run plans its sampled frames from the demuxer's time stamps (video.frame_times: no frame is
decoded), so each one is a row of the results from the start, named by the video and its time.
When the run reaches them, the video is decoded once, in order, and each sampled frame is
cropped exactly as a photo is (crop.resize_and_crop on the frame's picture).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator, Sequence, TypeVar

from ptmcli.errors import UsageProblem
from ptmcli.results import frame_time

T = TypeVar("T")

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from ptmcli.pixels.recipes import Preprocess


@dataclass(frozen=True)
class Every:
    """One frame every `seconds` (the first at or after each multiple), or every `frames`-th."""

    seconds: float | None = 1.0
    frames: int | None = None

    def __str__(self) -> str:
        return f"{self.frames}" if self.frames is not None else f"{self.seconds:g}s"


def parse_every(text: str) -> Every:
    """`1s`, `0.5s`, `2 s` (seconds) or `10` (frames)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(s?)\s*", text or "")
    value = float(match.group(1)) if match else 0.0
    if match and match.group(2) and value > 0:
        return Every(seconds=value)
    if match and not match.group(2) and value >= 1 and value == int(value):
        return Every(seconds=None, frames=int(value))
    raise UsageProblem(f"--every {text!r} is neither seconds nor a number of frames",
                       ["e.g. --every 1s (a frame a second, the default), --every 0.5s or --every 10 "
                        "(every tenth frame)"])


def sampled(times: Sequence[float], every: Every) -> list[float]:
    """The times of the frames `every` picks from a video's frame times (in order)."""
    if every.frames is not None:
        return [frame_time(t) for t in times[::every.frames]]
    picked, mark = [], 0.0
    for t in times:
        if t >= mark - 1e-6:
            picked.append(frame_time(t))
            mark = (int((t + 1e-6) / every.seconds) + 1) * every.seconds
    return picked


def sampled_times(path: str, every: Every) -> list[float]:
    """The sampled frames of the video `path`; InputError (one line naming it) when it cannot be read."""
    from ptmcli.pixels.video import frame_times

    return sampled(frame_times(path), every)


def frame_crops(path: str, times: Sequence[float], recipe: "Preprocess") -> Iterator["np.ndarray | str"]:
    """For each of `times` (as `sampled_times` gave them), the classifier's crop of that frame,
    or why there is none (its packet was damaged)."""
    from functools import partial

    from ptmcli.pixels.crop import resize_and_crop

    return frames_at(path, times, partial(resize_and_crop, spec=recipe))


def frames_at(path: str, times: Sequence[float], make: Callable[["Image.Image"], T]) -> Iterator[T | str]:
    """`make` of each frame at `times` (the upright RGB picture), or why there is none; the video
    is decoded once, in order (times that go back start the decoding again)."""
    start = 0
    for end in range(1, len(times) + 1):
        if end == len(times) or times[end] < times[end - 1]:
            yield from _in_order(path, times[start:end], make)
            start = end


def _in_order(path: str, times: Sequence[float], make: Callable[["Image.Image"], T]) -> Iterator[T | str]:
    from ptmcli.pixels.video import video_pictures

    i = 0
    if times:
        pictures = video_pictures(path)
        try:
            for picture, seconds in pictures:
                t = frame_time(seconds)
                while i < len(times) and times[i] < t:
                    yield _missing(path, times[i])
                    i += 1
                crop = None
                while i < len(times) and times[i] == t:
                    crop = make(picture) if crop is None else crop
                    yield crop
                    i += 1
                if i == len(times):
                    break
        finally:
            pictures.close()
    for t in times[i:]:
        yield _missing(path, t)


def _missing(path: str, t: float) -> str:
    return f"{path}: the frame at {t:.3f} s could not be decoded (a damaged packet)"
