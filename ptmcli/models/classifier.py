"""ImageNet classification with PyTorch: load a model once, turn batches of crops into probabilities."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ptmcli.errors import WeightsInvalid
from ptmcli.models.checkpoints import build_with_weights
from ptmcli.models.device import decode_workers, fp32_stays_fp32
from ptmcli.models.heads import head_module
from ptmcli.models.spec import ModelSpec
from ptmcli.pixels.crop import load_for_model
from ptmcli.pixels.recipes import Preprocess

if TYPE_CHECKING:
    import numpy as np
    import torch


class Classifier:
    """One torch model, loaded once, on one device, at one precision: uint8 crops -> probabilities."""

    def __init__(
        self,
        spec: ModelSpec,
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
        if self.dtype == torch.float32:
            fp32_stays_fp32(device)  # before the model is built: cuDNN picks its kernels then
        model = build_with_weights(spec, weights_path)
        out_features = head_module(model, spec).out_features if spec.head else None
        if out_features is not None and out_features != len(self.categories):
            raise WeightsInvalid(
                f"{spec.name} from {weights_path} has {out_features} outputs, "
                f"but its class list has {len(self.categories)}",
                ["use ImageNet weights (1000 classes)"],
            )
        # Weights are cast, not autocast: half-size weights halve memory traffic, and oneDNN's
        # bf16 kernels want both operands in bf16. channels_last suits oneDNN and cuDNN alike.
        self.model = model.to(device=device, dtype=self.dtype, memory_format=torch.channels_last)
        self._network = self.model  # what `head` names, also once compiled
        if compile:
            self.model = compile_frozen(self.model)

    @property
    def decode_workers(self) -> int:
        return decode_workers(str(self.device))

    def prepare(self, path: str) -> "np.ndarray":
        """Decode and crop one file; runs in the decode thread."""
        return load_for_model(path, self.spec.preprocess, exact_decode=self.exact_decode)

    @property
    def feature_dim(self) -> int:
        """Width of the embedding the final classifier layer reads (2048 for ResNet101)."""
        return head_module(self._network, self.spec).in_features

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
            hook = head_module(self._network, self.spec).register_forward_pre_hook(
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


def to_batch(
    arrays: list["np.ndarray"],
    spec: Preprocess,
    device: "torch.device",
    dtype: "torch.dtype",
) -> "torch.Tensor":
    """uint8 HWC arrays -> normalised NCHW batch in channels_last memory order on `device`
    (`pixels.crop.normalised_batch` in torch: the same operations in the same order)."""
    import numpy as np
    import torch

    batch = torch.from_numpy(np.stack(arrays))
    if device.type == "cuda":
        batch = batch.pin_memory().to(device, non_blocking=True)
    # NHWC storage viewed as NCHW is exactly channels_last: no copy, and convolutions prefer it.
    batch = batch.permute(0, 3, 1, 2).float().div_(255)
    mean = torch.tensor(spec.mean, device=batch.device).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, device=batch.device).view(1, 3, 1, 1)
    return batch.sub_(mean).div_(std).to(dtype)


def compile_frozen(model: "torch.nn.Module", dynamic: bool = False) -> "torch.nn.Module":
    """torch.compile with Inductor's freezing: weights become constants, folded and pre-packed.

    Without freezing, compiling gives far less on CPU (weights stay runtime inputs, so oneDNN
    cannot pre-pack them). The first batch pays the compile (15-25 s on 2 cores). `dynamic`:
    inputs of many sizes (a generator's pictures) get one graph for all sizes, not one per size.
    """
    import torch
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True
    return torch.compile(model, dynamic=dynamic)

