"""Small clips made here (PyAV): moving colour and a tone, so tests carry no binary fixtures."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path


def make_clip(path: Path, seconds: float = 2.0, fps: int = 25, size: tuple[int, int] = (384, 256),
              audio: bool = True, codec: str = "libx264") -> Path:
    """A clip whose frames differ (a gradient that moves, some noise) with an AAC (or Opus) tone."""
    import av
    import numpy as np

    rng = np.random.default_rng(1)
    width, height = size
    frames = round(seconds * fps)
    container_format = {".webm": "webm", ".mkv": "matroska", ".mov": "mov"}.get(path.suffix, "mp4")
    with av.open(str(path), "w", format=container_format) as out:
        video = out.add_stream(codec, rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            video.options = {"crf": "20", "preset": "ultrafast"}
        sound = None
        if audio:
            sound = out.add_stream("libopus" if container_format == "webm" else "aac", rate=48000)
            sound.layout = "mono"
        ys, xs = np.mgrid[0:height, 0:width]
        samples_done = 0
        for i in range(frames):
            picture = np.stack([(xs * 255 // width + 5 * i) % 256, (ys * 255 // height) % 256,
                                np.full_like(xs, (40 * i) % 256)], axis=-1).astype(np.uint8)
            picture = np.clip(picture.astype(int) + rng.integers(-12, 12, picture.shape), 0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            for packet in video.encode(frame):
                out.mux(packet)
            while sound is not None and samples_done < (i + 1) * 48000 // fps:
                t = (samples_done + np.arange(1024)) / 48000
                tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32).reshape(1, -1)
                chunk = av.AudioFrame.from_ndarray(tone, format="flt", layout="mono")
                chunk.sample_rate, chunk.pts, chunk.time_base = 48000, samples_done, Fraction(1, 48000)
                for packet in sound.encode(chunk):
                    out.mux(packet)
                samples_done += 1024
        for stream in (video, sound):
            if stream is not None:
                for packet in stream.encode(None):
                    out.mux(packet)
    return path


def frames_of(path: Path) -> list:
    """Every frame of a video as RGB arrays, with its time in seconds."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [(frame.to_ndarray(format="rgb24"), float(frame.pts * stream.time_base))
                for frame in container.decode(stream)]


def audio_packets(path: Path) -> list[tuple]:
    """(pts in seconds, bytes) of every audio packet."""
    import av

    with av.open(str(path)) as container:
        if not container.streams.audio:
            return []
        stream = container.streams.audio[0]
        return [(round(float(p.pts * p.time_base), 6), bytes(p)) for p in container.demux(stream) if p.size]
