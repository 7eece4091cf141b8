"""`--precision int8`: post-training static quantisation, calibrated on photos that ship with ptm.

OpenVINO's quantiser (NNCF) quantises the exported model, and ptm checks the result: its top-1
class must equal the fp32 model's on 98% of 100 views of the shipped photos. Plain post-training
quantisation is tried first; where it falls short, NNCF's accuracy control turns the layers that
change the class back to fp32, one at a time (bounded); where that falls short too, int8 is refused
for that model and weights file. The classifier layer and the softmax always stay fp32 (a uint8
probability has 256 values: top-5 lists would be ties). EfficientNet-Lite0, for example, needs
accuracy control: plainly quantised it kept the fp32 top-1 class on 55 of the 66 benchmark
photos, with accuracy control on 65 (benchmarks/README.md). ONNX Runtime's static quantiser has no
accuracy control, so ptm offers int8 through OpenVINO only.

Calibration needs real images whose activations span what users feed the network: crops, flips and
scales of the CC0 / public-domain photos in ptmcli/data/calibration/ (scikit-image's coffee,
chelsea, camera, rocket and astronaut; see the README there), preprocessed exactly as a run does.
Nothing is downloaded.

CPUs with 8-bit dot products (VNNI, AMX) multiply int8 x int8 into 32-bit sums. Without them an
AVX2 kernel adds pairs of products in 16 bits, which can saturate: there the weights are kept to
7 bits (ONNX Runtime's `reduce_range`, OpenVINO/NNCF's overflow fix), the settings both projects
give for such CPUs.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from ptmcli.models.runtimes.cpu import cpu_features
from ptmcli.models.runtimes.exported import PROBABILITIES
from ptmcli.models.runtimes.exports import ExportFailed

if TYPE_CHECKING:
    import numpy as np

    from ptmcli.models.spec import ModelSpec

CALIBRATION = Path(__file__).resolve().parents[2] / "data" / "calibration"
# Crops of each photo: (left, top, width, height) as fractions, and whether to mirror it.
_VIEWS = (
    (0.0, 0.0, 1.0, 1.0, False), (0.0, 0.0, 1.0, 1.0, True),
    (0.0, 0.0, 0.7, 0.7, False), (0.3, 0.0, 0.7, 0.7, True), (0.0, 0.3, 0.7, 0.7, True), (0.3, 0.3, 0.7, 0.7, False),
    (0.15, 0.15, 0.7, 0.7, False), (0.25, 0.25, 0.5, 0.5, True), (0.1, 0.2, 0.85, 0.6, False),
    (0.05, 0.05, 0.9, 0.9, True), (0.4, 0.1, 0.55, 0.8, False), (0.0, 0.45, 0.5, 0.55, True),
    (0.5, 0.5, 0.5, 0.5, False), (0.0, 0.5, 0.5, 0.5, True), (0.5, 0.0, 0.5, 0.5, False), (0.2, 0.0, 0.6, 1.0, True),
    (0.0, 0.2, 1.0, 0.6, False), (0.1, 0.1, 0.4, 0.4, True), (0.35, 0.35, 0.3, 0.3, False), (0.6, 0.2, 0.4, 0.6, True),
)


def calibration_photos() -> list[Path]:
    return sorted(CALIBRATION.glob("*.jpg"))


def calibration_batches(spec: "ModelSpec") -> list["np.ndarray"]:
    """One normalised [1, 3, crop, crop] array per view of each shipped photo (100 in all)."""
    from PIL import ImageOps

    from ptmcli.pixels.crop import normalised_batch, resize_and_crop
    from ptmcli.pixels.decode import open_image

    batches = []
    for path in calibration_photos():
        photo = open_image(str(path))
        width, height = photo.size
        for left, top, w, h, mirror in _VIEWS:
            view = photo.crop((int(left * width), int(top * height), int((left + w) * width),
                               int((top + h) * height)))
            if mirror:
                view = ImageOps.mirror(view)
            batches.append(normalised_batch([resize_and_crop(view.convert("RGB"), spec.preprocess)], spec.preprocess))
    if not batches:
        raise FileNotFoundError(f"no calibration photos in {CALIBRATION}")
    return batches


def _settings() -> dict:
    cpu = cpu_features()
    return {"calibration_images": len(calibration_photos()) * len(_VIEWS), "cpu_has_vnni": cpu.vnni,
            "overflow_safe": not cpu.vnni}


# What "accurate" means: the int8 model's top-1 class equals the fp32 model's on at least this
# share of the calibration views. Plain quantisation is tried first (seconds to a minute); accuracy
# control (minutes) only when it falls short.
REQUIRED_AGREEMENT = 0.98
# Accuracy control ranks every quantised layer by how much it hurts, on all the views (ranking on
# 25 of them chose worse layers: EfficientNet-Lite0 then kept fp32's top-1 class on 64 of the 66
# benchmark photos instead of 65), then turns the worst back to fp32 one at a time, at most this
# many: a model that int8 does not suit is refused in minutes, not after hours of reverting.
_MAX_REVERTED_LAYERS = 24
# Below this share, plainly quantised, recovery would mean reverting most layers, and ranking them
# is slow for big models (ResNet101 with random weights, which plainly kept 80%, had not finished
# after 20 minutes on 2 busy cores): refused at once. EfficientNet-Lite0 plainly keeps 91%.
_WORTH_RESTORING = 0.85


class Int8Inaccurate(ExportFailed):
    """The quantised model changes too many top-1 classes of the fp32 model: int8 is refused."""


def import_nncf():
    """NNCF, OpenVINO's quantiser, or the refusal that says how to install it."""
    try:
        import nncf
    except ImportError:
        from ptmcli.errors import UsageProblem

        raise UsageProblem("--precision int8 needs NNCF, OpenVINO's quantiser",
                           ["pip install 'ptmcli[openvino]'"]) from None
    return nncf


