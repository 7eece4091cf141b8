"""Issue 15: `ptm zebrafy` on ONNX Runtime and OpenVINO, first contact without exporting, `ptm runtimes`.

The generator has the book's layout (ngf 64, 9 blocks) with random weights; its exports are built
once per module in a shared cache.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import EXAMPLES, ROOT, ptm_command, ptm_in_fresh_interpreter
from PIL import Image
from zebra_helpers import save_generator

HAS_OPENVINO = importlib.util.find_spec("openvino") is not None
RUNTIMES = ["onnxruntime", *(["openvino"] if HAS_OPENVINO else [])]
HORSE = ROOT.parent / "shared" / "data" / "horse.jpg"
PHOTOS = [EXAMPLES / "chelsea.png", EXAMPLES / "coffee.png", *([HORSE] if HORSE.is_file() else [])]


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    cache = tmp_path_factory.mktemp("zebra-runtime-cache")
    base = {k: v for k, v in os.environ.items() if not k.startswith("PTM_")}
    return {**base, "XDG_CACHE_HOME": str(cache / "xdg"), "TORCH_HOME": str(cache / "torch"),
            "PTM_OFFLINE": "1", "NO_COLOR": "1"}


@pytest.fixture(scope="module")
def book_weights(tmp_path_factory) -> Path:
    return save_generator(tmp_path_factory.mktemp("w") / "book.pth", "book")


def ptm(env, *args, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([*ptm_command(), *map(str, args)], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=timeout)


def zebrafy(env, weights, out: Path, *args) -> dict[str, np.ndarray]:
    done = ptm(env, "zebrafy", *PHOTOS, "-o", f"{out}/", "--weights", weights, "--force", *args)
    assert done.returncode == 0, done.stderr
    return {Path(line.split("\t")[0]).name: np.asarray(Image.open(line.split("\t")[1]), dtype=np.int16)
            for line in done.stdout.splitlines()}


@pytest.fixture(scope="module")
def reference(env, book_weights, tmp_path_factory) -> dict[str, np.ndarray]:
    return zebrafy(env, book_weights, tmp_path_factory.mktemp("torch"), "--runtime", "torch")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_every_runtime_is_within_2_levels_of_torch_fp32(env, book_weights, reference, runtime, tmp_path):
    ours = zebrafy(env, book_weights, tmp_path, "--runtime", runtime)
    assert ours.keys() == reference.keys()
    for name, picture in ours.items():
        assert picture.shape == reference[name].shape
        assert np.abs(picture - reference[name]).max() <= 2, name


@pytest.mark.parametrize("runtime", ["torch", *RUNTIMES])
def test_bit_identical_across_batch_sizes(env, book_weights, runtime, tmp_path):
    # Three copies of one photo have one size, so they share forward passes of 1, 2 or 3 pictures.
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        shutil.copy(EXAMPLES / "chelsea.png", folder / f"{i}.png")
    runs = []
    for batch in ("1", "2", "3"):
        out = tmp_path / f"b{batch}"
        done = ptm(env, "zebrafy", folder, "-o", f"{out}/", "--weights", book_weights, "--runtime", runtime,
                   "--size", "128", "-b", batch)
        assert done.returncode == 0, done.stderr
        runs.append([np.asarray(Image.open(out / f"{i}_zebra.png")) for i in range(3)])
    for other in runs[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(runs[0], other))


def test_once_measured_one_photo_imports_no_torch(env, book_weights, tmp_path):
    measured = ptm(env, "runtimes", "--measure", "--model", "horse2zebra", "--weights", book_weights)
    assert measured.returncode == 0, measured.stderr
    assert "exporting and timing" in measured.stderr and "Mpx/s" in measured.stderr
    listing = ptm(env, "runtimes", "--format", "json")
    rows = {row["runtime"]: row for row in json.loads(listing.stdout)}
    assert "horse2zebra fp32: " in rows["torch"]["measured"] and "horse2zebra fp32: " in rows["onnxruntime"]["measured"]
    again = ptm_in_fresh_interpreter(["zebrafy", PHOTOS[0], "-o", tmp_path / "z.png", "--weights", book_weights], env)
    assert "IMPORTED [] 0" in again.stderr, again.stderr
    assert "note:" not in again.stderr
    from ptmcli.pixels.translate import processed_size

    assert Image.open(tmp_path / "z.png").size == processed_size(*Image.open(PHOTOS[0]).size, 256)


def no_exports(cache: Path) -> bool:
    return not list((cache / "ptm" / "exports").glob("**/export.json"))


def test_first_contact_exports_nothing(tmp_path, book_weights):
    base = {k: v for k, v in os.environ.items() if not k.startswith("PTM_")}
    env = {**base, "XDG_CACHE_HOME": str(tmp_path / "xdg"), "TORCH_HOME": str(tmp_path / "torch"),
           "PTM_OFFLINE": "1", "NO_COLOR": "1"}
    zebra = ptm(env, "zebrafy", PHOTOS[0], "-o", tmp_path / "z.png", "--weights", book_weights)
    assert zebra.returncode == 0, zebra.stderr
    classify = ptm(env, "classify", EXAMPLES / "coffee.png", "--model", "efficientnet_lite0", "--format", "jsonl")
    assert classify.returncode == 0, classify.stderr
    assert json.loads(classify.stdout)["predictions"][0]["label"] == "espresso"
    for done in (zebra, classify):
        assert "exporting" not in done.stderr and "note:" not in done.stderr
    assert no_exports(tmp_path / "xdg")


def test_runtimes_lists_every_runtime_installed_or_not(run_ptm):
    done = run_ptm("runtimes", "--format", "json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [row["runtime"] for row in rows] == ["torch", "onnxruntime", "openvino"]
    assert rows[0]["installed"] is True and "fp32" in rows[0]["precisions"]
    assert rows[2]["installed"] is HAS_OPENVINO
    assert all(row["measured"] == "" for row in rows)  # a fresh cache
    refused = run_ptm("runtimes", "--measure")
    assert refused.returncode == 2 and "--measure needs --model NAME" in refused.stderr


def test_auto_measures_only_for_a_job_big_enough_to_repay_it(monkeypatch):
    from ptmcli.models.registry import get_classifier, get_generator
    from ptmcli.models.runtimes import choice

    monkeypatch.setattr(choice, "installed", lambda runtime: True)
    monkeypatch.setattr(choice, "read_timings", lambda *a: {})
    monkeypatch.setattr(choice, "write_timings", lambda *a: None)
    monkeypatch.setattr(choice, "torch_import_seconds", lambda: 2.0)
    measured = []

    def measure(candidate):
        measured.append(candidate.runtime)
        return choice.Timing({"onnxruntime": 12.0, "openvino": 13.0, "torch": 9.0}[candidate.runtime], 0.2)

    for spec, small, big in ((get_classifier("resnet101"), 255, 256), (get_generator("horse2zebra"), 15.9, 16)):
        chosen = choice.decide(spec, "ab" * 32, "auto", "fp32", False, small, measure, lambda message: None)
        assert (chosen.runtime, measured) == ("torch", [])
        chosen = choice.decide(spec, "ab" * 32, "auto", "fp32", False, big, measure, lambda message: None)
        assert sorted(measured) == ["onnxruntime", "openvino", "torch"] and chosen.runtime == "openvino"
        measured.clear()


def test_psnr_of_pictures():
    from ptmcli.models.runtimes.generator_build import MIN_INT8_PSNR, psnr

    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    assert psnr(a, b) == float("inf")
    b[0, 0, 0] = 255  # one of 48 values off by the full range: 10 log10(48) dB
    assert abs(psnr(a, b) - 10 * np.log10(48)) < 1e-9
    assert MIN_INT8_PSNR == 30.0
