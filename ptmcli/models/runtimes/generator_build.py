"""Exporting a generator (CycleGAN's ResNet generator) for ONNX Runtime and OpenVINO: one ONNX
graph with dynamic batch, height and width (sides multiples of 4, as the network needs), so one
export serves every picture size; and its int8 gate.

int8 must keep the picture: on each shipped calibration photo (ptmcli/data/calibration/, short
side 256) the int8 model's output must be within `MIN_INT8_PSNR` dB PSNR of the fp32 model's
(8-bit pictures, peak 255). 30 dB is where 8-bit differences stop being visible side by side in
photos; below it int8 is refused with the numbers.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from ptmcli.models.runtimes.exports import ExportFailed

if TYPE_CHECKING:
    import numpy as np

    from ptmcli.models.spec import ModelSpec

PIXELS = "pixels"
PICTURES = "pictures"
MIN_INT8_PSNR = 30.0
# The largest side the exported graph accepts, in units of the side multiple (4): 32,768 pixels.
_MAX_QUARTER_SIDE = 8192


def export_generator_onnx(spec: "ModelSpec", weights_path: Path) -> tuple[Path, dict]:
    """(an fp32 ONNX file of the generator in `weights_path`, extra record fields)."""
    import torch

    from ptmcli.models.cyclegan import load_generator

    model = load_generator(weights_path, f"the {spec.name} generator")
    multiple = spec.preprocess.side_multiple
    quarter = max(2, spec.preprocess.min_side // multiple)
    height = torch.export.Dim("height", min=quarter, max=_MAX_QUARTER_SIDE)
    width = torch.export.Dim("width", min=quarter, max=_MAX_QUARTER_SIDE)
    batch = torch.export.Dim("batch", min=1, max=1024)
    folder = Path(tempfile.mkdtemp(prefix="ptm-onnx-"))
    path = folder / "model.onnx"
    example = torch.zeros(1, 3, 16 * multiple, 16 * multiple)
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings(), \
            contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(model, (example,), str(path), dynamo=True, external_data=False,
                              input_names=[PIXELS], output_names=[PICTURES],
                              dynamic_shapes=({0: batch, 2: multiple * height, 3: multiple * width},))
        except Exception as exc:  # noqa: BLE001 - any exporter failure means: this model needs torch
            shutil.rmtree(folder, ignore_errors=True)
            raise ExportFailed(f"{spec.name} could not be exported to ONNX ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0][:200] if str(exc) else ''})",
                               ["use --runtime torch for this model"]) from None
    return path, {"generator_ngf": int(model.model[1].out_channels),
                  "input": [PIXELS, 3, f"height (multiple of {multiple})", f"width (multiple of {multiple})"]}


def calibration_inputs(spec: "ModelSpec") -> list["np.ndarray"]:
    """Each shipped calibration photo as the generator's input: short side 256, padded, scaled."""
    from ptmcli.models.runtimes.int8 import calibration_photos
    from ptmcli.pixels.translate import generator_input, prepare_image

    return [generator_input([prepare_image(str(path), 256).rgb], spec.preprocess) for path in calibration_photos()]


def psnr(a: "np.ndarray", b: "np.ndarray") -> float:
    """PSNR in dB of two uint8 pictures (infinite when equal)."""
    import numpy as np

    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def quantize_generator(model, spec: "ModelSpec"):
    """NNCF post-training quantisation of an OpenVINO generator, calibrated on the shipped photos;
    (quantised model, record fields). Raises Int8Inaccurate where a picture falls below
    MIN_INT8_PSNR against fp32."""
    import logging

    import openvino

    from ptmcli.models.runtimes.int8 import Int8Inaccurate, _quiet, import_nncf
    from ptmcli.pixels.translate import generator_output

    nncf = import_nncf()
    inputs = calibration_inputs(spec)
    nncf.set_log_level(logging.ERROR)
    with _quiet():
        quantized = nncf.quantize(model, nncf.Dataset(inputs), subset_size=len(inputs))
    core = openvino.Core()

    def pictures(candidate) -> list:
        compiled = core.compile_model(candidate, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        out = compiled.output(PICTURES)
        return [generator_output(compiled(x)[out], x.shape[2], x.shape[3], spec.preprocess)[0] for x in inputs]

    scores = [psnr(a, b) for a, b in zip(pictures(model), pictures(quantized))]
    worst = min(scores)
    if worst < MIN_INT8_PSNR:
        raise Int8Inaccurate(
            f"int8 changes the pictures of {spec.name}: PSNR against fp32 "
            f"{', '.join(f'{s:.1f}' for s in scores)} dB on the {len(scores)} calibration photos "
            f"(ptm requires at least {MIN_INT8_PSNR:.0f} dB on each)",
            ["use --precision fp32 (the default) or bf16 for this model"])
    return quantized, {"method": "NNCF post-training quantisation", "calibration_images": len(inputs),
                       "psnr_db_on_calibration_photos": [round(s, 2) for s in scores]}
