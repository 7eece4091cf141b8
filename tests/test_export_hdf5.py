"""`ptm export-hdf5`: exact round trips, nested groups, images, atomic writes, hostile inputs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from unittest import mock

import h5py
import numpy as np
import pytest
import torch
from conftest import EXAMPLES, ptm_command, shared_file
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensor_helpers import assert_same, ptm_here, write_tensor
from test_inspect_tensor import RunsCode, hostile_files, tensors_

from ptmcli.pipeline.export_hdf5 import ExportOptions, export_hdf5
from ptmcli.sinks.formats import json_safe
from ptmcli.tensorio.readers import open_tensor_file
from ptmcli.tensorio.summary import inspect_file

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HAS_H5LS = shutil.which("h5ls") is not None
HAS_H5DUMP = shutil.which("h5dump") is not None


def read_back(path, key) -> torch.Tensor:
    with open_tensor_file(str(path)) as tfile:
        return tfile.select(key).read(())


def export(args, out, **options):
    errors: list[str] = []
    result = export_hdf5([str(a) for a in args], str(out), ExportOptions(**options), on_error=errors.append)
    return result, errors


def small_state_dict() -> dict:
    g = torch.Generator().manual_seed(0)
    return {
        "conv1.weight": torch.randn(4, 3, 3, 3, generator=g),
        "layer1.0.conv1.weight": torch.randn(4, 4, 3, 3, generator=g),
        "layer1.0.bn1.running_mean": torch.randn(4, generator=g),
        "layer1.0.bn1.num_batches_tracked": torch.tensor(12),
        "fc.weight": torch.randn(10, 4, generator=g),
        "fc.bias": torch.zeros(10),
    }


# --- round trips ---------------------------------------------------------------------------------

@SETTINGS
@given(tensors_(), st.sampled_from(["torch", "torch-legacy", "npy", "safetensors"]),
       st.sampled_from(["none", "gzip", "lzf"]))
def test_every_dtype_and_view_round_trips_exactly(t, fmt, compression):
    if fmt == "npy" and t.dtype == torch.bfloat16 or fmt == "safetensors" and t.dtype == torch.complex64:
        return
    with tempfile.TemporaryDirectory() as folder:
        src = write_tensor(t, Path(folder) / "src.bin", fmt)
        out = Path(folder) / "out.h5"
        result, errors = export([src], out, dataset="t", compression=compression)
        assert errors == [] and result.written
        # --dataset names the one tensor, or the group for a file of named tensors.
        key = "t/x" if fmt == "safetensors" else "t"
        assert [d.name for d in result.datasets] == [key]
        assert_same(read_back(out, key), t.contiguous())
        summary = inspect_file(str(out), key, preview_per_dim=100)
        assert (summary.shape, summary.dtype) == (tuple(t.shape), str(t.dtype).removeprefix("torch."))
        source = inspect_file(str(src), "x" if fmt == "safetensors" else None, preview_per_dim=100)
        assert json_safe(summary.preview) == json_safe(source.preview)  # NaN == NaN here
        # Plain h5py sees ordinary numbers; bfloat16 arrives as float32 with a note of what it was.
        with h5py.File(out) as f:
            stored = f[key][()]
            assert f[key].attrs["torch_dtype"] == str(t.dtype).removeprefix("torch.")
        expected = t.float() if t.dtype == torch.bfloat16 else t
        np.testing.assert_array_equal(np.asarray(stored), expected.numpy())


def test_state_dict_becomes_nested_groups_and_reads_back(run_ptm, tmp_path):
    sd = small_state_dict()
    torch.save(sd, tmp_path / "some_state_dict.pth")
    done = run_ptm("export-hdf5", tmp_path / "some_state_dict.pth", "-o", tmp_path / "sd.h5")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].split("\t") == ["dataset", "shape", "dtype", "stored_as", "source"]
    with h5py.File(tmp_path / "sd.h5") as f:
        assert isinstance(f["layer1"], h5py.Group) and isinstance(f["layer1/0/bn1"], h5py.Group)
        assert f["layer1/0/conv1/weight"].attrs["source_key"] == "layer1.0.conv1.weight"
        for key, value in sd.items():
            np.testing.assert_array_equal(f[key.replace(".", "/")][()], value.numpy())
    source = ptm_here("inspect-tensor", tmp_path / "some_state_dict.pth", "layer1.0.conv1.weight", "-f", "json").json()
    copy = ptm_here("inspect-tensor", tmp_path / "sd.h5", "layer1/0/conv1/weight", "-f", "json").json()
    for field in ("shape", "dtype", "stride", "numel", "stats", "preview", "contiguous"):
        assert copy[field] == source[field], field


@pytest.mark.skipif(not HAS_H5LS, reason="h5ls (Debian hdf5-tools) not installed")
def test_h5ls_lists_the_nested_groups(tmp_path):
    torch.save(small_state_dict(), tmp_path / "sd.pth")
    assert ptm_here("export-hdf5", tmp_path / "sd.pth", "-o", tmp_path / "sd.h5").returncode == 0
    listing = subprocess.run(["h5ls", "-r", str(tmp_path / "sd.h5")], capture_output=True, text=True, check=True).stdout
    names = {line.split()[0]: line.split()[1] for line in listing.splitlines()}
    assert names["/layer1"] == "Group" and names["/layer1/0/conv1"] == "Group"
    assert names["/layer1/0/conv1/weight"] == "Dataset"


@pytest.mark.skipif(not HAS_H5DUMP, reason="h5dump (Debian hdf5-tools) not installed")
def test_h5dump_reads_bfloat16_dimension_labels_and_gzip(tmp_path):
    src = tmp_path / "b.h5"
    with h5py.File(src, "w") as f:
        d = f.create_dataset("x", data=np.array([[1.5, -2.0]], dtype=np.float32))
        d.attrs["torch_dtype"] = "bfloat16"
        d.dims[0].label, d.dims[1].label = "row", "col"
    ran = ptm_here("export-hdf5", src, "-o", tmp_path / "out.h5", "--compression", "gzip", "--level", "9")
    assert ran.returncode == 0, ran.stderr
    dump = subprocess.run(["h5dump", "-d", "/x", str(tmp_path / "out.h5")], capture_output=True, text=True,
                          check=True).stdout
    assert "H5T_IEEE_F32LE" in dump and "1.5, -2" in dump and "bfloat16" in dump and '"row"' in dump
    summary = inspect_file(str(tmp_path / "out.h5"), "x")
    assert summary.dtype == "bfloat16" and summary.names == ("row", "col")
    assert summary.layout["compression"] == "gzip" and summary.layout["compression level"] == 9


def test_ourpoints_to_the_books_coords(tmp_path):
    points = shared_file("ourpoints.t")
    result, errors = export([points], tmp_path / "ourpoints.h5", dataset="coords")
    assert errors == [] and [d.name for d in result.datasets] == ["coords"]
    with h5py.File(tmp_path / "ourpoints.h5") as f, h5py.File(shared_file("ourpoints.hdf5")) as book:
        np.testing.assert_array_equal(f["coords"][()], book["coords"][()])
        np.testing.assert_array_equal(f["coords"][-2:], book["coords"][-2:])


def test_tied_weights_become_hard_links_and_views_copies(tmp_path):
    w = torch.randn(5, 3)
    base = torch.arange(12.0).view(3, 4)
    torch.save({"embed.weight": w, "head.weight": w, "rows": base, "row1": base[1]}, tmp_path / "tied.pt")
    result, errors = export([tmp_path / "tied.pt"], tmp_path / "tied.h5")
    assert errors == []
    links = {d.name: d.link_to for d in result.datasets}
    assert links == {"embed/weight": None, "head/weight": "embed/weight", "rows": None, "row1": None}
    summary = inspect_file(str(tmp_path / "tied.h5"))
    assert [(g.names, g.same_view) for g in summary.shared] == [(("embed/weight", "head/weight"), True)]
    assert_same(read_back(tmp_path / "tied.h5", "row1"), base[1])


def test_plain_values_are_kept_and_others_noted(tmp_path):
    torch.save({"epoch": 7, "lr": 0.1, "name": "run-3", "missing": None, "w": torch.ones(2)}, tmp_path / "ck.pt")
    ran = ptm_here("export-hdf5", tmp_path / "ck.pt", "-o", tmp_path / "ck.h5")
    assert ran.returncode == 0, ran.stderr
    assert "skipped 1" in ran.stderr and "missing" in ran.stderr
    with h5py.File(tmp_path / "ck.h5") as f:
        assert f["epoch"][()] == 7 and f["lr"][()] == 0.1 and f["name"].asstr()[()] == "run-3"
        assert "missing" not in f


def test_hdf5_source_keeps_labels_and_attributes(tmp_path):
    with h5py.File(tmp_path / "in.h5", "w") as f:
        d = f.create_dataset("grp/data", data=np.arange(6, dtype=np.int16).reshape(2, 3))
        d.dims[0].label = "time"
        d.attrs["units"] = "m/s"
        f.create_dataset("grp/labels", data=["a", "b"], dtype=h5py.string_dtype())
    result, errors = export([tmp_path / "in.h5"], tmp_path / "out.h5")
    assert errors == []
    with h5py.File(tmp_path / "out.h5") as f:
        assert f["grp/data"].dims[0].label == "time" and f["grp/data"].attrs["units"] == "m/s"
        assert list(f["grp/labels"].asstr()[()]) == ["a", "b"]
        assert f["grp/data"].attrs["source_key"] == "grp/data"


def test_several_sources_go_under_their_stems(tmp_path):
    torch.save(torch.ones(2), tmp_path / "one.pt")
    np.save(tmp_path / "two.npy", np.zeros(3))
    torch.save({"a.b": torch.ones(1)}, tmp_path / "three.pt")
    result, errors = export([tmp_path / "one.pt", tmp_path / "two.npy", tmp_path / "three.pt"], tmp_path / "o.h5",
                            dataset="run")
    assert errors == []
    assert [d.name for d in result.datasets] == ["run/one", "run/two", "run/three/a/b"]


def test_names_that_cannot_be_both_dataset_and_group(tmp_path):
    torch.save({"a": torch.ones(1), "a.b": torch.ones(1)}, tmp_path / "bad.pt")
    torch.save(torch.ones(1), tmp_path / "good.pt")
    ran = ptm_here("export-hdf5", tmp_path / "bad.pt", tmp_path / "good.pt", "-o", tmp_path / "o.h5")
    assert ran.returncode == 1
    assert "cannot store both 'bad/a' and 'bad/a/b'" in ran.stderr
    with h5py.File(tmp_path / "o.h5") as f:
        assert list(f) == ["good"]


# --- images --------------------------------------------------------------------------------------

def test_images_are_one_batch_preprocessed_as_the_classifier(tmp_path, make_image):
    from PIL import Image
    from torchvision.models import ResNet101_Weights

    folder = tmp_path / "photos"
    make_image("a.png", size=(80, 60), folder=folder)
    make_image("b.jpg", size=(50, 90), folder=folder / "sub")
    (folder / "broken.png").write_bytes(b"not a png")
    ran = ptm_here("export-hdf5", folder, EXAMPLES / "coffee.png", "-o", tmp_path / "imgs.h5")
    assert ran.returncode == 1
    assert ran.stderr.strip().splitlines() == [f"ptm: {folder / 'broken.png'}: not an image Pillow can read"]
    transform = ResNet101_Weights.DEFAULT.transforms()
    with h5py.File(tmp_path / "imgs.h5") as f:
        images, paths = f["images"], list(f["images_paths"].asstr()[()])
        assert images.shape == (3, 3, 224, 224) and images.dtype == np.float32
        assert [d.label for d in images.dims] == ["N", "C", "H", "W"]
        assert images.attrs["model"] == "resnet101"
        assert paths == [str(folder / "a.png"), str(folder / "sub" / "b.jpg"), str(EXAMPLES / "coffee.png")]
        for i, path in enumerate(paths):
            expected = transform(Image.open(path).convert("RGB")).numpy()
            np.testing.assert_allclose(images[i], expected, atol=1e-5)
    summary = inspect_file(str(tmp_path / "imgs.h5"), "images")
    assert summary.names == ("N", "C", "H", "W")


def test_image_dataset_name_and_model(tmp_path):
    result, errors = export([EXAMPLES / "chelsea.png"], tmp_path / "c.h5", dataset="cats", model="efficientnet_lite0")
    assert errors == [] and [d.name for d in result.datasets] == ["cats", "cats_paths"]
    with h5py.File(tmp_path / "c.h5") as f:
        assert f["cats"].attrs["mean"][0] == pytest.approx(127 / 255)


# --- existing files, atomic writes ---------------------------------------------------------------

def test_existing_output_needs_overwrite_or_append(tmp_path):
    torch.save(torch.ones(2), tmp_path / "a.pt")
    torch.save(torch.zeros(3), tmp_path / "b.pt")
    out = tmp_path / "o.h5"
    assert ptm_here("export-hdf5", tmp_path / "a.pt", "-o", out).returncode == 0
    before = out.read_bytes()
    refused = ptm_here("export-hdf5", tmp_path / "b.pt", "-o", out)
    assert refused.returncode == 2 and "--overwrite" in refused.stderr and out.read_bytes() == before
    clash = ptm_here("export-hdf5", tmp_path / "a.pt", "-o", out, "--append")
    assert clash.returncode == 1 and "already exists" in clash.stderr and out.read_bytes() == before
    assert ptm_here("export-hdf5", tmp_path / "b.pt", "-o", out, "--append").returncode == 0
    with h5py.File(out) as f:
        assert sorted(f) == ["a", "b"]
    replaced = ptm_here("export-hdf5", tmp_path / "b.pt", "-o", out, "--append", "--overwrite", "--dataset", "a")
    assert replaced.returncode == 0, replaced.stderr
    with h5py.File(out) as f:
        assert sorted(f) == ["a", "b"] and f["a"].shape == (3,)
    assert ptm_here("export-hdf5", tmp_path / "b.pt", "-o", out, "--overwrite").returncode == 0
    with h5py.File(out) as f:
        assert sorted(f) == ["b"]


def test_force_replaces_and_help_shows_only_force(tmp_path):
    torch.save(torch.ones(2), tmp_path / "a.pt")
    torch.save(torch.zeros(3), tmp_path / "b.pt")
    out = tmp_path / "o.h5"
    assert ptm_here("export-hdf5", tmp_path / "a.pt", "-o", out).returncode == 0
    refused = ptm_here("export-hdf5", tmp_path / "b.pt", "-o", out)
    assert refused.returncode == 2 and "--force" in refused.stderr
    assert ptm_here("export-hdf5", tmp_path / "b.pt", "-o", out, "--force").returncode == 0
    with h5py.File(out) as f:
        assert sorted(f) == ["b"]
    replaced = ptm_here("export-hdf5", tmp_path / "a.pt", "-o", out, "--append", "--force", "--dataset", "b")
    assert replaced.returncode == 0, replaced.stderr
    with h5py.File(out) as f:
        assert sorted(f) == ["b"] and f["b"].shape == (2,)
    shown = ptm_here("export-hdf5", "--help")
    assert "--force" in shown.stdout and "--overwrite" not in shown.stdout


def test_written_datasets_as_tsv_csv_jsonl(tmp_path):
    import csv
    import io

    torch.save({"w": torch.ones(2, 3), "b": torch.ones(1)}, tmp_path / "sd.pt")
    out = tmp_path / "o.h5"
    tsv = ptm_here("export-hdf5", tmp_path / "sd.pt", "-o", out, "-f", "tsv")
    assert tsv.returncode == 0, tsv.stderr
    source = str(tmp_path / "sd.pt")
    assert [line.split("\t") for line in tsv.stdout.splitlines()] == [
        ["dataset", "shape", "dtype", "stored_as", "source"],
        ["/w", "(2, 3)", "float32", "float32", f"{source}:w"], ["/b", "(1,)", "float32", "float32", f"{source}:b"]]
    assert ptm_here("export-hdf5", tmp_path / "sd.pt", "-o", out, "--force", "-f", "text").stdout == tsv.stdout
    listing = ptm_here("export-hdf5", tmp_path / "sd.pt", "-o", out, "--force", "-f", "csv").stdout
    assert list(csv.reader(io.StringIO(listing))) == [line.split("\t") for line in tsv.stdout.splitlines()]
    whole = ptm_here("export-hdf5", tmp_path / "sd.pt", "-o", out, "--force", "-f", "json").json()
    lines = ptm_here("export-hdf5", tmp_path / "sd.pt", "-o", out, "--force", "-f", "jsonl").stdout.splitlines()
    assert [json.loads(line) for line in lines] == whole["datasets"]


def test_bad_inputs_are_reported_in_input_order(tmp_path):
    torch.save(torch.ones(2), tmp_path / "good.pt")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    sources = [tmp_path / "missing.pt", EXAMPLES / "coffee.png", tmp_path / "broken.png", tmp_path / "good.pt",
               tmp_path / "gone.pt"]
    ran = ptm_here("export-hdf5", *sources, "-o", tmp_path / "o.h5")
    assert ran.returncode == 1
    named = [line.split(": ")[1] for line in ran.stderr.splitlines()]
    assert named == [str(tmp_path / "missing.pt"), str(tmp_path / "broken.png"), str(tmp_path / "gone.pt")]
    with h5py.File(tmp_path / "o.h5") as f:
        assert sorted(f) == ["good", "images", "images_paths"]
        assert list(f["images_paths"].asstr()[()]) == [str(EXAMPLES / "coffee.png")]


def test_interrupted_export_leaves_nothing_and_keeps_the_old_file(tmp_path):
    torch.save(small_state_dict(), tmp_path / "sd.pt")
    out = tmp_path / "o.h5"
    export([tmp_path / "sd.pt"], out)
    before = out.read_bytes()
    with mock.patch("ptmcli.tensorio.hdf5_writer.HDF5Writer._write_item", side_effect=KeyboardInterrupt):
        with pytest.raises(KeyboardInterrupt):
            export([tmp_path / "sd.pt"], out, force=True)
        with pytest.raises(KeyboardInterrupt):
            export([tmp_path / "sd.pt"], tmp_path / "new.h5")
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.h5", "sd.pt"]


def test_new_files_get_normal_permissions(tmp_path):
    torch.save(torch.ones(1), tmp_path / "a.pt")
    export([tmp_path / "a.pt"], tmp_path / "o.h5")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(tmp_path / "o.h5").st_mode) == 0o666 & ~umask


def test_compression_and_chunk_options(tmp_path):
    torch.save(torch.randn(64, 32), tmp_path / "a.pt")
    result, errors = export([tmp_path / "a.pt"], tmp_path / "o.h5", compression="lzf", chunks=(16, 32))
    with h5py.File(tmp_path / "o.h5") as f:
        assert f["a"].compression == "lzf" and f["a"].chunks == (16, 32)
    bad = ptm_here("export-hdf5", tmp_path / "a.pt", "-o", tmp_path / "x.h5", "--chunks", "none", "-c", "gzip")
    assert bad.returncode == 2 and not (tmp_path / "x.h5").exists()
    assert ptm_here("export-hdf5", tmp_path / "a.pt", "-o", tmp_path / "x.h5", "--level", "3").returncode == 2


# --- hostile inputs ------------------------------------------------------------------------------

def test_bad_inputs_are_one_line_each_and_the_rest_is_exported(run_ptm, tmp_path):
    marker = tmp_path / "CODE-RAN"
    torch.save({"w": RunsCode(str(marker))}, tmp_path / "evil.pt")
    hostile = hostile_files(tmp_path)
    torch.save(torch.ones(2), tmp_path / "good.pt")
    sources = [tmp_path / "evil.pt", *(tmp_path / name for name in hostile), tmp_path / "good.pt", tmp_path / "nope.pt"]
    done = run_ptm("export-hdf5", *sources, "-o", tmp_path / "o.h5", "--format", "json")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == len(sources) - 1, done.stderr
    assert "refused" in lines[0] and "mkdir" in lines[0]
    assert not marker.exists()
    with h5py.File(tmp_path / "o.h5") as f:
        assert list(f) == ["good"]


def test_nothing_exported_means_no_file(tmp_path):
    (tmp_path / "junk.bin").write_bytes(b"\x00" * 100)
    ran = ptm_here("export-hdf5", tmp_path / "junk.bin", "-o", tmp_path / "o.h5")
    assert ran.returncode == 1 and "neither a tensor file" in ran.stderr
    assert not (tmp_path / "o.h5").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.bin"]


def test_fail_fast_writes_nothing(tmp_path):
    torch.save(torch.ones(1), tmp_path / "good.pt")
    ran = ptm_here("export-hdf5", tmp_path / "missing.pt", tmp_path / "good.pt", "-o", tmp_path / "o.h5", "--fail-fast")
    assert ran.returncode == 1 and not (tmp_path / "o.h5").exists()


def test_bfloat16_round_trip_is_bit_exact(tmp_path):
    # 1.5, -NaN, NaN payload, tiny, -0
    bits = torch.tensor([0x3FC0, -0x0040, 0x7FC1, 0x0001, -0x8000], dtype=torch.int16)
    t = bits.view(torch.bfloat16)
    torch.save(t, tmp_path / "b.pt")
    export([tmp_path / "b.pt"], tmp_path / "b.h5", dataset="b")
    assert torch.equal(read_back(tmp_path / "b.h5", "b").view(torch.int16), bits)


def test_sigterm_while_writing_leaves_no_temp_file_and_no_output(tmp_path, isolated_env):
    # 64M float32 elements (256 MB) take many blocks to copy: the signal lands mid-copy.
    torch.save(torch.zeros(64, 1024, 1024), tmp_path / "big.pt")
    out = tmp_path / "big.h5"
    proc = subprocess.Popen([*ptm_command(), "export-hdf5", str(tmp_path / "big.pt"), "-o", str(out)],
                            env=isolated_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Deterministic: signal only once the temporary file beside OUT exists and has data in it.
        deadline = time.monotonic() + 120
        while not any(p.stat().st_size > 0 for p in tmp_path.glob(".big.h5.*.tmp")):
            assert proc.poll() is None, f"ptm ended before it could be stopped: {proc.stderr.read()}"
            assert time.monotonic() < deadline, "no temporary file appeared"
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, stderr
    assert stderr == "ptm: stopped by SIGTERM; the output was not written\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.pt"]


# --- damaged sources on the run loop -------------------------------------------------------------

def _damaged_hdf5(path: Path) -> Path:
    """A valid HDF5 file whose root object header is overwritten: the signature is still there."""
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(100.0)
    data = bytearray(path.read_bytes())
    data[96:400] = b"\xff" * (400 - 96)
    path.write_bytes(bytes(data))
    return path


def _truncated_pt(path: Path) -> Path:
    torch.save({"a": torch.arange(1000.0)}, path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    return path


@pytest.mark.parametrize("damage", [_damaged_hdf5, _truncated_pt], ids=["hdf5-header", "truncated-zip"])
def test_a_damaged_source_is_one_line_and_the_good_ones_are_written(run_ptm, tmp_path, damage):
    damaged = damage(tmp_path / ("damaged.h5" if damage is _damaged_hdf5 else "damaged.pt"))
    np.save(tmp_path / "good.npy", np.arange(6, dtype=np.float32))
    done = run_ptm("export-hdf5", damaged, tmp_path / "good.npy", "-o", tmp_path / "out.h5", "-f", "json")
    assert done.returncode == 1, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"ptm: {damaged}: "), done.stderr
    assert "Traceback" not in done.stderr
    with h5py.File(tmp_path / "out.h5") as f:
        assert list(f) == ["good"]
        np.testing.assert_array_equal(f["good"][()], np.arange(6, dtype=np.float32))
    assert json.loads(done.stdout)["failed"] == 1


def test_a_source_that_breaks_while_copied_is_rolled_back_and_the_rest_written(tmp_path):
    torch.save({"w": torch.ones(3), "b": torch.zeros(2)}, tmp_path / "breaks.pt")
    torch.save(torch.ones(2), tmp_path / "good.pt")
    real = __import__("ptmcli.tensorio.hdf5_writer", fromlist=["HDF5Writer"]).HDF5Writer._write_item

    def flaky(self, target, item, path, fmt):
        if path.endswith("breaks.pt") and target.endswith("b"):
            raise OSError("read error in the middle of the file")
        return real(self, target, item, path, fmt)

    with mock.patch("ptmcli.tensorio.hdf5_writer.HDF5Writer._write_item", flaky):
        result, errors = export([tmp_path / "breaks.pt", tmp_path / "good.pt"], tmp_path / "o.h5")
    assert errors == [f"{tmp_path / 'breaks.pt'}: cannot export (OSError: read error in the middle of the file)"]
    assert result.failed == 1 and result.written
    with h5py.File(tmp_path / "o.h5") as f:
        assert list(f) == ["good"]  # what breaks.pt had added is gone again


def test_a_reader_that_fails_unexpectedly_costs_only_its_source(tmp_path):
    torch.save(torch.ones(3), tmp_path / "odd.pt")
    torch.save(torch.ones(2), tmp_path / "good.pt")
    real = __import__("ptmcli.tensorio.hdf5_writer", fromlist=["open_tensor_file"]).open_tensor_file

    def opener(path):
        if path.endswith("odd.pt"):
            raise ValueError("a reader bug")
        return real(path)

    with mock.patch("ptmcli.tensorio.hdf5_writer.open_tensor_file", opener):
        result, errors = export([tmp_path / "odd.pt", tmp_path / "good.pt"], tmp_path / "o.h5")
    assert errors == [f"{tmp_path / 'odd.pt'}: cannot read it (ValueError: a reader bug)"]
    assert result.failed == 1 and [d.name for d in result.datasets] == ["good"]
