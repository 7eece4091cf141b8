"""Decoding rules: every Pillow mode to RGB, EXIF orientation, first frames, hostile files."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from ptmcli.errors import InputError
from ptmcli.pipeline.inputs import InputItem, collect_inputs
from ptmcli.pixels.decode import open_image


def save(image: Image.Image, path, **kwargs):
    image.save(path, **kwargs)
    return str(path)


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGBA", "CMYK", "I;16", "I", "F", "YCbCr", "RGBX"])
def test_every_mode_becomes_rgb(tmp_path, mode):
    base = Image.linear_gradient("L").resize((40, 30)).convert("RGB")
    image = base.convert(mode) if mode not in ("I;16", "I", "F") else base.convert("L").convert(mode)
    fmt = "TIFF" if mode in ("CMYK", "I;16", "I", "F", "YCbCr", "RGBX", "LA") else "PNG"
    path = save(image, tmp_path / f"x.{fmt.lower()}", format=fmt)
    out = open_image(path)
    assert out.mode == "RGB" and out.size == (40, 30)


def test_sixteen_bit_uses_the_full_range(tmp_path):
    array = np.full((8, 8), 65535, dtype=np.uint16)
    array[:4] = 0
    path = save(Image.fromarray(array), tmp_path / "deep.png")
    out = np.asarray(open_image(path))
    assert out[0, 0, 0] == 0 and out[7, 7, 0] == 255


def test_transparent_pixels_are_white(tmp_path):
    image = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    out = np.asarray(open_image(save(image, tmp_path / "clear.png")))
    assert (out == 255).all()


def test_palette_with_transparency(tmp_path):
    image = Image.new("P", (4, 4), 0)
    image.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    image.putpixel((0, 0), 1)
    path = save(image, tmp_path / "pal.png", transparency=0)
    out = np.asarray(open_image(path))
    assert tuple(out[0, 0]) == (10, 200, 30) and tuple(out[1, 1]) == (255, 255, 255)


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (60, 20), "red")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    path = save(image, tmp_path / "rotated.jpg", exif=exif)
    assert open_image(path).size == (20, 60)


def test_animated_gif_uses_first_frame(tmp_path):
    frames = [Image.new("RGB", (10, 10), c) for c in ("blue", "red", "green")]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    r, g, b = np.asarray(open_image(str(path)))[5, 5]
    assert b > 200 and r < 50


def test_jpeg_draft_keeps_the_short_side(tmp_path):
    path = save(Image.new("RGB", (2000, 1200), "gray"), tmp_path / "big.jpg")
    drafted = open_image(path, min_short_side=256)
    assert min(drafted.size) >= 256 and drafted.size[0] < 2000


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", "not an image"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "not an image"),
        (bytes(range(256)) * 20, "not an image"),
    ],
)
def test_hostile_bytes_are_input_errors(tmp_path, content, reason):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(InputError) as info:
        open_image(str(path))
    assert str(path) in info.value.message
    assert f"{path}: {reason} Pillow can read" == info.value.message


def test_truncated_jpeg(tmp_path):
    buffer = io.BytesIO()
    Image.effect_noise((300, 200), 50).convert("RGB").save(buffer, "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(InputError, match="cut.jpg"):
        open_image(str(path))


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    path = save(Image.new("L", (200, 200)), tmp_path / "bomb.png")
    monkeypatch.setenv("PTM_MAX_PIXELS", "10000")
    with pytest.raises(InputError, match="decompression bomb"):
        open_image(path)
    monkeypatch.setenv("PTM_MAX_PIXELS", "40000")
    assert open_image(path).size == (200, 200)


def test_collect_sorts_folders_and_keeps_named_files(tmp_path):
    (tmp_path / "b").mkdir()
    for name in ("b/2.JPG", "b/1.png", "a.webp", "skip.txt"):
        (tmp_path / name).write_bytes(b"x")
    named = tmp_path / "skip.txt"
    items = list(collect_inputs([str(tmp_path), str(named), str(tmp_path / "missing.png")]))
    assert [i.path.replace(str(tmp_path), "") for i in items] == [
        "/a.webp", "/b/1.png", "/b/2.JPG", "/skip.txt", "/missing.png"
    ]
    assert items[-1] == InputItem(str(tmp_path / "missing.png"), error="no such file or directory")


def test_collect_reads_stdin_lines():
    stdin = io.StringIO("/nope/a.jpg\n\n/nope/b.jpg\r\n")
    assert [i.path for i in collect_inputs(["-"], stdin)] == ["/nope/a.jpg", "/nope/b.jpg"]
