"""What a model's input is, as data: the spec of every model carries one of these, and the pixel
functions beside this module read nothing else."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preprocess:
    """A classifier's input: resize the short side, centre-crop, scale to [0, 1], (x - mean) / std."""

    resize: int
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"


@dataclass(frozen=True)
class TranslatePreprocess:
    """A generator's input: resize the short side (0 keeps the size), pixels mapped to `pixel_range`
    (and its output mapped back from it); sides padded to a multiple of `side_multiple`, at least
    `min_side`, and cropped back after."""

    short_side: int = 256
    pixel_range: tuple[float, float] = (-1.0, 1.0)
    # CycleGAN's ResNet generator halves each side twice: it maps H x W to H x W only for multiples
    # of 4, and its 1/4-scale maps must be wider than the residual blocks' 1-pixel reflection pad.
    side_multiple: int = 4
    min_side: int = 8
