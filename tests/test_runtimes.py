"""Issue 10: ONNX Runtime and OpenVINO behind `--runtime`, a cached export, a torch-free cold start.

The exported models are built once per module in a shared cache (a first run exports and times
every runtime, which takes a while); each test then runs `ptm` as a user would.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import EXAMPLES, ROOT, ptm_command, ptm_in_fresh_interpreter, shared_file

LITE = ["--model", "efficientnet_lite0"]
PHOTOS = [EXAMPLES / name for name in ("coffee.png", "chelsea.png", "camera.png", "rocket.jpg")]
HAS_OPENVINO = importlib.util.find_spec("openvino") is not None


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    cache = tmp_path_factory.mktemp("runtime-cache")
    base = {k: v for k, v in os.environ.items() if not k.startswith("PTM_")}
    return {**base, "XDG_CACHE_HOME": str(cache / "xdg"), "TORCH_HOME": str(cache / "torch"),
            "PTM_OFFLINE": "1", "NO_COLOR": "1"}


def ptm(env, *args, extra: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([*ptm_command(), *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                          env={**env, **(extra or {})}, timeout=timeout)


def records(done: subprocess.CompletedProcess) -> list[dict]:
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


@pytest.fixture(scope="module")
def first_run(env) -> subprocess.CompletedProcess:
    """Measuring on a machine that has never run efficientnet_lite0: builds the cache. (Issue 15: a
    small job no longer exports and times every runtime on its own; `ptm runtimes --measure` or a
    big job does.)"""
    return ptm(env, "runtimes", "--measure", "--model", "efficientnet_lite0")


def test_measuring_says_it_builds_then_later_runs_import_no_torch(env, first_run):
    assert first_run.returncode == 0, first_run.stderr
    assert "first run of efficientnet_lite0 fp32 on this machine: exporting and timing" in first_run.stderr
    assert "measured on this CPU: " in first_run.stderr
    again = ptm_in_fresh_interpreter(["classify", PHOTOS[0], "--model", "efficientnet_lite0", "--format", "jsonl"],
                                     env, timeout=120)
    assert "IMPORTED [] 0" in again.stderr, again.stderr
    assert "note:" not in again.stderr  # nothing to build or measure any more
    assert json.loads(again.stdout)["predictions"][0]["label"] == "espresso"


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_fp32_runtimes_agree_with_torch(env, first_run, runtime):
    if runtime == "openvino" and not HAS_OPENVINO:
        pytest.skip("OpenVINO is not installed (pip install 'ptmcli[openvino]')")
    photos = [*PHOTOS]
    bobby = ROOT.parent / "shared" / "data" / "bobby.jpg"
    if bobby.is_file():
        photos.append(bobby)
    reference = records(ptm(env, "classify", *photos, *LITE, "--format", "jsonl", "--runtime", "torch"))
    ours = records(ptm(env, "classify", *photos, *LITE, "--format", "jsonl", "--runtime", runtime))
    assert [r["path"] for r in ours] == [r["path"] for r in reference]
    for got, want in zip(ours, reference, strict=True):
        assert [p["index"] for p in got["predictions"]] == [p["index"] for p in want["predictions"]]
        for p, q in zip(got["predictions"], want["predictions"], strict=True):
            assert abs(p["probability"] - q["probability"]) < 1e-4


def test_default_settings_match_torch_and_record_the_runtime(env, first_run, tmp_path):
    import h5py

    chosen = ptm(env, "classify", PHOTOS[0], *LITE, "-o", tmp_path / "r.h5")
    assert chosen.returncode == 0, chosen.stderr
    with h5py.File(tmp_path / "r.h5") as f:
        runtime = str(f.attrs["runtime"])
        assert str(f.attrs["precision"]) == "fp32"
    measured = json.loads(next((Path(env["XDG_CACHE_HOME"]) / "ptm" / "exports" / "efficientnet_lite0")
                               .glob("*/measured.json")).read_text())
    name, version = runtime.split(" ")
    assert f"{name} {version} fp32" in measured["timings"]
    assert name in ("onnxruntime", "openvino", "torch")


def test_a_damaged_export_is_rebuilt_not_loaded(env, first_run):
    folder = next((Path(env["XDG_CACHE_HOME"]) / "ptm" / "exports" / "efficientnet_lite0").glob("*/onnxruntime-*-fp32"))
    model = folder / "model.onnx"
    expected = records(ptm(env, "classify", PHOTOS[0], *LITE, "--format", "jsonl", "--runtime", "onnxruntime"))
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte changed
    model.write_bytes(bytes(data))
    rebuilt = ptm(env, "classify", PHOTOS[0], *LITE, "--format", "jsonl", "--runtime", "onnxruntime")
    assert records(rebuilt) == expected
    model.write_bytes(model.read_bytes()[:1000])  # cut short
    assert records(ptm(env, "classify", PHOTOS[0], *LITE, "--format", "jsonl", "--runtime", "onnxruntime")) == expected
    record = json.loads((folder / "export.json").read_text())
    assert record["files"]["model.onnx"]["size"] == model.stat().st_size


def test_save_features_through_an_exported_runtime(env, first_run, tmp_path):
    import h5py
    import numpy as np

    for runtime in ("torch", "onnxruntime"):
        done = ptm(env, "classify", *PHOTOS, *LITE, "--runtime", runtime, "-o", tmp_path / f"{runtime}.h5",
                   "--save-features", "--save-probs")
        assert done.returncode == 0, done.stderr
    with h5py.File(tmp_path / "torch.h5") as a, h5py.File(tmp_path / "onnxruntime.h5") as b:
        np.testing.assert_allclose(a["features"][...], b["features"][...], atol=1e-4)
        np.testing.assert_allclose(a["probabilities"][...], b["probabilities"][...], atol=1e-5)
        assert str(b.attrs["runtime"]).startswith("onnxruntime ")


@pytest.mark.parametrize("args, message", [
    (["--runtime", "openvino", "--device", "cuda"], "--runtime openvino runs on the CPU"),
    (["--runtime", "onnxruntime", "--compile"], "--compile is torch's compiler"),
    (["--runtime", "tensorrt"], "--runtime 'tensorrt' is not a runtime"),
    (["--runtime", "onnxruntime", "--precision", "bf16"], "--runtime onnxruntime offers fp32 on a CPU, not bf16"),
    (["--runtime", "torch", "--precision", "int8"], "--runtime torch offers fp32, bf16 on a CPU, not int8"),
])
def test_runtime_options_that_cannot_work_exit_2(run_ptm, args, message):
    done = run_ptm("classify", PHOTOS[0], *LITE, *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_int8_is_refused_where_it_would_be_slower(monkeypatch):
    from ptmcli.errors import UsageProblem
    from ptmcli.models.registry import get_classifier
    from ptmcli.models.runtimes import choice
    from ptmcli.models.runtimes.cpu import CpuFeatures

    monkeypatch.setattr(choice, "cpu_features", lambda: CpuFeatures("test CPU", frozenset({"avx2", "fma"})))
    monkeypatch.setattr(choice, "installed", lambda runtime: True)
    monkeypatch.setattr(choice, "read_timings", lambda *a: {})
    monkeypatch.setattr(choice, "write_timings", lambda *a: None)
    monkeypatch.setattr(choice, "torch_import_seconds", lambda: 2.0)
    speeds = {"openvino int8": 9.0, "onnxruntime fp32": 10.0, "openvino fp32": 8.0, "torch fp32": 6.0}
    spec = get_classifier("efficientnet_lite0")

    def measure(candidate):
        return choice.Timing(speeds[f"{candidate.runtime} {candidate.precision}"], 0.1)

    with pytest.raises(UsageProblem) as refused:
        choice.decide(spec, "ab" * 32, "auto", "int8", False, 64, measure, lambda message: None)
    assert "--precision int8 would not be faster on this CPU" in refused.value.message
    assert "9.0 img/s" in refused.value.message and "10.0 img/s" in refused.value.message
    speeds["openvino int8"] = 20.0
    assert choice.decide(spec, "ab" * 32, "auto", "int8", False, 64, measure, lambda message: None) == \
        choice.Candidate("openvino", "int8")


def test_auto_weighs_load_time_against_speed_for_the_run_size():
    from ptmcli.models.runtimes.choice import Candidate, Timing, pick

    quick, fast = Candidate("openvino", "fp32"), Candidate("torch", "fp32")
    timings = {quick.name: Timing(10.0, 0.2), fast.name: Timing(20.0, 3.0)}
    assert pick(timings, [quick, fast], inputs=1) == quick
    assert pick(timings, [quick, fast], inputs=1000) == fast


@pytest.mark.slow
def test_int8_agrees_with_fp32(env):
    pytest.importorskip("nncf", reason="int8 needs OpenVINO and NNCF (pip install 'ptmcli[openvino]')")
    photos = [*PHOTOS, shared_file("bobby.jpg")]
    int8 = ptm(env, "classify", *photos, *LITE, "--format", "jsonl", "--precision", "int8", timeout=900)
    if int8.returncode == 2 and "would not be faster" in int8.stderr:
        pytest.skip(f"int8 is not faster on this CPU: {int8.stderr.strip()}")
    reference = records(ptm(env, "classify", *photos, *LITE, "--format", "jsonl", "--runtime", "torch"))
    got = records(int8)
    # chelsea.png is a toss-up (tiger cat 37.9%, Egyptian cat 37.5%); the others have a clear winner.
    clear = [i for i, r in enumerate(reference)
             if r["predictions"][0]["probability"] - r["predictions"][1]["probability"] > 0.1]
    assert [reference[i]["path"] for i in clear] == [str(p) for p in photos if p.name != "chelsea.png"]
    labels = [r["predictions"][0]["label"] for r in reference]
    assert [got[i]["predictions"][0]["label"] for i in clear] == [labels[i] for i in clear]


def test_int8_without_openvino_says_how_to_get_it(monkeypatch):
    from ptmcli.errors import UsageProblem
    from ptmcli.models.runtimes import choice

    monkeypatch.setattr(choice, "installed", lambda runtime: runtime != "openvino")
    with pytest.raises(UsageProblem) as refused:
        choice.candidates("auto", "int8", False)
    assert refused.value.message == "--precision int8 runs in OpenVINO, which is not installed"
    assert refused.value.hints == ("pip install 'ptmcli[openvino]', or use --precision fp32",)


def test_help_names_the_openvino_extra(run_ptm):
    done = run_ptm("classify", "--help", env={"COLUMNS": "300"})
    assert done.returncode == 0
    assert "onnxruntime, openvino (pip install 'ptmcli[openvino]')" in done.stdout
