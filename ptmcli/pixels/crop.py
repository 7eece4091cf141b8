"""Resize and crop exactly as torchvision's `weights.transforms()` does on a PIL image.

Split in two so each half runs where it is cheapest: `resize_and_crop` (Pillow and NumPy, in the
decode thread) and the normalised batch, once per batch: `normalised_batch` here in NumPy for the
exported runtimes, `models.classifier.to_batch` in torch on the model's device (same bits).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ptmcli.pixels.recipes import Preprocess

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

_PIL_FILTERS = {"nearest": 0, "bilinear": 2, "bicubic": 3, "box": 4, "hamming": 5, "lanczos": 1}

# Beyond this many crop-widths, resizing the whole strip would allocate gigabytes for a sliver of
# a panorama (or a hostile 100000x1 file); then only the centre region is resampled.
_MAX_LONG_SIDE_IN_CROPS = 8


def load_for_model(path: str, spec: Preprocess, exact_decode: bool = False) -> "np.ndarray":
    """One image file -> the uint8 crop [crop, crop, 3] a classifier with `spec` sees.

    Unless `exact_decode`, JPEG draft decoding skips detail the resize discards anyway (never
    below the resize side): top-1 agrees with full decoding on the test photos
    (benchmarks/README.md), and decoding is several times cheaper.
    """
    from ptmcli.pixels.decode import open_image

    image = open_image(path, min_short_side=None if exact_decode else spec.resize)
    return resize_and_crop(image, spec)


def resize_and_crop(image: "Image.Image", spec: Preprocess) -> "np.ndarray":
    """RGB PIL image -> uint8 array [crop, crop, 3]: short side to `resize`, centre crop."""
    import numpy as np

    width, height = image.size
    short, long = (width, height) if width <= height else (height, width)
    # torchvision truncates the long side (int(), not round()); matching it keeps results equal.
    new_short, new_long = spec.resize, int(spec.resize * long / short)
    new_w, new_h = (new_short, new_long) if width <= height else (new_long, new_short)
    resample = _PIL_FILTERS[spec.interpolation]
    crop = spec.crop
    if new_long > _MAX_LONG_SIDE_IN_CROPS * max(crop, spec.resize):
        scale_x, scale_y = width / new_w, height / new_h
        left, top = round((new_w - crop) / 2.0), round((new_h - crop) / 2.0)
        box = (left * scale_x, top * scale_y, (left + crop) * scale_x, (top + crop) * scale_y)
        return np.asarray(image.resize((crop, crop), resample, box=box))
    if (new_w, new_h) != (width, height):
        image = image.resize((new_w, new_h), resample)
    top = int(round((new_h - crop) / 2.0))
    left = int(round((new_w - crop) / 2.0))
    if top < 0 or left < 0:
        # resize < crop (never for shipped specs): pad with black as torchvision does.
        from PIL import ImageOps

        image = ImageOps.pad(image, (max(crop, new_w), max(crop, new_h)), color=(0, 0, 0))
        top, left = max(top, 0), max(left, 0)
    return np.asarray(image.crop((left, top, left + crop, top + crop)))


def normalised_batch(arrays: list["np.ndarray"], spec: Preprocess, pad_to: int | None = None) -> "np.ndarray":
    """uint8 HWC arrays -> the float32 NCHW batch `to_batch` makes, in NumPy (no torch), padded
    with black images to `pad_to` rows.

    The same operations in the same order as `to_batch` (true division, then subtract, then
    divide), so both give the same bits (a test checks).
    """
    import numpy as np

    if pad_to is not None and len(arrays) < pad_to:
        arrays = list(arrays) + [np.zeros_like(arrays[0])] * (pad_to - len(arrays))
    batch = np.stack(arrays).astype(np.float32)
    batch /= np.float32(255)
    batch -= np.asarray(spec.mean, dtype=np.float32)
    batch /= np.asarray(spec.std, dtype=np.float32)
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
