"""`ptm inspect-tensor`: every format, containers and shared storage, views, formats, hostile files."""

from __future__ import annotations

import json
import math
import os
import pickle
import struct
import subprocess
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import shared_file
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensor_helpers import assert_same, ptm_here, write_tensor

from ptmcli.errors import InputError
from ptmcli.tensorio import sniff
from ptmcli.tensorio import stats as tensor_stats
from ptmcli.tensorio.readers import open_tensor_file
from ptmcli.tensorio.readers.torch import torch_item
from ptmcli.tensorio.stats import compute_stats, iter_blocks
from ptmcli.tensorio.summary import inspect_file

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

DTYPES = [torch.float16, torch.float32, torch.float64, torch.bfloat16, torch.int8, torch.int16, torch.int32,
          torch.int64, torch.uint8, torch.bool, torch.complex64]


def make_values(shape, dtype, seed: int, specials: bool) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if dtype == torch.bool:
        return torch.rand(shape, generator=g) > 0.5
    if dtype.is_complex:
        return torch.complex(torch.randn(shape, generator=g), torch.randn(shape, generator=g)).to(dtype)
    if dtype.is_floating_point:
        t = (torch.randn(shape, generator=g) * 10).to(dtype)
        if specials and t.numel() >= 4:
            flat = t.view(-1)
            flat[0], flat[1], flat[2], flat[3] = math.nan, math.inf, -math.inf, -0.0
        return t
    info = torch.iinfo(dtype)
    return torch.randint(max(info.min, -(2**62)), min(info.max, 2**62), shape, generator=g, dtype=torch.int64).to(dtype)


@st.composite
def tensors_(draw, dtypes=DTYPES):
    dtype = draw(st.sampled_from(dtypes))
    shape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))
    t = make_values(shape, dtype, draw(st.integers(0, 2**16)), draw(st.booleans()))
    how = draw(st.sampled_from(["as is", "transpose", "step", "offset"]))
    if how == "transpose" and t.dim() >= 2:
        t = t.transpose(0, 1)
    elif how == "step" and t.dim() >= 1:
        big = make_values((t.shape[0] * 2,) + tuple(t.shape[1:]), dtype, 7, False)
        t = big[::2]
    elif how == "offset" and t.dim() >= 1:
        big = make_values((t.shape[0] + 1,) + tuple(t.shape[1:]), dtype, 9, False)
        t = big[1:]
    return t


# --- the book's files and the done-when ------------------------------------------------------------

def test_ourpoints_t_legacy_format_through_the_real_cli(run_ptm):
    done = run_ptm("inspect-tensor", shared_file("ourpoints.t"))
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(":", 1) for line in done.stdout.splitlines() if ":" in line and not line.startswith(" "))
    fields = {k.strip(): v.strip() for k, v in lines.items()}
    assert fields["format"] == "PyTorch (legacy)"
    assert fields["shape"] == "(3, 4)"
    assert fields["dtype"] == "float32"
    assert fields["stride"] == "(4, 1)"
    assert fields["storage offset"] == "0"
    assert fields["contiguous"] == "yes"
    assert "\x1b[" not in done.stdout and "│" not in done.stdout


def test_ourpoints_hdf5_group_and_dataset_slice():
    path = shared_file("ourpoints.hdf5")
    listing = ptm_here("inspect-tensor", path, "--format", "json").json()
    assert listing["kind"] == "container"
    assert [(e["name"], e["shape"], e["dtype"]) for e in listing["entries"]] == [("coords", [3, 4], "float32")]
    # The book's dset[-2:]: the last two rows, offset 4 into the dataset.
    last = ptm_here("inspect-tensor", path, "coords", "--select", "-2:", "--format", "json").json()
    assert last["shape"] == [2, 4] and last["storage_offset"] == 4 and last["stride"] == [4, 1]
    with h5py.File(path) as f:
        assert last["preview"] == f["coords"][-2:].tolist()


