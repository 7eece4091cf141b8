"""ResNet101 classification end to end: the book's loop, timm, the plain runtimes, and ptm with
every runtime and precision this CPU runs natively, in one run.

    python benchmarks/bench_classify.py                  # CPU, 64 JPEGs, medians of 3
    python benchmarks/bench_classify.py --device cuda --images 256
    python benchmarks/bench_classify.py --quick          # CI smoke run: 8 images, 1 repeat, no compile
    python benchmarks/bench_classify.py --model efficientnet_lite0   # real weights: int8 is offered

Each configuration runs in a fresh interpreter on the same JPEGs and the same weights file and
reports steady-state images per second end to end (decode + preprocess + model + top-5 + the
result rows); compile times are reported apart. Ratios are to the book's loop and to the fastest
peer (a program a user could write or run instead of ptm) measured in this run.

Peers: the book's loop; timm's inference.py; torch.compile (Inductor, frozen, channels_last); an
ONNX Runtime session and an OpenVINO compiled model used directly, each fed batches of 16 decoded
by Pillow/NumPy as a short script would. The fp32 files the runtime peers load are the very files
ptm exported (same graph), so the difference is ptm's own pipeline; the int8 peer is what a user's
script gets from NNCF's plain `nncf.quantize` on 100 of the benchmark's own images, unchecked
(ptm's int8 file, where ptm offers one, is timed as a peer too). The book loop, torch.compile and
timm build ResNet101 and are run for it only; with another `--model` the ratios are to the
fastest peer.
Configurations this CPU cannot run natively (bf16 without AVX512-BF16/AMX, int8 where ptm
refuses it) are skipped, and the script says so.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, WORK, load_average, machine, make_jpegs, resnet101_weights, run_json

# The book's chapter 2.1 code, looped over the files: one image at a time, fp32, no inference_mode.
BOOK = r"""
import glob, json, statistics, sys, time
import torch
from PIL import Image
from torchvision import models, transforms
weights, folder, repeats, device = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
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
times = []
for _ in range(repeats):
    start = time.perf_counter()
    top1 = [one(p)[0] for p in paths]
    times.append(time.perf_counter() - start)
print(json.dumps({"img_s": len(paths) / statistics.median(times)}))
"""

# Decoding and preprocessing as a short script does it (Pillow, NumPy), shared by the peers below.
PEER_DECODE = r"""
import glob, json, statistics, sys, time
import numpy as np
from PIL import Image
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32); STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
def load(path):
    img = Image.open(path).convert("RGB")
    w, h = img.size; s = 232 / min(w, h)
    img = img.resize((max(232, round(w * s)), max(232, round(h * s))), Image.BILINEAR)
    w, h = img.size; left, top = (w - 224) // 2, (h - 224) // 2
    x = np.asarray(img.crop((left, top, left + 224, top + 224)), dtype=np.float32) / 255
    return ((x - MEAN) / STD).transpose(2, 0, 1)
def batches(paths, size=16):
    for i in range(0, len(paths), size):
        yield np.ascontiguousarray(np.stack([load(p) for p in paths[i:i + size]]))
def timed(run, paths, repeats):
    run(paths[:16])
    times = []
    for _ in range(repeats):
        start = time.perf_counter(); run(paths); times.append(time.perf_counter() - start)
    return len(paths) / statistics.median(times)
"""

ORT_PEER = PEER_DECODE + r"""
import onnxruntime as ort
model, folder, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
def run(paths):
    for x in batches(paths):
        probs = session.run(["probabilities"], {"pixels": x})[0]
        np.argsort(-probs, axis=1)[:, :5]
print(json.dumps({"img_s": timed(run, sorted(glob.glob(folder + "/*.jpg")), repeats)}))
"""

OPENVINO_PEER = PEER_DECODE + r"""
import openvino as ov
model, folder, repeats, hint = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY"})
request = compiled.create_infer_request()
output = compiled.output("probabilities")
def run(paths):
    for x in batches(paths):
        probs = request.infer({"pixels": x})[output]
        np.argsort(-probs, axis=1)[:, :5]
print(json.dumps({"img_s": timed(run, sorted(glob.glob(folder + "/*.jpg")), repeats)}))
"""

# What a user's script gets from NNCF: plain post-training quantisation of the fp32 model,
# calibrated on 100 of their own images (here the benchmark's), no accuracy check.
NNCF_PLAIN_INT8 = PEER_DECODE + r"""
import logging, nncf, openvino as ov
source, folder, target = sys.argv[1], sys.argv[2], sys.argv[3]
nncf.set_log_level(logging.ERROR)
paths = sorted(glob.glob(folder + "/*.jpg"))[:100]
model = nncf.quantize(ov.Core().read_model(source), nncf.Dataset([x[None] for x in map(load, paths)]),
                      subset_size=len(paths))
