"""README's device table (`--device` x `--runtime` x `--precision` on a GPU machine), every cell
checked against the real choice code on a simulated GPU machine (tests/cuda_sim.py)."""

from __future__ import annotations

import re
from itertools import product
from pathlib import Path

import pytest
from conftest import ROOT
from cuda_sim import Machine, fastest, simulate

from ptmcli.errors import PtmError

DEVICES = ("auto", "cpu", "cuda", "cuda:1")
RUNTIMES = ("auto", "torch", "onnxruntime", "openvino")
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
HEADER = "| `--device` | `--runtime` | fp32 | fp16 | bf16 | int8 |"


def readme_table() -> tuple[dict[tuple[str, str, str], str], dict[str, tuple[int, str]]]:
    """{(device, runtime, precision): cell} and {refusal letter: (exit code, message template)}."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    start = lines.index(HEADER)
    cells: dict[tuple[str, str, str], str] = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        devices, runtimes, *row = (field.strip() for field in line.strip("|").split("|"))
        assert len(row) == len(PRECISIONS), line
        for device, runtime, (precision, cell) in product(devices.split(", "), runtimes.split(", "),
                                                          zip(PRECISIONS, row)):
            assert (device, runtime, precision) not in cells, f"{device} {runtime} {precision} twice"
            cells[device, runtime, precision] = cell
    legend = {m[1]: (int(m[2]), m[3]) for m in re.finditer(r"^- \*\*(\w)\*\* \(exit (\d)\): `(.+)`$",
                                                           "\n".join(lines[start:]), re.M)}
    return cells, legend


CELLS, LEGEND = readme_table()


def test_the_table_has_every_combination_once():
    assert set(CELLS) == set(product(DEVICES, RUNTIMES, PRECISIONS))
    used = {cell.split(": ")[1] for cell in CELLS.values() if cell.startswith("refused: ")}
    assert used == set(LEGEND)


def answer(spec_name: str, device: str, runtime: str, precision: str) -> str:
    """What the real code does, written as a cell: "cuda:0 torch", or the refusal's exit code and text."""
    from ptmcli.models.backends import open_backend
    from ptmcli.models.registry import get_model

    try:
        choice, _ = open_backend(get_model(spec_name), Path("unused.pt"), weights_sha256="0" * 64, work=1000,
                                 load=False, device=device, runtime=runtime, precision=precision)
    except PtmError as refused:
        return f"exit {refused.exit_code}: {refused.message}"
    assert choice.precision == precision
    return f"{choice.device} {choice.runtime}"


def expected(device: str, runtime: str, precision: str) -> str:
    cell = CELLS[device, runtime, precision]
    if cell.startswith("refused: "):
        code, template = LEGEND[cell.split(": ")[1]]
        return f"exit {code}: " + template.format(runtime=runtime, device=device, precision=precision)
    return cell.replace("fastest", fastest(precision)) if "fastest" in cell else cell


@pytest.mark.parametrize("spec_name", ["resnet101", "horse2zebra"])
def test_every_cell_on_a_gpu_machine(monkeypatch, tmp_path, spec_name):
    simulate(monkeypatch, tmp_path)
    wrong = {key: (expected(*key), got) for key in sorted(CELLS)
             if (got := answer(spec_name, *key)) != expected(*key)}
    assert wrong == {}


def test_a_cpu_only_machine_answers_the_cpu_rows_for_auto_and_refuses_cuda(monkeypatch, tmp_path):
    simulate(monkeypatch, tmp_path, Machine(capabilities=(), device_files=()))
    for runtime, precision in product(RUNTIMES, PRECISIONS):
        assert answer("resnet101", "auto", runtime, precision) == expected("cpu", runtime, precision)
        for device in ("cuda", "cuda:1"):
            got = answer("resnet101", device, runtime, precision)
            if runtime in ("onnxruntime", "openvino"):
                assert got == expected(device, runtime, precision)  # contradicting flags come first
            else:
                assert got == f"exit 2: --device {device}: CUDA is not available on this machine"


def test_bf16_on_a_gpu_without_native_bf16_and_on_a_cpu_without_bf16_units(monkeypatch, tmp_path):
    simulate(monkeypatch, tmp_path, Machine(capabilities=((8, 0), (7, 0)), cpu_flags=frozenset({"avx2", "fma"})))
    assert answer("resnet101", "cuda:1", "torch", "bf16") == (
        "exit 2: --precision bf16: cuda:1 has no native bfloat16 (compute capability < 8.0)")
    assert answer("resnet101", "cuda", "auto", "bf16") == "cuda:0 torch"
    for runtime in ("auto", "torch", "openvino"):
        assert answer("resnet101", "cpu", runtime, "bf16").startswith(
            "exit 2: --precision bf16: this CPU has no bfloat16 instructions")