def test_book_view_exercise_through_the_cli(tmp_path):
    torch.save(torch.tensor(list(range(9))), tmp_path / "a.pt")
    ran = ptm_here("inspect-tensor", tmp_path / "a.pt", "--view", "3", "3", "--select", "1:, 1:", "-f", "json")
    assert ran.returncode == 0, ran.stderr
    out = ran.json()
    assert (out["shape"], out["storage_offset"], out["stride"], out["contiguous"]) == ([2, 2], 4, [3, 1], False)
    assert out["preview"] == [[4, 5], [7, 8]]
    assert [v["op"] for v in out["views"]] == ["as stored", ".view(3, 3)", "[1:, 1:]"]


def test_view_options_apply_in_typed_order(tmp_path):
    torch.save(torch.arange(24).view(2, 3, 4), tmp_path / "t.pt")
    ran = ptm_here("inspect-tensor", tmp_path / "t.pt", "--select", "1", "--transpose", "0", "1", "--select", "1:",
                   "--contiguous", "--view", "-1", "-f", "json")
    assert ran.returncode == 0, ran.stderr
    expected = torch.arange(24).view(2, 3, 4)[1].transpose(0, 1)[1:].contiguous().view(-1)
    out = ran.json()
    assert out["preview"] == expected[:6].tolist() and out["shape"] == [9]
    assert [v["op"] for v in out["views"]][1:] == ["[1]", ".transpose(0, 1)", "[1:]", ".contiguous()", ".view(-1)"]
    assert out["views"][4]["copied"] is True


def test_view_on_hdf5_reads_the_values_of_the_view(tmp_path):
    data = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f.create_dataset("g/d", data=data, chunks=(1, 2, 5), compression="gzip")
    out = ptm_here("inspect-tensor", tmp_path / "d.h5", "/g/d", "--transpose", "0", "2", "--select", "1:3, ::2",
                   "--contiguous", "--view", "-1", "--preview", "100", "-f", "json").json()
    expected = torch.from_numpy(data).transpose(0, 2)[1:3, ::2].contiguous().view(-1)
    assert out["preview"] == expected.tolist()
    assert out["stats"]["max"] == float(expected.max())


def test_incompatible_view_is_a_usage_error(tmp_path):
    torch.save(torch.zeros(4, 3), tmp_path / "t.pt")
    ran = ptm_here("inspect-tensor", tmp_path / "t.pt", "--select", ":, :2", "--view", "8")
    assert ran.returncode == 2
    assert "--contiguous" in ran.stderr and ran.stdout == ""


# --- containers ----------------------------------------------------------------------------------

def test_state_dict_table_totals_and_shared_storage(tmp_path):
    base = torch.arange(12.0).view(3, 4)
    embedding = torch.randn(5, 2)
    checkpoint = {"epoch": 7, "model": {"a.weight": base, "a.row": base[1], "head.weight": embedding,
                                        "tied.weight": embedding}, "log": [torch.zeros(2), "note"]}
    torch.save(checkpoint, tmp_path / "ckpt.pt")
    out = ptm_here("inspect-tensor", tmp_path / "ckpt.pt", "-f", "json").json()
    names = [e["name"] for e in out["entries"]]
    assert names == ["epoch", "model.a.weight", "model.a.row", "model.head.weight", "model.tied.weight",
                     "log.0", "log.1"]
    assert out["tensors"] == 5
    assert out["total_params"] == 12 + 4 + 10 + 10 + 2
    assert out["storage_bytes"] == 48 + 40 + 8
    groups = {tuple(g["names"]): g for g in out["shared"]}
    assert groups[("model.a.weight", "model.a.row")]["same_view"] is False
    assert groups[("model.head.weight", "model.tied.weight")]["same_view"] is True
    row = ptm_here("inspect-tensor", tmp_path / "ckpt.pt", "model.a.row", "-f", "json").json()
    assert (row["shape"], row["storage_offset"], row["storage_size"]) == ([4], 4, 12)
    assert row["shares_storage_with"] == ["model.a.weight"]
    # A prefix selects a sub-container; "/" works as well as ".".
    sub = ptm_here("inspect-tensor", tmp_path / "ckpt.pt", "model/a", "-f", "json").json()
    assert [e["name"] for e in sub["entries"]] == ["weight", "row"]


def test_unknown_key_suggests_close_names(tmp_path):
    torch.save({"layer1.weight": torch.zeros(1)}, tmp_path / "sd.pt")
    ran = ptm_here("inspect-tensor", tmp_path / "sd.pt", "layer1.wieght")
    assert ran.returncode == 2
    assert "layer1.weight" in ran.stderr


