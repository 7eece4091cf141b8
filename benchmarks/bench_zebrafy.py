"""CycleGAN horse -> zebra, whole processes: ptm zebrafy against its peers and the book's code.

    python benchmarks/bench_zebrafy.py            # the tables of benchmarks/README.md
    python benchmarks/bench_zebrafy.py --quick    # a smoke run (fewer repeats)

In one run, on the CPU at hand (its flags are printed first):
1. Throughput: 8 vs 24 JPEGs at short side 256 (so start-up cancels: img/s = 16 / (t24 - t8)),
   the book-layout generator (the published file if present, else random weights: speed does not
   depend on values): `ptm zebrafy` default (after `ptm runtimes --measure`, as any job after the
   first big one), a plain ONNX Runtime script and an f32-held OpenVINO script (peers/, written
   the way a user would), `ptm zebrafy --precision bf16` and the OpenVINO script with its own
   defaults (bf16 on CPUs with native bf16).
2. Cold, one photo (horse.jpg): the book's chapter 2.2 code as a script vs `ptm zebrafy`, medians,
   wall time and peak memory.
3. First-ever run on a fresh cache, one photo: `ptm classify` with a ResNet101-layout weights file
   vs the book's chapter 2.1 script, and `ptm zebrafy` vs the chapter 2.2 script.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_startup import BOOK_ONE_IMAGE, peak_rss_mb, ptm
from common import (
    HERE,
    ROOT,
    WORK,
    load_average,
    machine,
    make_jpegs,
    median,
    published_or_random,
    resnet101_weights,
    wall,
)

# The book's chapter 2.2 notebook as a script: Resize(256) + ToTensor(), the generator, the picture saved.
BOOK_ZEBRA = r"""
import sys
import torch
from PIL import Image
from torchvision import transforms
from ptmcli.models.cyclegan import ResNetGenerator
netG = ResNetGenerator()
netG.load_state_dict(torch.load(sys.argv[1]))
netG.eval()
preprocess = transforms.Compose([transforms.Resize(256), transforms.ToTensor()])
img = Image.open(sys.argv[2])
batch_t = torch.unsqueeze(preprocess(img), 0)
batch_out = netG(batch_t)
out_t = (batch_out.data.squeeze() + 1.0) / 2.0
transforms.ToPILImage()(out_t).save(sys.argv[3])
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


def peer_onnx(weights: Path) -> Path:
    """The generator as ONNX with dynamic height and width, as a user exports it once."""
    path = WORK / f"{weights.stem}-dynamic.onnx"
    if not path.is_file():
        import torch

        from ptmcli.models.cyclegan import load_generator

        model = load_generator(weights)
        h, w = torch.export.Dim("h", min=2, max=2048), torch.export.Dim("w", min=2, max=2048)
        torch.onnx.export(model, (torch.zeros(1, 3, 256, 256),), str(path), dynamo=True, external_data=False,
                          dynamic_shapes=({2: 4 * h, 3: 4 * w},))
    return path


def throughput(name: str, cmd_for, folders: dict[int, Path], env: dict, repeats: int) -> tuple[str, float]:
    times = {}
    for count, folder in folders.items():
        out = Path(tempfile.mkdtemp(prefix="ptm-bench-out-"))
        times[count] = median([wall(cmd_for(folder, out), env) for _ in range(repeats)])
        shutil.rmtree(out, ignore_errors=True)
    few, many = sorted(folders)
    return name, (many - few) / (times[many] - times[few])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.repeats = 1
    from ptmcli.models.runtimes.cpu import cpu_features

    cpu = cpu_features()
    weights, horse = generator_weights(), horse_photo()
    print(f"machine: {machine()}; load average before: {load_average()}")
    print(f"CPU features: {cpu.summary()}\n")
    cache = WORK / "zebra-cache"
    shutil.rmtree(cache, ignore_errors=True)
    env = {"PTM_OFFLINE": "1", "XDG_CACHE_HOME": str(cache)}
    for precision in ("fp32", *(["bf16"] if cpu.bf16 else [])):
        wall([*ptm(), "runtimes", "--measure", "--model", "horse2zebra", "--weights", str(weights),
              "--precision", precision], env)
    table(weights, env, args.repeats, cpu.bf16)
    cold(weights, horse, env, args.repeats)
    first_ever(weights, horse)
    print(f"\nload average after: {load_average()}")


