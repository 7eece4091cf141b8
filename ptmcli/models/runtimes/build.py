"""Building the exported files: torch -> ONNX once per process, then each runtime's own files.

Needs torch, onnx and onnxscript (they install with ptm), and for OpenVINO int8 the NNCF package
(`pip install 'ptmcli[openvino]'`). Only the first run of a model on a machine comes here; later
runs load what this wrote (exports.py) and never import torch.

A classifier's exported graph takes the normalised float32 NCHW batch (named `pixels`) and gives
two outputs: `probabilities` (softmax of the logits, computed in float32 as the torch path does)
and `features` (what the classifier layer reads, for --save-features). A generator's takes its
scaled, padded pictures of any size and gives `pictures` (generator_build.py).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ptmcli.models.runtimes import installed, version
from ptmcli.models.runtimes.exported import FEATURES, INPUT, PROBABILITIES
from ptmcli.models.runtimes.exports import Export, ExportFailed, ExportKey, build
from ptmcli.models.spec import TRANSLATE

if TYPE_CHECKING:
    from ptmcli.models.spec import ModelSpec

# One ONNX export per (model, weights file) per process: every runtime built in one run uses it.
_onnx_exports: dict[tuple[str, str], tuple[Path, int | None]] = {}
_generator_exports: dict[tuple[str, str], tuple[Path, dict]] = {}


def key_for(spec: "ModelSpec", weights_sha256: str, runtime: str, precision: str) -> ExportKey:
    return ExportKey(model=spec.name, weights_sha256=weights_sha256, runtime=runtime,
                     runtime_version=version(runtime) or "?", precision=precision)


def _wrapped(spec: "ModelSpec", weights_path: Path):
    """The network with softmax and the head's input as outputs."""
    import torch

    from ptmcli.models.checkpoints import build_with_weights
    from ptmcli.models.heads import head_module

    network = build_with_weights(spec, weights_path)

    class Exported(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.network = network
            self._seen: list = []
            if spec.head is not None:
                head_module(network, spec).register_forward_pre_hook(lambda _m, inputs: self._seen.append(inputs[0]))

        def forward(self, pixels):
            self._seen.clear()
            probabilities = self.network(pixels).float().softmax(dim=1)
            if spec.head is None:
                return probabilities
            return probabilities, self._seen[-1].flatten(1)

    return Exported().eval()


def onnx_export(spec: "ModelSpec", weights_path: Path) -> tuple[Path, int | None]:
    """(an fp32 ONNX file of `spec` with `weights_path`, the embedding width or None)."""
    cache_key = (spec.name, str(Path(weights_path).resolve()))
    if cache_key in _onnx_exports and _onnx_exports[cache_key][0].is_file():
        return _onnx_exports[cache_key]
    import contextlib
    import io
    import warnings

    import torch

    for module in ("onnx", "onnxscript"):
        if not installed_module(module):
            raise ExportFailed(f"exporting {spec.name} for another runtime needs the {module} package",
                               [f"pip install {module} (it installs with ptm), or use --runtime torch"])
    folder = Path(tempfile.mkdtemp(prefix="ptm-onnx-"))
    path = folder / "model.onnx"
    model = _wrapped(spec, weights_path)
    size = spec.preprocess.crop
    outputs = [PROBABILITIES] + ([FEATURES] if spec.head is not None else [])
    with torch.inference_mode(False), torch.no_grad():
        example = torch.zeros(2, 3, size, size)
        width = int(model(example)[1].shape[1]) if spec.head is not None else None
        # The exporter prints its progress and warns about graph details: nothing for the user.
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            try:
                torch.onnx.export(model, (example,), str(path), dynamo=True, external_data=False,
                                  input_names=[INPUT], output_names=outputs,
                                  dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},))
            except Exception as exc:  # noqa: BLE001 - any exporter failure means: this model needs torch
                shutil.rmtree(folder, ignore_errors=True)
                raise ExportFailed(f"{spec.name} could not be exported to ONNX ({type(exc).__name__}: "
                                   f"{str(exc).splitlines()[0][:200] if str(exc) else ''})",
                                   ["use --runtime torch for this model"]) from None
    _onnx_exports[cache_key] = (path, width)
    return path, width


def installed_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def build_export(key: ExportKey, spec: "ModelSpec", weights_path: Path,
                 note: Callable[[str], None] | None = None) -> Export:
    """The checked entry for `key`, building it now if it is missing, damaged or stale."""

    def make(folder: Path) -> dict:
        source, extra = _onnx_source(spec, weights_path)
        if key.runtime == "onnxruntime":
            shutil.copyfile(source, folder / "model.onnx")
        elif key.runtime == "openvino":
            import openvino

            model = openvino.convert_model(str(source))
            if key.precision == "int8":
                model, extra["quantization"] = _quantize(model, spec)
            # fp32 weights stay fp32 (OpenVINO would halve them by default): the hint decides.
            openvino.save_model(model, str(folder / "model.xml"), compress_to_fp16=False)
        else:
            raise AssertionError(key.runtime)
        return extra

    if not installed(key.runtime):
        raise AssertionError(f"{key.runtime} is not installed")
    return build(key, make, note)


def _onnx_source(spec: "ModelSpec", weights_path: Path) -> tuple[Path, dict]:
    """The fp32 ONNX file every runtime's files are made from (once per process), and what the
    export record says about it."""
    import torch

    if spec.task == TRANSLATE:
        cache_key = (spec.name, str(Path(weights_path).resolve()))
        if cache_key not in _generator_exports or not _generator_exports[cache_key][0].is_file():
            from ptmcli.models.runtimes.generator_build import export_generator_onnx

            _generator_exports[cache_key] = export_generator_onnx(spec, weights_path)
        source, extra = _generator_exports[cache_key]
        return source, {**extra, "exported_with": f"torch {torch.__version__}"}
    source, width = onnx_export(spec, weights_path)
    return source, {"feature_dim": width, "exported_with": f"torch {torch.__version__}",
                    "input": [INPUT, 3, spec.preprocess.crop, spec.preprocess.crop]}


def _quantize(model, spec: "ModelSpec"):
    if spec.task == TRANSLATE:
        from ptmcli.models.runtimes.generator_build import quantize_generator

        return quantize_generator(model, spec)
    from ptmcli.models.runtimes.int8 import quantize_openvino

    return quantize_openvino(model, spec)
