"""Result images on disk: output names, format from the extension, writes that never clobber.

Torch-free: the command plans every output before a model is loaded, so a bad `-o` or a name
collision is reported in a second, not after the first forward pass.
"""

from __future__ import annotations

import os
import re
import string
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, Sequence

from ptmcli.atomic import writing
from ptmcli.downloads import is_url
from ptmcli.errors import OutputExists, UsageProblem

if TYPE_CHECKING:
    from typing import TextIO

    import numpy as np
    from PIL import Image

    from ptmcli.results import BatchOutput, Translation
    from ptmcli.sinks.video import VideoWriter


class HasPath(Protocol):
    path: str  # an input (pipeline/inputs.InputItem): a file, or a URL


# Lower-cased suffix -> Pillow format name.
OUTPUT_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
NAME_FIELDS = ("stem", "ext", "frame")
DEFAULT_NAME = "{stem}_zebra.png"
# Videos keep a video's form by default: MP4 for a film, the same kind of file for a moving picture.
DEFAULT_VIDEO_NAME = "{stem}_zebra.mp4"
MOVING_PICTURE_SUFFIXES = (".gif", ".webp", ".png", ".apng")
_FRAME_FIELD = re.compile(r"\{frame(?::([^{}]*))?\}")
_SAVE_OPTIONS = {"JPEG": {"quality": 95}, "WEBP": {"quality": 95}, "PNG": {}}


def output_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise UsageProblem(
            f"{path}: cannot tell the image format from {suffix or 'a name without an extension'!r}",
            ["end the name in .png, .jpg or .webp"],
        )
    return OUTPUT_FORMATS[suffix]


def check_name_pattern(pattern: str) -> None:
    """A --name pattern: a plain file name with {stem}, {ext} and (for videos' frames) {frame},
    ending in a known picture or video extension."""
    from ptmcli.sinks.video import VIDEO_FORMATS

    if "/" in pattern or os.sep in pattern or pattern in (".", ".."):
        raise UsageProblem(f"--name {pattern!r} must be a file name, not a path",
                           ["outputs go into the -o folder; e.g. --name '{stem}_zebra.jpg'"])
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(pattern) if field is not None]
        if all(field in NAME_FIELDS for field in fields):
            pattern.format(stem="s", ext="e", frame=0)  # a format spec that does not fit a number
    except (ValueError, IndexError) as exc:
        raise UsageProblem(f"--name {pattern!r}: {exc}",
                           ["use {stem}, {ext} and {frame}, e.g. '{stem}_zebra.png' or '{stem}_{frame:05d}.png'"]
                           ) from None
    unknown = [f for f in fields if f not in NAME_FIELDS]
    if unknown:
        raise UsageProblem(f"--name {pattern!r}: unknown field {{{unknown[0]}}}",
                           ["use {stem} (input name without extension), {ext} (its extension) and {frame} "
                            "(a video's frame number)"])
    if Path(pattern).suffix.lower() not in VIDEO_FORMATS or "frame" in fields:
        output_format(pattern)


def frame_file(target: Path, index: int) -> Path:
    """A planned name with {frame} in it, for frame `index`."""
    return target.with_name(_FRAME_FIELD.sub(lambda m: format(index, m.group(1) or ""), target.name))


def _keep_frame_field(spec: str) -> str:
    return "{frame" + (f":{spec}" if spec else "") + "}"


class _FrameField:
    """Formats as itself, so `{frame:05d}` stays in a planned name until each frame is written."""

    def __format__(self, spec: str) -> str:
        return _keep_frame_field(spec)


def source_name(input_path: str) -> Path:
    """The file name an input stands for: a file's own, or a URL's last path segment (decoded;
    never a folder, so a hostile URL cannot place an output outside -o)."""
    if not is_url(input_path):
        return Path(input_path)
    from urllib.parse import unquote, urlsplit

    segment = unquote(urlsplit(input_path).path.rstrip("/").rsplit("/", 1)[-1])
    segment = segment.replace("/", "_").replace("\\", "_").replace("\0", "_").lstrip(".")
    return Path(segment or "download")


def _name_for(pattern: str, path: Path) -> str:
    return pattern.format(stem=path.stem, ext=path.suffix.lstrip(".").lower(), frame=_FrameField())


def _pattern_for(item: "HasPath", pattern: str, video_pattern: str | None) -> str:
    if not getattr(item, "video", False):
        return pattern
    if video_pattern is not None:
        return video_pattern
    moving = source_name(item.path).suffix.lower() in MOVING_PICTURE_SUFFIXES
    return "{stem}_zebra.{ext}" if moving else DEFAULT_VIDEO_NAME


