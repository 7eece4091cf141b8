"""Setting a run up: find (or download) the weights, then load the model on its device.

Every command and engine goes through these two steps, so the search order, the download bar,
device and precision checks are the same everywhere (Ray actors included).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ptmcli.models.classifier import Classifier
    from ptmcli.models.registry import WeightFile


def locate_weights(weight: "WeightFile", explicit: str | Path | None, offline: bool) -> Path:
    """A verified local copy of `weight` (or `explicit`), downloading it only when allowed."""
    from ptmcli.models import weights as weight_files
    from ptmcli.sinks.progress import transfer_progress

    with transfer_progress(f"downloading {weight.filename}") as on_bytes:
        return weight_files.resolve(
            weight, explicit, offline=weight_files.offline_requested(offline), progress=on_bytes
        )


@dataclass(frozen=True, kw_only=True)
class ClassifierChoice:
    """Everything that decides which numbers a classifier computes; plain values, so a Ray actor
    can be given it and build the same model."""

    model: str
    weights_path: Path
    device: str = "auto"
    precision: str = "fp32"
    compile: bool = False
    exact_decode: bool = False


def load_classifier(choice: ClassifierChoice) -> "Classifier":
    from ptmcli.models.classifier import Classifier
    from ptmcli.models.registry import get_classifier
    from ptmcli.pipeline.device import resolve_device_and_precision

    device, dtype = resolve_device_and_precision(choice.device, choice.precision)
    return Classifier(get_classifier(choice.model), choice.weights_path, device, dtype,
                      compile=choice.compile, fast_decode=not choice.exact_decode)
