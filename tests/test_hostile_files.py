"""Hostile and damaged files through the real `ptm`: every fuzz finding (fuzz/regressions/), damaged
results files for merge, --resume and report, and the kinds of image that made Pillow and libtiff
talk on stderr.

The expected exit code and stderr of each regression file are in fuzz/regressions/expected.json;
`PTM_WRITE_EXPECTED=1 pytest tests/test_hostile_files.py -k regression` rewrites it (then read the
diff: each entry must be one `ptm:` line that names the file and says what is wrong).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
from pathlib import Path

import pytest
from conftest import EXAMPLES, ROOT
from zebra_helpers import save_generator

REGRESSIONS = ROOT / "fuzz" / "regressions"
EXPECTED = REGRESSIONS / "expected.json"
LITE = ["--model", "efficientnet_lite0"]
RESULT_SUFFIX = {"results_hdf5": ".h5", "results_jsonl": ".jsonl", "results_csv": ".csv", "results_tsv": ".tsv"}
TENSOR_SUFFIX = {"tensor_pt_zip": ".pt", "tensor_pt_legacy": ".pt", "tensor_npy": ".npy", "tensor_npz": ".npz",
                 "tensor_safetensors": ".safetensors", "tensor_hdf5": ".h5", "export_hdf5": ".bin"}


def regression_files() -> list[tuple[str, Path]]:
    return sorted((p.parent.name, p) for p in REGRESSIONS.glob("*/*") if p.is_file())


def commands(harness: str, name: str) -> list[list[str]]:
    """What the user would run on the file that the harness `harness` found."""
    if harness in TENSOR_SUFFIX:
        return [["inspect-tensor", name]]
    if harness in RESULT_SUFFIX:
        return [["report", name, "-o", "page.html"], ["merge", name, "-o", "merged" + RESULT_SUFFIX[harness]]]
    if harness.startswith("image_"):
        return [["classify", name, *LITE, "--format", "jsonl"],
                ["zebrafy", name, "-o", "zebra.png", "--weights", "generator.pth", "--size", "256"]]
    if harness == "weights_classifier":
        return [["classify", str(EXAMPLES / "coffee.png"), *LITE, "--weights", name]]
    return [["weights", "add", "horse2zebra_cyclegan", name]]


def file_name(harness: str) -> str:
    if harness.startswith("image_"):
        return "input.img"
    return "input" + (TENSOR_SUFFIX.get(harness) or RESULT_SUFFIX.get(harness) or ".pth")


def _ran(run_ptm, args: list[str], cwd: Path) -> dict:
    done = run_ptm(*args, cwd=cwd)
    lines = done.stderr.splitlines()
    for line in lines:
        assert line.startswith(("ptm: ", "  ")), f"not ptm's line on stderr: {line!r}"
        assert "internal error" not in line and "Traceback" not in line, line
    return {"args": " ".join(args).replace(str(EXAMPLES), "EXAMPLES"), "code": done.returncode, "stderr": lines}


@pytest.mark.skipif(not any(REGRESSIONS.glob("*/*")), reason="no regression files")
def test_regression_files_through_ptm(run_ptm, tmp_path):
    """Each fuzz finding: the exit code and the one line it gets now, exactly as recorded."""
    generator = save_generator(tmp_path / "generator.pth", "book", ngf=4, n_blocks=1)
    found = {}
    for harness, path in regression_files():
        cwd = tmp_path / f"{harness}-{path.name}"
        cwd.mkdir()
        name = file_name(harness)
        shutil.copyfile(path, cwd / name)
        shutil.copyfile(generator, cwd / "generator.pth")
        for args in commands(harness, name):
            result = _ran(run_ptm, args, cwd)
            found.setdefault(f"{harness}/{path.name}", []).append(result)
            if args[0] == "merge":
                assert result["code"] == 0 or not (cwd / args[-1]).exists(), "merge failed, yet wrote"
    if os.environ.get("PTM_WRITE_EXPECTED"):
        EXPECTED.write_text(json.dumps(found, indent=1, ensure_ascii=False) + "\n")
    expected = json.loads(EXPECTED.read_text())
    assert sorted(found) == sorted(expected), "regression files and expected.json disagree"
    for key, results in found.items():
        assert results == expected[key], key


# --- damaged results files: merge, --resume, report -----------------------------------------------


def _shards(run_ptm, tmp_path: Path, suffix: str) -> list[Path]:
    # Named relative to their folder: a file named directly is sharded by the path as given, and an
    # absolute path would split differently in every clone (rocket.jpg alone falls in shard 1).
    photos = ["camera.png", "chelsea.png", "coffee.png", "rocket.jpg"]
    shards = []
    for k in (1, 2):
        out = tmp_path / f"shard{k}{suffix}"
        done = run_ptm("classify", *photos, *LITE, "--shard", f"{k}/2", "--output", out, "--format", "jsonl",
                       cwd=EXAMPLES)
        assert done.returncode == 0, done.stderr
        shards.append(out)
    return shards


def _damage(path: Path) -> None:
    data = bytearray(path.read_bytes())
    if path.suffix == ".h5":
        # The object headers sit in the first few kilobytes: scribble over their middle.
        data[600:1400] = b"\xa5" * 800
    else:
        lines = data.decode().splitlines(keepends=True)
        lines[-1] = lines[-1].replace("0.", "0.0@3", 1) if "0." in lines[-1] else "{\"input_index\": \n"
        data = bytearray("".join(lines).encode())
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".h5"])
def test_merge_names_a_damaged_shard_and_writes_nothing(run_ptm, tmp_path, suffix):
    shards = _shards(run_ptm, tmp_path, suffix)
    _damage(shards[1])
    merged = tmp_path / f"all{suffix}"
    done = run_ptm("merge", *shards, "-o", merged)
    assert done.returncode == 2, done.stderr
    first = done.stderr.splitlines()[0]
    assert first.startswith(f"ptm: error: {shards[1]} is damaged"), first
    assert not merged.exists() and not list(tmp_path.glob(".all*"))


@pytest.mark.parametrize("suffix", [".jsonl", ".tsv", ".h5"])
def test_resume_refuses_a_damaged_results_file_and_leaves_it(run_ptm, tmp_path, suffix):
    out = tmp_path / f"r{suffix}"
    photos = [EXAMPLES / "coffee.png", EXAMPLES / "chelsea.png"]
    assert run_ptm("classify", photos[0], *LITE, "--output", out).returncode == 0
    _damage(out)
    before = out.read_bytes()
    done = run_ptm("classify", *photos, *LITE, "--output", out, "--resume")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0].startswith(f"ptm: error: {out} is damaged"), lines
    assert lines[1] == "  it cannot be resumed: --force starts it over (its results are lost), " \
                       "or choose another --output"
    assert out.read_bytes() == before


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".h5"])
def test_report_refuses_a_damaged_results_file_in_one_line(run_ptm, tmp_path, suffix):
    out = tmp_path / f"r{suffix}"
    photos = [EXAMPLES / "coffee.png", EXAMPLES / "chelsea.png"]
    assert run_ptm("classify", *photos, *LITE, "--output", out).returncode == 0
    _damage(out)
    done = run_ptm("report", out, "-o", tmp_path / "page.html")
    assert done.returncode == 2
    assert done.stderr.splitlines()[0].startswith(f"ptm: error: {out} is damaged"), done.stderr
    assert not (tmp_path / "page.html").exists()


def test_damaged_jsonl_line_is_named_by_number(run_ptm, tmp_path):
    out = tmp_path / "r.jsonl"
    out.write_text('{"input_index": 0, "path": "a.jpg", "status": "error", "error": "x"}\n'
                   '{"input_index": 1, "path": "b.jpg", "status": "ok", "predictions": [{"rank": 1}]}\n')
    done = run_ptm("report", out, "-o", tmp_path / "page.html")
    assert done.returncode == 2
    assert done.stderr.splitlines()[0] == f"ptm: error: {out} is damaged (line 2: prediction 1 is not a ptm prediction)"


# --- images: what made Pillow and libtiff talk ------------------------------------------------------


def layered_psd(w: int = 6, h: int = 4, layers: int = 2) -> bytes:
    """A minimal RGB Photoshop file with `layers` layers and a composite (what Pillow opens)."""
    out = b"8BPS" + struct.pack(">H", 1) + b"\0" * 6 + struct.pack(">HIIHH", 3, h, w, 8, 3)
    out += struct.pack(">I", 0) + struct.pack(">I", 0)  # no colour mode data, no resources
    records, data = b"", b""
    for layer in range(layers):
        records += struct.pack(">iiiiH", 0, 0, h, w, 3)
        records += b"".join(struct.pack(">hI", channel, 2 + w * h) for channel in (0, 1, 2))
        extra = struct.pack(">II", 0, 0) + b"\x01L\x00\x00"  # no mask, no ranges, name "L"
        records += b"8BIMnorm" + bytes([255, 0, 0, 0]) + struct.pack(">I", len(extra)) + extra
        data += b"".join(struct.pack(">H", 0) + bytes([40 * layer + v]) * (w * h) for v in (1, 2, 3))
    info = struct.pack(">h", layers) + records + data
    info += b"\0" * (len(info) % 2)
    section = struct.pack(">I", len(info)) + info + struct.pack(">I", 0)
    out += struct.pack(">I", len(section)) + section
    return out + struct.pack(">H", 0) + b"".join(bytes([v]) * (w * h) for v in (10, 20, 30))


def chatty_images(folder: Path) -> dict[str, str | None]:
    """{file name: None if ptm must read it, else the end of its one ptm: line}."""
    import numpy as np
    from PIL import Image

    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8))

    def saved(image, fmt, **kwargs) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, fmt, **kwargs)
        return buffer.getvalue()

    tiff = saved(rgb, "TIFF", compression="tiff_adobe_deflate")
    with Image.open(io.BytesIO(tiff)) as opened:
        offset, count = opened.tag_v2[273][0], opened.tag_v2[279][0]
    corrupt = bytearray(tiff)
    corrupt[offset + count // 3:offset + count] = b"\xff" * (count - count // 3)
    oversized = bytearray(saved(rgb, "TIFF", description="x" * 40))
    ifd = struct.unpack("<I", oversized[4:8])[0]
    for i in range(struct.unpack("<H", oversized[ifd:ifd + 2])[0]):
        entry = ifd + 2 + 12 * i
        if struct.unpack("<H", oversized[entry:entry + 2])[0] == 270:  # ImageDescription
            oversized[entry + 4:entry + 8] = struct.pack("<I", 10 ** 6)  # more bytes than the file
    icon = bytearray(saved(rgb, "ICO", sizes=[(16, 16), (32, 32), (48, 48)]))
    icon[14:18] = struct.pack("<I", 0x00014AC4)  # first entry's byte count: more than there is
    gif = saved(rgb.convert("P"), "GIF", save_all=True, append_images=[rgb.rotate(90).convert("P")])
    files = {
        "oversized_tag.tif": (bytes(oversized), None),
        "corrupt_strip.tif": (bytes(corrupt), "cannot decode image (decoder error -2)"),
        "layers.psd": (layered_psd(), None),
        # Read before the ICO: once a .tga was read, TGA's loose check claimed an ICO whose first
        # entry has this size field (as Pillow's own pillow.ico), which then could not load.
        "a.tga": (saved(rgb, "TGA"), None),
        "sizes.ico": (bytes(icon), None),
        "cut_frame.gif": (gif[:len(gif) * 2 // 3], None),
        "cut_header.gif": (gif[:30], "not an image Pillow can read"),
    }
    for name, (data, _) in files.items():
        (folder / name).write_bytes(data)
    return {name: why for name, (_, why) in files.items()}


@pytest.mark.parametrize("debug", [False, True])
def test_pillow_and_libtiff_stay_off_stderr(run_ptm, tmp_path, debug):
    """Files Pillow reads are read; the others get one ptm: line; stderr holds nothing else
    (with --debug, what Pillow and libtiff said is shown)."""
    expected = chatty_images(tmp_path)
    names = sorted(expected)
    done = run_ptm(*(["--debug"] if debug else []), "classify", *names, *LITE, "--format", "jsonl", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    records = {r["path"]: r for r in map(json.loads, done.stdout.splitlines())}
    assert {p for p, r in records.items() if r["status"] == "ok"} == {n for n in names if expected[n] is None}
    ours = [line for line in done.stderr.splitlines() if line.startswith("ptm: ")]
    assert ours == [f"ptm: {n}: {expected[n]}" for n in names if expected[n] is not None]
    others = [line for line in done.stderr.splitlines() if not line.startswith("ptm: ")]
    if debug:
        assert any("Tag data larger than file" in line for line in others), others
        assert any("ZIPDecode" in line for line in others), others
    else:
        assert others == []


def test_zebrafy_refuses_a_sliver_it_cannot_resize_in_memory(tmp_path):
    """A 5 x 16,000,000 image is under the pixel limit, but at a 256 short side it would not be."""
    from PIL import Image

    from ptmcli.errors import InputError

    try:
        from ptmcli.pixels.translate import prepare_image  # where issue 15 moves it
    except ImportError:
        from ptmcli.models.generator import prepare_image

    sliver = tmp_path / "sliver.png"
    Image.new("L", (4, 400_000)).save(sliver)
    with pytest.raises(InputError, match="resized to a short side of 256 would be"):
        prepare_image(str(sliver), 256)


# --- the row codec and the HDF5 checks, in-process ---------------------------------------------------


@pytest.mark.parametrize("fields, message", [
    (("p.jpg", "maybe", "", []), "row 0: the status is 'maybe', not ok or error"),
    ((3, "ok", "", []), "row 0: the path is 3, not text"),
    (("p.jpg", "ok", "", [("x", "tench", 0.5)]), "row 0: class 1 is 'x', not a whole number"),
    (("p.jpg", "ok", "", [(-1, "tench", 0.5)]), "row 0: class 1 is -1, below 0"),
    (("p.jpg", "ok", "", [(0, "tench", "0.013@36")]), "row 0: probability 1 is '0.013@36', not a number"),
    (("p.jpg", "ok", "", [(0, "tench", 7.0)]), "row 0: probability 1 is 7.0, not a probability"),
    (("p.jpg", "ok", "", [(0, None, 0.5)]), "row 0: label 1 is None, not text"),
])
def test_the_row_codec_checks_every_field(fields, message):
    from ptmcli.sinks.resultrows import Damaged, decoded

    with pytest.raises(Damaged) as caught:
        decoded("row 0", *fields)
    assert str(caught.value) == message


def test_the_row_codec_round_trips():
    from ptmcli.results import Classification, Prediction
    from ptmcli.sinks.resultrows import decoded, encoded

    result = Classification("p.jpg", (Prediction(1, 3, "tiger shark", 0.5), Prediction(2, 0, "tench", 0.25)))
    status, error, triples = encoded(result, 2)
    assert decoded("row 0", "p.jpg", status, error, triples) == result
    failed = Classification("q.jpg", error="cannot decode image (truncated)")
    assert decoded("row 1", "q.jpg", *encoded(failed, 2)) == failed


@pytest.mark.parametrize("change, message", [
    (lambda f: f["status"].__setitem__(0, 7), "a status is neither pending, ok nor error"),
    (lambda f: f["input_index"].__setitem__(1, 0), "an input_index appears twice"),
    (lambda f: f.attrs.__setitem__("top_k", 5), "top_index has shape (3, 2), not (3, 5)"),
    (lambda f: f.attrs.__setitem__("shard", "3/2"), "its shard is '3/2': shard 3 of 2 does not exist"),
    (lambda f: f.__delitem__("top_label"), "it has no dataset 'top_label'"),
])
def test_hdf5_results_are_checked_before_use(tmp_path, change, message):
    import h5py

    from ptmcli.sinks.readback import read_results
    from ptmcli.sinks.resultrows import ResultsDamaged

    path = tmp_path / "r.h5"
    shutil.copyfile(ROOT / "fuzz" / "seeds" / "results_hdf5" / "partial.h5", path)
    read_results(path)  # the seed itself is sound
    with h5py.File(path, "r+") as f:
        change(f)
    with pytest.raises(ResultsDamaged) as caught:
        read_results(path)
    assert caught.value.message == f"{path} is damaged ({message})"


@pytest.mark.parametrize("name", sorted(p.name for p in (REGRESSIONS / "results_hdf5").glob("timeout-*")))
def test_inspect_tensor_refuses_a_text_heap_hdf5_would_loop_on(run_ptm, tmp_path, name):
    # These files made HDF5 loop forever on reading an attribute; inspect-tensor reads attributes
    # too, so its reader passes the same heap walk as results files (fuzz/replay.py hung on them).
    source = tmp_path / "input.h5"
    shutil.copy(REGRESSIONS / "results_hdf5" / name, source)
    done = run_ptm("inspect-tensor", "input.h5", cwd=tmp_path, timeout=60)
    if name == "timeout-timeout-36ea4654fd":  # its heaps are whole: what loops is elsewhere, not read here
        assert (done.returncode, done.stderr) == (0, "")
        assert "top_probability" in done.stdout
        return
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines() == [done.stderr.splitlines()[0]]
    assert done.stderr.startswith("ptm: error: input.h5: cannot read this HDF5 file: it is damaged ("), done.stderr
    assert done.stdout == ""


# --- HDF5 on crafted bytes: a type HDF5 crashes on, lengths it would allocate ------------------------

KIND_CRASHES = sorted([*(REGRESSIONS / "results_hdf5").glob("crash-*"), *(REGRESSIONS / "tensor_hdf5").glob("crash-*")])


@pytest.mark.parametrize("path", KIND_CRASHES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_a_variable_length_type_of_unknown_kind_is_refused_before_hdf5_reads_it(run_ptm, tmp_path, path):
    # HDF5 segfaulted reading a value of such a type; the kind is checked from the type's encoding.
    shutil.copy(path, tmp_path / "input.h5")
    if path.parent.name == "tensor_hdf5":  # a text dataset: its values are what HDF5 crashed on
        done = run_ptm("inspect-tensor", "input.h5", "text", cwd=tmp_path, timeout=60)
        assert (done.returncode, done.stdout) == (1, ""), done.stderr
        assert done.stderr == "ptm: error: input.h5: text: it has a variable-length type of unknown kind 3\n"
        return
    done = run_ptm("inspect-tensor", "input.h5", "--format", "json", cwd=tmp_path, timeout=60)
    assert (done.returncode, done.stderr) == (0, "")
    assert "<unreadable: it has a variable-length type of unknown kind" in done.stdout  # the rest is shown
    done = run_ptm("merge", "input.h5", "--partial", "-o", "merged.h5", cwd=tmp_path, timeout=60)
    assert done.returncode == 2 and not (tmp_path / "merged.h5").exists()
    assert "attribute has a variable-length type of unknown kind" in done.stderr.splitlines()[0]


@pytest.mark.parametrize("args, code", [(["report", "input.h5", "-o", "page.html"], 2),
                                         (["merge", "input.h5", "--partial", "-o", "merged.h5"], 2),
                                         (["inspect-tensor", "input.h5"], 1)])
def test_an_attribute_that_claims_gigabytes_takes_none(tmp_path, args, code):
    # A 27 KB file whose weights_sha256 text claims 4 GB: HDF5 allocated it before reading (4.2 GB).
    import subprocess
    import sys

    from conftest import ptm_command

    shutil.copy(REGRESSIONS / "results_hdf5" / "oom-oom-2a4db897a9", tmp_path / "input.h5")
    measure = ("import json, resource, subprocess, sys; done = subprocess.run(sys.argv[1:], capture_output=True, "
               "text=True); print(json.dumps([done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "
               "done.stderr.splitlines()]))")
    done = subprocess.run([sys.executable, "-c", measure, *ptm_command(), *args], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120, check=True)
    exit_code, peak_kb, lines = json.loads(done.stdout)
    assert exit_code == code
    assert peak_kb < 1_500_000, f"ptm took {peak_kb >> 10} MB"
    assert lines[0].startswith("ptm: error: input.h5") and "damaged" in lines[0], lines
    assert not (tmp_path / "merged.h5").exists()


def _crash(path):
    import signal

    os.kill(os.getpid(), signal.SIGSEGV)


def _allocate(path):
    bytearray(3 << 30)


def _hang(path):
    import time

    time.sleep(60)


def _damaged(path):
    from ptmcli.sinks.resultrows import Damaged

    raise Damaged("left to the parent")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork: the reads run in ptm's process only")
@pytest.mark.parametrize("reads, message", [
    (_crash, "HDF5 crashed reading it with SIGSEGV"),
    (_allocate, "reading it takes more than 1 GB of memory: a length it claims is damaged"),
    (_hang, "HDF5 did not finish reading it in 1 s"),
    (_damaged, None),
    (lambda path: None, None),
])
def test_the_child_turns_a_crash_memory_and_a_hang_into_one_line(tmp_path, monkeypatch, reads, message):
    from ptmcli.sinks import hdf5_child
    from ptmcli.sinks.resultrows import Damaged

    monkeypatch.setattr(hdf5_child, "seconds_for", lambda path: 1.0)
    path = tmp_path / "any.h5"
    path.write_bytes(b"")
    if message is None:  # the child's own errors are the parent's to find and word
        assert hdf5_child.read_in_child(path, reads) is None
        return
    with pytest.raises(Damaged) as caught:
        hdf5_child.read_in_child(path, reads)
    assert str(caught.value) == message


def test_a_name_from_a_file_stays_on_its_one_stderr_line():
    # An .npz member named "DF\r\n\x1a\ntran.npy" broke its entry's line in three (tensor_npz).
    from ptmcli.sinks.progress import error_line

    out = io.StringIO()
    error_line("n.npz: DF\r\n\x1a\ntran: damaged (\x1b[31mred\u2028)", out)
    assert out.getvalue() == "ptm: n.npz: DF\\r\\n\\x1a\\ntran: damaged (\\x1b[31mred\\u2028)\n"
