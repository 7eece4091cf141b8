"""CycleGAN horse -> zebra: the book's code path vs ptm at each precision, on one photo.

    python benchmarks/bench_zebrafy.py                   # the book's horse.jpg if present
    python benchmarks/bench_zebrafy.py --device cuda
    python benchmarks/bench_zebrafy.py --quick           # CI smoke run

Times one image end to end (decode, resize to 256, generator, back to 8-bit), medians of 3 after
a warm-up, each configuration in a fresh interpreter with the same generator weights (the
published file when present, else random weights in its layout: speed does not depend on values).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, WORK, load_average, machine, published_or_random, run_json

# The book's chapter 2.2 notebook: Resize(256) + ToTensor() (inputs in [0, 1]), no inference_mode.
BOOK = r"""
import json, statistics, sys, time
import torch
from PIL import Image
from torchvision import transforms
from ptmcli.models.cyclegan import ResNetGenerator
weights, image, device, repeats = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
netG = ResNetGenerator()
netG.load_state_dict(torch.load(weights))
netG.eval().to(device)
preprocess = transforms.Compose([transforms.Resize(256), transforms.ToTensor()])
def one():
    img = Image.open(image)
    batch_t = torch.unsqueeze(preprocess(img), 0).to(device)
    batch_out = netG(batch_t)
    out_t = (batch_out.data.squeeze() + 1.0) / 2.0
    return transforms.ToPILImage()(out_t.cpu())
one()
times = []
for _ in range(repeats):
    start = time.perf_counter(); one(); times.append(time.perf_counter() - start)
print(json.dumps({"ms": 1000 * statistics.median(times)}))
"""

PTM = r"""
import json, statistics, sys, time
from pathlib import Path
import torch
from ptmcli.pipeline.device import resolve_device, resolve_precision
from ptmcli.models.generator import Zebrafier
weights, image, device, repeats, precision, compile_ = sys.argv[1:7]
dev = resolve_device(device)
zebra = Zebrafier(Path(weights), dev, dtype=resolve_precision(precision, dev), compile=compile_ == "1")
def one():
    out = zebra.translate([zebra.prepare(image).rgb])
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return out
start = time.perf_counter(); one(); first = time.perf_counter() - start
times = []
for _ in range(int(repeats)):
    start = time.perf_counter(); one(); times.append(time.perf_counter() - start)
print(json.dumps({"ms": 1000 * statistics.median(times), "first_s": first}))
"""


def generator_weights() -> Path:
    from ptmcli.models.cyclegan import ResNetGenerator
    from ptmcli.models.registry import get_generator

    return published_or_random(get_generator("horse2zebra").weights, "horse2zebra-random.pth", ResNetGenerator)


def horse_photo() -> Path:
    shared = ROOT.parent / "shared" / "data" / "horse.jpg"
    if shared.is_file():
        return shared
    from PIL import Image

    path = WORK / "horse-stand-in.jpg"  # the book's photo is 1500x1220; same size, another photo
    if not path.is_file():
        WORK.mkdir(parents=True, exist_ok=True)
        Image.open(ROOT / "examples" / "chelsea.png").convert("RGB").resize((1500, 1220)).save(path, quality=90)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.no_compile = 1, True

    import torch

    weights, image = generator_weights(), horse_photo()
    common = [str(weights), str(image), args.device, str(args.repeats)]
    print(f"machine: {machine()}; load average before: {load_average()}")
    print(f"{image.name}, generator {weights.name}, short side 256, medians of {args.repeats}\n")
    rows = [("book code path (fp32, [0, 1] input)", run_json(BOOK, *common))]
    cuda = args.device.startswith("cuda")
    precisions = ["fp32", "bf16"] + (["fp16"] if cuda else [])
    if not cuda and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        precisions = ["fp32"]
    for precision in precisions:
        rows.append((f"ptm --precision {precision}", run_json(PTM, *common, precision, "0")))
    if not args.no_compile:
        best = "bf16" if "bf16" in precisions else "fp32"
        rows.append((f"ptm --precision {best} --compile", run_json(PTM, *common, best, "1")))
    base = rows[0][1]["ms"]
    print(f"{'configuration':<40} {'ms/image':>9} {'x book':>7}  notes")
    for name, result in rows:
        note = f"compile + first image {result['first_s']:.1f} s" if "compile" in name else ""
        print(f"{name:<40} {result['ms']:>9.0f} {base / result['ms']:>7.2f}  {note}")
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
