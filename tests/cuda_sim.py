"""A simulated CUDA machine for CPU CI: what torch, the device files, the CPU's flags, the
installed runtimes and the measured timings say, patched where ptm asks them, so the real choice
code (models/device.py, models/backends.py, models/runtimes/choice.py) runs as on a GPU machine.

Nothing here decides anything: the tests compare what the real code answers with what README's
table and the issue say it must.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

# Speeds the simulated CPU measured (img/s). The fastest is neither the first candidate listed
# nor torch, so a choice that takes the first or the reference shows.
CPU_RATES = {
    ("onnxruntime", "fp32"): 40.0,
    ("openvino", "fp32"): 60.0,
    ("torch", "fp32"): 30.0,
    ("openvino", "bf16"): 70.0,
    ("torch", "bf16"): 90.0,
    ("openvino", "int8"): 120.0,  # beats every fp32 runtime: the int8 gate lets it through
}
SAPPHIRE_RAPIDS = frozenset({"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8"})


@dataclass
class Machine:
    """What the simulated machine has."""

    capabilities: tuple[tuple[int, int], ...] = ((9, 0), (9, 0))  # one per CUDA device (H200s)
    device_files: tuple[str, ...] = ("dev/nvidia0", "dev/nvidia1", "dev/nvidiactl",
                                     "proc/driver/nvidia/gpus/0000:01:00.0/information")
    cpu_flags: frozenset[str] = SAPPHIRE_RAPIDS
    current: int = 0
    torch_asked: list[str] = field(default_factory=list)


def simulate(monkeypatch, tmp_path: Path, machine: Machine | None = None) -> Machine:
    """Make this process look like `machine` to ptm (torch.cuda, /dev and /proc, the CPU's flags,
    the runtimes installed, the timings measured here); returns it."""
    import torch

    from ptmcli.models import backends, device
    from ptmcli.models.runtimes import choice, cpu

    machine = machine or Machine()
    root = tmp_path / "machine-root"
    (root / "dev").mkdir(parents=True, exist_ok=True)
    for name in machine.device_files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("")
    monkeypatch.setattr(device, "ROOT", root, raising=False)

    def index(of) -> int:
        if of is None:
            return machine.current
        if isinstance(of, int):
            return of
        text = str(of)
        return int(text.split(":")[1]) if ":" in text else machine.current

    def asked(name, answer):
        def ask(*args, **kwargs):
            machine.torch_asked.append(name)
            return answer(*args, **kwargs)
        return ask

    count = len(machine.capabilities)
    monkeypatch.setattr(torch.cuda, "is_available", asked("is_available", lambda: count > 0))
    monkeypatch.setattr(torch.cuda, "device_count", asked("device_count", lambda: count))
    monkeypatch.setattr(torch.cuda, "current_device", asked("current_device", lambda: machine.current))
    monkeypatch.setattr(torch.cuda, "get_device_capability",
                        asked("get_device_capability", lambda of=None: machine.capabilities[index(of)]))
    monkeypatch.setattr(torch.cuda, "get_device_name", asked("get_device_name", lambda of=None: "NVIDIA H200"))
    # Emulated bf16 counts here (V100, T4 say True): ptm must not take this for native bf16.
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", asked("is_bf16_supported", lambda *a, **k: True))

    features = cpu.CpuFeatures("Intel(R) Xeon(R) Platinum 8480+ (simulated)", machine.cpu_flags)
    monkeypatch.setattr(cpu, "cpu_features", lambda: features)
    monkeypatch.setattr(choice, "cpu_features", lambda: features)
    monkeypatch.setattr(choice, "installed", lambda runtime: True)

    def timings(model, weights_sha256):
        return {choice.Candidate(r, p).name: choice.Timing(rate, 0.5) for (r, p), rate in CPU_RATES.items()}

    monkeypatch.setattr(choice, "read_timings", timings)

    def no_measuring(*args, **kwargs):
        raise AssertionError("the choice measured a runtime: the simulated machine has every timing")

    monkeypatch.setattr(backends, "_measure", no_measuring)
    monkeypatch.setattr(choice, "write_timings", no_measuring)
    return machine


def fastest(precision: str) -> str:
    """The runtime the simulated CPU measured fastest for `precision`."""
    return max((rate, runtime) for (runtime, p), rate in CPU_RATES.items() if p == precision)[1]


class FakeRay:
    """The little of Ray the engine uses: a cluster with these resources; what map_batches was
    asked is kept in `calls`."""

    def __init__(self, gpus: int, cpus: int = 16):
        self.resources = {"CPU": float(cpus), **({"GPU": float(gpus)} if gpus else {})}
        self.started = False
        self.calls: list[dict] = []
        fake = self

        class Dataset:
            def map_batches(self, fn, **kwargs):
                fake.calls.append(kwargs)
                return self

            def iter_batches(self, **kwargs):
                return iter(())

        self.data = SimpleNamespace(
            DataContext=SimpleNamespace(get_current=lambda: SimpleNamespace(execution_options=SimpleNamespace())),
            from_items=lambda items: Dataset(),
            ActorPoolStrategy=lambda size: SimpleNamespace(size=size),
        )
        self.exceptions = SimpleNamespace(RayError=RuntimeError)

    def is_initialized(self) -> bool:
        return self.started

    def init(self, **kwargs) -> None:
        self.started = True

    def cluster_resources(self) -> dict:
        return dict(self.resources)