def plan_outputs(
    inputs: Sequence[tuple["HasPath", Path | None]],
    output: str,
    pattern: str,
    video_pattern: str | None = None,
) -> list[Path]:
    """One output path per input, in order. `inputs` pairs each item with the folder it was found in.

    `-o FILE.png` (or `.mp4`, for a video) takes exactly one input. Otherwise `-o` is a folder (a
    trailing slash, an existing folder, or a name without an extension): each output is named by
    `pattern` (a video's by `video_pattern`, default: its own kind), in the same sub-folder the
    input had under the folder given on the command line.
    """
    from ptmcli.sinks.video import video_format

    check_name_pattern(pattern)
    if video_pattern is not None:
        check_name_pattern(video_pattern)
    target = Path(output)
    as_folder = output.endswith(("/", os.sep)) or target.is_dir() or not target.suffix
    if not as_folder:
        if len(inputs) == 1 and getattr(inputs[0][0], "video", False):
            video_format(target)
        else:
            output_format(target)
        if len(inputs) != 1:
            raise UsageProblem(
                f"{len(inputs)} inputs cannot all be written to {output}",
                [f"name a folder instead: -o {target.with_suffix('')}/ (outputs are named by --name, "
                 f"default '{pattern}')"],
            )
        planned = [target]
    else:
        if target.exists() and not target.is_dir():
            raise UsageProblem(f"-o {output}: exists and is not a folder")
        planned = []
        for item, root in inputs:
            source = source_name(item.path)
            sub = source.parent.relative_to(root) if root is not None and source.is_relative_to(root) else Path()
            planned.append(target / sub / _name_for(_pattern_for(item, pattern, video_pattern), source))
    _refuse_collisions(inputs, planned)
    return planned


def _refuse_collisions(inputs: Sequence[tuple["HasPath", Path | None]], planned: list[Path]) -> None:
    keys = [os.path.abspath(p) for p in planned]
    for (item, _), key in zip(inputs, keys):
        if key == os.path.abspath(item.path):
            raise UsageProblem(f"{item.path} would be overwritten by its own output",
                               ["choose another -o, or another --name"])
    repeated = [k for k, n in Counter(keys).items() if n > 1]
    if repeated:
        sources = [item.path for (item, _), key in zip(inputs, keys) if key == repeated[0]]
        raise UsageProblem(
            f"{len(sources)} inputs would be written to the same file {repeated[0]}: {', '.join(sources[:3])}",
            ["add the extension to the name: --name '{stem}_{ext}_zebra.png', or run them separately"],
        )


def compose(
    image: "np.ndarray",
    fmt: str,
    source: "np.ndarray | None" = None,
    alpha: "np.ndarray | None" = None,
) -> "Image.Image":
    """The picture to save: the output, or input and output side by side; alpha where it fits."""
    import numpy as np
    from PIL import Image

    pixels = image if source is None else np.concatenate([source, image], axis=1)
    if alpha is not None and fmt in ("PNG", "WEBP"):
        mask = alpha if source is None else np.concatenate([alpha, alpha], axis=1)
        return Image.fromarray(np.dstack([pixels, mask]), "RGBA")
    return Image.fromarray(np.ascontiguousarray(pixels), "RGB")


