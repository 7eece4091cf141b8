"""ImageNet classification: load a model once, classify batches, hand back plain results."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

from ptmcli.errors import WeightsInvalid
from ptmcli.models.checkpoints import build_with_weights
from ptmcli.models.heads import head_module
from ptmcli.models.registry import ModelSpec
from ptmcli.pipeline.batching import prefetch_batches
from ptmcli.pipeline.images import open_image
from ptmcli.pipeline.inputs import InputItem
from ptmcli.pipeline.preprocess import resize_and_crop, to_batch
from ptmcli.results import BatchOutput, Classification, Prediction

if TYPE_CHECKING:
    import numpy as np
    import torch


class Classifier:
    """One model, loaded once, on one device, at one precision."""

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
        # JPEG draft decoding skips detail the resize would discard anyway; top-1 agrees with
        # full decoding on the test photos (benchmarks/README.md), and decode is much cheaper.
        self.min_decode_side = spec.preprocess.resize if fast_decode else None
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
        self.fixed_batch: int | None = None
        if compile:
            self.model = compile_frozen(self.model)

    def use_fixed_batch(self, size: int) -> None:
        """Pad every batch to `size`: a compiled model then never recompiles for a short last batch,
        and each row's numbers do not depend on how many images shared its batch."""
        self.fixed_batch = size

    @property
    def decode_workers(self) -> int:
        import os

        # On a CPU the model needs every core; with a GPU, decoding is the bottleneck.
        return 1 if self.device.type == "cpu" else max(1, min(8, (os.cpu_count() or 2) - 1))

    def prepare(self, path: str) -> "np.ndarray":
        """Decode and crop one file; runs in the decode thread."""
        image = open_image(path, min_short_side=self.min_decode_side)
        return resize_and_crop(image, self.spec.preprocess)

    def predict(self, arrays: list["np.ndarray"], top: int) -> list[tuple[Prediction, ...]]:
        return self.predict_outputs(arrays, top, pad_to=self.fixed_batch)[0]

    def classify(self, items: Iterable[InputItem], top: int, batch_size: int) -> Iterator[list[Classification]]:
        """Results batch by batch, in input order; failed inputs carry their error."""
        for output in self.classify_outputs(items, top, batch_size, pad_to=self.fixed_batch):
            yield output.results

    # --- batch jobs (issue 6): full probabilities, embeddings, shape-stable batches ------------

    @property
    def feature_dim(self) -> int:
        """Width of the embedding the final classifier layer reads (2048 for ResNet101)."""
        return head_module(self.model, self.spec).in_features

    def predict_outputs(
        self,
        arrays: list["np.ndarray"],
        top: int,
        pad_to: int | None = None,
        probabilities: bool = False,
        features: bool = False,
    ) -> tuple[list[tuple[Prediction, ...]], "np.ndarray | None", "np.ndarray | None"]:
        """Top-k per array and, when asked, all probabilities and the embeddings (float32 NumPy).

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
            hook = head_module(self.model, self.spec).register_forward_pre_hook(
                lambda _module, inputs: captured.append(inputs[0])
            )
        try:
            batch = to_batch(arrays, self.spec.preprocess, self.device, self.dtype)
            with torch.inference_mode():
                logits = self.model(batch)[:count]
                probs = logits.float().softmax(dim=1)
                values, indices = probs.topk(min(top, probs.shape[1]), dim=1)
                embedding = captured[-1][:count].float().flatten(1).cpu().numpy() if features else None
        finally:
            if hook is not None:
                hook.remove()
        values, indices = values.cpu().tolist(), indices.cpu().tolist()
        predictions = [
            tuple(
                Prediction(rank=r + 1, index=i, label=self.categories[i], probability=p)
                for r, (p, i) in enumerate(zip(row_p, row_i))
            )
            for row_p, row_i in zip(values, indices)
        ]
        return predictions, (probs.cpu().numpy() if probabilities else None), embedding

    def classify_outputs(
        self,
        items: Iterable[InputItem],
        top: int,
        batch_size: int,
        probabilities: bool = False,
        features: bool = False,
        pad_to: int | None = None,
    ) -> Iterator[BatchOutput]:
        """Results batch by batch with the probabilities and embeddings asked for (NaN rows for
        failed inputs); `pad_to` as in `predict_outputs`."""
        for batch in prefetch_batches(items, self.prepare, batch_size, workers=self.decode_workers):
            yield self._batch_output(batch, top, pad_to, probabilities, features)

    def _batch_output(self, batch, top, pad_to, probabilities, features) -> BatchOutput:
        import numpy as np

        good = [loaded.value for loaded in batch if loaded.error is None]
        predictions, probs, embedding = (
            self.predict_outputs(good, top, pad_to, probabilities, features) if good else ([], None, None)
        )
        rows_ok = np.array([loaded.error is None for loaded in batch], dtype=bool)

        def spread(values, width):
            if values is None and not good:
                values = np.zeros((0, width), dtype=np.float32)
            full = np.full((len(batch), width), np.nan, dtype=np.float32)
            full[rows_ok] = values
            return full

        predicted = iter(predictions)
        return BatchOutput(
            results=[
                Classification(loaded.item.path, error=loaded.error)
                if loaded.error
                else Classification(loaded.item.path, next(predicted))
                for loaded in batch
            ],
            probabilities=spread(probs, len(self.categories)) if probabilities else None,
            features=spread(embedding, self.feature_dim) if features else None,
        )


def compile_frozen(model: "torch.nn.Module") -> "torch.nn.Module":
    """torch.compile with Inductor's freezing: weights become constants, folded and pre-packed.

    Without freezing, compiling gives far less on CPU (weights stay runtime inputs, so oneDNN
    cannot pre-pack them). The first batch pays the compile (15-25 s on 2 cores).
    """
    import torch
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True
    return torch.compile(model, dynamic=False)

