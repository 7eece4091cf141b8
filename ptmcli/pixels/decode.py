"""Image files and URLs -> RGB pixels: EXIF orientation, every Pillow mode, size limits, JPEG draft
decoding. A URL's bytes come from ptmcli/downloads.py (`input_source`); this module only decodes.

Torch-free on purpose: decoding (and downloading) runs in the prefetch thread and in tests without
a model.
"""

from __future__ import annotations

import math
import os
import warnings
from typing import TYPE_CHECKING, BinaryIO

from ptmcli.downloads import input_source
from ptmcli.errors import InputError, unreadable

if TYPE_CHECKING:
    from PIL import Image


# 100 megapixels: a 10,000 x 10,000 photo still opens; a decompression bomb does not.
# Override with PTM_MAX_PIXELS for scans larger than that.
DEFAULT_MAX_PIXELS = 100_000_000


def max_pixels() -> int:
    value = os.environ.get("PTM_MAX_PIXELS", "")
    return int(value) if value.isdigit() and int(value) > 0 else DEFAULT_MAX_PIXELS



def _to_rgb(image: "Image.Image") -> "Image.Image":
    """Any Pillow mode -> RGB, the way a person looking at the picture would expect."""
    from PIL import Image

    if image.mode == "RGB":
        return image
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        image = _scale_to_8bit(image)
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # Transparent pixels carry arbitrary colour; show them on white, as viewers do.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _scale_to_8bit(image: "Image.Image") -> "Image.Image":
    """16-bit, 32-bit integer and float images to L, scaling their real range, not clipping."""
    import numpy as np
    from PIL import Image

    array = np.asarray(image, dtype=np.float64)
    if image.mode.startswith("I;16"):
        array = array / 257.0
    else:
        finite = array[np.isfinite(array)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if image.mode == "F" and low >= 0.0 and high <= 1.0:
            low, high = 0.0, 1.0
        elif low >= 0 and high <= 255:
            low, high = 0.0, 255.0
        array = (np.nan_to_num(array, nan=low) - low) * (255.0 / max(high - low, 1e-12))
    return Image.fromarray(np.clip(array + 0.5, 0, 255).astype(np.uint8), mode="L")


def open_image(path: str, min_short_side: int | None = None, source: "str | BinaryIO | None" = None) -> "Image.Image":
    """Decode one image file or URL to RGB with EXIF orientation applied; raise InputError otherwise.

    `source` is what `input_source(path)` returned, when the caller needs it again; `path` names
    the input in messages either way.

    `min_short_side` lets JPEG decoding skip detail the model will not see: the decoder works at
    1/2, 1/4 or 1/8 scale while the short side stays at least that long, which is most of the
    decoding cost for camera photos.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if source is None:
        source = input_source(path)
    elif not isinstance(source, str):
        source.seek(0)
    limit = max_pixels()
    if Image.MAX_IMAGE_PIXELS is not None and limit > Image.MAX_IMAGE_PIXELS:
        # Pillow refuses at twice its own limit before we can look; let a raised limit through.
        Image.MAX_IMAGE_PIXELS = limit
    try:
        with warnings.catch_warnings():
            # Pillow warns between 1x and 2x its limit; ours is checked below, exactly.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                if image.width * image.height > limit:
                    raise Image.DecompressionBombError(f"{image.width}x{image.height}")
                if getattr(image, "n_frames", 1) > 1:
                    image.seek(0)
                if min_short_side and image.format == "JPEG":
                    short = min(image.size)
                    if short >= 2 * min_short_side:
                        scale = min_short_side / short
                        image.draft("RGB", (math.ceil(image.width * scale), math.ceil(image.height * scale)))
                image.load()
                image = ImageOps.exif_transpose(image)
                return _to_rgb(image)
    except Image.DecompressionBombError:
        raise InputError(
            f"{path}: image is larger than {limit:,} pixels (possible decompression bomb); "
            "set PTM_MAX_PIXELS to allow it"
        ) from None
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        raise unreadable(path, exc) from None
    except UnidentifiedImageError:
        sent = getattr(source, "content_type", None)
        said = f" (the server sent {sent})" if sent else ""
        raise InputError(f"{path}: not an image Pillow can read{said}") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        # Truncated files, broken chunks and bad headers all surface as one of these.
        reason = str(exc) or type(exc).__name__
        raise InputError(f"{path}: cannot decode image ({reason})") from None
