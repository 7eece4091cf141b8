"""Write the small seed corpora: `python fuzz/seeds.py` -> fuzz/seeds/<harness>/.

Seeds are files ptm reads correctly, each a few kilobytes at most, made by the libraries that
write such files in the wild (torch.save, numpy, safetensors, h5py, Pillow, ptm's own result
writers). Rerunning rewrites them; the fuzzer mutates them (run.py) and CI replays them (replay.py).
"""

from __future__ import annotations

import io
import shutil
import sys
from pathlib import Path

FUZZ_DIR = Path(__file__).resolve().parent
if str(FUZZ_DIR.parent) not in sys.path:
    sys.path.insert(0, str(FUZZ_DIR.parent))

SEEDS = FUZZ_DIR / "seeds"


def _torch_seeds(legacy: bool) -> dict[str, bytes]:
    import torch

    torch.manual_seed(0)
    weight = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    objects = {
        "tensor": torch.arange(6, dtype=torch.int64).reshape(2, 3),
        "state_dict": {"layer.weight": weight, "layer.bias": torch.zeros(3), "tied": weight,
                       "view": weight[1:, ::2], "half": torch.ones(2, 2, dtype=torch.float16)},
        "nested": {"epoch": 3, "state_dict": {"w": torch.tensor([1.0, float("nan"), float("inf")])},
                   "names": ["a", "b"]},
        "bool_and_complex": {"mask": torch.tensor([True, False]), "z": torch.tensor([1 + 2j])},
        "scalar": torch.tensor(3.5),
    }
    seeds = {}
    for name, obj in objects.items():
        buffer = io.BytesIO()
        torch.save(obj, buffer, _use_new_zipfile_serialization=not legacy)
        seeds[f"{name}.pt"] = buffer.getvalue()
    return seeds


def _numpy_arrays() -> dict:
    import numpy as np

    return {
        "f4": np.arange(12, dtype="<f4").reshape(3, 4),
        "i8_big_endian": np.arange(5, dtype=">i8"),
        "u1_fortran": np.asfortranarray(np.arange(6, dtype=np.uint8).reshape(2, 3)),
        "bool": np.array([True, False, True]),
        "f2_nan": np.array([1.0, np.nan, np.inf, -0.0], dtype=np.float16),
        "scalar": np.array(7.25),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "c8": np.array([1 + 1j, 2 - 1j], dtype=np.complex64),
    }


def _npy_seeds() -> dict[str, bytes]:
    import numpy as np

    seeds = {}
    for name, array in _numpy_arrays().items():
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        seeds[f"{name}.npy"] = buffer.getvalue()
    return seeds


def _npz_seeds() -> dict[str, bytes]:
    import numpy as np

    arrays = _numpy_arrays()
    seeds = {}
    for name, save in (("stored", np.savez), ("deflated", np.savez_compressed)):
        buffer = io.BytesIO()
        save(buffer, **arrays)
        seeds[f"{name}.npz"] = buffer.getvalue()
    buffer = io.BytesIO()
    np.savez(buffer, np.arange(3))
    seeds["one_array.npz"] = buffer.getvalue()
    return seeds


def _safetensors_seeds() -> dict[str, bytes]:
    import numpy as np
    from safetensors.numpy import save

    arrays = {k: np.ascontiguousarray(v) for k, v in _numpy_arrays().items()
              if v.dtype.kind != "c" and v.dtype.byteorder != ">" and v.ndim}
    return {"arrays.safetensors": save(arrays, metadata={"format": "np"}),
            "one.safetensors": save({"w": np.ones((2, 2), dtype=np.float32)})}


def _hdf5_bytes(fill) -> bytes:
    import h5py

    buffer = io.BytesIO()
    with h5py.File(buffer, "w", track_order=True) as f:
        fill(f)
    return buffer.getvalue()