ov.save_model(model, target, compress_to_fp16=False)
print(json.dumps({"built": target}))
"""

COMPILE_PEER = PEER_DECODE + r"""
import torch, torchvision
import torch._inductor.config as inductor_config
weights, folder, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
model = torchvision.models.resnet101()
model.load_state_dict(torch.load(weights))
model = model.eval().to(memory_format=torch.channels_last)
inductor_config.freezing = True
compiled = torch.compile(model, dynamic=False)
def run(paths):
    with torch.inference_mode():
        for x in batches(paths):
            x = torch.from_numpy(x).contiguous(memory_format=torch.channels_last)
            if x.shape[0] < 16:  # one shape, as a compiled model wants
                x = torch.cat([x, x.new_zeros(16 - x.shape[0], *x.shape[1:])])
            compiled(x).softmax(1).topk(5)
start = time.perf_counter(); run(sorted(glob.glob(folder + "/*.jpg"))[:16]); compile_s = time.perf_counter() - start
print(json.dumps({"img_s": timed(run, sorted(glob.glob(folder + "/*.jpg")), repeats), "compile_s": compile_s}))
"""

# ptm's own path: the runtime choice, the pipeline (background decode, padding, top-k) and a sink.
PTM = r"""
import io, json, statistics, sys, time
from pathlib import Path
from ptmcli.models.backends import BackendChoice, open_backend
from ptmcli.models.registry import get_classifier
from ptmcli.pipeline.classification import classify_batches, padded_batch_size
from ptmcli.pipeline.inputs import InputItem
from ptmcli.sinks.console import ConsoleSink
weights, folder, device, repeats, precision, compile_, batch, model, runtime = sys.argv[1:10]
repeats, batch, compile_ = int(repeats), int(batch), compile_ == "1"
work = list(enumerate(InputItem(str(p)) for p in sorted(Path(folder).glob("*.jpg"))))
start = time.perf_counter()
if runtime.endswith(".xml"):
    # ptm's pipeline around a given OpenVINO file (the int8 peer's), for an even comparison.
    from ptmcli.models.runtimes.exported import OpenVinoClassifier
    from ptmcli.models.runtimes.exports import Export, ExportKey
    xml = Path(runtime)
    key = ExportKey(model, "", "openvino", "", precision)
    clf = OpenVinoClassifier(get_classifier(model), Export(key, xml.parent, {}), model_file=xml.name)
    choice = BackendChoice(spec=get_classifier(model), weights_path=Path(weights), runtime="openvino")
else:
    choice, clf = open_backend(get_classifier(model), Path(weights), device=device, precision=precision,
                               runtime=runtime, work=len(work), compile=compile_)
load_s = time.perf_counter() - start
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
    times.append(time.perf_counter() - start)
print(json.dumps({"img_s": len(work) / statistics.median(times), "first_batch_s": first_s, "load_s": load_s,
                  "runtime": choice.runtime, "top1": top1}))
"""

# timm's inference.py, reduced to what it does for this case: timm's dataset and loader
# (2 workers, its own transforms), no_grad, optional autocast and channels_last, top-5.
TIMM = r"""
import json, statistics, sys, time
import torch, timm
from timm.data import create_dataset, create_loader, resolve_data_config
weights, folder, repeats, amp, device = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1", sys.argv[5]
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
                       persistent_workers=False)
def run():
    with torch.no_grad():
        for x, _ in loader:
            x = x.to(device, non_blocking=True)
            if amp:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=amp):
                model(x).topk(5)
run()
times = []
for _ in range(repeats):
    start = time.perf_counter(); run(); times.append(time.perf_counter() - start)
print(json.dumps({"img_s": len(dataset) / statistics.median(times)}))
"""


def ptm_exports(model: str, weights: Path, precision: str) -> None:
    """Build ptm's exported files (and its timings) with the real command, as a first run would."""
    one = next(iter(sorted(make_jpegs(8).glob("*.jpg"))))
    done = subprocess.run([sys.executable, "-m", "ptmcli", "classify", str(one), "--model", model,
                           "--weights", str(weights), "--precision", precision, "--runtime", "auto"],
                          capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PTM_OFFLINE": "1"})
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if line.startswith("ptm: error: ")]
        raise RuntimeError(errors[-1] if errors else f"ptm --precision {precision} failed:\n{done.stderr[-2000:]}")


