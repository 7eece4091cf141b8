"""The CUDA path without a GPU: issue 18's seven suspicions, each checked on a simulated CUDA
machine (tests/cuda_sim.py) driving the real choice code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cuda_sim import FakeRay, Machine, simulate

from ptmcli.errors import DeviceUnavailable, UsageProblem

SHA = "0" * 64


def choose(spec_name="resnet101", **asked):
    from ptmcli.models.backends import open_backend
    from ptmcli.models.registry import get_model

    asked.setdefault("work", 1000)
    return open_backend(get_model(spec_name), Path("unused.pt"), weights_sha256=SHA, load=False, **asked)[0]


# 1. Ray with a CPU-only driver: the choice is made for the cluster's GPUs, and what the actors
# are given (a GPU or not) matches the runtime chosen.

def _ray_run(monkeypatch, tmp_path, gpus: int, **asked):
    from ptmcli.models.registry import get_classifier
    from ptmcli.pipeline import loading
    from ptmcli.pipeline.classification import ClassifyJob
    from ptmcli.pipeline.engines import ray_engine
    from ptmcli.pipeline.inputs import InputItem

    simulate(monkeypatch, tmp_path, Machine(capabilities=(), device_files=()))  # the driver: no GPU
    monkeypatch.setenv("PTM_DEBUG", "1")  # Ray's chatter is not redirected (there is no Ray)
    ray = FakeRay(gpus)
    monkeypatch.setattr(ray_engine, "import_ray", lambda: ray)
    monkeypatch.setattr(loading, "locate_weights", lambda weight, explicit, offline: Path("unused.pt"))
    monkeypatch.setattr("ptmcli.models.digests.file_sha256", lambda path: SHA)
    choice, backend = loading.open_model(get_classifier("resnet101"), None, True, work=1000, load=False, **asked)
    assert backend is None
    engine = ray_engine.RayEngine(ClassifyJob(choice, top=5, batch_size=16, pad_to=16), actors=None)
    list(engine.run([(i, InputItem(f"{i}.jpg")) for i in range(200)]))
    engine.close()
    (call,) = ray.calls
    return choice, engine, call


def test_ray_gpu_cluster_with_cpu_driver_runs_torch_on_the_actors_gpus(monkeypatch, tmp_path):
    choice, engine, call = _ray_run(monkeypatch, tmp_path, gpus=2)
    assert (choice.device, choice.runtime, engine.device) == ("cuda", "torch", "cuda")
    assert call["num_gpus"] == 1 and call["compute"].size == 2


def test_ray_fp16_is_not_refused_for_a_cpu_driver_when_the_actors_have_gpus(monkeypatch, tmp_path):
    choice, engine, call = _ray_run(monkeypatch, tmp_path, gpus=1, precision="fp16")
    assert (choice.device, choice.precision, engine.device, call["num_gpus"]) == ("cuda", "fp16", "cuda", 1)


def test_ray_exported_runtime_on_a_gpu_cluster_runs_on_cpu_actors_and_says_so(monkeypatch, tmp_path):
    choice, engine, call = _ray_run(monkeypatch, tmp_path, gpus=2, runtime="onnxruntime")
    assert (choice.device, choice.runtime, engine.device, call["num_gpus"]) == ("cpu", "onnxruntime", "cpu", 0)


def test_ray_cpu_cluster_refuses_cuda_before_starting_actors(monkeypatch, tmp_path):
    with pytest.raises(DeviceUnavailable, match="the Ray cluster has no GPUs") as refused:
        _ray_run(monkeypatch, tmp_path, gpus=0, device="cuda")
    assert refused.value.exit_code == 2


# 2. --device auto on a CUDA machine: what runs only on the CPU goes to the CPU; nothing unknown runs.

@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_auto_on_a_gpu_machine_runs_an_exported_runtime_on_the_cpu(monkeypatch, tmp_path, runtime):
    simulate(monkeypatch, tmp_path)
    choice = choose(runtime=runtime)
    assert (choice.device, choice.runtime) == ("cpu", runtime)


def test_auto_on_a_gpu_machine_runs_int8_on_the_cpu(monkeypatch, tmp_path):
    simulate(monkeypatch, tmp_path)
    choice = choose(precision="int8")
    assert (choice.device, choice.runtime, choice.precision) == ("cpu", "openvino", "int8")


@pytest.mark.parametrize("device", ["auto", "cuda", "cuda:1", "cpu"])
def test_an_unknown_runtime_is_refused_on_every_device(monkeypatch, tmp_path, device):
    simulate(monkeypatch, tmp_path)
    with pytest.raises(UsageProblem, match="^--runtime 'onnx' is not a runtime$") as refused:
        choose(device=device, runtime="onnx")
    assert refused.value.exit_code == 2


# 3. TF32: off wherever a torch model is built for fp32, whichever entry point built it.

@pytest.fixture
def tf32_on():
    import torch

    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True  # PyTorch's GPU default for cuDNN
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


class _Built(Exception):
    pass


def _tf32_when_built(*args, **kwargs):
    import torch

    raise _Built((torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32))


def test_an_in_process_classifier_on_cuda_turns_tf32_off_before_building(monkeypatch, tf32_on):
    import torch

    from ptmcli.models import classifier
    from ptmcli.models.registry import get_classifier

    monkeypatch.setattr(classifier, "build_with_weights", _tf32_when_built)
    with pytest.raises(_Built) as built:
        classifier.Classifier(get_classifier("efficientnet_lite0"), Path("unused.pt"), torch.device("cuda:0"))
    assert built.value.args[0] == (False, False)


def test_an_in_process_zebrafier_on_cuda_turns_tf32_off_before_building(monkeypatch, tf32_on):
    import torch

    from ptmcli.models import cyclegan, generator

    monkeypatch.setattr(cyclegan, "load_generator", _tf32_when_built)
    with pytest.raises(_Built) as built:
        generator.Zebrafier(Path("unused.pt"), torch.device("cuda:0"))
    assert built.value.args[0] == (False, False)


# 4. bf16 on CUDA: the capability of the device asked, not is_bf16_supported of the current one.

def test_bf16_is_refused_on_the_asked_gpu_without_native_bf16(monkeypatch, tmp_path):
    machine = simulate(monkeypatch, tmp_path, Machine(capabilities=((9, 0), (7, 0))))
    with pytest.raises(UsageProblem, match=r"^--precision bf16: cuda:1 has no native bfloat16") as refused:
        choose(device="cuda:1", precision="bf16")
    assert refused.value.exit_code == 2
    assert choose(device="cuda:0", precision="bf16").device == "cuda:0"
    assert "is_bf16_supported" not in machine.torch_asked


def test_bf16_with_auto_asks_the_current_device(monkeypatch, tmp_path):
    simulate(monkeypatch, tmp_path, Machine(capabilities=((9, 0), (7, 5)), current=1))
    with pytest.raises(UsageProblem, match="cuda:1 has no native bfloat16"):
        choose(precision="bf16")


# 5. Seeing a GPU without torch: the NVIDIA driver's files, WSL2 and ROCm; and auto on a GPU
# machine never measures (the timings are keyed by the CPU and kept for the CPU).

@pytest.mark.parametrize("files", [("dev/dxg",), ("dev/kfd",), ("dev/nvidia3", "dev/nvidiactl"),
                                   ("proc/driver/nvidia/gpus/0000:3b:00.0/information",)],
                         ids=["wsl2", "rocm", "container-given-gpu-3", "nvidia-proc"])
def test_auto_finds_the_gpu(monkeypatch, tmp_path, files):
    simulate(monkeypatch, tmp_path, Machine(capabilities=((8, 6),), device_files=files))
    from ptmcli.models.device import settle_device

    assert settle_device("auto") == "cuda:0"


def test_auto_without_gpu_files_does_not_ask_torch(monkeypatch, tmp_path):
    machine = simulate(monkeypatch, tmp_path, Machine(device_files=("dev/nvidiactl", "dev/null")))
    from ptmcli.models.device import settle_device

    assert settle_device("auto") == "cpu"
    assert machine.torch_asked == []


def test_auto_on_a_gpu_machine_measures_nothing_even_for_a_long_job(monkeypatch, tmp_path):
    simulate(monkeypatch, tmp_path)
    from ptmcli.models.runtimes import choice as runtime_choice

    monkeypatch.setattr(runtime_choice, "read_timings", lambda *a: {})  # nothing measured yet
    chosen = choose(work=10**6)  # _measure and write_timings raise if called
    assert (chosen.device, chosen.runtime) == ("cuda:0", "torch")


# 6. zebrafy on a GPU: out-of-memory by name, decode threads, one compile for many sizes.

def fake_gpu_generator(limit: int):
    """A generator 'on cuda' whose forward pass runs out of memory above `limit` pixels."""
    from ptmcli.models.generator import GeneratorBackend

    class OutOfMemoryError(RuntimeError):  # named as torch's, but not torch's (torch 2.4 has none)
        pass

    class Backend(GeneratorBackend):
        device = "cuda"

        def _run(self, batch):
            if batch.shape[0] * batch.shape[2] * batch.shape[3] > limit:
                raise OutOfMemoryError("CUDA error: allocation on device")
            return batch

    return Backend(short_side=0)


def test_gpu_out_of_memory_is_matched_by_name_and_costs_only_that_picture():
    from ptmcli.pixels.translate import Prepared

    backend = fake_gpu_generator(limit=64 * 64)
    small = Prepared(np.zeros((64, 64, 3), np.uint8), None)
    huge = Prepared(np.zeros((256, 256, 3), np.uint8), None)
    assert [type(r).__name__ for r in backend.translate_each([small, small], ["a", "b"])] == ["ndarray"] * 2
    (message,) = backend.translate_each([huge], ["huge.jpg"])
    assert message == "huge.jpg: out of GPU memory at 256x256; try a smaller --size (e.g. --size 512) or --device cpu"


def test_zebrafy_decodes_on_several_threads_on_a_gpu(monkeypatch, tmp_path):
    import os
    import threading

    from ptmcli.pipeline.inputs import InputItem
    from ptmcli.pipeline.translation import translate_batches
    from ptmcli.pixels.translate import Prepared

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    backend = fake_gpu_generator(limit=10**9)
    threads = set()

    def prepare(path):
        threads.add(threading.current_thread().name)
        return Prepared(np.zeros((8, 8, 3), np.uint8), None)

    backend.prepare = prepare
    assert backend.decode_workers == 8
    results = [r for batch in translate_batches(backend, [InputItem(f"{i}.png") for i in range(64)], 4)
               for _, r in batch]
    assert len(results) == 64 and all(r.ok for r in results)
    assert len(threads) > 1 and all(name.startswith("ptm-decode_") for name in threads)


def test_decode_threads_depend_on_the_device(monkeypatch):
    import os

    from ptmcli.models.device import decode_workers

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert [decode_workers(d) for d in ("cpu", "cuda:0", "cuda")] == [1, 8, 8]
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert decode_workers("cuda:1") == 2


@pytest.fixture
def compiles(monkeypatch):
    """Counts the graphs torch.compile makes (Dynamo with an eager backend: quick on a CPU)."""
    import torch
    import torch._inductor.config as inductor_config
    from torch._dynamo.testing import CompileCounter

    counter = CompileCounter()
    real = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model, **kwargs: real(model, **{**kwargs, "backend": counter}))
    saved = inductor_config.freezing
    torch._dynamo.reset()
    yield counter
    inductor_config.freezing = saved
    torch._dynamo.reset()


def test_a_compiled_generator_compiles_once_or_twice_for_many_sizes(compiles, tmp_path):
    from zebra_helpers import save_generator

    from ptmcli.models.generator import Zebrafier

    weights = save_generator(tmp_path / "g.pth", ngf=4, n_blocks=1)
    import torch

    zebra = Zebrafier(weights, torch.device("cpu"), short_side=0, compile=True)
    for height, width in ((32, 32), (32, 48), (48, 32), (64, 40), (40, 64)):
        zebra.translate([np.zeros((height, width, 3), np.uint8)])
    assert 1 <= compiles.frame_count <= 2


def test_compiled_classifier_with_features_compiles_once(compiles):
    import torch

    from ptmcli.models import weights
    from ptmcli.models.classifier import Classifier
    from ptmcli.models.registry import get_classifier

    spec = get_classifier("efficientnet_lite0")
    path = weights.resolve(spec.weights, offline=True)
    eager = Classifier(spec, path, torch.device("cpu"))
    compiled = Classifier(spec, path, torch.device("cpu"), compile=True)
    rng = np.random.default_rng(0)
    for _ in range(3):
        arrays = [rng.integers(0, 256, (224, 224, 3), dtype=np.uint8) for _ in range(2)]
        _, _, features = compiled.forward(arrays, 5, pad_to=2, features=True)
        _, _, expected = eager.forward(arrays, 5, pad_to=2, features=True)
        np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-4)
    assert compiles.frame_count == 1


# 7. Speed on Ray: several model batches per actor call, so decoding overlaps computing.

def test_each_actor_call_holds_several_batches_but_every_actor_gets_work():
    from ptmcli.pipeline.engines.ray_engine import CALL_BATCHES, call_size

    assert call_size(16, 10_000, 2) == 16 * CALL_BATCHES
    assert call_size(16, 64, 4) == 16  # four actors, four batches: one each
    assert call_size(16, 100, 2) == 16 * min(CALL_BATCHES, 4)
    assert call_size(8, 3, 1) == 8


def test_ray_hands_actors_calls_of_several_batches(monkeypatch, tmp_path):
    from ptmcli.pipeline.engines.ray_engine import CALL_BATCHES

    _, _, call = _ray_run(monkeypatch, tmp_path, gpus=1)
    assert call["batch_size"] == 16 * CALL_BATCHES
