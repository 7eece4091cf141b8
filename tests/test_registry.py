"""The registry: every torchvision ImageNet classifier is built the way torchvision builds it for
its weights; the committed table is what the installed torchvision says; looking a model up needs
neither torch nor torchvision."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from conftest import ROOT

from ptmcli.errors import UnknownModel
from ptmcli.models import registry
from ptmcli.models.registry import (
    CLASSIFY,
    TORCHVISION_QUIRKS,
    TRANSLATE,
    ModelSpec,
    Registry,
    WeightFile,
    get_classifier,
    get_generator,
    get_model,
    list_models,
    model_names,
)
from ptmcli.models.torchvision_table import installed_names


def on_meta(build):
    """Build without random initialisation where the builder allows (RegNet computes its widths
    with tensors, which the meta device cannot turn into numbers)."""
    try:
        with torch.device("meta"):
            return build()
    except NotImplementedError:
        return build()


def checkpoint_layout(name: str) -> dict[str, tuple]:
    """The keys and shapes torchvision's own builder loads its DEFAULT checkpoint into."""
    from torchvision.models import get_model, get_model_weights

    seen: dict[str, tuple] = {}
    real_load = torch.nn.Module.load_state_dict

    def record(self, *args, **kwargs):
        seen.update({k: tuple(v.shape) for k, v in self.state_dict().items()})

    torch.nn.Module.load_state_dict = record
    try:
        on_meta(lambda: get_model(name, weights=get_model_weights(name).DEFAULT))
    finally:
        torch.nn.Module.load_state_dict = real_load
    return seen


# RegNets cannot be built on the meta device; the biggest would take gigabytes of random
# initialisation, and the smaller ones cover the family.
HUGE = {"regnet_y_128gf", "regnet_y_32gf", "regnet_x_32gf"}


@pytest.mark.parametrize("name", [n for n in installed_names() if n not in HUGE])
def test_build_matches_torchvision_for_its_weights(name, monkeypatch):
    from torchvision.models._api import WeightsEnum

    monkeypatch.setattr(WeightsEnum, "get_state_dict", lambda self, *a, **k: {})
    spec = get_classifier(name)
    model = on_meta(spec.build)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == checkpoint_layout(name)
    assert len(spec.categories()) == 1000
    assert spec.preprocess.crop <= spec.preprocess.resize


def test_names_include_the_offline_model():
    assert "efficientnet_lite0" in model_names(CLASSIFY) and "resnet101" in model_names(CLASSIFY)


@pytest.mark.parametrize("name", ["regnet_y_400mf", "inception_v3", "densenet121"])
def test_checkpoint_loads_into_ptms_build_and_computes_like_torchvision(name, tmp_path):
    """RegNet cannot be built on the meta device, Inception carries aux heads in its checkpoint,
    DenseNet's published checkpoints use older key names: each loads and computes the same."""
    from torchvision.models import get_model

    from ptmcli.models.checkpoints import build_with_weights

    spec = get_classifier(name)
    torch.manual_seed(0)
    reference = get_model(name, weights=None, **({"aux_logits": True, "init_weights": False, "transform_input": True}
                                                  if name == "inception_v3" else {})).eval()
    state = reference.state_dict()
    if name == "densenet121":  # as published in 2017: "norm.1" for "norm1", no BatchNorm counters
        state = {k.replace("norm1", "norm.1").replace("conv1", "conv.1") if "denselayer" in k else k: v
                 for k, v in state.items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / f"{name}.pth"
    torch.save(state, path)
    ours = build_with_weights(spec, path)
    assert not any(t.is_meta for t in (*ours.parameters(), *ours.buffers()))
    x = torch.randn(2, 3, spec.preprocess.crop, spec.preprocess.crop)
    with torch.inference_mode():
        expected = reference(x)
        expected = expected.logits if hasattr(expected, "logits") else expected
        assert torch.allclose(ours(x), expected, atol=1e-5)


# --- the committed table ------------------------------------------------------------------------

@pytest.mark.slow
def test_committed_table_is_what_the_installed_torchvision_says():
    from ptmcli.models.torchvision_table import committed, rows

    _, CLASSIFIERS = committed()
    fresh = rows()
    changed = sorted(n for n in set(fresh) | set(CLASSIFIERS) if fresh.get(n) != CLASSIFIERS.get(n))
    assert not changed, (f"torchvision_classifiers.json differs from the installed torchvision for {changed}: "
                         "run python -m ptmcli.models.torchvision_table --write")


def test_every_quirk_names_an_installed_torchvision_model():
    assert set(TORCHVISION_QUIRKS) <= set(installed_names())


@pytest.mark.parametrize("name", model_names(CLASSIFY))
def test_head_names_a_linear_layer_with_one_output_per_class(name):
    from torch import nn

    from ptmcli.models.checkpoints import build_on_meta

    spec = get_classifier(name)
    model = build_on_meta(spec.build)
    if spec.after_load is not None:
        spec.after_load(model)
    linear_outputs = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == 1000]
    if spec.head is None:  # SqueezeNet: its classifier is a convolution
        assert not linear_outputs
        return
    head = model.get_submodule(spec.head)
    assert isinstance(head, nn.Linear) and head.out_features == len(spec.categories())
    assert head is linear_outputs[-1]