def test_npz_safetensors_and_hdf5_containers(tmp_path):
    from safetensors.torch import save_file

    np.savez_compressed(tmp_path / "z.npz", a=np.arange(6).reshape(2, 3), names=np.array(["x", "yy"]))
    save_file({"w": torch.ones(2, 2, dtype=torch.bfloat16), "b": torch.zeros(3)}, str(tmp_path / "m.safetensors"),
              metadata={"format": "pt"})
    with h5py.File(tmp_path / "r.h5", "w") as f:
        f.attrs["model"] = "resnet101"
        f.create_dataset("results/probs", data=np.full((4, 5), 0.2, dtype=np.float32))
        f.create_dataset("results/labels", data=["a", "b", "c", "d"], dtype=h5py.string_dtype())
        f["alias"] = f["results/probs"]
        f["elsewhere"] = h5py.ExternalLink("/etc/passwd", "/x")
    z = ptm_here("inspect-tensor", tmp_path / "z.npz", "-f", "json").json()
    assert {e["name"]: e["dtype"] for e in z["entries"]} == {"a": "int64", "names": "<U2"}
    s = ptm_here("inspect-tensor", tmp_path / "m.safetensors", "-f", "json").json()
    assert s["attrs"] == {"format": "pt"}
    assert {e["name"]: (e["dtype"], e["nbytes"]) for e in s["entries"]} == {"b": ("float32", 12), "w": ("bfloat16", 8)}
    h = ptm_here("inspect-tensor", tmp_path / "r.h5", "-f", "json").json()
    kinds = {e["name"]: e["kind"] for e in h["entries"]}
    assert kinds == {"alias": "tensor", "elsewhere": "link", "results/labels": "tensor", "results/probs": "tensor"}
    assert h["attrs"] == {"model": "resnet101"}
    assert [g["names"] for g in h["shared"]] == [["alias", "results/probs"]] and h["shared"][0]["same_view"]
    labels = ptm_here("inspect-tensor", tmp_path / "r.h5", "results/labels", "-f", "json").json()
    assert labels["preview"] == ["a", "b", "c", "d"] and labels["stats"] is None
    refused = ptm_here("inspect-tensor", tmp_path / "r.h5", "elsewhere")
    assert refused.returncode == 2 and "external link" in refused.stderr


def test_text_and_table_output(tmp_path):
    torch.save({"w": torch.ones(2, 3)}, tmp_path / "sd.pt")
    text = ptm_here("inspect-tensor", tmp_path / "sd.pt")
    assert text.returncode == 0
    assert ["w", "(2,", "3)", "float32", "6", "24"] in [line.split() for line in text.stdout.splitlines()]
    assert "\x1b[" not in text.stdout
    table = ptm_here("inspect-tensor", tmp_path / "sd.pt", "w", "--format", "table")
    assert "stride" in table.stdout and "(3, 1)" in table.stdout and "╭" in table.stdout


def test_rows_for_scripts_tsv_csv_jsonl(tmp_path):
    import csv
    import io

    torch.save({"w": torch.ones(2, 3), "b": torch.zeros(3), "epoch": 4}, tmp_path / "sd.pt")
    header = ["name", "kind", "shape", "dtype", "numel", "nbytes", "storage_group", "value"]
    tsv = ptm_here("inspect-tensor", tmp_path / "sd.pt", "-f", "tsv")
    assert tsv.returncode == 0, tsv.stderr
    assert [line.split("\t") for line in tsv.stdout.splitlines()] == [
        header, ["w", "tensor", "(2, 3)", "float32", "6", "24", "", ""],
        ["b", "tensor", "(3,)", "float32", "3", "12", "", ""], ["epoch", "value", "", "", "0", "0", "", "4"]]
    rows = list(csv.reader(io.StringIO(ptm_here("inspect-tensor", tmp_path / "sd.pt", "-f", "csv").stdout)))
    assert rows == [line.split("\t") for line in tsv.stdout.splitlines()]
    entries = ptm_here("inspect-tensor", tmp_path / "sd.pt", "-f", "json").json()["entries"]
    lines = ptm_here("inspect-tensor", tmp_path / "sd.pt", "-f", "jsonl").stdout.splitlines()
    assert [json.loads(line) for line in lines] == entries
    # One tensor: its fields as rows, or the whole summary as one JSON line.
    fields = ptm_here("inspect-tensor", tmp_path / "sd.pt", "w", "-f", "tsv").stdout.splitlines()
    assert fields[0] == "field\tvalue" and "stride\t(3, 1)" in fields and "mean\t1." in fields
    one = ptm_here("inspect-tensor", tmp_path / "sd.pt", "w", "-f", "jsonl").stdout.splitlines()
    whole = ptm_here("inspect-tensor", tmp_path / "sd.pt", "w", "-f", "json").json()
    assert [json.loads(line) for line in one] == [whole]


