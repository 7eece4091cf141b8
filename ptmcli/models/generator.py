"""The horse -> zebra generator on files: decode, resize, pad, translate, crop back, in batches
that fit the machine's memory. What computes the forward pass is a subclass: `Zebrafier` (torch,
here) or the exported runtimes (runtimes/exported_generator.py); the pixels (pixels/translate.py),
the memory budget and the one-at-a-time retry are the same for all. The network is in cyclegan.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ptmcli.models.device import decode_workers, fp32_stays_fp32
from ptmcli.pixels.recipes import TranslatePreprocess
from ptmcli.pixels.translate import Prepared, generator_input, generator_output, pad_amounts, prepare_image
from ptmcli.pixels.translate import processed_size as processed_size

if TYPE_CHECKING:
    import numpy as np
    import torch

# Padded input pixels per forward pass. On the CPU a forward pass peaks near 900 bytes per pixel
# (64-channel full-resolution maps plus convolution workspace): 2 megapixels is about 1.9 GB, and
# a 3000 x 2000 photo (about 6 GB) runs on its own.
DEFAULT_PIXEL_BUDGET = 1 << 21
BOOK_RECIPE = TranslatePreprocess()
SIDE_MULTIPLE = BOOK_RECIPE.side_multiple


class GeneratorBackend:
    """Same-size pictures -> generator outputs of the same size, whatever runs the network.

    Subclasses set `device`, `runtime`, `precision`, `bytes_per_pixel` and implement `_run`
    (float32 NCHW in the pixel range -> float NCHW).
    """

    runtime = "torch"
    precision = "fp32"
    device: "str | torch.device" = "cpu"
    bytes_per_pixel = 14 * 64

    def __init__(self, short_side: int = 256, pixel_budget: int = DEFAULT_PIXEL_BUDGET,
                 recipe: TranslatePreprocess = BOOK_RECIPE):
        self.short_side = short_side
        self.pixel_budget = pixel_budget
        self.recipe = recipe

    @property
    def device_type(self) -> str:
        return getattr(self.device, "type", str(self.device))

    @property
    def decode_workers(self) -> int:
        return decode_workers(self.device_type)

    def prepare(self, path: str) -> Prepared:
        return prepare_image(path, self.short_side)

    def translate(self, arrays: list["np.ndarray"]) -> list["np.ndarray"]:
        """Same-size uint8 HWC RGB arrays -> generator outputs of the same size."""
        height, width = arrays[0].shape[:2]
        pad_h, pad_w = pad_amounts(height, width, self.recipe)
        pixels = (height + pad_h) * (width + pad_w)
        per_pass = max(1, self.pixel_budget // pixels)
        if self.device_type == "cpu":
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
        height, width = arrays[0].shape[:2]
        return generator_output(self._run(generator_input(arrays, self.recipe)), height, width, self.recipe)

    def _run(self, batch: "np.ndarray") -> "np.ndarray":
        raise NotImplementedError

    def _release(self) -> None:
        """Give cached device memory back before and after a retry (torch on a GPU)."""

    def translate_each(self, prepared: list[Prepared], paths: list[str]) -> list["np.ndarray | str"]:
        """Outputs of same-size inputs; for an input too large for the device, the message why.

        A batch that does not fit is retried one input at a time, so one huge photo costs only
        itself.
        """
        try:
            return self.translate([p.rgb for p in prepared])
        except Exception as exc:
            if _too_large(exc) is None:
                raise
        return [self._one_at_a_time(p, path) for p, path in zip(prepared, paths)]

    def _one_at_a_time(self, prepared: Prepared, path: str) -> "np.ndarray | str":
        """After a batch was too large: this input alone, or the message why it cannot be done."""
        self._release()
        try:
            return self.translate([prepared.rgb])[0]
        except Exception as exc:
            problem = _too_large(exc)
            if problem is None:
                raise
            height, width = prepared.rgb.shape[:2]
            kind = self.device_type
            where = {"cuda": "GPU", "cpu": "CPU"}.get(kind, kind.upper())
            fixes = "a smaller --size (e.g. --size 512)"
            if kind != "cpu":
                fixes += " or --device cpu"
            what = f"out of {where} memory" if problem == "memory" else f"too large for the {where}'s kernels"
            detail = f" ({exc})" if isinstance(exc, MemoryError) and str(exc) else ""
            return f"{path}: {what} at {width}x{height}{detail}; try {fixes}"
        finally:
            self._release()


class Zebrafier(GeneratorBackend):
    """A horse -> zebra generator in torch, loaded once, on one device."""

    def __init__(self, weights_path: Path, device: "torch.device", short_side: int = 256,
                 pixel_budget: int = DEFAULT_PIXEL_BUDGET, label: str = "the CycleGAN generator",
                 dtype: "torch.dtype | None" = None, compile: bool = False,
                 recipe: TranslatePreprocess = BOOK_RECIPE):
        import torch

        from ptmcli.models.cyclegan import load_generator

        super().__init__(short_side, pixel_budget, recipe)
        self.device = device
        self.dtype = dtype or torch.float32
        self.precision = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(self.dtype, "fp32")
        if self.dtype == torch.float32:
            fp32_stays_fp32(torch.device(device))  # before the model is built: cuDNN picks its kernels then
        # Weights cast, not autocast: InstanceNorm in bf16 is well within 8-bit output precision,
        # and half-size weights and activations halve the memory traffic that dominates here.
        self.model = load_generator(weights_path, label).to(device=device, dtype=self.dtype)
        # Measured peak on the CPU: about 14 bytes per pixel per base channel (896 at ngf 64).
        self.bytes_per_pixel = 14 * self.model.model[1].out_channels
        if compile:
            from ptmcli.models.classifier import compile_frozen

            # Pictures come in many sizes: one graph with symbolic sizes, not a compile per size.
            self.model = compile_frozen(self.model, dynamic=True)

    def _run(self, batch: "np.ndarray") -> "np.ndarray":
        import torch

        with torch.inference_mode():
            tensor = torch.from_numpy(batch).to(self.device, self.dtype)
            return self.model(tensor).float().cpu().numpy()

    def _release(self) -> None:
        if self.device_type == "cuda":
            import torch

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


_NO_MEMORY = ("out of memory", "can't allocate memory", "not enough memory", "failed to allocate",
              "bad_alloc", "bad allocation")


def _too_large(exc: BaseException) -> str | None:
    """'memory' or 'indexing' when `exc` says the input was too big for the device, else None."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return "memory"
    text = str(exc)
    if any(words in text.lower() for words in _NO_MEMORY):
        return "memory"
    # CUDA kernels that index with 32 bits refuse tensors over 2**31 elements (64 channels of a
    # 6000 x 6000 picture) whatever memory is free.
    if "32-bit index" in text or "32 bit index" in text:
        return "indexing"
    return None
