"""A user's horse -> zebra script with ONNX Runtime: Pillow + NumPy, no torch at run time.

    python zebra_onnxruntime.py generator.onnx IN_DIR OUT_DIR [GLOB]     (GLOB: *.jpg unless given)

The ONNX file has dynamic height and width (exported once with torch.onnx.export); pictures are
resized to a short side of 256, padded to a multiple of 4 by reflection, scaled to [-1, 1],
translated one at a time and cropped back, as the book's chapter 2.2 does with torch.
"""

import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image


def load(path, short=256):
    image = Image.open(path).convert("RGB")
    w, h = image.size
    if w <= h:
        size = (short, int(short * h / w))
    else:
        size = (int(short * w / h), short)
    return np.asarray(image.resize(size, Image.BILINEAR))


def to_input(pixels):
    h, w = pixels.shape[:2]
    x = pixels.astype(np.float32).transpose(2, 0, 1)[None] / 127.5 - 1.0
    pad_h, pad_w = (-h) % 4, (-w) % 4
    x = np.pad(x, ((0, 0), (0, 0), (0, pad_h), (0, pad_w)), mode="reflect")
    return x, h, w


def to_picture(y, h, w):
    y = y[0, :, :h, :w].transpose(1, 2, 0)
    return Image.fromarray(np.clip(np.rint((y + 1.0) * 127.5), 0, 255).astype(np.uint8))


def main():
    model, source, target = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    target.mkdir(parents=True, exist_ok=True)
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    for path in sorted(source.glob(sys.argv[4] if len(sys.argv) > 4 else "*.jpg")):
        x, h, w = to_input(load(path))
        y = session.run(None, {name: x})[0]
        to_picture(y, h, w).save(target / f"{path.stem}_zebra.png")


if __name__ == "__main__":
    main()