def test_views_of_a_fortran_ordered_string_array_follow_its_storage(tmp_path):
    letters = np.array([["a", "b", "c"], ["d", "e", "f"]])
    np.save(tmp_path / "f.npy", np.asfortranarray(letters))
    out = ptm_here("inspect-tensor", tmp_path / "f.npy", "--transpose", "0", "1", "--view", "-1", "-f", "json").json()
    assert out["preview"] == ["a", "d", "b", "e", "c", "f"]
    assert out["preview"] == letters.T.reshape(-1).tolist()


# --- statistics ----------------------------------------------------------------------------------

@SETTINGS
@given(tensors_(), st.integers(1, 7))
def test_blockwise_statistics_equal_whole_tensor_statistics(t, budget):
    from unittest import mock

    item = torch_item("t", t, {})
    with mock.patch.object(tensor_stats, "BLOCK_ELEMENTS", budget):  # many blocks, merged
        stats = compute_stats(item)
    assert stats.count == t.numel()
    if t.dtype.is_complex:
        assert stats.nan == int(torch.isnan(t).sum()) and stats.min is None
        return
    x = t.to(torch.float64) if t.dtype != torch.bool else t.to(torch.int64).to(torch.float64)
    finite = x[torch.isfinite(x)]
    assert stats.nan == int(torch.isnan(x).sum())
    assert stats.posinf == int((x == math.inf).sum()) and stats.neginf == int((x == -math.inf).sum())
    assert stats.zeros == int((x == 0).sum())
    if finite.numel() == 0:
        assert stats.min is None and stats.mean is None
        return
    assert float(stats.min) == float(finite.min()) and float(stats.max) == float(finite.max())
    assert stats.mean == pytest.approx(float(finite.mean()), rel=1e-9, abs=1e-9)
    if finite.numel() > 1:
        assert stats.std == pytest.approx(float(finite.std()), rel=1e-6, abs=1e-9)


@SETTINGS
@given(st.lists(st.integers(0, 5), max_size=4), st.integers(1, 50), st.data())
def test_blocks_cover_every_element_once(shape, budget, data):
    align = tuple(data.draw(st.integers(1, 4)) for _ in shape) if shape and data.draw(st.booleans()) else None
    seen = torch.zeros(shape, dtype=torch.int64)
    for index in iter_blocks(shape, budget, align):
        seen[index] += 1
    assert bool((seen == 1).all())


# --- every format reads back what was written ----------------------------------------------------

@SETTINGS
@given(tensors_(), st.sampled_from(["torch", "torch-legacy", "npy", "npz", "safetensors"]))
def test_inspect_reads_every_format_exactly(t, fmt):
    if fmt in ("npy", "npz") and t.dtype == torch.bfloat16:
        return  # NumPy has no bfloat16
    if fmt == "safetensors" and t.dtype == torch.complex64:
        return
    with tempfile.TemporaryDirectory() as folder:
        path = write_tensor(t, Path(folder) / "t.bin", fmt)
        assert sniff.detect_format(str(path)) == fmt
        summary = inspect_file(str(path), "x" if fmt in ("npz", "safetensors") else None, preview_per_dim=100)
        assert summary.shape == tuple(t.shape)
        assert summary.dtype == str(t.dtype).removeprefix("torch.")
        if fmt.startswith("torch"):
            # torch.save keeps the view: same stride, offset and the whole storage behind it.
            assert summary.stride == t.stride() and summary.storage_offset == t.storage_offset()
            assert summary.storage_size == t.untyped_storage().nbytes() // t.element_size()
            assert summary.contiguous == t.is_contiguous()
        with open_tensor_file(str(path)) as tfile:
            item = tfile.select("x" if fmt in ("npz", "safetensors") else None)
            assert_same(item.read(()), t)


