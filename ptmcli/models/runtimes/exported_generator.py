"""Generators that run an exported copy in ONNX Runtime or OpenVINO, without torch.

The pixels (pixels/translate.py), the memory budget and the one-at-a-time retry are the torch
generator's own (models/generator.py): only the forward pass differs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ptmcli.models.generator import DEFAULT_PIXEL_BUDGET, GeneratorBackend
from ptmcli.models.runtimes import OPENVINO_HINTS
from ptmcli.models.runtimes.generator_build import PICTURES, PIXELS

if TYPE_CHECKING:
    import numpy as np

    from ptmcli.models.runtimes.exports import Export
    from ptmcli.models.spec import ModelSpec

class ExportedGenerator(GeneratorBackend):
    runtime = ""
    device = "cpu"

    def __init__(self, spec: "ModelSpec", export: "Export", short_side: int = 256,
                 pixel_budget: int = DEFAULT_PIXEL_BUDGET):
        super().__init__(short_side, pixel_budget, spec.preprocess)
        self.spec = spec
        self.export = export
        self.precision = export.key.precision
        # The torch measurement (14 bytes per pixel per base channel); the runtimes' peaks are
        # of the same order, as their feature maps are the same.
        self.bytes_per_pixel = 14 * int(export.record.get("generator_ngf") or 64)
        self._open(export)

    def _open(self, export: "Export") -> None:
        raise NotImplementedError


class OnnxRuntimeGenerator(ExportedGenerator):
    runtime = "onnxruntime"

    def _open(self, export: "Export") -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only: its warnings are about graph details, not the user's input
        self.session = onnxruntime.InferenceSession(str(export.file("model.onnx")), options,
                                                    providers=["CPUExecutionProvider"])

    def _run(self, batch: "np.ndarray") -> "np.ndarray":
        return self.session.run([PICTURES], {PIXELS: batch})[0]


class OpenVinoGenerator(ExportedGenerator):
    runtime = "openvino"

    def _open(self, export: "Export") -> None:
        import openvino

        core = openvino.Core()
        model = core.read_model(str(export.file("model.xml")))
        self.compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": OPENVINO_HINTS[self.precision],
                                                          "PERFORMANCE_HINT": "LATENCY"})
        self.request = self.compiled.create_infer_request()
        self._output = self.compiled.output(PICTURES)

    def _run(self, batch: "np.ndarray") -> "np.ndarray":
        import numpy as np

        # One picture per inference: OpenVINO's CPU kernels for a batch of N give other bits than
        # for N = 1 (a test checks), and a 256-pixel picture fills the CPU on its own anyway. The
        # request reuses its output memory on the next call: copy what the sinks keep.
        return np.concatenate([np.array(self.request.infer({PIXELS: batch[i:i + 1]})[self._output],
                                        dtype=np.float32, copy=True) for i in range(len(batch))])


GENERATORS = {"onnxruntime": OnnxRuntimeGenerator, "openvino": OpenVinoGenerator}
