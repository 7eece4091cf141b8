"""The horse -> zebra generator on files: decode, resize, pad, translate, crop back, in batches
that fit the device's memory. The network itself is in cyclegan.py."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch.nn import functional as F

from ptmcli.errors import InputError
from ptmcli.models.cyclegan import load_generator
from ptmcli.pipeline.images import decoding, input_source, max_pixels, open_image

if TYPE_CHECKING:
    from typing import BinaryIO

    import numpy as np
    from PIL import Image

# The downsampling path halves each side twice, so the generator maps an H x W input to exactly
# H x W only when both are multiples of 4.
SIDE_MULTIPLE = 4
# The 1/4-scale feature map must be wider than the residual blocks' reflection padding (1 pixel).
MIN_SIDE = 8
# Padded input pixels per forward pass. On the CPU a forward pass peaks near 900 bytes per pixel
# (64-channel full-resolution maps plus convolution workspace): 2 megapixels is about 1.9 GB, and
# a 3000 x 2000 photo (about 6 GB) runs on its own.
DEFAULT_PIXEL_BUDGET = 1 << 21


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
    from PIL import Image

    source = input_source(path)  # a URL is downloaded once, for the pixels and the alpha both
    image: Image.Image = open_image(path, min_short_side=short_side or None, source=source)
    size = processed_size(*image.size, short_side)
    if size[0] * size[1] > max_pixels():
        # A sliver (5 x 16,000,000) resized to a 256 short side would be hundreds of gigabytes.
        raise InputError(f"{path}: {image.width}x{image.height} resized to a short side of {short_side} "
                         f"would be {size[0] * size[1]:,} pixels, more than {max_pixels():,}; "
                         "set PTM_MAX_PIXELS to allow it, or crop it first")
    if size != image.size:
        image = image.resize(size, Image.BILINEAR)
    with decoding(path, source):  # the second decode, for transparency, under the same boundary
        alpha = _alpha_channel(source, size)
    return Prepared(rgb=np.asarray(image), alpha=alpha)


def _pad_amounts(height: int, width: int) -> tuple[int, int]:
    def padded(side: int) -> int:
        return max(MIN_SIDE, math.ceil(side / SIDE_MULTIPLE) * SIDE_MULTIPLE)

    return padded(height) - height, padded(width) - width


def pad_for_generator(batch: torch.Tensor) -> torch.Tensor:
    """Pad the bottom and right edges to sides the generator maps one-to-one (crop back after)."""
    height, width = batch.shape[-2:]
    pad_h, pad_w = _pad_amounts(height, width)
    if not (pad_h or pad_w):
        return batch
    # Mirroring continues the picture's texture, so the borders normalise like the rest; it needs
    # a side longer than the pad, so slivers a few pixels wide repeat their edge instead.
    mode = "reflect" if min(height, width) > max(pad_h, pad_w) else "replicate"
    return F.pad(batch, (0, pad_w, 0, pad_h), mode=mode)


class Zebrafier:
    """A horse -> zebra generator, loaded once, on one device."""

    def __init__(self, weights_path: Path, device: "torch.device", short_side: int = 256,
                 pixel_budget: int = DEFAULT_PIXEL_BUDGET, label: str = "the CycleGAN generator",
                 dtype: "torch.dtype | None" = None, compile: bool = False):
        self.device = device
        self.short_side = short_side
        self.pixel_budget = pixel_budget
        self.dtype = dtype or torch.float32
        # Weights cast, not autocast: InstanceNorm in bf16 is well within 8-bit output precision,
        # and half-size weights and activations halve the memory traffic that dominates here.
        self.model = load_generator(weights_path, label).to(device=device, dtype=self.dtype)
        if compile:
            from ptmcli.models.classifier import compile_frozen

            self.model = compile_frozen(self.model)
        # Measured peak on the CPU: about 14 bytes per pixel per base channel (896 at ngf 64).
        self.bytes_per_pixel = 14 * self.model.model[1].out_channels

    def prepare(self, path: str) -> Prepared:
        return prepare_image(path, self.short_side)

    def translate(self, arrays: list["np.ndarray"]) -> list["np.ndarray"]:
        """Same-size uint8 HWC RGB arrays -> generator outputs of the same size."""

        height, width = arrays[0].shape[:2]
        pad_h, pad_w = _pad_amounts(height, width)
        pixels = (height + pad_h) * (width + pad_w)
        per_pass = max(1, self.pixel_budget // pixels)
        if self.device.type == "cpu":
            # Refuse up front rather than be killed by the kernel's OOM killer halfway through.
            available = available_memory()
            need = self.bytes_per_pixel * pixels * min(per_pass, len(arrays))
            if available is not None and need > available:
                raise MemoryError(f"needs about {need / 2**30:.1f} GiB, {available / 2**30:.1f} GiB available")
        outputs: list[np.ndarray] = []
        for start in range(0, len(arrays), per_pass):
            outputs.extend(self._forward(arrays[start:start + per_pass]))
        return outputs

    def _forward(self, arrays: list["np.ndarray"]) -> list["np.ndarray"]:
        import numpy as np

        height, width = arrays[0].shape[:2]
        with torch.inference_mode():
            batch = torch.from_numpy(np.stack(arrays)).to(self.device)
            # CycleGAN was trained on ToTensor() then Normalize(0.5, 0.5): pixels in [-1, 1].
            batch = batch.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0).contiguous()
            out = self.model(pad_for_generator(batch).to(self.dtype))[:, :, :height, :width].float()
            # ...and its outputs mapped back with (y + 1) / 2 * 255.
            out = out.add_(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)
            out = out.permute(0, 2, 3, 1).cpu().numpy()
        return list(out)

    def translate_each(self, prepared: list[Prepared], paths: list[str]) -> list["np.ndarray | str"]:
        """Outputs of same-size inputs; for an input too large for the device, the message why.

        A batch that does not fit is retried one input at a time, so one huge photo costs only
        itself.
        """
        try:
            return self.translate([p.rgb for p in prepared])
        except (torch.OutOfMemoryError, MemoryError, RuntimeError) as exc:
            if _too_large(exc) is None:
                raise
        return [self._one_at_a_time(p, path) for p, path in zip(prepared, paths)]

    def _one_at_a_time(self, prepared: Prepared, path: str) -> "np.ndarray | str":
        """After a batch was too large: this input alone, or the message why it cannot be done."""
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        try:
            return self.translate([prepared.rgb])[0]
        except (torch.OutOfMemoryError, MemoryError, RuntimeError) as exc:
            problem = _too_large(exc)
            if problem is None:
                raise
            height, width = prepared.rgb.shape[:2]
            where = {"cuda": "GPU", "cpu": "CPU"}.get(self.device.type, self.device.type.upper())
            fixes = "a smaller --size (e.g. --size 512)"
            if self.device.type != "cpu":
                fixes += " or --device cpu"
            what = f"out of {where} memory" if problem == "memory" else f"too large for the {where}'s kernels"
            detail = f" ({exc})" if isinstance(exc, MemoryError) and str(exc) else ""
            return f"{path}: {what} at {width}x{height}{detail}; try {fixes}"
        finally:
            if self.device.type == "cuda":
                torch.cuda.empty_cache()


def available_memory() -> int | None:
    """Bytes the kernel says can be allocated without swapping (Linux), else None (unknown)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _too_large(exc: BaseException) -> str | None:
    """'memory' or 'indexing' when `exc` says the input was too big for the device, else None."""
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return "memory"
    text = str(exc)
    if "out of memory" in text or "can't allocate memory" in text or "not enough memory" in text:
        return "memory"
    # CUDA kernels that index with 32 bits refuse tensors over 2**31 elements (64 channels of a
    # 6000 x 6000 picture) whatever memory is free.
    if "32-bit index" in text or "32 bit index" in text:
        return "indexing"
    return None
