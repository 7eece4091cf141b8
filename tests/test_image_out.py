"""Output planning and atomic, no-clobber image writes (no model involved)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ptmcli.errors import OutputExists, UsageProblem
from ptmcli.pipeline.inputs import InputItem
from ptmcli.sinks.images import compose, plan_outputs, write_image


def items(*paths: str, root: Path | None = None):
    return [(InputItem(p), root) for p in paths]


def test_one_input_one_file(tmp_path):
    assert plan_outputs(items("a/horse.jpg"), str(tmp_path / "z.webp"), "{stem}_zebra.png") == [tmp_path / "z.webp"]


def test_folder_outputs_mirror_subfolders(tmp_path):
    root = tmp_path / "in"
    planned = plan_outputs(items(str(root / "a.jpg"), str(root / "sub" / "b.PNG"), root=root),
                           str(tmp_path / "out") + "/", "{stem}_zebra.png")
    assert planned == [tmp_path / "out" / "a_zebra.png", tmp_path / "out" / "sub" / "b_zebra.png"]
    named = plan_outputs(items("x/a.jpg"), str(tmp_path / "out2"), "{stem}.{ext}.jpg")
    assert named == [tmp_path / "out2" / "a.jpg.jpg"]


@pytest.mark.parametrize(
    "inputs, output, pattern, message",
    [
        (["a.jpg", "b.jpg"], "z.png", "{stem}_zebra.png", "2 inputs cannot all be written"),
        (["a.jpg"], "z.gif", "{stem}_zebra.png", "cannot tell the image format"),
        (["a.jpg"], "out/", "{stem}_zebra.bmp", "cannot tell the image format"),
        (["a.jpg"], "out/", "{name}.png", "unknown field {name}"),
        (["a.jpg"], "out/", "../{stem}.png", "must be a file name"),
        (["x/a.jpg", "y/a.jpg"], "out/", "{stem}_zebra.png", "same file"),
        (["a.jpg", "a.png"], "out/", "{stem}_zebra.png", "same file"),
        (["out/a.png"], "out/", "{stem}.png", "overwritten by its own output"),
    ],
)
def test_plans_that_are_refused(tmp_path, monkeypatch, inputs, output, pattern, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageProblem, match=message):
        plan_outputs(items(*inputs), output, pattern)


def test_compose_side_by_side_and_alpha():
    out = np.zeros((4, 6, 3), np.uint8)
    src = np.full((4, 6, 3), 255, np.uint8)
    alpha = np.full((4, 6), 7, np.uint8)
    both = compose(out, "PNG", src, alpha)
    assert both.size == (12, 4) and both.mode == "RGBA"
    assert np.asarray(both)[0, 0].tolist() == [255, 255, 255, 7]
    assert compose(out, "JPEG", None, alpha).mode == "RGB"  # JPEG has no alpha: what the model saw


def test_write_refuses_to_replace_and_force_replaces(tmp_path):
    target = tmp_path / "z.png"
    target.write_bytes(b"precious")
    image = Image.new("RGB", (4, 4), "red")
    with pytest.raises(OutputExists):
        write_image(image, target, "PNG")
    assert target.read_bytes() == b"precious"
    write_image(image, target, "PNG", replace=True)
    assert Image.open(target).getpixel((0, 0)) == (255, 0, 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["z.png"]  # no temp files left


def test_a_failure_during_save_leaves_no_file(tmp_path, monkeypatch):
    image = Image.new("RGB", (64, 64), "blue")
    real_save = Image.Image.save

    def half_then_crash(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG\r\n\x1a\n half an image")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", half_then_crash)
    with pytest.raises(OSError, match="disk full"):
        write_image(image, tmp_path / "z.png", "PNG")
    assert list(tmp_path.iterdir()) == []

    monkeypatch.setattr(Image.Image, "save", real_save)
    write_image(image, tmp_path / "z.jpg", "JPEG")
    with Image.open(tmp_path / "z.jpg") as written:
        assert written.format == "JPEG"


def test_written_files_get_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        write_image(Image.new("RGB", (2, 2)), tmp_path / "z.png", "PNG")
    finally:
        os.umask(old)
    assert (tmp_path / "z.png").stat().st_mode & 0o777 == 0o644
