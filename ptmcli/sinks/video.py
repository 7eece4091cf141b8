"""Translated frames -> one video file: H.264 MP4, VP9 WebM, or an animated GIF, WebP or PNG.

Containers are written with PyAV: every frame keeps its source time stamp (so the frame count,
the rate and variable frame rates survive), and the source's audio packets are copied in as they
are, interleaved as the video advances (no re-encode). Animated pictures are written with Pillow
with each frame's duration (GIF counts in hundredths of a second).

The file is written beside its destination and renamed into place when complete (ptmcli/atomic.py):
an interrupted or failed video leaves nothing at the destination.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from ptmcli.atomic import Pending
from ptmcli.errors import OutputExists, UsageProblem

if TYPE_CHECKING:
    import numpy as np

    from ptmcli.results import FrameStamp, VideoStream


@dataclass(frozen=True)
class VideoFormat:
    container: str  # FFmpeg's muxer name, or Pillow's format name for animated pictures
    codec: str | None  # None: written by Pillow
    pixel_format: str = "yuv420p"
    crf: int = 0  # the default quality: visually lossless at a sensible size
    extra: tuple[tuple[str, str], ...] = ()


# Lower-cased suffix -> how it is written.
VIDEO_FORMATS = {
    ".mp4": VideoFormat("mp4", "libx264", crf=18, extra=(("preset", "medium"),)),
    ".m4v": VideoFormat("mp4", "libx264", crf=18, extra=(("preset", "medium"),)),
    ".mov": VideoFormat("mov", "libx264", crf=18, extra=(("preset", "medium"),)),
    ".mkv": VideoFormat("matroska", "libx264", crf=18, extra=(("preset", "medium"),)),
    # VP9 in constant-quality mode needs a bit rate of 0; row-mt lets libvpx use every core.
    ".webm": VideoFormat("webm", "libvpx-vp9", crf=31, extra=(("b", "0"), ("row-mt", "1"), ("deadline", "good"),
                                                               ("cpu-used", "4"))),
    ".gif": VideoFormat("GIF", None),
    ".webp": VideoFormat("WEBP", None),
    ".png": VideoFormat("PNG", None),  # an animated PNG (APNG)
}


def video_format(path: Path) -> VideoFormat:
    suffix = path.suffix.lower()
    if suffix not in VIDEO_FORMATS:
        raise UsageProblem(f"{path}: a video cannot be written as {suffix or 'a name without an extension'!r}",
                           ["end the name in .mp4, .webm, .mkv, .mov, .gif, .webp or .png, or put {frame} in "
                            "--name for a folder of frames"])
    return VIDEO_FORMATS[suffix]


def needs_even_sides(path: Path) -> bool:
    fmt = VIDEO_FORMATS.get(path.suffix.lower())
    return fmt is not None and fmt.codec is not None


class VideoWriter:
    """One output video, frame by frame; `commit()` puts it in place, `discard()` drops it."""

    def __init__(self, target: Path, stream: "VideoStream", replace: bool = False, crf: int | None = None):
        self.target = target
        self.format = video_format(target)
        self.stream = stream
        self.crf = self.format.crf if crf is None else crf
        target.parent.mkdir(parents=True, exist_ok=True)
        if not replace and target.exists():
            raise OutputExists(f"{target} exists", ["pass --force to replace it"])
        self.pending = Pending(target, clobber=replace)
        self.notes: list[str] = []  # what the user should know of this video (audio left out, ...)
        self._out = None
        self._video = None
        self._audio: _AudioCopy | None = None
        self._frames: list = []
        self._durations: list[int] = []

    def add(self, picture: "np.ndarray", stamp: "FrameStamp") -> None:
        if self.format.codec is None:
            from PIL import Image

            self._frames.append(Image.fromarray(picture, "RGB"))
            self._durations.append(max(1, round(stamp.duration * 1000)))
            return
        import av

        if self._out is None:
            self._open(picture.shape[1], picture.shape[0])
        frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
        frame.pts = stamp.pts
        frame.time_base = Fraction(*stamp.stream.time_base)
        for packet in self._video.encode(frame):
            self._out.mux(packet)
        if self._audio is not None:
            self._audio.copy_until(stamp.seconds + stamp.duration)

    def _open(self, width: int, height: int) -> None:
        import av

        self._out = av.open(str(self.pending.path), "w", format=self.format.container)
        rate = Fraction(*self.stream.frame_rate) if self.stream.frame_rate else None
        self._video = self._out.add_stream(self.format.codec, rate=rate)
        self._video.width, self._video.height = width, height
        self._video.pix_fmt = self.format.pixel_format
        # The source's clock, so every time stamp is kept as it was.
        self._video.time_base = self._video.codec_context.time_base = Fraction(*self.stream.time_base)
        self._video.options = {"crf": str(self.crf), **dict(self.format.extra)}
        if self.stream.has_audio:
            self._audio = _AudioCopy.open(self.stream, self._out)
            if self._audio is None:
                self.notes.append(f"its audio cannot go into {self.target.suffix} and was left out "
                                  "(.mp4 or .mkv keep it)")

    def commit(self) -> None:
        """Finish the file and rename it into place (FileExistsError if a file appeared there)."""
        if self.format.codec is None:
            self._save_picture()
        elif self._out is not None:
            for packet in self._video.encode(None):
                self._out.mux(packet)
            if self._audio is not None:
                self._audio.copy_until(None)
                self._audio.close()
            self._out.close()
            self._out = None
        self.pending.commit()

    def _save_picture(self) -> None:
        first, *rest = self._frames
        options = {"loop": 0} if self.format.container in ("GIF", "WEBP", "PNG") else {}
        if self.format.container == "WEBP":
            options["quality"] = 95
        first.save(self.pending.path, format=self.format.container, save_all=True, append_images=rest,
                   duration=self._durations, **options)
        self._frames = []

    def discard(self) -> None:
        if self._audio is not None:
            self._audio.close()
            self._audio = None
        if self._out is not None:
            try:
                self._out.close()
            except Exception:  # noqa: BLE001 - the file is being thrown away
                pass
            self._out = None
        self._frames = []
        self.pending.discard()


class _AudioCopy:
    """The source's first audio stream, packet by packet, into the output, up to a time."""

    def __init__(self, source, audio_in, audio_out, out, stream: "VideoStream"):
        self.source, self.audio_in, self.audio_out, self.out = source, audio_in, audio_out, out
        self.start, self.end = stream.start, stream.end
        self.packets = source.demux(audio_in)
        self.pending = None

    @classmethod
    def open(cls, stream: "VideoStream", out) -> "_AudioCopy | None":
        import av

        from ptmcli.downloads import input_source

        origin = input_source(stream.path)  # a URL's body again (downloads.Fetched, a BytesIO)
        if not isinstance(origin, str):
            origin.seek(0)
        source = av.open(origin, "r")
        audio_in = source.streams.audio[0]
        if audio_in.codec_context.name not in out.supported_codecs:
            source.close()
            return None
        audio_out = out.add_stream_from_template(audio_in)
        return cls(source, audio_in, audio_out, out, stream)

    def copy_until(self, seconds: float | None) -> None:
        """Mux the audio packets that start before `seconds` (None: all that are left)."""
        while True:
            packet = self.pending if self.pending is not None else next(self.packets, None)
            self.pending = None
            if packet is None:
                return
            if packet.dts is None or packet.size == 0:
                continue  # the demuxer's end-of-stream marker
            at = float(packet.pts * packet.time_base) if packet.pts is not None else 0.0
            if seconds is not None and at >= seconds:
                self.pending = packet
                return
            if (self.start is not None and at < self.start) or (self.end is not None and at >= self.end):
                continue
            packet.stream = self.audio_out
            self.out.mux(packet)

    def close(self) -> None:
        self.source.close()
