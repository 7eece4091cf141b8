"""The Python parts of gpu_check.sh (a lent GPU machine): zebrafy against the book's code on the
GPU, the out-of-memory cases, a Ray run with a GPU actor, and the environment block.

    python benchmarks/gpu_check.py env
    python benchmarks/gpu_check.py zebrafy --device cuda --images 32
    python benchmarks/gpu_check.py oom --device cuda
    python benchmarks/gpu_check.py ray --device cuda

Each prints one line per finding and exits non-zero when what it checks does not hold.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_zebrafy import generator_weights
from common import ROOT, make_jpegs

# The book's chapter 2.2 code, looped over the files on `device`: Resize(256) + ToTensor(), the
# generator, each picture saved; one image at a time.
BOOK_ZEBRA_LOOP = r"""
import glob, json, sys, time
import torch
from PIL import Image
from torchvision import transforms
from ptmcli.models.cyclegan import ResNetGenerator
weights, folder, out, device = sys.argv[1:5]
netG = ResNetGenerator()
netG.load_state_dict(torch.load(weights))
netG.eval().to(device)
preprocess = transforms.Compose([transforms.Resize(256), transforms.ToTensor()])
paths = sorted(glob.glob(folder + "/*.jpg"))
def one(i, path):
    batch_t = torch.unsqueeze(preprocess(Image.open(path)), 0).to(device)
    out_t = (netG(batch_t).data.squeeze() + 1.0) / 2.0
    transforms.ToPILImage()(out_t.cpu()).save(f"{out}/{i}.png")
one(0, paths[0])
start = time.perf_counter()
for i, path in enumerate(paths):
    one(i, path)
print(json.dumps({"img_s": len(paths) / (time.perf_counter() - start)}))
"""


def ptm(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ptmcli", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PTM_OFFLINE": "1", **(env or {})}, timeout=timeout)


def env_block() -> int:
    """The markdown to paste into benchmarks/README.md: GPU, driver, versions."""
    import platform

    import torch

    from ptmcli.models.runtimes import label

    smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                         capture_output=True, text=True, check=False).stdout.strip()
    print(f"- GPU: {smi or torch.cuda.get_device_name(0)}; compute capability "
          f"{'.'.join(map(str, torch.cuda.get_device_capability(0)))}")
    print(f"- CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"Python {platform.python_version()}")
    print(f"- torch {torch.__version__} (CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}); "
          + ", ".join(label(r) for r in ("onnxruntime", "openvino")))
    for module in ("torchvision", "timm", "ray"):
        try:
            print(f"- {module} {__import__(module).__version__}")
        except ImportError:
            print(f"- {module}: not installed")
    return 0


def zebrafy(device: str, images: int) -> int:
    """img/s of `ptm zebrafy` (whole process, start-up included) and of the book's loop (steady)."""
    weights = generator_weights()
    folder = make_jpegs(images)
    out = Path(tempfile.mkdtemp(prefix="ptm-gpu-zebra-"))
    book = subprocess.run([sys.executable, "-c", BOOK_ZEBRA_LOOP, str(weights), str(folder), str(out), device],
                          capture_output=True, text=True, cwd=ROOT, check=False, timeout=600)
    if book.returncode != 0:
        print(f"book loop failed: {book.stderr[-1000:]}")
        return 1
    book_img_s = json.loads(book.stdout.splitlines()[-1])["img_s"]
    print(f"book loop on {device}: {book_img_s:.1f} img/s (steady, one image at a time)")
    worst = 0
    for extra in ([], ["--precision", "bf16"], ["--precision", "fp16"], ["--precision", "bf16", "--compile"]):
        start = time.perf_counter()
        done = ptm("zebrafy", str(folder), "--weights", str(weights), "--device", device, "-o", f"{out / 'ptm'}/",
                   "--force", *extra, timeout=900)
        seconds = time.perf_counter() - start
        ok = done.returncode == 0
        worst = worst or (0 if ok else 1)
        failed = "" if ok else " FAILED: " + done.stderr[-500:]
        print(f"ptm zebrafy --device {device} {' '.join(extra) or '(fp32)'}: "
              f"{images / seconds:.1f} img/s whole process ({seconds:.1f} s){failed}")
    return worst


