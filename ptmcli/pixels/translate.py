"""A generator's pixels: decode and resize (with the alpha channel kept aside), pad to sides the
network maps one-to-one, scale to its pixel range, and back. NumPy and Pillow only, so every
runtime (torch, ONNX Runtime, OpenVINO) sees the same input bits and makes pictures the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ptmcli.downloads import input_source
from ptmcli.errors import InputError
from ptmcli.pixels.decode import decoding, max_pixels, open_image, quiet_decoders
from ptmcli.pixels.recipes import TranslatePreprocess

if TYPE_CHECKING:
    from typing import BinaryIO

    import numpy as np
    from PIL import Image


@dataclass(frozen=True)
class Prepared:
    """One decoded input at the size it is processed: RGB (and alpha, if it had any), uint8 HWC."""

    rgb: "np.ndarray"
    alpha: "np.ndarray | None"


def processed_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """Short side to `short_side` as torchvision's Resize(int) does; 0 keeps the size."""
    if short_side <= 0 or min(width, height) == short_side:
        return width, height
    if width <= height:
        return short_side, max(1, int(short_side * height / width))
    return max(1, int(short_side * width / height)), short_side


def _alpha_channel(source: "str | BinaryIO", size: tuple[int, int]) -> "np.ndarray | None":
    """The input's transparency at the processed size, or None for opaque images."""
    import numpy as np
    from PIL import Image, ImageOps

    if not isinstance(source, str):
        source.seek(0)
    with Image.open(source) as image:
        has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
            image.mode == "P" and "transparency" in image.info
        )
        if not has_alpha:
            return None
        alpha = ImageOps.exif_transpose(image.convert("RGBA")).getchannel("A")
    if alpha.size != size:
        alpha = alpha.resize(size, Image.BILINEAR)
    array = np.asarray(alpha)
    return None if array.min() == 255 else array


def prepare_image(path: str, short_side: int) -> Prepared:
    """Decode (EXIF, any mode -> RGB on white), resize the short side; runs in the decode thread."""
    import numpy as np

    source = input_source(path)  # a URL is downloaded once, for the pixels and the alpha both
    image = resized(open_image(path, min_short_side=short_side or None, source=source),
                                 path, short_side)
    with decoding(path, source):  # the second decode, for transparency, under the same boundary
        alpha = _alpha_channel(source, image.size)
    return Prepared(rgb=np.asarray(image), alpha=alpha)


def resized(image: "Image.Image", path: str, short_side: int, even: bool = False) -> "Image.Image":
    """An RGB picture (a photo, or a video's frame) at the size the generator processes it;
    `even` rounds both sides down to even numbers, as H.264 and VP9 in yuv420p need them."""
    from PIL import Image

    size = processed_size(*image.size, short_side)
    if even:
        size = (max(2, size[0] - size[0] % 2), max(2, size[1] - size[1] % 2))
    if size[0] * size[1] > max_pixels():
        # A sliver (5 x 16,000,000) resized to a 256 short side would be hundreds of gigabytes.
        raise InputError(f"{path}: {image.width}x{image.height} resized to a short side of {short_side} "
                         f"would be {size[0] * size[1]:,} pixels, more than {max_pixels():,}; "
                         "set PTM_MAX_PIXELS to allow it, or crop it first")
    return image.resize(size, Image.BILINEAR) if size != image.size else image


def pad_amounts(height: int, width: int, recipe: TranslatePreprocess) -> tuple[int, int]:
    """Rows and columns added at the bottom and right so the network maps the picture one-to-one."""
    def padded(side: int) -> int:
        return max(recipe.min_side, math.ceil(side / recipe.side_multiple) * recipe.side_multiple)

    return padded(height) - height, padded(width) - width


def generator_input(arrays: list["np.ndarray"], recipe: TranslatePreprocess) -> "np.ndarray":
    """Same-size uint8 HWC arrays -> the float32 NCHW batch, in the pixel range, padded."""
    import numpy as np

    low, high = recipe.pixel_range
    height, width = arrays[0].shape[:2]
    batch = np.stack(arrays).transpose(0, 3, 1, 2).astype(np.float32)
    # x / 127.5 - 1 for [-1, 1]: CycleGAN trained on ToTensor() then Normalize(0.5, 0.5).
    batch /= np.float32(255 / (high - low))
    batch += np.float32(low)
    pad_h, pad_w = pad_amounts(height, width, recipe)
    if pad_h or pad_w:
        # Mirroring continues the picture's texture, so the borders normalise like the rest; it
        # needs a side longer than the pad, so slivers a few pixels wide repeat their edge instead.
        mode = "reflect" if min(height, width) > max(pad_h, pad_w) else "edge"
        batch = np.pad(batch, ((0, 0), (0, 0), (0, pad_h), (0, pad_w)), mode=mode)
    return np.ascontiguousarray(batch)


def generator_output(batch: "np.ndarray", height: int, width: int, recipe: TranslatePreprocess) -> list["np.ndarray"]:
    """The network's float NCHW output -> uint8 HWC pictures, cropped back to `height` x `width`."""
    import numpy as np

    low, high = recipe.pixel_range
    out = np.asarray(batch, dtype=np.float32)[:, :, :height, :width]
    # (y + 1) * 127.5 for [-1, 1], rounded half to even (as torch.round), then clipped.
    out = (out - np.float32(low)) * np.float32(255 / (high - low))
    out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return list(np.ascontiguousarray(out.transpose(0, 2, 3, 1)))


# Reading every header of a long input list would cost more than it tells: a sample is enough to
# choose a runtime by.
_SIZE_SAMPLE = 64


def megapixels(paths: list[str], short_side: int, recipe: TranslatePreprocess) -> float:
    """The generator's work for `paths`: padded megapixels after resizing, from the files' headers
    (a sample of a long list, scaled up); a URL or an unreadable file counts as a 4:3 picture."""
    from PIL import Image

    from ptmcli.downloads import is_url

    if not paths:
        return 0.0
    quiet_decoders()  # headers of hostile files warn too; stderr is ptm's
    step = max(1, len(paths) // _SIZE_SAMPLE)
    sample = paths[::step][:_SIZE_SAMPLE]
    total = 0
    for path in sample:
        size = None
        if not is_url(path):
            try:
                with Image.open(path) as image:
                    size = processed_size(*image.size, short_side)
            except Exception:  # noqa: BLE001 - a bad file fails later, with its own message
                size = None
        if size is None:
            side = short_side or 256
            size = (side * 4 // 3, side)
        pad_h, pad_w = pad_amounts(size[1], size[0], recipe)
        total += (size[0] + pad_w) * (size[1] + pad_h)
    return total / 1e6 * len(paths) / len(sample)