def _hdf5_seeds() -> dict[str, bytes]:
    import h5py
    import numpy as np

    def plain(f):
        f.create_dataset("data", data=np.arange(12, dtype=np.float32).reshape(3, 4))
        f.attrs["note"] = "seed"

    def groups(f):
        g = f.create_group("model/layer1")
        g.create_dataset("weight", data=np.ones((2, 3), dtype=np.float64), chunks=(1, 3), compression="gzip")
        g.create_dataset("bias", data=np.zeros(2, dtype=">i4"))
        f.create_dataset("scalar", data=3.0)
        f.create_dataset("text", data="hello", dtype=h5py.string_dtype())
        f.create_dataset("null", shape=None, dtype="f4")
        f["soft"] = h5py.SoftLink("/model/layer1/weight")
        f["model"].attrs["epochs"] = 10

    def odd(f):
        f.create_dataset("compound", data=np.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")]))
        f.create_dataset("bools", data=np.array([True, False]))
        f.create_dataset("resizable", data=np.arange(4), maxshape=(None,), chunks=(2,), shuffle=True,
                         fletcher32=True)
        f.create_dataset("empty", shape=(0, 2), dtype="u2")

    return {"plain.h5": _hdf5_bytes(plain), "groups.h5": _hdf5_bytes(groups), "odd.h5": _hdf5_bytes(odd)}


def _image_seeds() -> dict[str, bytes]:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8), "RGB")
    seeds = {}

    def save(name, image, fmt, **kwargs):
        buffer = io.BytesIO()
        image.save(buffer, fmt, **kwargs)
        seeds[name] = buffer.getvalue()

    save("rgb.png", rgb, "PNG")
    save("rgba.png", rgb.convert("RGBA"), "PNG")
    save("grey16.png", Image.fromarray(np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000), "PNG")
    save("photo.jpg", rgb, "JPEG", quality=50)
    save("progressive.jpg", rgb, "JPEG", progressive=True)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: ptm applies EXIF orientation
    save("rotated.jpg", rgb, "JPEG", exif=exif)
    frames = [rgb.convert("P"), rgb.transpose(Image.Transpose.FLIP_LEFT_RIGHT).convert("P")]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    seeds["animated.gif"] = buffer.getvalue()
    save("palette_transparent.png", rgb.convert("P"), "PNG", transparency=0)
    save("image.tif", rgb, "TIFF", compression="tiff_lzw")
    save("float.tif", Image.fromarray(rng.random((6, 5), dtype=np.float32), "F"), "TIFF")
    save("image.bmp", rgb, "BMP")
    save("image.webp", rgb, "WEBP", quality=50)
    save("icon.ico", rgb, "ICO", sizes=[(16, 16), (8, 8)])
    save("cmyk.jpg", rgb.convert("CMYK"), "JPEG")
    save("image.ppm", rgb, "PPM")
    save("la.png", rgb.convert("LA"), "PNG")
    return seeds


def _video_seeds() -> dict[str, bytes]:
    """Tiny clips in every container ptm reads (3 frames, 32 x 24), with and without audio, and
    moving pictures; FFmpeg itself is not instrumented, so these seeds carry its variety."""
    from fractions import Fraction

    import av
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    pictures = [rng.integers(0, 255, (24, 32, 3), dtype=np.uint8) for _ in range(3)]
    seeds = {}
    kinds = (("h264_aac.mp4", "mp4", "libx264", "aac"), ("vp9_opus.webm", "webm", "libvpx-vp9", "libopus"),
             ("mpeg4.avi", "avi", "mpeg4", None), ("h264.mkv", "matroska", "libx264", None),
             ("mjpeg.mov", "mov", "mjpeg", None))
    for name, container, codec, audio in kinds:
        buffer = io.BytesIO()
        with av.open(buffer, "w", format=container) as out:
            video = out.add_stream(codec, rate=10)
            video.width, video.height = 32, 24
            video.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
            sound = None
            if audio is not None:
                sound = out.add_stream(audio, rate=48000)
                sound.layout = "mono"
            for picture in pictures:
                for packet in video.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                    out.mux(packet)
            if sound is not None:
                for start in range(0, 14400, 960):
                    chunk = av.AudioFrame.from_ndarray(np.zeros((1, 960), np.float32), format="flt", layout="mono")
                    chunk.sample_rate, chunk.pts, chunk.time_base = 48000, start, Fraction(1, 48000)
                    for packet in sound.encode(chunk):
                        out.mux(packet)
            for stream in (video, sound):
                if stream is not None:
                    for packet in stream.encode(None):
                        out.mux(packet)
        seeds[name] = buffer.getvalue()
    frames = [Image.fromarray(p) for p in pictures]
    for name, fmt in (("moving.gif", "GIF"), ("moving.webp", "WEBP"), ("moving.png", "PNG")):
        buffer = io.BytesIO()
        frames[0].save(buffer, fmt, save_all=True, append_images=frames[1:], duration=[40, 80, 120], loop=0)
        seeds[name] = buffer.getvalue()
    return seeds