def write_image(image: "Image.Image", path: Path, fmt: str, replace: bool = False) -> None:
    """Save atomically (ptmcli/atomic.py). Without `replace`, an existing file is never replaced,
    even one that appeared while this image was computed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with writing(path, clobber=replace) as handle:
            image.save(handle, format=fmt, **_SAVE_OPTIONS.get(fmt, {}))
    except FileExistsError:
        raise OutputExists(f"{path} exists", ["pass --force to replace it"]) from None


def target_problem(item: "HasPath", target: Path) -> str | None:
    """Why this input cannot be written to `target` (a photo as a video, a video as one JPEG)."""
    from ptmcli.sinks.video import VIDEO_FORMATS

    suffix = target.suffix.lower()
    if getattr(item, "video", False):
        if _FRAME_FIELD.search(target.name) or suffix in VIDEO_FORMATS:
            return None
        return (f"a video cannot be written as one {suffix} picture: name it .mp4, .webm, .gif or .webp, "
                "or put {frame} in --name for a folder of frames")
    if suffix in OUTPUT_FORMATS:
        return None
    return f"a photo cannot be written as {suffix}: give photos a .png, .jpg or .webp --name"


class ImageSink:
    """Writes each translation to its planned path and names it on stdout: `input<TAB>output`.

    A sink of the run loop: `targets[row]` is where row's picture goes. A video's frames arrive in
    order under its row and go to one video file (sinks/video.py), named on stdout once complete,
    or to numbered frames when the name has {frame}. A picture or a video that cannot be written
    is a failed input (the run goes on, or with `fail_fast` stops right there).
    """

    def __init__(self, stream: "TextIO", targets: Sequence[Path], side_by_side: bool = False,
                 replace: bool = False, fail_fast: bool = False, crf: int | None = None,
                 notify=None):
        self.stream = stream
        self.targets = targets
        self.side_by_side = side_by_side
        self.replace = replace
        self.fail_fast = fail_fast
        self.crf = crf
        self.notify = notify  # one line for the user that is not a failure (audio left out, ...)
        self.videos: dict[int, "VideoWriter"] = {}  # row -> the video being written
        self.given_up: set[int] = set()  # rows of videos that failed: their later frames are dropped

    def write(self, rows: Sequence[int], batch: "BatchOutput") -> "BatchOutput | None":
        from ptmcli.results import BatchOutput, Translation

        results = list(batch.results)
        changed = False
        for i, (row, result) in enumerate(zip(rows, results)):
            if not result.ok:
                self._drop(row)
                continue
            if row in self.given_up:
                continue
            problem = self.save(result, self.targets[row]) if result.frame is None \
                else self.save_frame(row, result, self.targets[row])
            if problem is not None:
                self._drop(row)
                results[i], changed = Translation(result.path, error=problem, frame=result.frame), True
                if self.fail_fast:
                    break
        return BatchOutput(results) if changed else None

    def save(self, result: "Translation", target: Path) -> str | None:
        """None when written, else the one-line reason it was not."""
        target = frame_file(target, 0)
        fmt = output_format(target)
        picture = compose(result.image, fmt, result.source if self.side_by_side else None, result.alpha)
        try:
            write_image(picture, target, fmt, replace=self.replace)
        except OutputExists as exc:
            return f"{result.path}: output {exc.message} (pass --force to replace it)"
        except OSError as exc:
            return f"{result.path}: cannot write {target}: {exc.strerror or exc}"
        self._said(result.path, target)
        return None

    def save_frame(self, row: int, result: "Translation", target: Path) -> str | None:
        """One frame of a video: into its video file, or its own numbered picture."""
        import numpy as np

        from ptmcli.sinks.video import VideoWriter

        stamp = result.frame
        if _FRAME_FIELD.search(target.name):
            return self.save(result, frame_file(target, stamp.index))
        try:
            writer = self.videos.get(row)
            if writer is None:
                writer = self.videos[row] = VideoWriter(target, stamp.stream, replace=self.replace, crf=self.crf)
            writer.add(np.asarray(compose(result.image, "VIDEO", result.source if self.side_by_side else None)),
                       stamp)
            if stamp.last:
                del self.videos[row]
                writer.commit()
                for note in writer.notes + _skipped(stamp.skipped):
                    self._notify(f"{result.path}: {note}")
                self._said(result.path, target)
        except OutputExists as exc:
            return f"{result.path}: output {exc.message} (pass --force to replace it)"
        except FileExistsError:
            return f"{result.path}: output {target} exists (pass --force to replace it)"
        except OSError as exc:
            return f"{result.path}: cannot write {target}: {exc.strerror or exc}"
        except Exception as exc:  # noqa: BLE001 - the encoder's own errors (FFmpeg's, Pillow's)
            return f"{result.path}: cannot write {target} ({type(exc).__name__}: {' '.join(str(exc).split())})"
        return None

    def _said(self, path: str, target: Path) -> None:
        self.stream.write(f"{path}\t{target}\n")
        self.stream.flush()

    def _notify(self, line: str) -> None:
        if self.notify is not None:
            self.notify(line)

    def _drop(self, row: int) -> None:
        self.given_up.add(row)
        writer = self.videos.pop(row, None)
        if writer is not None:
            writer.discard()

    def close(self) -> None:
        # A video still open was cut short (a signal, --fail-fast): it is not written at all.
        self.abort()

    def abort(self) -> None:
        for row in list(self.videos):
            self._drop(row)  # every picture written is whole (write_image); open videos go


def _skipped(count: int) -> list[str]:
    if not count:
        return []
    return [f"{count} damaged video packet{'s' if count > 1 else ''} skipped (the output has that many frames fewer)"]
