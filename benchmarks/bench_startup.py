"""Cold start, `ptm --help`, and peak memory against the number of images.

    python benchmarks/bench_startup.py            # medians of 5 fresh processes each
    python benchmarks/bench_startup.py --quick    # CI smoke run

- cold start: `ptm classify one.jpg --weights W` (default settings) vs the book's chapter 2.1
  script on the same JPEG and the same ResNet101 weights file, each as a fresh process, wall clock
  and peak memory, once an earlier run has built ptm's cache; the same for
  `ptm classify one.jpg --model efficientnet_lite0`; and whether torch was imported.
- `ptm --help` wall clock (it must not import torch).
- peak RSS of `ptm classify` (efficientnet_lite0, jsonl to /dev/null) over 1,000 images vs 64.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, load_average, machine, make_jpegs, median, resnet101_weights, wall

BOOK_ONE_IMAGE = r"""
import sys
import torch
from PIL import Image
from torchvision import models, transforms
resnet = models.resnet101()
resnet.load_state_dict(torch.load(sys.argv[1]))
resnet.eval()
preprocess = transforms.Compose([
    transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
    transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])
img = Image.open(sys.argv[2])
batch_t = torch.unsqueeze(preprocess(img), 0)
out = resnet(batch_t)
_, index = torch.max(out, 1)
percentage = torch.nn.functional.softmax(out, dim=1)[0] * 100
print(index[0].item(), percentage[index[0]].item())
"""


def ptm() -> list[str]:
    script = Path(sys.executable).with_name("ptm")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ptmcli"]


# A forked child's ru_maxrss counts the pages it shared with its parent before exec: forked from
# this script (torch loaded, ~700 MB), every command measured at least that. A small launcher
# interpreter forks the command instead, so the figure is the command's own.
_PEAK_RSS = r"""
import json, os, subprocess, sys
with open(os.devnull, "w") as sink:
    proc = subprocess.Popen(sys.argv[1:], stdout=sink, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
print(json.dumps({"code": os.waitstatus_to_exitcode(status), "kb": usage.ru_maxrss}))
"""


def peak_rss_mb(cmd: list[str], env: dict | None = None) -> float:
    done = subprocess.run([sys.executable, "-c", _PEAK_RSS, *cmd], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}, check=True)
    result = json.loads(done.stdout)
    if result["code"] != 0:
        raise RuntimeError(f"{cmd} failed")
    return result["kb"] / 1024  # kilobytes on Linux


IMPORTS = r"""
import sys
from ptmcli import cli
sys.argv = ["ptm", *sys.argv[1:]]
try:
    cli.main()
except SystemExit:
    pass
print("torch imported:", "torch" in sys.modules, "torchvision imported:", "torchvision" in sys.modules, file=sys.stderr)
"""


def imports_torch(args: list[str], env: dict) -> str:
    done = subprocess.run([sys.executable, "-c", IMPORTS, *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **env})
    return done.stderr.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--many", type=int, default=1000)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.many = 1, 80

    weights = resnet101_weights()
    one = make_jpegs(64) / "img0000.jpg"
    print(f"machine: {machine()}; load average before: {load_average()}\n")

    env = {"PTM_OFFLINE": "1"}
    resnet = [*ptm(), "classify", str(one), "--weights", str(weights), "--top", "1"]
    lite = [*ptm(), "classify", str(one), "--model", "efficientnet_lite0", "--top", "1"]
    book_cmd = [sys.executable, "-c", BOOK_ONE_IMAGE, str(weights), str(one)]
    for cmd in (book_cmd, resnet, lite):
        wall(cmd, env)  # page cache warm for all; ptm's first run builds its cache (and says so)
    book = [wall(book_cmd) for _ in range(args.repeats)]
    ours = [wall(resnet, env) for _ in range(args.repeats)]
    ours_lite = [wall(lite, env) for _ in range(args.repeats)]
    helps = [wall([*ptm(), "--help"]) for _ in range(args.repeats)]
    print(f"cold start, one JPEG, fresh processes, medians of {args.repeats}, ptm's cache built:")
    print(f"  book-style script, ResNet101 ({weights.name})  {median(book):6.2f} s   "
          f"peak {peak_rss_mb(book_cmd):5.0f} MB")
    print(f"  ptm classify --weights (ResNet101)        {median(ours):6.2f} s   peak {peak_rss_mb(resnet, env):5.0f} MB"
          f"   ratio {median(ours) / median(book):.2f}   {imports_torch(resnet[len(ptm()):], env)}")
    print(f"  ptm classify --model efficientnet_lite0   {median(ours_lite):6.2f} s   "
          f"peak {peak_rss_mb(lite, env):5.0f} MB   ratio {median(ours_lite) / median(book):.2f}   "
          f"{imports_torch(lite[len(ptm()):], env)}")
    print(f"  ptm --help                                {median(helps):6.2f} s")

    few, many = make_jpegs(64), make_jpegs(args.many)
    cmd = [*ptm(), "classify", "--model", "efficientnet_lite0", "--format", "jsonl"]
    rss_few = peak_rss_mb([*cmd, str(few)])
    rss_many = peak_rss_mb([*cmd, str(many)])
    print("\npeak RSS, efficientnet_lite0, jsonl to /dev/null:")
    print(f"  64 images              {rss_few:6.0f} MB")
    print(f"  {args.many} images{' ' * (14 - len(str(args.many)))}{rss_many:6.0f} MB   ratio {rss_many / rss_few:.2f}")
    print(f"\nload average after: {load_average()}")


if __name__ == "__main__":
    main()
