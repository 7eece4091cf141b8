"""Classifiers that run an exported copy of the model in ONNX Runtime or OpenVINO, without torch.

Decoding and cropping are the torch path's own (`load_for_model`, the same pixels), and the batch
is normalised in NumPy with the same operations as `to_batch`, so the network sees the same input
bits; only the runtime's kernels differ. Every forward pass is padded to the run's fixed size, as
with torch, so a row's numbers do not depend on its batch-mates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ptmcli.errors import UsageProblem
from ptmcli.models.device import decode_workers
from ptmcli.models.runtimes import OPENVINO_HINTS
from ptmcli.pixels.crop import load_for_model, normalised_batch

if TYPE_CHECKING:
    import numpy as np

    from ptmcli.models.runtimes.exports import Export
    from ptmcli.models.spec import ModelSpec

INPUT = "pixels"
PROBABILITIES = "probabilities"
FEATURES = "features"


class ExportedClassifier:
    runtime = ""
    device = "cpu"

    def __init__(self, spec: "ModelSpec", export: "Export", exact_decode: bool = False):
        self.spec = spec
        self.export = export
        self.categories = spec.categories()
        self.exact_decode = exact_decode
        self.precision = export.key.precision

    @property
    def decode_workers(self) -> int:
        return decode_workers(self.device)

    @property
    def feature_dim(self) -> int:
        width = self.export.record.get("feature_dim")
        if not width:
            raise UsageProblem(
                f"{self.spec.name} has no Linear classifier layer whose input is an embedding",
                ["--save-features needs a model whose classifier is a Linear layer (resnet*, efficientnet*, ...)"],
            )
        return int(width)

    def prepare(self, path: str) -> "np.ndarray":
        """Decode and crop one file; runs in the decode thread."""
        return load_for_model(path, self.spec.preprocess, exact_decode=self.exact_decode)

    def forward(self, arrays: list["np.ndarray"], top: int, pad_to: int | None = None,
                features: bool = False) -> tuple["np.ndarray", "np.ndarray", "np.ndarray | None"]:
        count = len(arrays)
        if features:
            self.feature_dim  # noqa: B018 - refuses a model without an embedding output
        probs, embedding = self._run(normalised_batch(arrays, self.spec.preprocess, pad_to), features)
        probs = probs[:count]
        return probs, top_indices(probs, top), (embedding[:count] if features else None)

    def _run(self, batch: "np.ndarray", features: bool) -> tuple["np.ndarray", "np.ndarray | None"]:
        raise NotImplementedError


def top_indices(probs: "np.ndarray", top: int) -> "np.ndarray":
    """Best `top` classes per row, most probable first (ties: the lower class index first), for
    runtimes without a top-k of their own."""
    import numpy as np

    return np.argsort(-probs, axis=1, kind="stable")[:, :min(top, probs.shape[1])]


class OnnxRuntimeClassifier(ExportedClassifier):
    runtime = "onnxruntime"

    def __init__(self, spec: "ModelSpec", export: "Export", exact_decode: bool = False):
        super().__init__(spec, export, exact_decode)
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only: its warnings are about graph details, not the user's input
        self.session = onnxruntime.InferenceSession(str(export.file("model.onnx")), options,
                                                    providers=["CPUExecutionProvider"])

    def _run(self, batch, features):
        names = [PROBABILITIES, FEATURES] if features else [PROBABILITIES]
        outputs = self.session.run(names, {INPUT: batch})
        return outputs[0], (outputs[1] if features else None)


class OpenVinoClassifier(ExportedClassifier):
    runtime = "openvino"

    def __init__(self, spec: "ModelSpec", export: "Export", exact_decode: bool = False, model_file: str = "model.xml"):
        super().__init__(spec, export, exact_decode)
        import openvino

        core = openvino.Core()
        model = core.read_model(str(export.file(model_file)))
        # LATENCY: one stream over every core, for one batch at a time, which is how ptm feeds it.
        self.compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": OPENVINO_HINTS[self.precision],
                                                          "PERFORMANCE_HINT": "LATENCY"})
        self.request = self.compiled.create_infer_request()
        self._outputs = {output.get_any_name(): output for output in self.compiled.outputs}

    def _run(self, batch, features):
        import numpy as np

        result = self.request.infer({INPUT: batch})
        # The request reuses its output memory on the next call: copy what the sinks keep.
        probs = np.array(result[self._outputs[PROBABILITIES]], dtype=np.float32, copy=True)
        embedding = np.array(result[self._outputs[FEATURES]], dtype=np.float32, copy=True) if features else None
        return probs, embedding


BACKENDS = {"onnxruntime": OnnxRuntimeClassifier, "openvino": OpenVinoClassifier}
