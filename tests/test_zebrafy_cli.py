"""`ptm zebrafy` through the real entry point: layouts, sizes, outputs, overwrites, hostile files."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, ptm_command, shared_file
from PIL import Image
from zebra_helpers import image_size, save_generator


@pytest.fixture(scope="module")
def small_weights(tmp_path_factory) -> Path:
    """A 4-channel, 1-block generator: the book's layout, a tiny fraction of the CPU time."""
    return save_generator(tmp_path_factory.mktemp("w") / "small.pth", "book", ngf=4, n_blocks=1)


def outputs_of(done: subprocess.CompletedProcess) -> list[tuple[str, str]]:
    return [tuple(line.split("\t")) for line in done.stdout.splitlines()]


@pytest.mark.parametrize("layout", ["book", "cyclegan"])
def test_horse_photo_with_both_published_layouts(run_ptm, tmp_path, layout):
    horse = shared_file("horse.jpg")
    weights = save_generator(tmp_path / f"{layout}.pth", layout)  # full size, random weights
    target = tmp_path / "zebra.png"
    done = run_ptm("zebrafy", horse, "-o", target, "--weights", weights, "--size", "64")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert outputs_of(done) == [(str(horse), str(target))]
    with Image.open(horse) as original:
        width, height = original.size
    assert image_size(target) == (int(64 * width / height), 64)  # short side 64, as Resize(64)
    pixels = np.asarray(Image.open(target))
    assert pixels.std() > 0  # a real picture came out, not a constant


def test_offline_without_weights_exits_2_with_the_fix(run_ptm, tmp_path, make_image):
    photo = make_image("horse.png")
    done = run_ptm("zebrafy", photo, "-o", tmp_path / "z.png")
    assert done.returncode == 2
    assert "horse2zebra_0.4.0.pth" in done.stderr
    assert "searched" in done.stderr and "user cache" in done.stderr
    assert "ptm weights fetch horse2zebra" in done.stderr and "--weights" in done.stderr
    assert "efficientnet_lite0" not in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "z.png").exists()

    original = run_ptm("zebrafy", photo, "-o", tmp_path / "z.png", "--model", "horse2zebra_cyclegan", "--offline")
    assert original.returncode == 2 and "--allow-unverified" in original.stderr


@pytest.mark.slow
def test_folder_with_corrupt_image_then_rerun_replaces_nothing(run_ptm, tmp_path, make_image, small_weights):
    photos = tmp_path / "photos"
    make_image("a.jpg", size=(257, 383), folder=photos)
    make_image("b.png", size=(90, 60), folder=photos / "sub")
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    out = tmp_path / "zebras"

    done = run_ptm("zebrafy", photos, "-o", f"{out}/", "--weights", small_weights, "--size", "0")
    assert done.returncode == 1
    expected = {out / "a_zebra.png": (257, 383), out / "sub" / "b_zebra.png": (90, 60)}
    assert {Path(o) for _, o in outputs_of(done)} == set(expected)
    assert {p: image_size(p) for p in out.rglob("*") if p.is_file()} == expected  # nothing for broken.jpg
    [line] = done.stderr.splitlines()
    assert "broken.jpg" in line and "Traceback" not in done.stderr

    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in expected}
    again = run_ptm("zebrafy", photos, "-o", f"{out}/", "--weights", small_weights, "--size", "0")
    assert again.returncode == 1 and again.stdout == ""
    assert again.stderr.count("exists (pass --force to replace it)") == 2
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in expected} == before

    skipped = run_ptm("zebrafy", photos, "-o", out, "--weights", small_weights, "--skip-existing")
    assert skipped.returncode == 1 and skipped.stdout == "" and skipped.stderr.count("\n") == 1

    forced = run_ptm("zebrafy", photos, "-o", out, "--weights", small_weights, "--size", "32", "--force")
    assert forced.returncode == 1 and len(outputs_of(forced)) == 2
    assert image_size(out / "a_zebra.png") == (32, 47)  # int(32 * 383 / 257)


def test_single_output_exists_is_refused_and_force_replaces(run_ptm, tmp_path, make_image, small_weights):
    photo = make_image("p.png", size=(40, 30))
    target = tmp_path / "z.png"
    target.write_bytes(b"keep me")
    done = run_ptm("zebrafy", photo, "-o", target, "--weights", small_weights)
    assert done.returncode == 2 and "exists" in done.stderr and "--force" in done.stderr
    assert target.read_bytes() == b"keep me"
    forced = run_ptm("zebrafy", photo, "-o", target, "--weights", small_weights, "--force", "--size", "0")
    assert forced.returncode == 0 and image_size(target) == (40, 30)


