"""What a pickle would import, read from its opcodes without unpickling it: how ptm names the
code a refused weight file (or tensor file) would have run."""

from __future__ import annotations

import os

# pickletools reads this much of a bare pickle to name what it would import.
_PICKLE_SCAN_BYTES = 16 * 1024 * 1024


def pickle_imports(path: str | os.PathLike) -> list[str]:
    """What a pickle would import, in order, without unpickling it (pickletools only reads opcodes)."""
    import pickletools

    imports: list[str] = []
    try:
        with open(path, "rb") as fh:
            data = fh.read(_PICKLE_SCAN_BYTES)
        strings: list[str] = []
        for opcode, arg, _ in pickletools.genops(data):
            if opcode.name in ("GLOBAL", "INST") and isinstance(arg, str):
                imports.append(arg.replace(" ", "."))
            elif opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
                strings.append(arg)
            elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                imports.append(f"{strings[-2]}.{strings[-1]}")
            if opcode.name == "STOP":
                break
    except Exception:  # noqa: BLE001 - a broken pickle is refused all the same
        pass
    return list(dict.fromkeys(imports))
