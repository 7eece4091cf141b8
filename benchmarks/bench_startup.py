"""Cold start, `ptm --help`, and peak memory against the number of images.

    python benchmarks/bench_startup.py            # medians of 3 fresh processes each
    python benchmarks/bench_startup.py --quick    # CI smoke run

- cold start: `ptm classify one.jpg --weights W` vs the book's chapter 2.1 script on the same
  JPEG and the same ResNet101 weights file, each as a fresh process, wall clock.
- `ptm --help` wall clock (it must not import torch).
- peak RSS of `ptm classify` (efficientnet_lite0, jsonl to /dev/null) over 1,000 images vs 64.
"""

from __future__ import annotations

import argparse
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


def peak_rss_mb(cmd: list[str]) -> float:
    with open(os.devnull, "w") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.DEVNULL, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{cmd} failed")
    return usage.ru_maxrss / 1024  # kilobytes on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--many", type=int, default=1000)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.many = 1, 80

    weights = resnet101_weights()
    one = make_jpegs(64) / "img0000.jpg"
    print(f"machine: {machine()}; load average before: {load_average()}\n")

    env = {"PTM_OFFLINE": "1"}
    wall([sys.executable, "-c", BOOK_ONE_IMAGE, str(weights), str(one)])  # page cache warm for both
    book = [wall([sys.executable, "-c", BOOK_ONE_IMAGE, str(weights), str(one)]) for _ in range(args.repeats)]
    ours = [wall([*ptm(), "classify", str(one), "--weights", str(weights), "--top", "1"], env)
            for _ in range(args.repeats)]
    helps = [wall([*ptm(), "--help"]) for _ in range(args.repeats)]
    print(f"cold start, one JPEG, ResNet101 ({weights.name}), medians of {args.repeats}:")
    print(f"  book-style script      {median(book):6.2f} s")
    print(f"  ptm classify           {median(ours):6.2f} s   ratio {median(ours) / median(book):.2f}")
    print(f"  ptm --help             {median(helps):6.2f} s")

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
