"""Every torchvision ImageNet classifier is built the way torchvision builds it for its weights."""

from __future__ import annotations

import pytest
import torch

from ptmcli.models.registry import classifier_names, get_classifier, torchvision_classifier_names


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


@pytest.mark.parametrize("name", [n for n in torchvision_classifier_names() if n not in HUGE])
def test_build_matches_torchvision_for_its_weights(name, monkeypatch):
    from torchvision.models._api import WeightsEnum

    monkeypatch.setattr(WeightsEnum, "get_state_dict", lambda self, *a, **k: {})
    spec = get_classifier(name)
    model = on_meta(spec.build)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == checkpoint_layout(name)
    assert len(spec.categories()) == 1000
    assert spec.preprocess.crop <= spec.preprocess.resize


def test_names_include_the_offline_model():
    assert "efficientnet_lite0" in classifier_names() and "resnet101" in classifier_names()


@pytest.mark.parametrize("name", ["regnet_y_400mf", "inception_v3", "densenet121"])
def test_checkpoint_loads_into_ptms_build_and_computes_like_torchvision(name, tmp_path):
    """RegNet cannot be built on the meta device, Inception carries aux heads in its checkpoint,
    DenseNet's published checkpoints use older key names: each loads and computes the same."""
    from torchvision.models import get_model

    from ptmcli.models.classifier import build_with_weights

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
