"""A video's frames as the generator's pictures, one at a time, with their time stamps.

Containers (MP4, WebM, MKV, AVI, ...) are demuxed and decoded with PyAV (FFmpeg in its wheel) on
FFmpeg's own threads; animated GIF, WebP and PNG with Pillow, which reads their frame durations.
Each frame is turned upright (rotation metadata), made RGB and resized exactly as a photo is
(pixels/translate.resized), so a frame and the same frame saved as a PNG become the same input.

Frames are yielded as they are decoded and nothing is kept, so memory does not grow with the
length of a video. Damaged packets in the middle are skipped and counted (FFmpeg's own players
do the same); a file with no decodable frame fails. Every error is one InputError naming the file:
this is the video decode boundary (ARCHITECTURE.md, "Hostile bytes").
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import TYPE_CHECKING, Iterator

from ptmcli.downloads import input_source
from ptmcli.errors import InputError
from ptmcli.pixels.decode import max_pixels
from ptmcli.pixels.media import container_kind
from ptmcli.pixels.translate import Prepared, resized
from ptmcli.results import FrameStamp, VideoStream

if TYPE_CHECKING:
    from PIL import Image

NO_PYAV = "videos need PyAV (the `av` package): pip install av"
# A frame rate beyond this is a broken header, not a video: the time stamps decide then.
_MAX_RATE = 1000


@dataclass(frozen=True)
class Clip:
    """Which part of each video to translate, and how its frames are sized."""

    short_side: int = 256
    even: bool = False  # both sides even (H.264 and VP9 in yuv420p)
    start: float = 0.0  # seconds
    duration: float | None = None  # seconds
    frames: int | None = None  # at most this many


def require_pyav(path: str) -> None:
    """The plan fails videos up front without PyAV (pipeline/zebrafy.py); this is for other callers."""
    try:
        import av  # noqa: F401
    except ImportError:
        raise InputError(f"{path}: {NO_PYAV}") from None


@contextlib.contextmanager
def decoding_video(path: str) -> Iterator[None]:
    """Whatever PyAV, FFmpeg or Pillow raise on a video's bytes is one InputError naming it."""
    try:
        yield
    except InputError:
        raise
    except MemoryError:
        raise InputError(f"{path}: not enough memory to decode this video") from None
    except Exception as exc:  # noqa: BLE001 - the boundary: any bytes give ptm's one line
        # FFmpeg's errors carry its sentence in strerror (str() adds the errno and the file name).
        text = " ".join(str(getattr(exc, "strerror", None) or exc).split()) or type(exc).__name__
        raise InputError(f"{path}: cannot decode video ({type(exc).__name__}: {text})") from None


def video_frames(path: str, clip: Clip) -> Iterator[tuple[Prepared, FrameStamp]]:
    """The frames of `path` in `clip`, in order, the last one marked."""
    with decoding_video(path):
        frames = ((Prepared(rgb=_pixels(picture, path, clip), alpha=None), stamp)
                  for picture, stamp, _ in _pictures(path, clip))
        yield from _marked(path, frames)


def video_pictures(path: str, clip: Clip = Clip()) -> Iterator[tuple["Image.Image", float]]:
    """The frames of `path` in `clip` as upright RGB pictures at their full size, in order, each
    with its time in seconds from the start of the video (what `frame_times` lists)."""
    with decoding_video(path):
        for picture, _, seconds in _pictures(path, clip):
            yield picture, seconds


def _pictures(path: str, clip: Clip) -> Iterator[tuple["Image.Image", FrameStamp, float]]:
    opened = _opened(path)
    if _kind_of(opened) in ("gif", "webp", "apng"):
        return _picture_frames(path, opened, clip)
    return _container_frames(path, opened, clip)


def _opened(path: str):
    source = input_source(path)
    opened = source if isinstance(source, str) else _as_file(source)
    if _empty(opened):
        raise InputError(f"{path}: an empty file")
    return opened


def _empty(opened) -> bool:
    import os

    return os.path.getsize(opened) == 0 if isinstance(opened, str) else not opened.getbuffer().nbytes


def _as_file(source):
    source.seek(0)  # a URL's body (downloads.Fetched, a BytesIO)
    return source


def _kind_of(opened) -> str | None:
    if isinstance(opened, str):
        with open(opened, "rb") as handle:
            head = handle.read(4096)
    else:
        head = opened.getvalue()[:4096]
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    return container_kind(head)


