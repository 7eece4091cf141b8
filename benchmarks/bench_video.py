"""A horse video -> a zebra video, whole processes: `ptm zebrafy clip.mp4 -o out.mp4` against the
pipeline people use (junyanz/pytorch-CycleGAN-and-pix2pix #127, #1511): ffmpeg splits the frames
into PNGs, a plain ONNX Runtime script translates the folder, ffmpeg joins the frames and maps
the audio back in.

    python benchmarks/bench_video.py             # the table of benchmarks/README.md
    python benchmarks/bench_video.py --quick     # a smoke run (a short clip, one repeat)

In one run, on the CPU at hand (its flags are printed first): a 480x320 clip at 25 fps with an
AAC track, made from the example photos (a slow pan, so frames differ), at the default short side
of 256 (384x256 frames), the book-layout generator (random weights unless the published file is
here: speed does not depend on the values), ONNX Runtime's session over the same ONNX file for
the peer. Printed: frames per second of each whole pipeline (1 s and 4 s clips, so start-up is
visible and cancels: marginal fps = extra frames / extra seconds), the model alone (ONNX Runtime,
one frame per call, in-process) and ptm's own runtime choice, and peak memory of ptm for the
short and the long clip.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_startup import peak_rss_mb, ptm
from bench_zebrafy import generator_weights, peer_onnx
from common import HERE, ROOT, WORK, load_average, machine, median

PEER_ORT = HERE / "peers" / "zebra_onnxruntime.py"


def make_clip(seconds: float, fps: int = 25, size=(480, 320)) -> Path:
    """A pan across the example photos, with a tone: frames that differ as a film's do."""
    import av
    import numpy as np
    from PIL import Image

    path = WORK / f"clip-{seconds:g}s-{size[0]}x{size[1]}.mp4"
    if path.is_file():
        return path
    WORK.mkdir(parents=True, exist_ok=True)
    strip = np.concatenate([np.asarray(Image.open(ROOT / "examples" / name).convert("RGB")
                                       .resize((size[0] * 3 // 2, size[1]))) for name in ("chelsea.png", "coffee.png")],
                           axis=1)
    frames = round(seconds * fps)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        sound = out.add_stream("aac", rate=48000)
        sound.layout = "stereo"
        sent = 0
        for i in range(frames):
            left = (i * (strip.shape[1] - size[0])) // max(1, frames - 1)
            for packet in video.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(strip[:, left:left + size[0]]),
                                                                  format="rgb24")):
                out.mux(packet)
            while sent < (i + 1) * 48000 // fps:
                t = (sent + np.arange(1024)) / 48000
                tone = np.repeat((0.2 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)[None], 2, axis=0)
                chunk = av.AudioFrame.from_ndarray(tone, format="fltp", layout="stereo")
                chunk.sample_rate, chunk.pts, chunk.time_base = 48000, sent, Fraction(1, 48000)
                for packet in sound.encode(chunk):
                    out.mux(packet)
                sent += 1024
        for stream in (video, sound):
            for packet in stream.encode(None):
                out.mux(packet)
    return path


def peer_pipeline(clip: Path, onnx: Path, fps: int) -> float:
    """ffmpeg -> PNGs -> the ONNX Runtime script -> ffmpeg with the audio mapped back: seconds."""
    work = Path(tempfile.mkdtemp(prefix="ptm-bench-video-"))
    frames, zebras = work / "frames", work / "zebras"
    frames.mkdir()
    start = time.perf_counter()
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(clip), str(frames / "%05d.png")], check=True)
    subprocess.run([sys.executable, str(PEER_ORT), str(onnx), str(frames), str(zebras), "*.png"], check=True)
    subprocess.run(["ffmpeg", "-v", "error", "-framerate", str(fps), "-i", str(zebras / "%05d_zebra.png"),
                    "-i", str(clip), "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                    "-crf", "18", "-c:a", "copy", str(work / "out.mp4")], check=True)
    seconds = time.perf_counter() - start
    shutil.rmtree(work, ignore_errors=True)
    return seconds


def ptm_pipeline(clip: Path, weights: Path, env: dict, *extra: str) -> float:
    out = Path(tempfile.mkdtemp(prefix="ptm-bench-video-")) / "out.mp4"
    start = time.perf_counter()
    subprocess.run([*ptm(), "zebrafy", str(clip), "-o", str(out), "--weights", str(weights), *extra], check=True,
                   stdout=subprocess.DEVNULL, env=env, cwd=ROOT)
    seconds = time.perf_counter() - start
    shutil.rmtree(out.parent, ignore_errors=True)
    return seconds


def model_alone(onnx: Path, calls: int) -> float:
    """Frames per second of ONNX Runtime's session alone on one 384x256 frame per call."""
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 256, 384)).astype(np.float32)
    session.run(None, {name: x})
    start = time.perf_counter()
    for _ in range(calls):
        session.run(None, {name: x})
    return calls / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    lengths = (0.4, 1.6) if args.quick else (1.0, 4.0)
    repeats = 1 if args.quick else args.repeats
    if shutil.which("ffmpeg") is None:
        sys.exit("bench_video: the peer pipeline needs the ffmpeg command (apt-get install ffmpeg)")
    import os

    from ptmcli.models.runtimes.cpu import cpu_features

    print(f"machine: {machine()}; load average before: {load_average()}")
    print(f"CPU features: {cpu_features().summary()}\n")
    weights, fps = generator_weights(), 25
    onnx = peer_onnx(weights)
    cache = WORK / "video-cache"
    shutil.rmtree(cache, ignore_errors=True)
    env = {**os.environ, "PTM_OFFLINE": "1", "XDG_CACHE_HOME": str(cache)}
    subprocess.run([*ptm(), "runtimes", "--measure", "--model", "horse2zebra", "--weights", str(weights)], check=True,
                   stdout=subprocess.DEVNULL, env=env, cwd=ROOT)
    clips = {seconds: make_clip(seconds) for seconds in lengths}
    rows = {
        "ptm zebrafy (its default runtime)": lambda clip: ptm_pipeline(clip, weights, env),
        "ptm zebrafy --runtime onnxruntime": lambda clip: ptm_pipeline(clip, weights, env, "--runtime", "onnxruntime"),
        "ffmpeg -> PNG -> ONNX Runtime script -> ffmpeg": lambda clip: peer_pipeline(clip, onnx, fps),
    }
    rates = {}
    print(f"{lengths[0]:g} s and {lengths[1]:g} s clips, 480x320 at {fps} fps with AAC audio, frames 384x256, "
          f"medians of {repeats}")
    print(f"| {'pipeline':<48} | {'fps, ' + format(lengths[1], 'g') + ' s clip':>14} | marginal fps | x peer |")
    timings = {name: {s: median([run(clip) for _ in range(repeats)]) for s, clip in clips.items()}
               for name, run in rows.items()}
    for name, seconds in timings.items():
        few, many = (round(s * fps) for s in lengths)
        rates[name] = (many / seconds[lengths[1]], (many - few) / (seconds[lengths[1]] - seconds[lengths[0]]))
    peer = rates["ffmpeg -> PNG -> ONNX Runtime script -> ffmpeg"]
    for name, (whole, marginal) in rates.items():
        print(f"| {name:<48} | {whole:14.2f} | {marginal:12.2f} | {whole / peer[0]:6.2f} |")
    alone = model_alone(onnx, 8 if args.quick else 30)
    print(f"model alone (ONNX Runtime session, one 384x256 frame per call): {alone:.2f} fps; ptm's default "
          f"pipeline runs at {rates['ptm zebrafy (its default runtime)'][1] / alone:.2f} of it (marginal)")
    peaks = [peak_rss_mb([*ptm(), "zebrafy", str(clip), "-o", str(WORK / f"peak-{s:g}.mp4"), "--weights",
                          str(weights), "--force"], env) for s, clip in clips.items()]
    print(f"ptm peak memory: {peaks[0]:.0f} MB ({lengths[0]:g} s clip), {peaks[1]:.0f} MB ({lengths[1]:g} s, "
          f"{lengths[1] / lengths[0]:g}x longer): x{peaks[1] / peaks[0]:.2f}")
    print(f"\nload average after: {load_average()}")


if __name__ == "__main__":
    main()