def oom(device: str) -> int:
    """A picture too large for the GPU is reported on its own line (exit 1) and the next input
    is still processed; never a traceback."""
    import numpy as np
    from PIL import Image

    weights = generator_weights()
    folder = Path(tempfile.mkdtemp(prefix="ptm-gpu-oom-"))
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (9000, 12000, 3), dtype=np.uint8)).save(folder / "a_huge.png")
    Image.fromarray(rng.integers(0, 256, (2000, 3000, 3), dtype=np.uint8)).save(folder / "b_large.png")
    Image.fromarray(rng.integers(0, 256, (256, 320, 3), dtype=np.uint8)).save(folder / "c_small.png")
    failures = 0
    # Unlimited: the 12000x9000 picture is beyond the GPU's memory or its 32-bit-indexed kernels.
    # Limited to 3 % of the GPU (about 4 GB on an H200): the 3000x2000 one runs out of memory.
    capped = ("import sys, torch; torch.cuda.set_per_process_memory_fraction(0.03); "
              "sys.argv = ['ptm'] + sys.argv[1:]; from ptmcli.cli import entry; entry()")
    for name, launcher in (("unlimited", ["-m", "ptmcli"]), ("3% of the GPU", ["-c", capped])):
        out = folder / f"out-{len(name)}"
        done = subprocess.run([sys.executable, *launcher, "zebrafy", str(folder), "--weights", str(weights),
                               "--device", device, "--size", "0", "-o", f"{out}/"], capture_output=True, text=True,
                              cwd=ROOT, env={**os.environ, "PTM_OFFLINE": "1", "PTM_MAX_PIXELS": "200000000"},
                              timeout=600, check=False)
        lines = [line for line in done.stderr.splitlines() if line.startswith("ptm:")]
        reported = [line for line in lines if "out of GPU memory" in line or "too large for the GPU" in line]
        small_done = any(out.glob("c_small*"))
        good = done.returncode == 1 and reported and small_done and "Traceback" not in done.stderr
        if name != "unlimited":
            good = good and any("b_large" in line and "out of GPU memory" in line for line in reported)
        failures += not good
        print(f"oom ({name}): exit {done.returncode}; {' | '.join(reported) or 'nothing reported'}; "
              f"small picture written: {small_done}; {'ok' if good else 'FAILED: ' + done.stderr[-800:]}")
    return 1 if failures else 0


def ray_run(device: str) -> int:
    """`--engine ray` with a GPU actor: rows equal the local engine's, the result file says cuda."""
    folder = make_jpegs(16)
    out = Path(tempfile.mkdtemp(prefix="ptm-gpu-ray-"))
    model = ["--model", "efficientnet_lite0", "--format", "jsonl", "--device", device]
    local = ptm("classify", str(folder), *model, "-o", str(out / "local.h5"))
    ray = ptm("classify", str(folder), *model, "--engine", "ray", "-o", str(out / "ray.h5"), timeout=600)
    if local.returncode or ray.returncode:
        print(f"ray run failed: local exit {local.returncode}, ray exit {ray.returncode}: {ray.stderr[-1500:]}")
        return 1
    import h5py
    import numpy as np

    with h5py.File(out / "local.h5") as a, h5py.File(out / "ray.h5") as b:
        same = all(np.array_equal(a[name][()], b[name][()]) for name in ("top_index", "top_probability"))
        devices = (str(a.attrs["device"]), str(b.attrs["device"]))
    print(f"ray with a GPU actor: rows equal the local engine's bit for bit: {same}; devices recorded {devices}")
    return 0 if same and devices[1].startswith("cuda") else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("check", choices=("env", "zebrafy", "oom", "ray"))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--images", type=int, default=32)
    args = parser.parse_args()
    if args.check == "env":
        return env_block()
    if args.check == "zebrafy":
        return zebrafy(args.device, args.images)
    if args.check == "oom":
        return oom(args.device)
    return ray_run(args.device)


if __name__ == "__main__":
    sys.exit(main())