def _results_seeds() -> dict[str, dict[str, bytes]]:
    """Result files ptm classify writes: HDF5 working and final layouts, jsonl, csv, tsv."""
    import tempfile

    sys.path.insert(0, str(FUZZ_DIR))
    import harnesses

    from ptmcli.results import BatchOutput, Classification, Prediction

    info, rows = harnesses.result_info(), harnesses.result_rows()
    ok = Classification("a.jpg", (Prediction(1, 2, "great white shark", 0.75), Prediction(2, 0, "tench", 0.125)))
    failed = Classification("b.jpg", error="cannot decode image (truncated)")
    last = Classification("c.jpg", (Prediction(1, 1, "goldfish", 0.5), Prediction(2, 3, "tiger shark", 0.25)))
    seeds: dict[str, dict[str, bytes]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for suffix in (".h5", ".jsonl", ".csv", ".tsv"):
            found = {}
            for name, batches in (("partial", [([0, 1], [ok, failed])]),
                                  ("complete", [([0, 1], [ok, failed]), ([2], [last])])):
                path = Path(tmp) / f"{name}{suffix}"
                results = _open_new(path, rows, info)
                for local_rows, results_of in batches:
                    results.write(local_rows, BatchOutput(results_of))
                results.close()
                found[f"{name}{suffix}"] = path.read_bytes()
            seeds[suffix] = found
    return seeds


def _open_new(path, rows, info):
    try:
        from ptmcli.sinks.results import open_results
    except ImportError:
        from ptmcli.sinks.resultfile import open_results
    return open_results(path, rows, info, resume=False)


def _weight_seeds(generator: bool) -> dict[str, bytes]:
    import torch

    if generator:
        state = {"model.1.weight": torch.zeros(4, 3, 1, 1), "model.1.bias": torch.zeros(4)}
    else:
        state = {"conv1.weight": torch.zeros(2, 3, 1, 1), "fc.weight": torch.zeros(3, 2), "fc.bias": torch.zeros(3)}
    seeds = {}
    for name, obj in (("state_dict.pth", state), ("wrapped.pth", {"state_dict": state, "epoch": 1}),
                      ("list.pth", [torch.zeros(1)])):
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        seeds[name] = buffer.getvalue()
    buffer = io.BytesIO()
    torch.save(state, buffer, _use_new_zipfile_serialization=False)
    seeds["legacy.pth"] = buffer.getvalue()
    return seeds


def all_seeds() -> dict[str, dict[str, bytes]]:
    images = _image_seeds()
    results = _results_seeds()
    generator = _weight_seeds(generator=True)
    return {
        "tensor_pt_zip": _torch_seeds(legacy=False),
        "tensor_pt_legacy": _torch_seeds(legacy=True),
        "tensor_npy": _npy_seeds(),
        "tensor_npz": _npz_seeds(),
        "tensor_safetensors": _safetensors_seeds(),
        "tensor_hdf5": _hdf5_seeds(),
        "export_hdf5": {**_npy_seeds(), "rgb.png": images["rgb.png"], **_torch_seeds(legacy=False)},
        "image_classify": images,
        "image_zebrafy": images,
        "video_zebrafy": _video_seeds(),
        "results_hdf5": results[".h5"],
        "results_jsonl": results[".jsonl"],
        "results_csv": results[".csv"],
        "results_tsv": results[".tsv"],
        "weights_classifier": _weight_seeds(generator=False),
        "weights_generator": generator,
        "weights_cli": generator,
    }


def main() -> None:
    wanted = sys.argv[1:]  # harness names: rewrite only theirs (default: all)
    for harness, files in all_seeds().items():
        if wanted and harness not in wanted:
            continue
        folder = SEEDS / harness
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for name, data in files.items():
            (folder / name).write_bytes(data)
        print(f"{harness}: {len(files)} seeds, {sum(map(len, files.values())):,} bytes")


if __name__ == "__main__":
    main()
