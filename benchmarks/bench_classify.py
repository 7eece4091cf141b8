"""ResNet101 classification: the book's loop vs ptm at each precision vs timm, in one run.

    python benchmarks/bench_classify.py                  # CPU, 64 JPEGs, medians of 3
    python benchmarks/bench_classify.py --device cuda --images 256
    python benchmarks/bench_classify.py --quick          # CI smoke run: 8 images, 1 repeat

Each configuration runs in a fresh interpreter on the same JPEGs and the same weights file, and
reports steady-state images per second end to end (decode + preprocess + model + top-5); the
compile pass of --compile is timed separately. Ratios are to the book's loop in the same run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import load_average, machine, make_jpegs, resnet101_weights, run_json

# The book's chapter 2.1 code, looped over the files: one image at a time, fp32, no inference_mode.
BOOK = r"""
import glob, json, statistics, sys, time
import torch
from PIL import Image
from torchvision import models, transforms
weights, folder, device, repeats = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
resnet = models.resnet101()
resnet.load_state_dict(torch.load(weights))
resnet.eval().to(device)
preprocess = transforms.Compose([
    transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
    transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])
paths = sorted(glob.glob(folder + "/*.jpg"))
def one(path):
    img = Image.open(path)
    batch_t = torch.unsqueeze(preprocess(img), 0).to(device)
    out = resnet(batch_t)
    _, index = torch.max(out, 1)
    percentage = torch.nn.functional.softmax(out, dim=1)[0] * 100
    return index[0].item(), percentage[index[0]].item()
one(paths[0])
times, top1 = [], []
for _ in range(repeats):
    start = time.perf_counter()
    top1 = [one(p)[0] for p in paths]
    times.append(time.perf_counter() - start)
print(json.dumps({"img_s": len(paths) / statistics.median(times), "top1": top1}))
"""

PTM = r"""
import io, json, statistics, sys, time
from pathlib import Path
import torch
from ptmcli.pipeline.classification import classify_batches, padded_batch_size
from ptmcli.pipeline.inputs import InputItem
from ptmcli.pipeline.loading import ClassifierChoice, load_classifier
from ptmcli.sinks.console import ConsoleSink
weights, folder, device, repeats, precision, compile_, batch, model = sys.argv[1:9]
repeats, batch, compile_ = int(repeats), int(batch), compile_ == "1"
start = time.perf_counter()
clf = load_classifier(ClassifierChoice(model=model, weights_path=Path(weights), device=device,
                                       precision=precision, compile=compile_))
load_s = time.perf_counter() - start
work = list(enumerate(InputItem(str(p)) for p in sorted(Path(folder).glob("*.jpg"))))
pad_to = padded_batch_size(batch, len(work))
def run(work):
    sink = ConsoleSink("tsv", io.StringIO())
    top1 = []
    for rows, output in classify_batches(clf, work, top=5, batch_size=batch, pad_to=pad_to):
        sink.write(rows, output)
        top1 += [r.predictions[0].index for r in output.results]
    sink.close()
    return top1
start = time.perf_counter()
run(work[:batch])
first_s = time.perf_counter() - start
times = []
for _ in range(repeats):
    start = time.perf_counter()
    top1 = run(work)
    if clf.device.type == "cuda":
        torch.cuda.synchronize()
    times.append(time.perf_counter() - start)
print(json.dumps({"img_s": len(work) / statistics.median(times), "first_batch_s": first_s,
                  "load_s": load_s, "top1": top1}))
"""

# timm's inference.py, reduced to what it does for this case: timm's dataset and loader
# (2 workers, its own transforms), no_grad, optional autocast and channels_last, top-5.
TIMM = r"""
import json, statistics, sys, time
import torch, timm
from timm.data import create_dataset, create_loader, resolve_data_config
weights, folder, device, repeats, amp = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] == "1"
model = timm.create_model("resnet101", pretrained=False)
model.load_state_dict(torch.load(weights))
model.eval().to(device)
if amp:
    model = model.to(memory_format=torch.channels_last)
config = resolve_data_config({}, model=model)
dataset = create_dataset("", root=folder)
loader = create_loader(dataset, input_size=config["input_size"], batch_size=16, use_prefetcher=False,
                       interpolation=config["interpolation"], mean=config["mean"], std=config["std"],
                       num_workers=2, crop_pct=config["crop_pct"], crop_mode=config["crop_mode"],
                       device=torch.device(device), persistent_workers=False)
def run():
    top1 = []
    with torch.no_grad():
        for x, _ in loader:
            x = x.to(device)
            if amp:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=amp):
                out = model(x)
            top1 += out.topk(5)[1][:, 0].tolist()
    return top1
run()
times = []
for _ in range(repeats):
    start = time.perf_counter(); run(); times.append(time.perf_counter() - start)
print(json.dumps({"img_s": len(dataset) / statistics.median(times)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="smoke run: 8 images, 1 repeat, no compile")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.quick:
        args.images, args.repeats, args.no_compile = 8, 1, True

    import torch

    folder = make_jpegs(args.images)
    weights = resnet101_weights()
    common = [str(weights), str(folder), args.device, str(args.repeats)]
    print(f"machine: {machine()}; load average before: {load_average()}")
    print(f"{args.images} JPEGs 1280x720, ResNet101 ({weights.name}), batch {args.batch_size}, "
          f"medians of {args.repeats}\n")

    rows: list[tuple[str, dict]] = []
    rows.append(("book loop (fp32, 1 image at a time)", run_json(BOOK, *common)))
    base = rows[0][1]["img_s"]
    cuda = args.device.startswith("cuda")
    precisions = ["fp32", "bf16"] + (["fp16"] if cuda else [])
    if not cuda and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        precisions = ["fp32"]
    for precision in precisions:
        rows.append((f"ptm --precision {precision}",
                     run_json(PTM, *common, precision, "0", str(args.batch_size), "resnet101")))
    if not args.no_compile:
        for precision in precisions[1:2] or precisions[:1]:
            rows.append((f"ptm --precision {precision} --compile",
                         run_json(PTM, *common, precision, "1", str(args.batch_size), "resnet101")))
    try:
        import timm  # noqa: F401

        rows.append(("timm inference.py -b 16", run_json(TIMM, *common, "0")))
        rows.append(("timm inference.py -b 16 --amp bf16 --channels-last", run_json(TIMM, *common, "1")))
    except ImportError:
        print("(timm not installed: `pip install timm` to include it)")

    print(f"{'configuration':<52} {'img/s':>8} {'x book':>7}  notes")
    for name, result in rows:
        notes = []
        if "first_batch_s" in result and "compile" in name:
            notes.append(f"compile + first batch {result['first_batch_s']:.1f} s")
        if "load_s" in result:
            notes.append(f"load {result['load_s']:.2f} s")
        print(f"{name:<52} {result['img_s']:>8.1f} {result['img_s'] / base:>7.2f}  {'; '.join(notes)}")
    timm_bf16 = next((r for n, r in rows if n.startswith("timm") and "amp" in n), None)
    ptm_bf16 = next((r for n, r in rows if n == "ptm --precision bf16"), None)
    if timm_bf16 and ptm_bf16:
        print(f"\nptm bf16 / timm bf16: {ptm_bf16['img_s'] / timm_bf16['img_s']:.2f}x")
    print(f"load average after: {load_average()}")
    if args.json:
        numbers = {name: {k: v for k, v in r.items() if k != "top1"} for name, r in rows}
        args.json.write_text(json.dumps(numbers, indent=1))


if __name__ == "__main__":
    main()