def _marked(path: str, frames: Iterator[tuple[Prepared, FrameStamp]]) -> Iterator[tuple[Prepared, FrameStamp]]:
    """Each frame once the next is known: so the last is marked, and each gets its duration."""
    previous = None
    for frame, stamp in frames:
        if previous is not None:
            held, held_stamp = previous
            tb = held_stamp.stream.time_base
            gap = (stamp.pts - held_stamp.pts) * tb[0] / tb[1]
            yield held, replace(held_stamp, duration=gap if gap > 0 else held_stamp.duration)
        previous = frame, stamp
    if previous is None:
        raise InputError(f"{path}: a video without a frame to decode")
    held, held_stamp = previous
    yield held, replace(held_stamp, last=True)


def _check_size(path: str, width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise InputError(f"{path}: a video whose frames have no size ({width}x{height})")
    if width * height > max_pixels():
        raise InputError(f"{path}: {width}x{height} video frames are more than {max_pixels():,} pixels; "
                         "set PTM_MAX_PIXELS to allow them")


def _container_frames(path: str, opened, clip: Clip) -> Iterator[tuple["Image.Image", FrameStamp, float]]:
    require_pyav(path)
    import av

    with av.open(opened, "r") as container:
        if not container.streams.video:
            raise InputError(f"{path}: no video stream in this file")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # FFmpeg decodes on its own threads, beside the network
        _check_size(path, stream.codec_context.width, stream.codec_context.height)
        time_base = stream.time_base or Fraction(1, 90000)
        rate = _rate(stream.average_rate) or _rate(stream.guessed_rate)
        info = VideoStream(path, (time_base.numerator, time_base.denominator),
                           None if rate is None else (rate.numerator, rate.denominator),
                           frames=stream.frames or None, has_audio=bool(container.streams.audio),
                           start=clip.start or None,
                           end=None if clip.duration is None else clip.start + clip.duration)
        if clip.start:
            container.seek(int(clip.start / time_base), stream=stream, backward=True, any_frame=False)
        yield from _decoded(path, container, stream, info, clip)


def _rate(value) -> Fraction | None:
    if value is None:
        return None
    rate = Fraction(value)
    return rate if 0 < rate <= _MAX_RATE else None


_Frames = Iterator[tuple["Image.Image", FrameStamp, float]]  # a picture, its stamp, its seconds


def _decoded(path: str, container, stream, info: VideoStream, clip: Clip) -> _Frames:
    import av

    step = Fraction(info.frame_rate[1], info.frame_rate[0]) if info.frame_rate else Fraction(1, 25)
    tb = Fraction(*info.time_base)
    count = skipped = 0
    last_pts = None
    first_pts = stream.start_time or 0  # --start counts from the video's own start
    for packet in container.demux(stream):
        try:
            decoded = packet.decode()
        except av.FFmpegError:
            skipped += 1  # a damaged packet: its frame is left out, the rest go on
            continue
        for frame in decoded:
            pts = frame.pts if frame.pts is not None else round(count * step / tb)
            if last_pts is not None and pts <= last_pts:
                pts = last_pts + max(1, round(step / tb))  # time stamps must move forward
            seconds = float((pts - first_pts) * tb)
            if seconds < clip.start:
                continue
            if info.end is not None and seconds >= info.end:
                return
            _check_size(path, frame.width, frame.height)
            picture = _upright(frame.to_image(), frame.rotation)
            stamp = FrameStamp(count, pts, float(step), last=False, stream=info, skipped=skipped)
            yield picture, stamp, seconds
            last_pts, count = pts, count + 1
            if clip.frames is not None and count >= clip.frames:
                return


def _upright(image: "Image.Image", rotation: int) -> "Image.Image":
    """Frames as a player shows them: the display matrix's rotation (counter-clockwise degrees)."""
    from PIL import Image

    turn = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180,
            270: Image.Transpose.ROTATE_270}.get(round(rotation or 0) % 360)
    return image.transpose(turn) if turn is not None else image


def _pixels(image: "Image.Image", path: str, clip: Clip):
    import numpy as np

    return np.asarray(resized(image.convert("RGB"), path, clip.short_side, clip.even))


def _picture_frames(path: str, opened, clip: Clip) -> Iterator[tuple["Image.Image", FrameStamp, float]]:
    """Animated GIF, WebP and PNG: Pillow's frames and their durations (milliseconds)."""
    from PIL import Image, ImageSequence

    from ptmcli.pixels.decode import quiet_decoders, to_rgb

    quiet_decoders()
    with Image.open(opened) as image:
        _check_size(path, image.width, image.height)
        info = VideoStream(path, (1, 1000), None, frames=getattr(image, "n_frames", None),
                           start=clip.start or None,
                           end=None if clip.duration is None else clip.start + clip.duration)
        pts = count = 0
        for frame in ImageSequence.Iterator(image):
            frame.load()  # WebP sets a frame's duration only once it is decoded
            shows_for = max(int(frame.info.get("duration") or 100), 10)
            if pts / 1000 >= clip.start and (info.end is None or pts / 1000 < info.end):
                stamp = FrameStamp(count, pts, shows_for / 1000, last=False, stream=info)
                yield to_rgb(frame), stamp, pts / 1000
                count += 1
                if clip.frames is not None and count >= clip.frames:
                    return
            pts += shows_for


