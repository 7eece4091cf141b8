"""PyTorch files (`torch.save`, zip and legacy): loaded with weights_only=True, flattened to items.

Nested dicts and lists of a checkpoint become dotted names (`model.layer1.0.weight`, `log.0`).
Zip files are memory-mapped, so a large checkpoint is not read to list it. An entry that is a
pickled class or a call (`{"w": ..., "thing": Thing()}`) becomes an inert placeholder
(torch_placeholders.py), never imported or run, and is listed as a refused entry beside the rest.
A pickle that torch's restricted unpickler still cannot load is refused as a whole.
"""

from __future__ import annotations

import re
import warnings

from ptmcli.errors import InputError
from ptmcli.tensorio.boundary import reason
from ptmcli.tensorio.dtypes import torch_dtype_name
from ptmcli.tensorio.items import MAX_NESTING, Item, TensorFile, ValueItem
from ptmcli.tensorio.readers import torch_placeholders


def open_torch(path: str, fmt: str) -> TensorFile:
    import pickle

    import torch

    locations: dict[int, str] = {}

    def remember_location(storage, location):
        # Loaded on the CPU whatever it was saved from; the file's own device is worth showing.
        locations[storage.data_ptr()] = str(location)
        return storage

    stand_ins = torch_placeholders.placeholders(torch_placeholders.unsafe_globals(path, fmt))
    try:
        with warnings.catch_warnings(), torch_placeholders.allowing(stand_ins):
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location=remember_location, weights_only=True, mmap=(fmt == "torch"))
    except pickle.UnpicklingError as exc:
        raise InputError(_weights_only_refusal(path, str(exc))) from None
    except RuntimeError as exc:
        text = str(exc)
        if "zip archive" in text or "central directory" in text:
            raise InputError(f"{path}: a PyTorch zip file that is truncated or damaged") from None
        raise InputError(f"{path}: cannot load this PyTorch file ({reason(exc)})") from None
    except (EOFError, ValueError, KeyError, IndexError, TypeError, AttributeError, OSError) as exc:
        raise InputError(f"{path}: a PyTorch file that is truncated or damaged ({reason(exc)})") from None

    if isinstance(obj, torch_placeholders.RefusedGlobal):
        # Nothing else in the file to list: the whole file is this one refused object.
        raise InputError(f"{path}: refused: {_would_import(obj)}")
    items: dict[str, Item | ValueItem] = {}
    _flatten(obj, "", items, locations, depth=0, seen=set())
    if not items:
        raise InputError(f"{path}: holds an empty {type(obj).__name__}, no tensors")
    return TensorFile(path, fmt, items, sep=".")


def _weights_only_refusal(path: str, text: str) -> str:
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:
        return (f"{path}: refused: its pickle would call {found.group(1)}, which can run code; "
                "ptm loads PyTorch files with weights_only=True and did not run it")
    detail = re.search(r"(Unsupported[^\n]*|WeightsUnpickler error:[^\n]*)", text)
    why = f" ({detail.group(1).strip()})" if detail else ""
    return (f"{path}: refused: its pickle holds something weights_only=True does not allow{why}; "
            "ptm loads only tensors and plain containers")


def _would_import(obj) -> str:
    return (f"its pickle would import {obj.imports}, which can run code; "
            "ptm loads PyTorch files with weights_only=True and did not import or run it")


def _flatten(obj, prefix: str, out: dict, locations: dict, depth: int, seen: set) -> None:
    import torch

    if depth > MAX_NESTING:
        raise InputError(f"{prefix}: nested more than {MAX_NESTING} levels deep")
    if isinstance(obj, torch.Tensor):
        out[prefix] = torch_item(prefix, obj, locations)
        return
    if isinstance(obj, torch_placeholders.RefusedGlobal):
        why = f"refused: {_would_import(obj)}"
        out[prefix] = Item(prefix, shape=(), dtype="object", element_size=0, unreadable=why)
        return
    if isinstance(obj, dict) or isinstance(obj, (list, tuple)) and not isinstance(obj, torch.Size):
        if id(obj) in seen:
            out[prefix] = ValueItem(prefix, "<cycle>")
            return
        seen = seen | {id(obj)}
        pairs = obj.items() if isinstance(obj, dict) else enumerate(obj)
        empty = True
        for key, value in pairs:
            empty = False
            name = f"{prefix}.{key}" if prefix else str(key)
            _flatten(value, name, out, locations, depth + 1, seen)
        if empty and prefix:
            out[prefix] = ValueItem(prefix, obj)
        return
    out[prefix] = ValueItem(prefix, obj)


def torch_item(name: str, tensor, locations: dict) -> Item:
    """One loaded tensor as an Item: its view of the storage exactly as saved."""
    storage = tensor.untyped_storage()
    ptr = storage.data_ptr()
    nbytes = storage.nbytes()
    names = getattr(tensor, "names", None)  # named tensors were removed from recent PyTorch
    if names is not None and all(n is None for n in names):
        names = None
    return Item(
        name,
        shape=tuple(tensor.shape),
        dtype=torch_dtype_name(tensor.dtype),
        element_size=tensor.element_size(),
        stride=tensor.stride(),
        storage_offset=tensor.storage_offset(),
        storage_size=nbytes // max(tensor.element_size(), 1),
        torch_dtype=tensor.dtype,
        names=names,
        requires_grad=bool(tensor.requires_grad),
        device=locations.get(ptr, str(tensor.device)),
        storage_id=("torch", ptr) if nbytes else None,
        storage_span=(0, nbytes),
        data=tensor,
    )