def quantize_openvino(model, spec: "ModelSpec"):
    """NNCF post-training quantisation, checked on the calibration views; (quantised model, settings).

    Raises Int8Inaccurate when neither plain quantisation nor bounded accuracy control keeps the
    fp32 top-1 class on REQUIRED_AGREEMENT of the views.
    """
    nncf = import_nncf()
    import numpy as np
    import openvino
    from nncf.quantization.advanced_parameters import (
        AdvancedAccuracyRestorerParameters,
        AdvancedQuantizationParameters,
        OverflowFix,
    )

    settings = _settings()
    batches = calibration_batches(spec)
    nncf.set_log_level(logging.ERROR)
    core = openvino.Core()

    def top1(candidate) -> list[int]:
        return _top1(core, candidate, batches)

    labels = top1(model)

    def agreement(compiled, data) -> float:
        probabilities = compiled.output(PROBABILITIES)
        return float(np.mean([compiled(batch)[probabilities].argmax() == label for batch, label in data]))

    advanced = AdvancedQuantizationParameters(
        overflow_fix=OverflowFix.ENABLE if settings["overflow_safe"] else OverflowFix.DISABLE)
    # A uint8 probability has 256 values: top-5 lists would be ties. The classifier stays fp32.
    common = dict(subset_size=len(batches),
                  ignored_scope=nncf.IgnoredScope(types=["Softmax", "MatMul"], validate=False))
    with _quiet():
        quantized = nncf.quantize(model, nncf.Dataset(batches), advanced_parameters=advanced, **common)
    kept = float(np.mean([a == b for a, b in zip(top1(quantized), labels)]))
    method = "NNCF post-training quantisation"
    if _WORTH_RESTORING <= kept < REQUIRED_AGREEMENT:
        with _quiet():
            quantized = nncf.quantize_with_accuracy_control(
                model, calibration_dataset=nncf.Dataset(batches),
                validation_dataset=nncf.Dataset(list(zip(batches, labels))), validation_fn=agreement,
                max_drop=0.0, advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(
                    ranking_subset_size=len(batches), max_num_iterations=_MAX_REVERTED_LAYERS),
                advanced_quantization_parameters=advanced, **common)
        plain, kept = kept, float(np.mean([a == b for a, b in zip(top1(quantized), labels)]))
        method += (f" with accuracy control (plain quantisation kept {plain:.0%} of fp32's top-1 classes; "
                   f"layers that changed them turned back to fp32)")
    if kept < REQUIRED_AGREEMENT:
        raise Int8Inaccurate(
            f"int8 keeps the fp32 top-1 class of {spec.name} on only {kept:.0%} of the {len(batches)} "
            f"calibration views (ptm requires {REQUIRED_AGREEMENT:.0%})",
            ["use --precision fp32 (the default) or bf16 for this model"])
    return quantized, {**settings, "method": method, "top1_kept_on_calibration_views": round(kept, 4)}


def _top1(core, candidate, batches: list) -> list[int]:
    """The fp32-held top-1 class of each calibration view."""
    compiled = core.compile_model(candidate, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    output = compiled.output(PROBABILITIES)
    return [int(compiled(batch)[output].argmax()) for batch in batches]


@contextlib.contextmanager
def _quiet():
    """Quantisers draw progress bars and log chatter; a ptm run shows its own one line instead."""
    import warnings

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        yield
