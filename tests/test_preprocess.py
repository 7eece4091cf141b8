"""ptm's preprocessing must equal torchvision's `weights.transforms()` on the same PIL image."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ptmcli.models.classifier import to_batch
from ptmcli.models.registry import get_classifier
from ptmcli.pixels.crop import resize_and_crop


@pytest.mark.parametrize("size", [(301, 257), (224, 224), (640, 100), (100, 640), (233, 232)])
@pytest.mark.parametrize("model", ["resnet101", "vit_b_16", "inception_v3"])
def test_matches_torchvision_transforms(size, model):
    from torchvision.models import get_model_weights

    rng = np.random.default_rng(sum(size))
    image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    spec = get_classifier(model)
    ours = to_batch([resize_and_crop(image, spec.preprocess)], spec.preprocess, torch.device("cpu"), torch.float32)
    theirs = get_model_weights(model).DEFAULT.transforms()(image).unsqueeze(0)
    assert ours.shape == theirs.shape
    assert torch.equal(ours.contiguous(), theirs)
    assert ours.is_contiguous(memory_format=torch.channels_last)


def test_extreme_panorama_is_cropped_without_a_huge_resize():
    spec = get_classifier("efficientnet_lite0").preprocess
    image = Image.new("RGB", (20000, 3), "white")
    out = resize_and_crop(image, spec)
    assert out.shape == (224, 224, 3)
    assert (out == 255).all()


def test_efficientnet_lite_scaling_is_tensorflows():
    spec = get_classifier("efficientnet_lite0").preprocess
    pixels = np.array([[[0, 127, 255]]], dtype=np.uint8).repeat(224, 0).repeat(224, 1)
    batch = to_batch([pixels], spec, torch.device("cpu"), torch.float32)
    expected = torch.tensor([(0 - 127) / 128, 0.0, (255 - 127) / 128])
    assert torch.allclose(batch[0, :, 0, 0], expected, atol=1e-6)


def test_imagenet_categories_read_without_import_equal_torchvisions():
    from torchvision.models import ResNet50_Weights

    from ptmcli.models.registry import imagenet_categories

    assert imagenet_categories() == ResNet50_Weights.IMAGENET1K_V1.meta["categories"]
