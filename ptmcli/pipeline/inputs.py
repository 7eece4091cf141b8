"""Paths, folders and stdin -> input items, in the order the user named them. Torch-free."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Iterator, TextIO

from ptmcli.downloads import SCHEMES, url_scheme
from ptmcli.errors import InputError, NoInputs, unreadable  # noqa: F401 - unreadable: importers' old name

# Lower-cased; matched against the suffix in any case (.JPG, .Jpeg, ...).
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".ppm", ".pgm",
     ".pbm", ".pnm", ".tga", ".ico", ".jfif", ".avif", ".heic", ".heif", ".dib", ".pcx", ".sgi"}
)


@dataclass(frozen=True)
class InputItem:
    """One input as the user named it; `error` is set when it cannot even be looked at."""

    path: str
    error: str | None = None
    video: bool = False  # a video or a moving picture: translated frame by frame (pixels/media.py)
    time: float | None = None  # classify: one sampled frame of the video, at this time (seconds)


def _walk_images(folder: Path, extensions: frozenset[str] = IMAGE_EXTENSIONS) -> Iterator[Path]:
    # Sorted at each level so the order is stable across runs and machines.
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            if Path(name).suffix.lower() in extensions:
                yield Path(root) / name


EMPTY_FOLDER = "a folder with no images in it (searched recursively for image file extensions)"


@dataclass(frozen=True)
class KeyedInput:
    """An input, its position in the whole input list (before --shard), its shard key, and the
    folder argument it was found in (None for files named directly or on stdin)."""

    position: int
    item: InputItem
    key: str
    root: Path | None = None


def _arguments(args: Iterable[str], stdin: TextIO | None) -> Iterator[str]:
    """The arguments with `-` replaced by the lines of stdin (blank lines skipped)."""
    for arg in args:
        if arg == "-":
            for line in stdin if stdin is not None else sys.stdin:
                line = line.rstrip("\r\n")
                if line:
                    yield line
        else:
            yield arg


URL_SCHEMES_ONLY = "only http:// and https:// URLs are read"
URL_OFFLINE = "a URL, and the network is off (--offline or PTM_OFFLINE=1)"


def _expand(arg: str, offline: bool = False,
            extensions: frozenset[str] = IMAGE_EXTENSIONS) -> Iterator[tuple[InputItem, str, Path | None]]:
    """(item, shard key, folder) for one argument: a file, every image in a folder, a URL, or an
    error. A URL is its own shard key, as given."""
    scheme = url_scheme(arg)
    if scheme is not None:
        error = URL_SCHEMES_ONLY if scheme not in SCHEMES else URL_OFFLINE if offline else None
        yield InputItem(arg, error=error), arg, None
        return
    path = Path(arg)
    if path.is_dir():
        found = False
        for image in _walk_images(path, extensions):
            found = True
            # The key is relative to the folder named, so the same tree mounted elsewhere (or
            # named through another relative path) splits into the same shards.
            yield InputItem(str(image)), _normalise(os.path.relpath(image, path)), path
        if not found:
            yield InputItem(arg, error=EMPTY_FOLDER), _normalise(arg), None
    elif path.exists():
        yield InputItem(arg), _normalise(arg), None
    else:
        yield InputItem(arg, error="no such file or directory"), _normalise(arg), None


def _normalise(path: str) -> str:
    return Path(os.path.normpath(path)).as_posix()


def collect(args: Iterable[str], stdin: TextIO | None = None, offline: bool = False,
            videos: bool = False) -> list[KeyedInput]:
    """Expand files, folders (recursively, sorted), http(s) URLs and `-` (paths or URLs from
    stdin, one a line). With `offline`, every URL is a failed input saying why. With `videos`,
    folders are searched for videos too, and every input that is a video or a moving picture (by
    its bytes; a URL by its name) is marked as one.

    Named files are kept whatever their extension (the content decides); folders contribute only
    files with an image (or video) extension. A missing path, or a folder with none, becomes an
    input with an error, so it is reported in order with the others.
    """
    from ptmcli.pixels.media import VIDEO_EXTENSIONS, is_video

    extensions = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS if videos else IMAGE_EXTENSIONS
    found = (entry for arg in _arguments(args, stdin) for entry in _expand(arg, offline, extensions))
    return [KeyedInput(position, replace(item, video=True) if videos and item.error is None and is_video(item.path)
                       else item, key, root)
            for position, (item, key, root) in enumerate(found)]


def sample_videos(inputs: list[KeyedInput], every) -> list[KeyedInput]:
    """Each video of `inputs` replaced by its sampled frames (pixels/sampling.py, `every`), one
    input each, numbered again in order; a frame keeps its video's shard key, so a video is never
    split between shards. A video that cannot be read stays one input, failed with why."""
    from ptmcli.pixels.sampling import sampled_times

    expanded: list[KeyedInput] = []
    for entry in inputs:
        item = entry.item
        if not item.video or item.error is not None:
            expanded.append(replace(entry, position=len(expanded)))
            continue
        try:
            times = sampled_times(item.path, every)
        except InputError as exc:
            reason = exc.message.removeprefix(f"{item.path}: ")
            expanded.append(replace(entry, position=len(expanded), item=replace(item, error=reason)))
            continue
        for t in times:
            expanded.append(replace(entry, position=len(expanded), item=replace(item, time=t)))
    return expanded


def collect_inputs(args: Iterable[str], stdin: TextIO | None = None) -> Iterator[InputItem]:
    """The items of `collect`, without positions and keys."""
    for arg in _arguments(args, stdin):
        for item, _, _ in _expand(arg):
            yield item


def nothing_to_do(inputs: list[KeyedInput], verb: str) -> NoInputs | None:
    """The error when no input is an image at all: empty folders are named, so the user sees which."""
    if any(entry.item.error != EMPTY_FOLDER for entry in inputs):
        return None
    hint = ["name image files or folders that hold images, or - for stdin"]
    if not inputs:
        return NoInputs(f"no images to {verb}", hint)
    names = ", ".join(entry.item.path for entry in inputs[:3]) + (" ..." if len(inputs) > 3 else "")
    return NoInputs(f"no images to {verb}: {names}: {EMPTY_FOLDER}", hint)
