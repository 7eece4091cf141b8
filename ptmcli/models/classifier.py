"""ImageNet classification with PyTorch: load a model once, turn batches of crops into probabilities."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from ptmcli.errors import UsageProblem, WeightsInvalid
from ptmcli.models.registry import ClassifierSpec
from ptmcli.models.weights import check_keys, load_state_dict
from ptmcli.pipeline.preprocess import load_for_model, to_batch

if TYPE_CHECKING:
    import numpy as np
    import torch


@contextmanager
def _parameters_on_meta():
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


def build_with_weights(spec: ClassifierSpec, weights_path: Path) -> "torch.nn.Module":
    """Build `spec`'s network and load a state dict into it, strictly.

    The network is built on the meta device and the weights are memory-mapped and assigned, so no
    time goes into random initialisation that the checkpoint would overwrite anyway.
    """
    import torch

    state = load_state_dict(weights_path)
    if spec.fix_state_dict is not None:
        state = spec.fix_state_dict(state)
    try:
        with torch.device("meta"):
            model = spec.build()
    except Exception:  # noqa: BLE001 - RegNet computes its widths with tensors, which meta refuses
        with _parameters_on_meta():
            model = spec.build()
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


class Classifier:
    """One torch model, loaded once, on one device, at one precision: uint8 crops -> probabilities."""

    def __init__(
        self,
        spec: ClassifierSpec,
        weights_path: Path,
        device: "torch.device",
        dtype: "torch.dtype | None" = None,
        compile: bool = False,
        fast_decode: bool = True,
    ):
        import torch

        self.spec = spec
        self.device = device
        self.dtype = dtype or torch.float32
        self.categories = spec.categories()
        self.exact_decode = not fast_decode
        model = build_with_weights(spec, weights_path)
        out_features = _num_outputs(model)
        if out_features is not None and out_features != len(self.categories):
            raise WeightsInvalid(
                f"{spec.name} from {weights_path} has {out_features} outputs, "
                f"but its class list has {len(self.categories)}",
                ["use ImageNet weights (1000 classes)"],
            )
        # Weights are cast, not autocast: half-size weights halve memory traffic, and oneDNN's
        # bf16 kernels want both operands in bf16. channels_last suits oneDNN and cuDNN alike.
        self.model = model.to(device=device, dtype=self.dtype, memory_format=torch.channels_last)
        if compile:
            self.model = compile_frozen(self.model)

    @property
    def decode_workers(self) -> int:
        import os

        # On a CPU the model needs every core; with a GPU, decoding is the bottleneck.
        return 1 if self.device.type == "cpu" else max(1, min(8, (os.cpu_count() or 2) - 1))

    def prepare(self, path: str) -> "np.ndarray":
        """Decode and crop one file; runs in the decode thread."""
        return load_for_model(path, self.spec.preprocess, exact_decode=self.exact_decode)

    @property
    def feature_dim(self) -> int:
        """Width of the embedding the final classifier layer reads (2048 for ResNet101)."""
        return self._classifier_layer().in_features

    def _classifier_layer(self):
        layer = _classifier_layer(self.model, len(self.categories))
        if layer is None:
            raise UsageProblem(
                f"--save-features: {self.spec.name} has no final Linear layer whose input is the embedding",
                ["use a model whose classifier is a Linear layer (resnet*, efficientnet*, vit_*, ...)"],
            )
        return layer

    def forward(
        self, arrays: list["np.ndarray"], top: int, pad_to: int | None = None, features: bool = False
    ) -> tuple["np.ndarray", "np.ndarray", "np.ndarray | None"]:
        """Probabilities of every class (float32 [n, classes]), the indices of the `top` best
        (torch.topk's order, ties included) and, when asked, the embeddings.

        With `pad_to`, the batch is padded with black images to that many rows: kernels pick
        their algorithm by batch size, so a fixed size makes every row's numbers independent of
        which images shared its batch (resumed, sharded and Ray runs then agree bit for bit).
        """
        import numpy as np
        import torch

        count = len(arrays)
        if pad_to is not None and count < pad_to:
            arrays = list(arrays) + [np.zeros_like(arrays[0])] * (pad_to - count)
        captured: list = []
        hook = None
        if features:
            hook = self._classifier_layer().register_forward_pre_hook(
                lambda _module, inputs: captured.append(inputs[0])
            )
        try:
            batch = to_batch(arrays, self.spec.preprocess, self.device, self.dtype)
            with torch.inference_mode():
                logits = self.model(batch)[:count]
                probs = logits.float().softmax(dim=1)
                best = probs.topk(min(top, probs.shape[1]), dim=1).indices
                embedding = captured[-1][:count].float().flatten(1).cpu().numpy() if features else None
        finally:
            if hook is not None:
                hook.remove()
        return probs.cpu().numpy(), best.cpu().numpy(), embedding


def _num_outputs(model) -> int | None:
    last = None
    for module in model.modules():
        if hasattr(module, "out_features"):
            last = module.out_features
    return last


def compile_frozen(model: "torch.nn.Module") -> "torch.nn.Module":
    """torch.compile with Inductor's freezing: weights become constants, folded and pre-packed.

    Without freezing, compiling gives far less on CPU (weights stay runtime inputs, so oneDNN
    cannot pre-pack them). The first batch pays the compile (15-25 s on 2 cores).
    """
    import torch
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True
    return torch.compile(model, dynamic=False)


def _classifier_layer(model, num_classes: int):
    """The last Linear layer with one output per class: its input is the embedding."""
    from torch import nn

    last = None
    for module in model.modules():
        if isinstance(module, nn.Linear) and module.out_features == num_classes:
            last = module
    return last


def feature_dim_without_weights(spec: ClassifierSpec, num_classes: int) -> int:
    """The embedding width, from the architecture alone (built on the meta device: no memory)."""
    import torch

    with torch.device("meta"):
        model = spec.build()
    layer = _classifier_layer(model, num_classes)
    if layer is None:
        raise UsageProblem(f"--save-features: {spec.name} has no final Linear layer whose input is the embedding")
    return layer.in_features
