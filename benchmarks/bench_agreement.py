"""Do the runtimes and precisions give the same answers as torch fp32? Real weights, real photos.

    python benchmarks/bench_agreement.py           # 64 benchmark JPEGs + the book's photos (66 with shared/)
    python benchmarks/bench_agreement.py --quick   # 8 JPEGs

EfficientNet-Lite0 (its ImageNet weights install with ptm) classifies the benchmark JPEGs (crops
and flips of real photos, benchmarks/common.py) and the book's bobby.jpg and horse.jpg when
../shared/data has them, through the real `ptm classify` command, once per runtime and precision
this machine offers. Each is compared with `--runtime torch --precision fp32`, the reference:
top-1 agreement, the overlap of the top-5 sets, and the largest difference of a probability in
the reference's top 5. Configurations ptm refuses on this CPU are listed with ptm's reason.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, WORK, load_average, machine, make_jpegs


def photos(count: int) -> Path:
    """A folder of the benchmark JPEGs plus the book's photos (links, so names stay unique)."""
    folder = WORK / f"agreement-{count}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for path in sorted(make_jpegs(count).glob("*.jpg")):
        (folder / path.name).symlink_to(path)
    shared = ROOT.parent / "shared" / "data"
    for name in ("bobby.jpg", "horse.jpg"):
        if (shared / name).is_file():
            (folder / f"book-{name}").symlink_to(shared / name)
    return folder


def classify(folder: Path, *args: str) -> tuple[dict[str, list[tuple[int, float]]] | None, str]:
    done = subprocess.run([sys.executable, "-m", "ptmcli", "classify", str(folder), "--model", "efficientnet_lite0",
                           "--format", "jsonl", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PTM_OFFLINE": "1"})
    if done.returncode != 0:
        return None, done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    return {r["path"]: [(p["index"], p["probability"]) for p in r["predictions"]] for r in rows}, ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.images = 8

    from ptmcli.models.runtimes import installed, label
    from ptmcli.models.runtimes.cpu import cpu_features

    folder = photos(args.images)
    print(f"machine: {machine()}; load average before: {load_average()}")
    print(f"CPU features: {cpu_features().summary()}")
    print(f"runtimes: {', '.join(label(r) for r in ('torch', 'onnxruntime', 'openvino') if installed(r))}")
    reference, why = classify(folder, "--runtime", "torch", "--precision", "fp32")
    if reference is None:
        raise SystemExit(f"the reference run failed: {why}")
    print(f"{len(reference)} photos, efficientnet_lite0 (real weights), reference: --runtime torch --precision fp32\n")

    configurations = [("onnxruntime", "fp32"), ("openvino", "fp32"), ("torch", "bf16"), ("openvino", "bf16"),
                      ("openvino", "int8")]
    print(f"{'configuration':<34} {'top-1 agrees':>13} {'top-5 overlap':>14} {'min overlap':>12} {'max |dp|':>9}")
    for runtime, precision in configurations:
        name = f"--runtime {runtime} --precision {precision}"
        if not installed(runtime):
            print(f"{name:<34} skipped: {runtime} is not installed")
            continue
        got, why = classify(folder, "--runtime", runtime, "--precision", precision)
        if got is None:
            print(f"{name:<34} refused: {why}")
            continue
        agree = sum(got[p][0][0] == reference[p][0][0] for p in reference)
        overlaps = [len({i for i, _ in got[p]} & {i for i, _ in reference[p]}) / 5 for p in reference]
        worst = 0.0
        for path, predictions in reference.items():
            theirs = dict(got[path])
            worst = max([worst, *(abs(theirs[i] - q) if i in theirs else q for i, q in predictions)])
        disagreements = [Path(p).name for p in reference if got[p][0][0] != reference[p][0][0]]
        differs = f"  differs: {', '.join(disagreements)}" if disagreements else ""
        print(f"{name:<34} {agree:>5} / {len(reference):<5} {sum(overlaps) / len(overlaps):>13.1%} "
              f"{min(overlaps):>12.0%} {worst:>9.2e}{differs}")
    print(f"\nload average after: {load_average()}")


if __name__ == "__main__":
    main()