def test_looking_up_the_default_model_imports_neither_torch_nor_torchvision():
    code = (
        "import sys\n"
        "from ptmcli.models.registry import DEFAULT_CLASSIFIER, get_classifier, get_generator, list_models\n"
        "spec = get_classifier(DEFAULT_CLASSIFIER)\n"
        "assert spec.weights.filename == 'resnet101-cd907fc2.pth' and spec.weights.sha256_prefix == 'cd907fc2'\n"
        "assert (spec.preprocess.resize, spec.preprocess.crop, spec.head) == (232, 224, 'fc')\n"
        "assert len(spec.categories()) == 1000 and get_generator('horse2zebra').generator_shape == (64, 9)\n"
        "assert len(list_models()) > 80\n"
        "print([m for m in ('torch', 'torchvision') if m in sys.modules])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_ptm_models_imports_neither_torch_nor_torchvision(isolated_env):
    code = (
        "import sys\n"
        "from ptmcli.cli import main\n"
        "sys.argv = ['ptm', 'models', '--format', 'jsonl']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('HEAVY', [m for m in ('torch', 'torchvision') if m in sys.modules], file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=isolated_env)
    assert '"name": "resnet101"' in done.stdout
    assert done.stderr.strip().endswith("HEAVY []")


# --- lookups and the registry's rules -----------------------------------------------------------

def test_classifiers_and_generators_are_told_apart():
    assert get_model("horse2zebra").task == TRANSLATE and get_model("resnet101").task == CLASSIFY
    assert get_generator("horse2zebra").weights.filename == "horse2zebra_0.4.0.pth"
    with pytest.raises(UnknownModel, match="not a classifier"):
        get_classifier("horse2zebra")
    with pytest.raises(UnknownModel, match="unknown generator") as caught:
        get_generator("resnet101")
    assert "horse2zebra, horse2zebra_cyclegan" in caught.value.hints[0]
    with pytest.raises(UnknownModel) as caught:
        get_classifier("resnet10")
    assert "did you mean" in caught.value.hints[0] and "resnet101" in caught.value.hints[0]
    assert [s.name for s in list_models("horse*")] == ["horse2zebra", "horse2zebra_cyclegan"]
    assert {s.name for s in list_models("resnet1*", task=CLASSIFY)} == {"resnet101", "resnet152", "resnet18"}
    assert list_models("horse*", task=CLASSIFY) == []


def test_weights_that_ship_with_ptm_are_data():
    assert get_classifier("efficientnet_lite0").weights_ship_with_ptm
    assert not get_classifier("resnet101").weights_ship_with_ptm
    assert registry.offline_alternative(get_classifier("resnet101").weights) == "efficientnet_lite0"
    assert registry.offline_alternative(get_classifier("efficientnet_lite0").weights) is None
    assert registry.offline_alternative(get_generator("horse2zebra").weights) is None  # no generator ships


def _spec(name: str, filename: str, weight_name: str | None = None) -> ModelSpec:
    return ModelSpec(name=name, task=CLASSIFY, weights=WeightFile(name=weight_name or name, filename=filename),
                     preprocess=get_classifier("resnet101").preprocess, build=lambda: None)


def test_registry_refuses_a_name_or_a_weight_file_twice():
    table = Registry([_spec("a", "a.pth")])
    with pytest.raises(ValueError, match="registered twice"):
        table.add(_spec("a", "other.pth"))
    with pytest.raises(ValueError, match="both use a.pth"):
        table.add(_spec("b", "a.pth"))
    with pytest.raises(ValueError, match="weight file is named"):
        table.add(_spec("c", "c.pth", weight_name="d"))
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(get_classifier("resnet101"))


@pytest.fixture
def fresh_registry():
    registry._models.cache_clear()
    registry._names_beyond_the_table.cache_clear()
    yield
    registry._models.cache_clear()
    registry._names_beyond_the_table.cache_clear()


def test_a_model_missing_from_the_table_comes_from_torchvision_itself(monkeypatch, fresh_registry):
    from ptmcli.models import torchvision_table

    table_spec = get_classifier("resnet18")
    registry._models.cache_clear()
    version, classifiers = torchvision_table.committed()
    shorter = {n: row for n, row in classifiers.items() if n != "resnet18"}
    monkeypatch.setattr(torchvision_table, "committed", lambda: (version, shorter))
    monkeypatch.setattr(registry, "_installed_torchvision_version", lambda: "99.0 (newer than the table)")
    assert "resnet18" in model_names(CLASSIFY)
    live = get_classifier("resnet18")
    assert (live.weights, live.preprocess, live.head, live.acc1) == (
        table_spec.weights, table_spec.preprocess, table_spec.head, table_spec.acc1)