def test_named_tensors_when_torch_has_them(tmp_path):
    if not hasattr(torch.Tensor, "refine_names"):
        pytest.skip("this PyTorch has no named tensors; dimension names come from HDF5 labels")
    torch.save(torch.zeros(2, 3).refine_names("N", "C"), tmp_path / "n.pt")
    assert inspect_file(str(tmp_path / "n.pt")).names == ("N", "C")


def test_hdf5_dimension_labels_are_names(tmp_path):
    with h5py.File(tmp_path / "l.h5", "w") as f:
        d = f.create_dataset("x", data=np.zeros((2, 3)))
        d.dims[0].label = "batch"
    assert inspect_file(str(tmp_path / "l.h5"), "x").names == ("batch", None)


def test_format_comes_from_content_not_extension(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(3))
    os.rename(tmp_path / "a.npy", tmp_path / "weights.pt")
    torch.save(torch.ones(2), tmp_path / "b.npy")
    assert inspect_file(str(tmp_path / "weights.pt")).format == "NumPy .npy"
    assert inspect_file(str(tmp_path / "b.npy")).format == "PyTorch (zip)"


# --- hostile files -------------------------------------------------------------------------------

class RunsCode:
    """Unpickling this would call `call` and create `marker`: proof that code ran."""

    def __init__(self, marker: str, call: str = "mkdir"):
        self.marker = marker
        self.call = call

    def __reduce__(self):
        if self.call == "system":
            return (os.system, (f"touch {self.marker}",))
        if self.call == "eval":
            return (eval, (f"open({self.marker!r}, 'w')",))
        if self.call == "popen":
            return (subprocess.Popen, (["touch", self.marker],))
        return (os.mkdir, (self.marker,))


class Thing:
    """A class of the test's own: a checkpoint entry weights_only=True does not allow."""

    def __init__(self):
        self.hidden = torch.zeros(3)

    def __setstate__(self, state):
        # Restoring a Thing writes a file: it must never happen while ptm reads the checkpoint.
        Path(state["marker"]).touch()


def test_pickles_that_would_run_code_are_refused_and_do_not_run(run_ptm, tmp_path):
    # Changed with issue 9: a checkpoint whose entry would run code is no longer refused as a
    # whole; the rest is listed, the entry named on stderr, exit 1, and the code still never runs.
    marker = tmp_path / "CODE-RAN"
    calls = {"mkdir": os.mkdir, "system": os.system, "eval": eval, "popen": subprocess.Popen}
    for call, function in calls.items():
        payload = {"weights": torch.ones(2), "evil": RunsCode(str(marker), call), "epoch": 3}
        for name, zip_format in ((f"{call}.zip.pt", True), (f"{call}.legacy.pt", False)):
            torch.save(payload, tmp_path / name, _use_new_zipfile_serialization=zip_format)
            done = run_ptm("inspect-tensor", tmp_path / name)
            assert done.returncode == 1, (name, done.stderr)
            imports = f"{function.__module__}.{function.__qualname__}"
            assert [line.split(";")[0] for line in done.stderr.splitlines()] == [
                f"ptm: {tmp_path / name}: evil: refused: its pickle would import {imports}, which can run code"]
            rows = [line.split()[:2] for line in done.stdout.splitlines()]
            assert ["weights", "(2,)"] in rows and ["evil", "unreadable"] in rows and ["epoch", "value"] in rows
    # A bare pickle is no tensor file at all: refused as a whole.
    with open(tmp_path / "bare.pth", "wb") as fh:
        pickle.dump(RunsCode(str(marker)), fh)
    done = run_ptm("inspect-tensor", tmp_path / "bare.pth")
    assert done.returncode == 1, done.stderr
    assert "refused" in done.stderr and "mkdir" in done.stderr, done.stderr
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1
    assert not marker.exists()


