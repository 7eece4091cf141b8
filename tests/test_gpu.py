"""CUDA paths: same answers as the CPU, at every GPU precision. Skipped without a GPU."""

from __future__ import annotations

import json

import pytest
from conftest import EXAMPLES, shared_file

pytestmark = pytest.mark.gpu
LITE = ["--model", "efficientnet_lite0", "--format", "jsonl", "--top", "3"]


def top1(stdout: str) -> list[str]:
    return [json.loads(line)["predictions"][0]["label"] for line in stdout.splitlines()]


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_cuda_agrees_with_cpu(run_ptm, cuda_device, precision):
    # Photos with a clear winner (espresso 96%, golden retriever 94%): the right answer is one label.
    images = [EXAMPLES / "coffee.png", shared_file("bobby.jpg")]
    cpu = run_ptm("classify", *images, *LITE, "--device", "cpu")
    gpu = run_ptm("classify", *images, *LITE, "--device", cuda_device, "--precision", precision)
    assert gpu.returncode == 0, gpu.stderr
    cpu_rows = [json.loads(line) for line in cpu.stdout.splitlines()]
    gpu_rows = [json.loads(line) for line in gpu.stdout.splitlines()]
    assert [c["predictions"][0]["label"] for c in cpu_rows] == ["espresso", "golden retriever"]
    tolerance = 1e-4 if precision == "fp32" else 0.03
    for c, g in zip(cpu_rows, gpu_rows, strict=True):
        assert g["predictions"][0]["label"] == c["predictions"][0]["label"]
        assert abs(g["predictions"][0]["probability"] - c["predictions"][0]["probability"]) < tolerance


def test_auto_picks_cuda_and_many_images_stay_in_order(run_ptm, tmp_path):
    import shutil

    for i in range(40):
        shutil.copy(EXAMPLES / ("coffee.png" if i % 2 else "chelsea.png"), tmp_path / f"{i:03d}.png")
    done = run_ptm("classify", tmp_path, *LITE, "--batch-size", "8")
    assert done.returncode == 0, done.stderr
    labels = top1(done.stdout)
    assert labels[1::2] == ["espresso"] * 20
    assert "espresso" not in labels[0::2]
    # --device auto chose the GPU: the results file records where the numbers were computed.
    import h5py

    saved = run_ptm("classify", tmp_path, *LITE, "--batch-size", "8", "-o", tmp_path / "r.h5")
    assert saved.returncode == 0, saved.stderr
    with h5py.File(tmp_path / "r.h5") as f:
        assert f.attrs["device"] == "cuda:0"


def test_cuda_compile_bf16(run_ptm, cuda_device):
    bobby = shared_file("bobby.jpg")
    done = run_ptm("classify", bobby, EXAMPLES / "coffee.png", *LITE, "--device", cuda_device,
                   "--precision", "bf16", "--compile")
    assert done.returncode == 0, done.stderr
    assert top1(done.stdout) == ["golden retriever", "espresso"]


def test_runtime_auto_on_a_gpu_is_torch_without_measuring(run_ptm, tmp_path):
    # The exported runtimes run on the CPU; with a GPU present, auto must not export or time them.
    done = run_ptm("classify", EXAMPLES / "coffee.png", *LITE, "-o", tmp_path / "r.h5", env={"PTM_RUNTIME": "auto"})
    assert done.returncode == 0, done.stderr
    assert "note:" not in done.stderr
    import h5py

    with h5py.File(tmp_path / "r.h5") as f:
        assert f.attrs["device"] == "cuda:0"
        assert str(f.attrs["runtime"]).startswith("torch ")
