"""Inert stand-ins for what a checkpoint's pickle names beyond tensors, so the rest still lists.

`torch.load(weights_only=True)` stops at the first class or function it does not allow, and what
came before is lost. To list the other entries of such a checkpoint, every global the pickle names
that torch does not allow gets a placeholder: an empty class with the same `module.qualname`
string, which is how torch matches globals allowed through `safe_globals`. Torch's own restricted
unpickler then puts the placeholder where the class or function would have been: it never imports
the name, and a REDUCE "call" (`posix.system("...")`) only makes an empty placeholder object, since
the placeholder's `__new__`, `__init__` and `__setstate__` ignore their arguments. The entries that
hold a placeholder are then reported as refused, naming what they would have imported.

Only names are ever read from the file before torch's unpickler sees it (the same static scan
torch's public `get_unsafe_globals_in_checkpoint` does). Anything the placeholders cannot stand in
for (a custom dict subclass, a placeholder passed to a tensor rebuild function) still fails inside
torch's unpickler, and the file is refused as a whole, as before.
"""

from __future__ import annotations

import zipfile
from contextlib import contextmanager
from typing import Iterator

# A legacy torch.save file is: magic number, protocol version, sys info, the object (then storages).
_LEGACY_PICKLES = 4


class RefusedGlobal:
    """What a checkpoint's pickle named and ptm refused to import; it has no behaviour at all."""

    __slots__ = ()
    imports = ""  # "module.name" that unpickling would import; set on each placeholder class

    def __new__(cls, *_args, **_kwargs):
        return object.__new__(cls)

    def __init__(self, *_args, **_kwargs) -> None:
        pass

    def __setstate__(self, _state) -> None:
        pass  # BUILD's state is dropped: nothing from the file is kept on the placeholder

    def __repr__(self) -> str:
        return f"<refused {self.imports}>"


def unsafe_globals(path: str, fmt: str) -> list[str]:
    """The globals ("module.name") the file's pickle names that weights_only=True does not allow.

    A static scan (torch's own, which reads opcodes and never unpickles); a pickle it cannot scan
    gives what was found so far, and torch's unpickler will refuse the file on the same opcode.
    """
    from torch import _weights_only_unpickler as wo

    found: set[str] = set()
    try:
        if fmt == "torch":
            with zipfile.ZipFile(path) as archive:
                name = next(n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl"))
                with archive.open(name) as fh:
                    found |= wo.get_globals_in_pkl(fh)
        else:
            with open(path, "rb") as fh:
                for _ in range(_LEGACY_PICKLES):
                    found |= wo.get_globals_in_pkl(fh)
    except Exception:  # noqa: BLE001 - an unscannable pickle is refused by torch.load all the same
        pass
    allowed = set(wo._get_allowed_globals()) | set(wo._get_user_allowed_globals())
    return sorted(found - allowed)


def placeholders(names: list[str]) -> list[type]:
    """One inert class per "module.name"; torch matches it by f"{__module__}.{__qualname__}"."""
    made = []
    for full in names:
        module, _, qualname = full.rpartition(".")
        made.append(type(qualname, (RefusedGlobal,), {
            "__slots__": (), "__module__": module, "__qualname__": qualname, "imports": imported_name(full)}))
    return made


def imported_name(full: str) -> str:
    """What Python's pickle would import for a global torch names `full`.

    torch.save writes protocol 2 with Python 2 names (subprocess.Popen is written commands.Popen);
    pickle.load maps them back, and the message should name what would really be imported.
    """
    import _compat_pickle

    for dot in (i for i, ch in enumerate(full) if ch == "."):
        module, name = full[:dot], full[dot + 1:]
        if (module, name) in _compat_pickle.NAME_MAPPING:
            return ".".join(_compat_pickle.NAME_MAPPING[(module, name)])
        if module in _compat_pickle.IMPORT_MAPPING:
            return f"{_compat_pickle.IMPORT_MAPPING[module]}.{name}"
    return full


@contextmanager
def allowing(made: list[type]) -> Iterator[None]:
    """torch.load(weights_only=True) inside this block substitutes the placeholders.

    Torch refuses globals from os, posix, nt and sys before it looks at allowed globals, as a guard
    against someone allowing a real function from them. Here the only allowed names from those
    modules are placeholders, so the guard is lifted for them during this load (and put back).
    """
    import torch
    from torch import _weights_only_unpickler as wo

    blocked = getattr(wo, "_blocklisted_modules", None)
    if blocked is not None:
        names = [f"{cls.__module__}.{cls.__qualname__}" for cls in made]
        wo._blocklisted_modules = [m for m in blocked if not any(n.startswith(m + ".") for n in names)]
    try:
        with torch.serialization.safe_globals(made):
            yield
    finally:
        if blocked is not None:
            wo._blocklisted_modules = blocked
