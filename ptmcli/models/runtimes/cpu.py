"""What this CPU can do fast, read from the kernel's flags without importing torch.

The speed of each runtime and precision depends on a few instruction-set extensions: AVX2 and FMA
(every x86 CPU of the last decade), AVX-512, the 8-bit dot products VNNI (AVX512-VNNI or AVX-VNNI),
bfloat16 arithmetic (AVX512-BF16) and Intel's matrix units (AMX-BF16, AMX-INT8). Without VNNI, an
8-bit product is computed in 16 bits and can saturate, which is why int8 then needs the runtimes'
overflow-safe settings.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

# /proc/cpuinfo flag -> the name people know it by.
_FLAGS = {
    "avx2": "AVX2",
    "fma": "FMA",
    "avx512f": "AVX-512",
    "avx512_vnni": "AVX512-VNNI",
    "avx_vnni": "AVX-VNNI",
    "avx512_bf16": "AVX512-BF16",
    "amx_bf16": "AMX-BF16",
    "amx_int8": "AMX-INT8",
    "avx512_fp16": "AVX512-FP16",
}


@dataclass(frozen=True)
class CpuFeatures:
    model: str
    flags: frozenset[str]  # /proc/cpuinfo names

    def has(self, flag: str) -> bool:
        return flag in self.flags

    @property
    def vnni(self) -> bool:
        return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & self.flags)

    @property
    def bf16(self) -> bool:
        return bool({"avx512_bf16", "amx_bf16"} & self.flags)

    @property
    def amx(self) -> bool:
        return bool({"amx_bf16", "amx_int8"} & self.flags)

    @property
    def machine_class(self) -> str:
        """The class of machine the runtime rules speak of."""
        if self.amx:
            return "amx"
        if self.has("avx512f"):
            return "avx512-bf16" if self.bf16 else "avx512"
        if self.has("avx2"):
            return "avx2-vnni" if self.vnni else "avx2"
        return "other"

    def summary(self) -> str:
        named = [label for flag, label in _FLAGS.items() if flag in self.flags]
        return f"{self.model}; {', '.join(named) if named else 'none of ' + ', '.join(_FLAGS.values())}"


@lru_cache(maxsize=1)
def cpu_features() -> CpuFeatures:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name":
                model = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = set(value.split())
    except OSError:
        pass
    return CpuFeatures(model, frozenset(flags))