def table(weights: Path, env: dict, repeats: int, bf16: bool) -> None:
    folders = {n: make_jpegs(n, size=(384, 256)) for n in (8, 24)}
    onnx = str(peer_onnx(weights))
    zebrafy = [*ptm(), "zebrafy", "--weights", str(weights), "--force"]
    peers = HERE / "peers"
    rows = [
        throughput("ptm zebrafy default (fp32)", lambda f, o: [*zebrafy, str(f), "-o", f"{o}/"], folders, env, repeats),
        throughput("ONNX Runtime script (fp32)", lambda f, o: [sys.executable, str(peers / "zebra_onnxruntime.py"),
                                                              onnx, str(f), str(o)], folders, env, repeats),
        throughput("OpenVINO script, f32 held", lambda f, o: [sys.executable, str(peers / "zebra_openvino.py"),
                                                             onnx, str(f), str(o), "--f32"], folders, env, repeats),
    ]
    if bf16:
        rows += [
            throughput("ptm zebrafy --precision bf16", lambda f, o: [*zebrafy, str(f), "-o", f"{o}/", "--precision",
                                                                     "bf16"], folders, env, repeats),
            throughput("OpenVINO script, its defaults (bf16)", lambda f, o: [
                sys.executable, str(peers / "zebra_openvino.py"), onnx, str(f), str(o)], folders, env, repeats),
        ]
    base = rows[0][1]
    print("8 vs 24 JPEGs 384x256, whole processes, img/s = 16 / (t24 - t8), medians of", repeats)
    print(f"| {'configuration':<38} | img/s | x ptm default |")
    for name, rate in rows:
        print(f"| {name:<38} | {rate:5.2f} | {rate / base:13.2f} |")
    fastest = max(rate for name, rate in rows[1:3])
    print(f"ptm default / fastest fp32 peer: {base / fastest:.2f}")
    if bf16:
        print(f"ptm bf16 / OpenVINO defaults: {rows[3][1] / rows[4][1]:.2f}")


def cold(weights: Path, horse: Path, env: dict, repeats: int) -> None:
    out = WORK / "cold-zebra.png"
    book = [sys.executable, "-c", BOOK_ZEBRA, str(weights), str(horse), str(out)]
    ours = [*ptm(), "zebrafy", str(horse), "-o", str(out), "--weights", str(weights), "--force"]
    wall(book), wall(ours, env)  # page cache warm for both
    book_s, ours_s = median([wall(book) for _ in range(repeats)]), median([wall(ours, env) for _ in range(repeats)])
    print(f"\ncold, one photo ({horse.name}), cache measured, medians of {repeats}:")
    print(f"  book chapter 2.2 script   {book_s:6.2f} s   peak {peak_rss_mb(book):5.0f} MB")
    print(f"  ptm zebrafy               {ours_s:6.2f} s   peak {peak_rss_mb(ours, env):5.0f} MB   "
          f"ratio {ours_s / book_s:.2f}")


def first_ever(weights: Path, horse: Path) -> None:
    one = make_jpegs(64) / "img0000.jpg"
    resnet = resnet101_weights()
    out = WORK / "first-zebra.png"
    jobs = [
        ("classify ResNet101", [sys.executable, "-c", BOOK_ONE_IMAGE, str(resnet), str(one)],
         [*ptm(), "classify", str(one), "--weights", str(resnet), "--top", "1"]),
        ("zebrafy", [sys.executable, "-c", BOOK_ZEBRA, str(weights), str(horse), str(out)],
         [*ptm(), "zebrafy", str(horse), "-o", str(out), "--weights", str(weights), "--force"]),
    ]
    print("\nfirst-ever run, fresh cache each time, one photo:")
    for name, book, ours in jobs:
        def fresh() -> dict:
            return {"PTM_OFFLINE": "1", "XDG_CACHE_HOME": tempfile.mkdtemp(prefix="ptm-fresh-")}

        book_s, ours_s = wall(book), wall(ours, fresh())
        book_mb, ours_mb = peak_rss_mb(book), peak_rss_mb(ours, fresh())
        print(f"  {name:<20} book {book_s:6.2f} s {book_mb:5.0f} MB   ptm {ours_s:6.2f} s {ours_mb:5.0f} MB   "
              f"ratio {ours_s / book_s:.2f} time, {ours_mb / book_mb:.2f} memory")


if __name__ == "__main__":
    main()
