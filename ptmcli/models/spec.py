"""The bottom of the model layer: what a model is, as data. A `ModelSpec` names its task, its
weight file, its preprocessing (a recipe from pixels/recipes.py) and how to build the network; it
travels as an object from the command line to every engine and actor, never looked up again by
name. `Registry` holds specs by name (the catalogue of known models is registry.py)."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable

from ptmcli.pixels.recipes import Preprocess, TranslatePreprocess

if TYPE_CHECKING:
    from pathlib import Path

    import torch

__all__ = ["CLASSIFY", "TRANSLATE", "TASKS", "WeightFile", "ModelSpec", "Registry", "Preprocess",
           "TranslatePreprocess"]

CLASSIFY = "classify"  # image -> ImageNet class probabilities
TRANSLATE = "translate"  # image -> image (CycleGAN)
TASKS = (CLASSIFY, TRANSLATE)


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
