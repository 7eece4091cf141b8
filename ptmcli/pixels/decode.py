"""Image files and URLs -> RGB pixels: EXIF orientation, every Pillow mode, size limits, JPEG draft
decoding. A URL's bytes come from ptmcli/downloads.py (`input_source`); this module only decodes.

Torch-free on purpose: decoding (and downloading) runs in the prefetch thread and in tests without
a model.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import warnings
from typing import TYPE_CHECKING, BinaryIO, Iterator

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



def to_rgb(image: "Image.Image") -> "Image.Image":
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


@contextlib.contextmanager
def decoding(path: str, source: "str | BinaryIO | None" = None) -> Iterator[None]:
    """The image decode boundary (ARCHITECTURE.md, "Hostile bytes"): whatever Pillow raises on
    a file's bytes is one InputError naming the input, Pillow's text in brackets."""
    from PIL import Image, UnidentifiedImageError

    quiet_decoders()
    try:
        yield
    except InputError:
        raise
    except Image.DecompressionBombError:
        raise InputError(
            f"{path}: image is larger than {max_pixels():,} pixels (possible decompression bomb); "
            "set PTM_MAX_PIXELS to allow it"
        ) from None
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        raise unreadable(path, exc) from None
    except UnidentifiedImageError:
        sent = getattr(source, "content_type", None)
        said = f" (the server sent {sent})" if sent else ""
        raise InputError(f"{path}: not an image Pillow can read{said}") from None
    except MemoryError:
        raise InputError(f"{path}: not enough memory to decode this image") from None
    except Exception as exc:
        # Truncated files, broken chunks and bad headers surface as OSError, ValueError,
        # SyntaxError, EOFError, but also IndexError, TypeError, NotImplementedError...
        text = (str(exc).strip().splitlines() or [""])[0][:200]
        reason = text if isinstance(exc, (OSError, ValueError, SyntaxError, EOFError)) and text else (
            f"{type(exc).__name__}: {text}" if text else type(exc).__name__)
        raise InputError(f"{path}: cannot decode image ({reason})") from exc


_quiet = threading.Lock()
_quieted: list[bool] = []


def quiet_decoders() -> None:
    """Load Pillow's decoders, and keep what they and libtiff say about a damaged file off stderr
    (once per process).

    stderr holds ptm's lines only: Pillow's Python warnings ("Tag data larger than file") and log
    records are dropped, and libtiff's C-level handlers (TIFFFetchNormalTag, TIFFFillStrip: ...) are switched
    off; Pillow still sees each error's return code. With --debug (PTM_DEBUG=1) both stay on.
    """
    from PIL import Image

    with _quiet:
        if _quieted:
            return
        _quieted.append(True)
        # Every plugin, in Pillow's own order, before the first file: Pillow imports the plugin
        # of a file's extension first, so after a .tga, TGA's loose check claimed the next .ico
        # ("cannot load this image") and the outcome hung on the order of the inputs.
        Image.init()
        if os.environ.get("PTM_DEBUG", "") not in ("", "0"):
            return
        # By module: Pillow attributes its warnings to its own plugins or to the caller, here.
        for module in (r"PIL(\..*)?", r"ptmcli\..*"):
            warnings.filterwarnings("ignore", category=UserWarning, module=module)
            warnings.filterwarnings("ignore", category=RuntimeWarning, module=module)
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=module)
        # Pillow logs some refusals ("More samples per pixel than can be decoded"); with no
        # handler anywhere, Python's last resort would print them.
        logging.getLogger("PIL").addHandler(logging.NullHandler())
        _silence_libtiff()


def _silence_libtiff() -> None:
    import ctypes
    import glob

    from PIL import Image

    try:
        from PIL import _imaging

        folder = os.path.join(os.path.dirname(os.path.dirname(Image.__file__)), "pillow.libs")
        candidates = glob.glob(os.path.join(folder, "libtiff*.so*")) or [_imaging.__file__]
        for candidate in candidates:
            library = ctypes.CDLL(candidate)
            if hasattr(library, "TIFFSetWarningHandler"):
                library.TIFFSetWarningHandler.restype = ctypes.c_void_p
                library.TIFFSetErrorHandler.restype = ctypes.c_void_p
                library.TIFFSetWarningHandler(None)
                library.TIFFSetErrorHandler(None)
    except (OSError, AttributeError, ImportError):
        pass  # a Pillow built otherwise: its messages stay, nothing else changes


def open_image(path: str, min_short_side: int | None = None, source: "str | BinaryIO | None" = None) -> "Image.Image":
    """Decode one image file or URL to RGB with EXIF orientation applied; raise InputError otherwise.

    `source` is what `input_source(path)` returned, when the caller needs it again; `path` names
    the input in messages either way.

    `min_short_side` lets JPEG decoding skip detail the model will not see: the decoder works at
    1/2, 1/4 or 1/8 scale while the short side stays at least that long, which is most of the
    decoding cost for camera photos.
    """
    from PIL import Image, ImageOps

    if source is None:
        source = input_source(path)
    elif not isinstance(source, str):
        source.seek(0)
    limit = max_pixels()
    if Image.MAX_IMAGE_PIXELS is not None and limit > Image.MAX_IMAGE_PIXELS:
        # Pillow refuses at twice its own limit before we can look; let a raised limit through.
        Image.MAX_IMAGE_PIXELS = limit
    with decoding(path, source), warnings.catch_warnings():
        # Pillow warns between 1x and 2x its limit; ours is checked below, exactly.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(source) as image:
            if image.width * image.height > limit:
                raise Image.DecompressionBombError(f"{image.width}x{image.height}")
            # No seek: an image opens at its first frame, and for a PSD "frame 0" would be
            # outside the sequence (its frames are layers 1..n; what opens is the composite).
            if min_short_side and image.format == "JPEG":
                short = min(image.size)
                if short >= 2 * min_short_side:
                    scale = min_short_side / short
                    image.draft("RGB", (math.ceil(image.width * scale), math.ceil(image.height * scale)))
            image.load()
            image = ImageOps.exif_transpose(image)
            return to_rgb(image)
