"""`ptm runtimes`: every runtime ptm knows, installed or not, what it offers on this CPU, and what
was measured on this machine (the records `--runtime auto` chooses by)."""

from __future__ import annotations

from ptmcli.models.runtimes import CPU_PRECISIONS, INSTALL_HINTS, installed, version
from ptmcli.models.runtimes.choice import UNITS, read_timings
from ptmcli.models.runtimes.cpu import cpu_features
from ptmcli.models.runtimes.exports import cache_root


def offered_here(runtime: str) -> list[str]:
    """The precisions `runtime` offers on this CPU (bf16 only with native bfloat16, int8 with AVX2)."""
    cpu = cpu_features()
    return [p for p in CPU_PRECISIONS[runtime]
            if (p != "bf16" or cpu.bf16) and (p != "int8" or cpu.has("avx2"))]


def measured_here() -> dict[str, list[str]]:
    """runtime -> "model precision: rate, load" for every record made on this machine."""
    from ptmcli.models.registry import get_model

    found: dict[str, list[str]] = {}
    for record in sorted(cache_root().glob("*/*/measured.json")):
        model, digest = record.parent.parent.name, record.parent.name
        try:
            unit = UNITS.get(get_model(model).task, "img/s")
        except Exception:  # noqa: BLE001 - a model this version no longer knows
            continue
        for name, timing in read_timings(model, digest).items():
            runtime, _, rest = name.partition(" ")
            precision = rest.rpartition(" ")[2]
            what = (f"refused ({timing.refused[:60]})" if timing.refused else
                    f"{timing.img_s:.2f} {unit}, {timing.load_s:.1f} s to load")
            found.setdefault(runtime, []).append(f"{model} {precision}: {what}")
    return found


def runtime_records() -> list[dict]:
    measured = measured_here()
    return [{"runtime": runtime, "installed": installed(runtime), "version": version(runtime) or "",
             "precisions": ", ".join(offered_here(runtime)), "measured": "; ".join(measured.get(runtime, [])),
             "install": "" if installed(runtime) else INSTALL_HINTS[runtime]}
            for runtime in ("torch", "onnxruntime", "openvino")]
