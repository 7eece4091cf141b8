"""Safe loading of state dicts into networks: torch.load(weights_only=True), keys checked by
name, networks built on the meta device so no time goes into initialising weights a checkpoint
replaces."""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ptmcli.errors import WeightsInvalid

if TYPE_CHECKING:
    import torch

    from ptmcli.models.spec import ModelSpec


def load_state_dict(path: Path) -> dict[str, "torch.Tensor"]:
    """torch.load with weights_only=True, memory-mapped where the format allows."""
    import pickle

    import torch

    kwargs = {"map_location": "cpu", "weights_only": True}
    try:
        with warnings.catch_warnings():
            # e.g. "Detected pickle protocol 4": noise about a file that is refused anyway.
            warnings.simplefilter("ignore", UserWarning)
            try:
                state = torch.load(path, mmap=True, **kwargs)
            except RuntimeError as exc:
                if "mmap" not in str(exc) and "zip" not in str(exc):
                    raise
                state = torch.load(path, **kwargs)  # legacy (pre-1.6) format cannot be mapped
    except pickle.UnpicklingError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        # torch names the first thing it would not build ("Unsupported global: GLOBAL posix.system").
        named = next((line for line in lines if "GLOBAL" in line or "global" in line), None)
        if named is None:
            # A bare pickle (not torch.save's format) stops torch at its first opcode; read what
            # it would import without running it.
            from ptmcli.models.pickles import pickle_imports

            imports = pickle_imports(path)
            named = f"unpickling it would import {', '.join(imports)}" if imports else None
        if named is None:
            detail = next((line for line in lines if line.startswith("Unsupported")), "not a pickle ptm can read")
            raise WeightsInvalid(
                f"weights file {path} is not a readable PyTorch file ({detail[:160]})",
                ["delete it and download it again, or pass another file with --weights"],
            ) from None
        raise WeightsInvalid(
            f"weights file {path} was refused: it holds more than tensors ({named[:160]})",
            ["ptm loads only plain state dicts (torch.load weights_only=True); "
             "re-save the file with torch.save(model.state_dict(), path)"],
        ) from None
    except Exception as exc:  # noqa: BLE001 - the --weights reader boundary: any damage is one line
        # A text or random file dies inside the unpickler with KeyError/IndexError (an unknown
        # opcode); a damaged zip inside torch.load with RuntimeError, AssertionError, ...
        reason = (str(exc).splitlines() or [""])[0][:160]
        if isinstance(exc, (KeyError, IndexError)):
            reason = f"{type(exc).__name__} {reason} while unpickling"
        elif not isinstance(exc, (RuntimeError, OSError, ValueError, EOFError)) or not reason:
            reason = f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__
        raise WeightsInvalid(
            f"weights file {path} is not a readable PyTorch file ({reason})",
            ["delete it and download it again, or pass another file with --weights"],
        ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]  # training checkpoints wrap the weights
    if not isinstance(state, dict) or not all(hasattr(v, "shape") for v in state.values()):
        raise WeightsInvalid(
            f"weights file {path} does not hold a state dict (name -> tensor)",
            ["save it with torch.save(model.state_dict(), path)"],
        )
    return state


def check_keys(
    model: "torch.nn.Module", state: dict, path: Path, model_name: str, hints: list[str] | None = None
) -> None:
    """Refuse a state dict of another layout, naming the keys that do not fit."""
    expected = model.state_dict()
    # Checkpoints from before PyTorch 0.4.1 have no BatchNorm step counters; BatchNorm's own loader
    # fills them in (torchvision's older ImageNet files, DenseNet's among them, are like that).
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [
        f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    if not (missing or unexpected or wrong_shape):
        return

    def some(keys: list[str]) -> str:
        shown = ", ".join(keys[:4])
        return shown + (f" (+{len(keys) - 4} more)" if len(keys) > 4 else "")

    parts = []
    if missing:
        parts.append(f"{len(missing)} missing: {some(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected: {some(unexpected)}")
    if wrong_shape:
        parts.append(f"{len(wrong_shape)} of another shape: {some(wrong_shape)}")
    raise WeightsInvalid(
        f"weights file {path} does not fit {model_name}: " + "; ".join(parts),
        hints or ["pass the weights of this model, or pick the model they belong to with --model"],
    )


@contextmanager
def parameters_on_meta():
    """Only parameters and buffers go to the meta device, as each module registers them.

    For builders that compute with tensors (RegNet's layer widths): those stay real, while the
    weights, which the checkpoint replaces anyway, are never allocated or initialised.
    """
    from torch import nn

    register_parameter, register_buffer = nn.Module.register_parameter, nn.Module.register_buffer

    def parameter_on_meta(self, name, param):
        if param is not None:
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        register_parameter(self, name, param)

    def buffer_on_meta(self, name, tensor, persistent=True):
        register_buffer(self, name, tensor.to("meta") if tensor is not None else None, persistent)

    nn.Module.register_parameter, nn.Module.register_buffer = parameter_on_meta, buffer_on_meta
    try:
        yield
    finally:
        nn.Module.register_parameter, nn.Module.register_buffer = register_parameter, register_buffer


def build_on_meta(build: Callable[[], "torch.nn.Module"]) -> "torch.nn.Module":
    """The network `build` makes, its parameters and buffers on the meta device (no memory)."""
    import torch

    try:
        with torch.device("meta"):
            return build()
    except Exception:  # noqa: BLE001 - RegNet computes its widths with tensors, which meta refuses
        with parameters_on_meta():
            return build()


def build_with_weights(spec: "ModelSpec", weights_path: Path) -> "torch.nn.Module":
    """Build `spec`'s network and load a state dict into it, strictly.

    The network is built on the meta device and the weights are memory-mapped and assigned, so no
    time goes into random initialisation that the checkpoint would overwrite anyway.
    """
    state = load_state_dict(weights_path)
    if spec.fix_state_dict is not None:
        state = spec.fix_state_dict(state)
    model = build_on_meta(spec.build)
    check_keys(model, state, weights_path, spec.name)
    model.load_state_dict(state, strict=True, assign=True)
    if any(t.is_meta for t in (*model.parameters(), *model.buffers())):
        # A buffer the checkpoint does not carry (non-persistent) stayed on meta: build for real.
        real = spec.build()
        real.load_state_dict(state, strict=True)
        model = real
    if spec.after_load is not None:
        spec.after_load(model)
    return model.eval()
