"""Shared by the benchmark scripts: test images, a weights file, timing helpers. Not part of ptm."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / ".work"


def photo_sources() -> list[Path]:
    """Real photos to build the benchmark set from: examples/, scikit-image's, the book's if present."""
    sources = [ROOT / "examples" / "coffee.png", ROOT / "examples" / "chelsea.png"]
    try:
        import skimage

        data = Path(skimage.__file__).parent / "data"
        sources += [data / n for n in ("astronaut.png", "rocket.jpg", "motorcycle_left.png", "retina.jpg",
                                       "hubble_deep_field.jpg", "ihc.png", "color.png")]
    except ImportError:
        pass
    shared = ROOT.parent / "shared" / "data"
    sources += [shared / n for n in ("bobby.jpg", "horse.jpg")]
    return [p for p in sources if p.is_file()]


def make_jpegs(count: int, size=(1280, 720)) -> Path:
    """`count` camera-sized JPEGs (the book's bobby.jpg is 1280x720), varied crops of real photos."""
    from PIL import Image

    folder = WORK / f"jpegs-{count}-{size[0]}x{size[1]}"
    if folder.is_dir() and len(list(folder.glob("*.jpg"))) == count:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    sources = [Image.open(p).convert("RGB") for p in photo_sources()]
    for i in range(count):
        src = sources[i % len(sources)]
        w, h = src.size
        shrink = 0.75 + 0.25 * ((i * 37) % 11) / 10
        box_w, box_h = int(w * shrink), int(h * shrink)
        left, top = (i * 13) % (w - box_w + 1), (i * 7) % (h - box_h + 1)
        crop = src.crop((left, top, left + box_w, top + box_h)).resize(size, Image.BICUBIC)
        if i % 2:
            crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
        crop.save(folder / f"img{i:04d}.jpg", quality=90)
    return folder


def published_or_random(weight, random_name: str, build) -> Path:
    """The published weight file if this machine has it, else random weights in its layout.

    Speed does not depend on the values, so the timing is the same; agreement checks use
    real weights (efficientnet_lite0) instead.
    """
    from ptmcli.models.weights import find

    real = find(weight)
    if real is not None:
        return real
    path = WORK / random_name
    if not path.is_file():
        import torch

        WORK.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        torch.save(build().state_dict(), path)
    return path


def resnet101_weights() -> Path:
    import torchvision

    from ptmcli.models.registry import get_classifier

    return published_or_random(get_classifier("resnet101").weights, "resnet101-random.pth",
                               torchvision.models.resnet101)


def median(values):
    return statistics.median(values)


def run_json(code: str, *args: str, env: dict | None = None, timeout: float = 1800) -> dict:
    """Run a Python snippet in a fresh interpreter; it prints one JSON object last."""
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark step failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def wall(cmd: list[str], env: dict | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, **(env or {})}, cwd=ROOT)
    return time.perf_counter() - start


def machine() -> str:
    import platform

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, {gpu}, torch {torch.__version__}"


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"