def frame_times(path: str) -> list[float]:
    """Every frame's time in seconds from the start of the video, in order, as decoding it gives
    them (`video_pictures`), read from the demuxer's time stamps without decoding a frame: what a
    plan of sampled frames is made from. The same boundary as decoding."""
    with decoding_video(path):
        opened = _opened(path)
        if _kind_of(opened) in ("gif", "webp", "apng"):
            times = _picture_times(path, opened)
        else:
            times = _container_times(path, opened)
    if not times:
        raise InputError(f"{path}: a video without a frame to decode")
    return times


def _container_times(path: str, opened) -> list[float]:
    """`_decoded`'s time stamps: the packets' in presentation order, moved forward where they
    repeat, counted from the stream's start."""
    require_pyav(path)
    import av

    with av.open(opened, "r") as container:
        if not container.streams.video:
            raise InputError(f"{path}: no video stream in this file")
        stream = container.streams.video[0]
        _check_size(path, stream.codec_context.width, stream.codec_context.height)
        tb = stream.time_base or Fraction(1, 90000)
        rate = _rate(stream.average_rate) or _rate(stream.guessed_rate)
        step = Fraction(rate.denominator, rate.numerator) if rate else Fraction(1, 25)
        first_pts = stream.start_time or 0
        stamps: list[int] = []
        for packet in container.demux(stream):
            if packet.size:
                stamps.append(packet.pts if packet.pts is not None else round(len(stamps) * step / tb))
    stamps.sort()
    for i in range(1, len(stamps)):
        if stamps[i] <= stamps[i - 1]:
            stamps[i] = stamps[i - 1] + max(1, round(step / tb))
    return [float((pts - first_pts) * tb) for pts in stamps]


def _picture_times(path: str, opened) -> list[float]:
    """An animated picture's frame times; one cut off part way has the frames before the damage
    (as a photo, Pillow reads its first frame too)."""
    from PIL import Image

    from ptmcli.pixels.decode import quiet_decoders

    quiet_decoders()
    times, pts = [], 0
    with Image.open(opened) as image:
        _check_size(path, image.width, image.height)
        while True:
            try:
                image.seek(len(times))
                image.load()  # as _picture_frames: WebP sets a frame's duration once it is decoded
            except EOFError:
                break
            except Exception:  # a damaged frame ends the frames; none at all fails
                if not times:
                    raise
                break
            times.append(pts / 1000)
            pts += max(int(image.info.get("duration") or 100), 10)
    return times


def estimate_frames(path: str, clip: Clip) -> int:
    return estimate_work(path, clip)[0]


def estimate_work(path: str, clip: Clip) -> tuple[int, float]:
    """(frames, megapixels) this clip of `path` will be, from its header: for the progress bar and
    the choice of runtime. 1 frame of 256 x 341 when the header does not say (or for a URL)."""
    from ptmcli.downloads import is_url
    from ptmcli.pixels.translate import processed_size

    frames, size = None, None
    if not is_url(path):
        try:
            frames, size = _header(path, clip)
        except Exception:  # noqa: BLE001 - a bad file fails later, with its own message
            frames, size = None, None
    frames = max(1, frames or 1)
    if clip.frames is not None:
        frames = min(frames, clip.frames)
    width, height = processed_size(*(size or (341, 256)), clip.short_side)
    return frames, frames * width * height / 1e6


def _header(path: str, clip: Clip) -> tuple[int | None, tuple[int, int] | None]:
    if _kind_of(path) in ("gif", "webp", "apng"):
        from PIL import Image

        with Image.open(path) as image:
            return getattr(image, "n_frames", 1), image.size
    import av

    with av.open(path, "r") as container:
        stream = container.streams.video[0]
        rate = _rate(stream.average_rate) or _rate(stream.guessed_rate)
        seconds = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else \
            (container.duration / 1e6 if container.duration else None)
        frames = stream.frames or (round(seconds * rate) if seconds and rate else None)
        if rate and seconds is not None:
            wanted = max(0.0, min(seconds, clip.start + clip.duration if clip.duration else seconds) - clip.start)
            frames = round(wanted * rate) if clip.start or clip.duration else frames
        return frames, (stream.codec_context.width, stream.codec_context.height)
