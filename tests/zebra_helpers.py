"""Random-weight CycleGAN generators saved the way the two published horse2zebra files were."""

from __future__ import annotations

from pathlib import Path


def save_generator(path: Path, layout: str = "book", ngf: int = 64, n_blocks: int = 9, seed: int = 0) -> Path:
    """`book`: dlwpt-code's horse2zebra_0.4.0.pth layout (plain state dict of ResNetGenerator).

    `cyclegan`: the original project's horse2zebra.pth, written by PyTorch before 0.4: the same keys
    plus running_mean/running_var (and num_batches_tracked) for every InstanceNorm layer, in the
    legacy (non-zip) serialization format.
    """
    import torch
    from torch import nn

    from ptmcli.models.cyclegan import ResNetGenerator

    torch.manual_seed(seed)
    generator = ResNetGenerator(ngf=ngf, n_blocks=n_blocks)
    state = generator.state_dict()
    if layout == "book":
        torch.save(state, path)
        return path
    assert layout == "cyclegan"
    old = dict(state)
    for name, module in generator.named_modules():
        if isinstance(module, nn.InstanceNorm2d):
            old[f"{name}.running_mean"] = torch.zeros(module.num_features)
            old[f"{name}.running_var"] = torch.ones(module.num_features)
            old[f"{name}.num_batches_tracked"] = torch.tensor(0)
    torch.save(old, path, _use_new_zipfile_serialization=False)
    return path


def image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as image:
        image.load()  # a truncated file fails here, not just at the header
        return image.size
