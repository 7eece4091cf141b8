"""CycleGAN's ResNet generator (the book's horse -> zebra network) and its checkpoints.

The module layout is the one both published checkpoints were saved from, so their keys load
strictly: `model.<i>...` indexes one `nn.Sequential` (the book's `ResNetGenerator` in
dlwpt-code p1ch2/3_cyclegan.ipynb, itself junyanz/pytorch-CycleGAN-and-pix2pix's `ResnetGenerator`
with `--norm instance --no_dropout`):

    model.0  ReflectionPad2d(3)            model.10 .. model.18  ResNetBlock(256): conv_block.1, conv_block.5
    model.1  Conv2d(3, 64, 7)              model.19 ConvTranspose2d(256, 128)   model.22 ConvTranspose2d(128, 64)
    model.4  Conv2d(64, 128, 3, stride 2)  model.20, 23 InstanceNorm2d          model.25 ReflectionPad2d(3)
    model.7  Conv2d(128, 256, 3, stride 2) model.2, 5, 8 InstanceNorm2d         model.26 Conv2d(64, 3, 7), model.27 Tanh

InstanceNorm has no affine parameters and keeps no running statistics. Checkpoints written by
PyTorch before 0.4 still carry `running_mean`/`running_var` (and some `num_batches_tracked`) for
those layers; like the original project's `__patch_instance_norm_state_dict`, they are dropped.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ptmcli.errors import WeightsInvalid
from ptmcli.models.checkpoints import check_keys, load_state_dict

_INSTANCE_NORM_EXTRAS = ("running_mean", "running_var", "num_batches_tracked")


class ResNetBlock(nn.Module):
    """Two 3x3 convolutions with reflection padding and instance norm, added to the input."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=True),
            nn.InstanceNorm2d(dim),
            nn.ReLU(True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=True),
            nn.InstanceNorm2d(dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResNetGenerator(nn.Module):
    """Input and output in [-1, 1], N x 3 x H x W with H and W multiples of 4."""

    def __init__(self, input_nc: int = 3, output_nc: int = 3, ngf: int = 64, n_blocks: int = 9):
        super().__init__()
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(input_nc, ngf, kernel_size=7, padding=0, bias=True),
            nn.InstanceNorm2d(ngf),
            nn.ReLU(True),
        ]
        for i in range(2):
            mult = 2**i
            layers += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=2, padding=1, bias=True),
                nn.InstanceNorm2d(ngf * mult * 2),
                nn.ReLU(True),
            ]
        layers += [ResNetBlock(ngf * 4) for _ in range(n_blocks)]
        for i in range(2):
            mult = 2 ** (2 - i)
            layers += [
                nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, kernel_size=3, stride=2, padding=1,
                                   output_padding=1, bias=True),
                nn.InstanceNorm2d(ngf * mult // 2),
                nn.ReLU(True),
            ]
        layers += [
            nn.ReflectionPad2d(3),
            nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0),
            nn.Tanh(),
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


# --- loading ------------------------------------------------------------------------------------

def generator_shape(state: dict) -> tuple[int, int]:
    """(ngf, n_blocks) a checkpoint of this family was saved with; the book's (64, 9) otherwise.

    Only these two numbers are read from the file; every key is still checked against the network
    they describe, so a state dict of another layout is refused by name.
    """
    ngf, n_blocks = 64, 9
    first = state.get("model.1.weight")
    if first is not None and len(first.shape) == 4 and 1 <= first.shape[0] <= 1024:
        ngf = int(first.shape[0])
    blocks = 0
    while f"model.{10 + blocks}.conv_block.1.weight" in state and blocks < 64:
        blocks += 1
    if blocks:
        n_blocks = blocks
    return ngf, n_blocks


def drop_instance_norm_extras(state: dict, model: nn.Module) -> dict:
    """Remove the running statistics pre-0.4 PyTorch saved for InstanceNorm layers that keep none."""
    norms = {name for name, module in model.named_modules() if isinstance(module, nn.InstanceNorm2d)
             and not module.track_running_stats}
    kept = {}
    for key, value in state.items():
        owner, _, leaf = key.rpartition(".")
        if leaf in _INSTANCE_NORM_EXTRAS and owner in norms:
            continue
        kept[key] = value
    return kept


def load_generator(
    weights_path: Path,
    label: str = "the CycleGAN generator",
    require_shape: tuple[int, int] | None = None,
) -> ResNetGenerator:
    """Build the generator a checkpoint describes and load it strictly (every key matched).

    `require_shape` (ngf, n_blocks) refuses a smaller or larger generator of the same family, for
    a file that must be a particular published one.
    """
    state = load_state_dict(weights_path)
    ngf, n_blocks = generator_shape(state)
    if require_shape is not None and (ngf, n_blocks) != require_shape:
        raise WeightsInvalid(
            f"weights file {weights_path} holds a generator with {ngf} base channels and {n_blocks} "
            f"residual blocks, not {label} ({require_shape[0]} and {require_shape[1]})",
            ["use it with --weights FILE instead, which takes any generator of this family"],
        )
    with torch.device("meta"):
        model = ResNetGenerator(ngf=ngf, n_blocks=n_blocks)
    state = drop_instance_norm_extras(state, model)
    check_keys(
        model, state, weights_path, label,
        hints=["pass a CycleGAN ResNet generator (horse2zebra_0.4.0.pth from the book, or the CycleGAN "
               "project's horse2zebra.pth); `ptm weights list` shows where ptm looks"],
    )
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()