def export_file(model: str, weights: Path, runtime: str, precision: str) -> Path | None:
    from ptmcli.models.registry import get_classifier
    from ptmcli.models.runtimes.build import key_for
    from ptmcli.models.runtimes.exports import find
    from ptmcli.models.weights import file_sha256

    export = find(key_for(get_classifier(model), file_sha256(weights), runtime, precision))
    if export is None:
        return None
    return export.file("model.onnx" if runtime == "onnxruntime" else "model.xml")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="smoke run: 8 images, 1 repeat, no compile")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--model", default="resnet101", help="resnet101 (default; random weights here) or "
                        "efficientnet_lite0 (real weights, installed with ptm)")
    args = parser.parse_args()
    if args.quick:
        args.images, args.repeats, args.no_compile = 8, 1, True

    import torch

    from ptmcli.models.runtimes import installed, label
    from ptmcli.models.runtimes.cpu import cpu_features

    cpu = cpu_features()
    cuda = args.device.startswith("cuda")
    folder = make_jpegs(args.images)
    resnet = args.model == "resnet101"
    if resnet:
        weights = resnet101_weights()
    else:
        from ptmcli.models.registry import get_classifier
        from ptmcli.pipeline.loading import locate_weights

        weights = locate_weights(get_classifier(args.model).weights, None, offline=True)
    common = [str(weights), str(folder), str(args.repeats)]
    print(f"machine: {machine()}; load average before: {load_average()}")
    print(f"CPU features: {cpu.summary()}; torch CPU capability: {torch.backends.cpu.get_cpu_capability()}")
    print(f"runtimes: {', '.join(label(r) for r in ('torch', 'onnxruntime', 'openvino') if installed(r))}")
    print(f"{args.images} JPEGs 1280x720, {args.model} ({weights.name}), batch {args.batch_size}, "
          f"medians of {args.repeats}\n")

    skipped: list[str] = []
    peers: list[tuple[str, str, dict]] = []  # (name, precision, result)
    ours: list[tuple[str, str, dict]] = []
    hypothetical: set[str] = set()  # rows of what ptm does not offer: not counted as ptm's best

    def ptm_row(name: str, precision: str, runtime: str, compile_: bool = False) -> None:
        result = run_json(PTM, str(weights), str(folder), args.device, str(args.repeats), precision,
                          "1" if compile_ else "0", str(args.batch_size), args.model, runtime)
        ours.append((f"{name} (ran {result['runtime']})" if runtime == "auto" else name, precision, result))
        if runtime.endswith(".xml"):
            hypothetical.add(name)

    # Every peer runs where ptm runs (--device): the book's loop and timm too.
    book = run_json(BOOK, *common, args.device) if resnet else None
    if book is not None:
        peers.append(("book loop (fp32, one image at a time)", "fp32", book))
    if not cuda:
        wanted = ["fp32"] if args.quick else ["fp32"] + (["bf16"] if cpu.bf16 else []) + ["int8"]
        if not cpu.bf16:
            skipped.append("bf16 (no AVX512-BF16 or AMX on this CPU: it would run emulated, slower than fp32)")
        precisions = []
        for precision in wanted:
            try:
                ptm_exports(args.model, weights, precision)
                precisions.append(precision)
            except RuntimeError as exc:
                skipped.append(f"ptm --precision {precision}: {str(exc).splitlines()[-1]}")
        ptm_row("ptm default (--runtime auto, fp32)", "fp32", "auto")
        for runtime in ("torch", "onnxruntime", "openvino"):
            if installed(runtime):
                ptm_row(f"ptm --precision fp32 --runtime {runtime}", "fp32", runtime)
        if "bf16" in precisions:
            ptm_row("ptm --runtime torch --precision bf16", "bf16", "torch")
            if installed("openvino"):
                ptm_row("ptm --runtime openvino --precision bf16", "bf16", "openvino")
        if "int8" in precisions:
            ptm_row("ptm --precision int8", "int8", "auto")
        if not args.no_compile:
            ptm_row("ptm --runtime torch --compile", "fp32", "torch", compile_=True)

        onnx = export_file(args.model, weights, "onnxruntime", "fp32")
        if onnx is not None:
            peers.append(("ONNX Runtime session, fp32", "fp32", run_json(ORT_PEER, str(onnx), str(folder),
                                                                            str(args.repeats))))
        xml = export_file(args.model, weights, "openvino", "fp32")
        if xml is not None:
            peers.append(("OpenVINO compiled model, fp32", "fp32",
                          run_json(OPENVINO_PEER, str(xml), str(folder), str(args.repeats), "f32")))
            if cpu.bf16:
                peers.append(("OpenVINO compiled model, bf16", "bf16",
                              run_json(OPENVINO_PEER, str(xml), str(folder), str(args.repeats), "bf16")))
        int8 = export_file(args.model, weights, "openvino", "int8")
        if int8 is not None:
            peers.append(("OpenVINO compiled model, int8 (ptm's NNCF file)", "int8",
                          run_json(OPENVINO_PEER, str(int8), str(folder), str(args.repeats), "f32")))
        if xml is not None and not args.quick:
            try:
                import nncf  # noqa: F401

                plain = WORK / f"{args.model}-{weights.stem}-nncf-plain-int8.xml"
                run_json(NNCF_PLAIN_INT8, str(xml), str(folder), str(plain))
                peers.append(("OpenVINO + NNCF plain int8 (a user's script, unchecked)", "int8",
                              run_json(OPENVINO_PEER, str(plain), str(folder), str(args.repeats), "f32")))
                if int8 is None:  # ptm refused int8 here: its pipeline on the peer's file, for the record
                    ptm_row("ptm's pipeline on the peer's unchecked int8 file (not offered)", "int8", str(plain))
            except ImportError:
                skipped.append("NNCF int8 peer (nncf is not installed)")
        if not args.no_compile and resnet:
            peers.append(("torch.compile (Inductor, freezing) fp32 channels_last", "fp32",
                          run_json(COMPILE_PEER, *common, timeout=3600)))
    else:
        for precision in ("fp32", "bf16", "fp16"):
            ptm_row(f"ptm --device {args.device} --precision {precision}", precision, "torch")
    try:
        import timm  # noqa: F401

        if not resnet:
            raise LookupError
        peers.append(("timm inference.py -b 16", "fp32", run_json(TIMM, *common, "0", args.device)))
        if cpu.bf16 or cuda:
            peers.append(("timm inference.py -b 16 --amp bf16 --channels-last", "bf16",
                          run_json(TIMM, *common, "1", args.device)))
        else:
            skipped.append("timm --amp bf16 (no native bf16 on this CPU: 0.6 img/s, over 15 minutes)")
    except ImportError:
        skipped.append("timm (not installed: pip install timm)")
    except LookupError:
        skipped.append(f"the book loop, torch.compile and timm (they are written for ResNet101, not {args.model}); "
                       "the 'x book' column is x the fastest peer")

    fastest = max((r["img_s"] for name, _, r in peers if "book" not in name), default=1.0)
    base = book["img_s"] if book is not None else fastest
    fastest_fp32 = max((r["img_s"] for name, p, r in peers if p == "fp32" and "book" not in name), default=base)
    print(f"{'configuration':<58} {'prec':>5} {'img/s':>8} {'x book':>7} {'x peer':>7}  notes")
    for group, rows in (("peers", peers), ("ptm", ours)):
        print(f"-- {group}")
        for name, precision, result in rows:
            notes = []
            if "compile_s" in result:
                notes.append(f"compile {result['compile_s']:.0f} s")
            if "compile" in name and "first_batch_s" in result:
                notes.append(f"compile + first batch {result['first_batch_s']:.0f} s")
            if "load_s" in result:
                notes.append(f"load {result['load_s']:.2f} s")
            print(f"{name:<58} {precision:>5} {result['img_s']:>8.1f} {result['img_s'] / base:>7.2f} "
                  f"{result['img_s'] / fastest:>7.2f}  {'; '.join(notes)}")
    if ours:
        default = ours[0][2]["img_s"]
        best_name, _, best = max((row for row in ours if row[0] not in hypothetical), key=lambda row: row[2]["img_s"])
        print(f"\nptm default / fastest fp32 peer: {default / fastest_fp32:.2f}x "
              f"({default:.1f} vs {fastest_fp32:.1f} img/s)")
        print(f"ptm best ({best_name}) / fastest peer of any precision: {best['img_s'] / fastest:.2f}x "
              f"({best['img_s']:.1f} vs {fastest:.1f} img/s)")
    for line in skipped:
        print(f"skipped: {line}")
    print(f"load average after: {load_average()}")
    if args.json:
        numbers = {name: {k: v for k, v in r.items() if k != "top1"} for name, _, r in peers + ours}
        args.json.write_text(json.dumps(numbers, indent=1))


if __name__ == "__main__":
    main()