def test_formats_side_by_side_names_exif_and_alpha(run_ptm, tmp_path, make_image, small_weights):
    folder = tmp_path / "in"
    # EXIF orientation 6: stored 40x30, shown (and processed) 30x40.
    stored = Image.fromarray(np.random.default_rng(1).integers(0, 256, (30, 40, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6
    folder.mkdir()
    stored.save(folder / "turned.jpg", exif=exif)
    rgba = np.random.default_rng(2).integers(0, 256, (20, 24, 4), dtype=np.uint8)
    rgba[:, :12, 3], rgba[:, 12:, 3] = 0, 255
    Image.fromarray(rgba, "RGBA").save(folder / "clear.png")

    done = run_ptm("zebrafy", folder, "-o", tmp_path / "out", "--weights", small_weights, "--size", "0",
                   "--name", "{stem}.{ext}.webp", "--side-by-side")
    assert done.returncode == 0, done.stderr
    with Image.open(tmp_path / "out" / "turned.jpg.webp") as turned:
        assert turned.format == "WEBP" and turned.size == (60, 40)
    with Image.open(tmp_path / "out" / "clear.png.webp") as clear:
        assert clear.mode == "RGBA" and clear.size == (48, 20)
        alpha = np.asarray(clear.getchannel("A"))
    # transparency kept, on the input half and on the output half
    assert alpha[:, :12].max() == 0 and alpha[:, 12:24].min() == 255
    assert alpha[:, 24:36].max() == 0 and alpha[:, 36:].min() == 255

    jpg = run_ptm("zebrafy", folder / "clear.png", "-o", tmp_path / "c.jpg", "--weights", small_weights)
    assert jpg.returncode == 0
    with Image.open(tmp_path / "c.jpg") as flat:
        assert flat.format == "JPEG" and flat.mode == "RGB"


@pytest.mark.parametrize(
    "args, message",
    [
        (["-o", "z.png", "--size", "-1"], "Invalid value"),
        (["-o", "z.gif"], "cannot tell the image format"),
        (["-o", "out/", "--name", "{nope}.png"], "unknown field"),
        (["-o", "z.png", "--model", "horse2zebre"], "unknown generator"),
    ],
)
def test_cannot_start(run_ptm, tmp_path, make_image, args, message):
    photo = make_image("p.png")
    done = run_ptm("zebrafy", photo, *args, cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_many_inputs_need_a_folder(run_ptm, tmp_path, make_image):
    done = run_ptm("zebrafy", make_image("a.png"), make_image("b.png"), "-o", tmp_path / "z.png")
    assert done.returncode == 2 and "-o " in done.stderr and "/" in done.stderr


@pytest.mark.slow
def test_hostile_weight_files_are_refused(run_ptm, tmp_path, make_image, small_weights):
    photo = make_image("p.png")
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    import torch

    saved = tmp_path / "evil.pth"  # what a malicious "checkpoint" looks like: torch.save of an object
    torch.save({"model.1.weight": Evil()}, saved)
    done = run_ptm("zebrafy", photo, "-o", tmp_path / "z.png", "--weights", saved)
    assert done.returncode == 2 and "refused" in done.stderr and "posix.system" in done.stderr
    raw = tmp_path / "evil.pkl"
    raw.write_bytes(pickle.dumps({"model.1.weight": Evil()}))
    done = run_ptm("zebrafy", photo, "-o", tmp_path / "z.png", "--weights", raw)
    assert done.returncode == 2 and ("refused" in done.stderr or "not a readable" in done.stderr)
    assert "Warning" not in done.stderr
    assert not marker.exists()

    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(small_weights.read_bytes()[:5000])
    done = run_ptm("zebrafy", photo, "-o", tmp_path / "z.png", "--weights", corrupt)
    assert done.returncode == 2 and "not a readable PyTorch file" in done.stderr

    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    done = run_ptm("zebrafy", photo, "-o", tmp_path / "z.png", "--weights", tmp_path / "other.pth")
    assert done.returncode == 2
    assert "missing: model.1.weight" in done.stderr and "unexpected: conv.weight" in done.stderr
    assert not (tmp_path / "z.png").exists()


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_a_killed_run_leaves_no_partial_image(isolated_env, tmp_path, make_image, small_weights, how):
    folder = tmp_path / "in"
    for i in range(12):
        make_image(f"{i:02d}.png", size=(900, 700), folder=folder)
    out = tmp_path / "out"
    process = subprocess.Popen(
        [*ptm_command(), "zebrafy", str(folder), "-o", str(out), "--weights", str(small_weights),
         "--size", "0", "--batch-size", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=isolated_env, cwd=ROOT,
    )
    first = process.stdout.readline()  # one image written: the run is in its loop now
    assert first.endswith("_zebra.png\n"), process.stderr.read()
    time.sleep(0.05)
    process.send_signal(how)
    process.wait(timeout=60)
    assert process.returncode != 0
    finals = sorted(out.glob("*_zebra.png"))
    assert 1 <= len(finals) < 12
    for path in finals:
        assert image_size(path) == (900, 700)  # every file under its final name is complete
    leftovers = [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    if how == signal.SIGTERM:
        assert leftovers == []  # a polite kill cleans its temp file up too


def test_bf16_output_is_close_to_fp32(run_ptm, tmp_path, make_image):
    import torch

    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        pytest.skip("this CPU has no bfloat16 instructions")
    weights = save_generator(tmp_path / "g.pth", "book", ngf=8, n_blocks=2)
    source = make_image("h.png", size=(96, 64))
    outs = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / f"{precision}.png"
        done = run_ptm("zebrafy", source, "-o", out, "--weights", weights, "--size", "0", "--precision", precision)
        assert done.returncode == 0, done.stderr
        outs[precision] = np.asarray(Image.open(out), dtype=np.int16)
    assert outs["fp32"].shape == outs["bf16"].shape == (64, 96, 3)
    assert np.abs(outs["fp32"] - outs["bf16"]).mean() < 3  # 8-bit levels


def test_fp16_on_cpu_says_so(run_ptm, tmp_path, make_image, small_weights):
    done = run_ptm("zebrafy", make_image("h.png"), "-o", tmp_path / "z.png", "--weights", small_weights,
                   "--device", "cpu", "--precision", "fp16")
    assert done.returncode == 2
    assert "GPUs only" in done.stderr and not (tmp_path / "z.png").exists()