def test_a_pickled_class_entry_is_refused_and_the_rest_listed(run_ptm, tmp_path):
    marker = tmp_path / "SETSTATE-RAN"
    thing = Thing()
    thing.marker = str(marker)
    path = tmp_path / "ck.pt"
    torch.save({"w": torch.ones(2), "thing": thing, "epoch": 3}, path)
    done = run_ptm("inspect-tensor", path, "--format", "json")
    assert done.returncode == 1, done.stderr
    assert [line.split(";")[0] for line in done.stderr.splitlines()] == [
        f"ptm: {path}: thing: refused: its pickle would import {Thing.__module__}.Thing, which can run code"]
    listing = json.loads(done.stdout)
    assert [(e["name"], e["kind"]) for e in listing["entries"]] == [
        ("w", "tensor"), ("thing", "unreadable"), ("epoch", "value")]
    assert listing["tensors"] == 1 and listing["total_params"] == 2
    assert not marker.exists()


def test_a_checkpoint_that_is_one_pickled_class_is_refused_whole(run_ptm, tmp_path):
    path = tmp_path / "thing.pt"
    torch.save(Thing(), path)
    done = run_ptm("inspect-tensor", path)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.split(";")[0] == (
        f"ptm: error: {path}: refused: its pickle would import {Thing.__module__}.Thing, which can run code")


def test_placeholders_leave_torch_as_they_found_it(tmp_path):
    from torch import _weights_only_unpickler as wo

    blocked = list(wo._blocklisted_modules)
    allowed = torch.serialization.get_safe_globals()
    torch.save({"w": torch.ones(2), "evil": RunsCode(str(tmp_path / "RAN"), "system")}, tmp_path / "e.pt")
    with open_tensor_file(str(tmp_path / "e.pt")) as tfile:
        assert tfile.items["evil"].refused
    assert torch.serialization.get_safe_globals() == allowed
    assert wo._blocklisted_modules == blocked
    with pytest.raises(pickle.UnpicklingError):
        torch.load(tmp_path / "e.pt", weights_only=True)
    assert not (tmp_path / "RAN").exists()


def write_truncated_zip(path: Path) -> None:
    torch.save({"w": torch.randn(100, 100)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def hostile_files(folder: Path) -> dict[str, str]:
    """name -> the words its error must contain."""
    write_truncated_zip(folder / "truncated.pt")
    (folder / "random.bin").write_bytes(np.random.default_rng(0).bytes(4096))
    np.save(folder / "objects.npy", np.array([{"a": 1}, None], dtype=object))
    (folder / "garbage.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + np.random.default_rng(1).bytes(4096))
    header = json.dumps({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    (folder / "long.safetensors").write_bytes(struct.pack("<Q", len(header) + 1_000_000) + header + b"\0" * 8)
    (folder / "short.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 4)
    lying = json.dumps({"x": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 8]}}).encode()
    (folder / "shape.safetensors").write_bytes(struct.pack("<Q", len(lying)) + lying + b"\0" * 8)
    np.save(folder / "short.npy", np.zeros(1000))
    data = (folder / "short.npy").read_bytes()
    (folder / "short.npy").write_bytes(data[:500])
    return {
        "truncated.pt": "truncated or damaged",
        "random.bin": "not a tensor file",
        "objects.npy": "refused",
        "garbage.h5": "cannot be opened",
        "long.safetensors": "claims",
        "short.safetensors": "claims bytes",
        "shape.safetensors": "spans 8 bytes",
        "short.npy": "truncated",
    }


def test_hostile_files_are_one_line_errors_with_exit_1(tmp_path):
    for name, words in hostile_files(tmp_path).items():
        ran = ptm_here("inspect-tensor", tmp_path / name)
        assert ran.returncode == 1, (name, ran.stderr)
        assert words in ran.stderr, (name, ran.stderr)
        assert ran.stderr.startswith(f"ptm: error: {tmp_path / name}:")
        assert len(ran.stderr.strip().splitlines()) == 1 and ran.stdout == ""


def test_refused_entries_are_listed_named_on_stderr_and_exit_1(run_ptm, tmp_path):
    path = tmp_path / "mixed.npz"
    np.savez(path, **{"grp/good": np.arange(3), "grp/objects": np.array([{"a": 1}], dtype=object),
                      "grp/more": np.array([None], dtype=object), "grp/other": np.ones(2)})
    refused = "refused: an array of Python objects"
    expected_stderr = [f"ptm: {path}: grp/objects: {refused}", f"ptm: {path}: grp/more: {refused}"]
    text = run_ptm("inspect-tensor", path)
    assert text.returncode == 1, text.stderr
    # One line per refused entry, naming the file and the entry (the reason goes on after ";").
    assert [line.split(";")[0] for line in text.stderr.splitlines()] == expected_stderr
    rows = [line.split()[:2] for line in text.stdout.splitlines()]
    assert ["grp/good", "(3,)"] in rows and ["grp/other", "(2,)"] in rows
    assert ["grp/objects", "unreadable"] in rows and ["grp/more", "unreadable"] in rows
    # JSON still lists the rest; the stderr lines name the full entry even under a prefix.
    sub = run_ptm("inspect-tensor", path, "grp", "--format", "json")
    assert sub.returncode == 1, sub.stderr
    assert [line.split(";")[0] for line in sub.stderr.splitlines()] == expected_stderr
    listing = json.loads(sub.stdout)
    assert [(e["name"], e["kind"]) for e in listing["entries"]] == [
        ("good", "tensor"), ("objects", "unreadable"), ("more", "unreadable"), ("other", "tensor")]
    assert listing["tensors"] == 2 and listing["total_params"] == 5


def test_a_null_dataspace_is_listed_and_is_no_failure(tmp_path):
    with h5py.File(tmp_path / "n.h5", "w") as f:
        f.create_dataset("empty", data=h5py.Empty("f"))
        f.create_dataset("x", data=np.zeros(2))
    ran = ptm_here("inspect-tensor", tmp_path / "n.h5", "-f", "json")
    assert ran.returncode == 0 and ran.stderr == ""
    assert [(e["name"], e["kind"]) for e in ran.json()["entries"]] == [("empty", "unreadable"), ("x", "tensor")]


def test_hdf5_with_damaged_chunks(tmp_path):
    path = tmp_path / "d.h5"
    with h5py.File(path, "w") as f:
        d = f.create_dataset("x", data=np.random.default_rng(0).random((64, 64)), chunks=(16, 64), compression="gzip")
        info = d.id.get_chunk_info(1)
    raw = bytearray(path.read_bytes())
    raw[info.byte_offset:info.byte_offset + info.size] = b"\xff" * info.size
    path.write_bytes(bytes(raw))
    ran = ptm_here("inspect-tensor", path, "x")
    assert ran.returncode == 1 and "cannot read the data of x" in ran.stderr, ran.stderr
    # The table needs no data, only metadata: it still works.
    assert ptm_here("inspect-tensor", path).returncode == 0


def test_missing_file_and_directory(tmp_path):
    assert "no such file" in ptm_here("inspect-tensor", tmp_path / "nope.pt").stderr
    assert "is a directory" in ptm_here("inspect-tensor", tmp_path).stderr


def test_input_error_messages_name_the_file(tmp_path):
    with pytest.raises(InputError) as info:
        sniff.detect_format(str(tmp_path / "absent"))
    assert str(tmp_path / "absent") in info.value.message


def test_hdf5_torch_dtype_attribute_is_trusted_only_for_carriers(tmp_path):
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f.create_dataset("liar", data=np.array([1.7, 300.0])).attrs["torch_dtype"] = "int8"
        f.create_dataset("bf", data=np.array([1.5, -2.0], dtype=np.float32)).attrs["torch_dtype"] = "bfloat16"
    liar = inspect_file(str(tmp_path / "a.h5"), "liar")
    assert liar.dtype == "float64" and liar.preview == [1.7, 300.0] and liar.attrs == {"torch_dtype": "int8"}
    bf = inspect_file(str(tmp_path / "a.h5"), "bf")
    assert bf.dtype == "bfloat16" and bf.element_size == 2 and bf.layout["stored as"] == "float32"
    assert_same(read_back_h5(tmp_path / "a.h5", "bf"), torch.tensor([1.5, -2.0], dtype=torch.bfloat16))


def read_back_h5(path, key):
    with open_tensor_file(str(path)) as tfile:
        return tfile.select(key).read(())
