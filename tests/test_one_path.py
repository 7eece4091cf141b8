"""Issue 9: every way of running `ptm classify` is one path and computes the same numbers.

The same inputs (a bad file among them) go to stdout in every machine format, to every kind of
result file, through shards and `ptm merge`, through a run stopped by `--fail-fast` and one killed
by SIGKILL, each finished by `--resume`, and through the Ray engine. Probabilities must be identical bit for bit where a
format keeps every bit (HDF5) and digit for digit where it rounds (text); rows and statuses must
be identical everywhere. Plus the `--fail-fast` rule, and empty folders named in the error.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import EXAMPLES, ptm_command
from test_outputs import assert_same_file
from zebra_helpers import save_generator

LITE = ["--model", "efficientnet_lite0"]
# 7 inputs at batch size 4: a full pass and a short one, so padding decides the numbers.
BATCH = ["--batch-size", "4"]
# Every run on one thread, so the Ray engine (one thread per actor) can be compared bit for bit.
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    from PIL import Image

    folder = tmp_path_factory.mktemp("one-path") / "photos"
    folder.mkdir()
    shutil.copy(EXAMPLES / "coffee.png", folder / "a_coffee.png")
    shutil.copy(EXAMPLES / "chelsea.png", folder / "b_chelsea.png")
    (folder / "c_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    rng = np.random.default_rng(9)
    for name in ("d_noise.jpg", "e_noise.png", "f_noise.jpg", "g_noise.png"):
        Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(folder / name)
    return folder


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    cache = tmp_path_factory.mktemp("cache")
    base = {k: v for k, v in os.environ.items() if not k.startswith("PTM_")}
    return {**base, "XDG_CACHE_HOME": str(cache / "xdg"), "TORCH_HOME": str(cache / "torch"),
            "PTM_OFFLINE": "1", "PTM_RUNTIME": "torch", "NO_COLOR": "1", **ONE_THREAD}


@pytest.fixture(scope="module", params=["torch", "onnxruntime"])
def runtime_work(request, photos, env, tmp_path_factory) -> tuple[Path, dict]:
    """A folder beside the photos for one runtime's runs, and that runtime's environment."""
    work = tmp_path_factory.mktemp(f"work-{request.param}")
    (work / "photos").symlink_to(photos, target_is_directory=True)
    return work, {**env, "PTM_RUNTIME": request.param}


def ptm(env, *args, cwd: Path, extra: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*ptm_command(), *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env={**env, **(extra or {})}, timeout=300)


# `ptm` in-process, killed by SIGKILL (nothing flushed on the way out) right after the first batch
# reaches its HDF5 file: a kill at a known moment, so the test does not race the run.
_KILLED_AFTER_FIRST_BATCH = """
import os, signal, sys
from ptmcli.sinks import hdf5_results
write = hdf5_results.Hdf5Results.write
def write_then_die(self, rows, batch):
    write(self, rows, batch)
    os.kill(os.getpid(), signal.SIGKILL)
hdf5_results.Hdf5Results.write = write_then_die
sys.argv = ["ptm", *sys.argv[1:]]
from ptmcli.cli import main
main()
"""


def test_every_path_gives_the_same_rows_and_numbers(photos, runtime_work):
    work, env = runtime_work
    common = ["photos", *LITE, *BATCH, "--top", "5"]

    stdout_jsonl = ptm(env, "classify", *common, "--format", "jsonl", "--with-errors", cwd=work)
    assert stdout_jsonl.returncode == 1
    assert stdout_jsonl.stderr.count("ptm: photos/c_broken.jpg: ") == 1
    stdout_json = ptm(env, "classify", *common, "--format", "json", "--with-errors", cwd=work)
    stdout_csv = ptm(env, "classify", *common, "--format", "csv", "--with-errors", cwd=work)
    stdout_tsv = ptm(env, "classify", *common, "--format", "tsv", "--with-errors", cwd=work)
    for name in ("r.jsonl", "r.csv", "r.tsv", "r.h5"):
        assert ptm(env, "classify", *common, "-o", name, cwd=work).returncode == 1
    from ptmcli.pipeline.shards import Shard, in_shard

    for k in (1, 2):
        holds_the_bad_file = in_shard("c_broken.jpg", Shard(k, 2))
        sharded = ptm(env, "classify", *common, "--shard", f"{k}/2", "-o", f"s{k}.h5", cwd=work)
        assert sharded.returncode == (1 if holds_the_bad_file else 0), sharded.stderr
    assert ptm(env, "merge", "s1.h5", "s2.h5", "-o", "merged.h5", cwd=work).returncode == 0
    # Stopped at the bad file by --fail-fast, then finished by --resume.
    stopped = ptm(env, "classify", *common, "-o", "resumed.h5", "--fail-fast", cwd=work)
    assert stopped.returncode == 1 and "--resume" in stopped.stderr
    assert ptm(env, "classify", *common, "-o", "resumed.h5", "--resume", cwd=work).returncode == 1
    # Killed after its first batch, then finished by --resume.
    killed = subprocess.run([sys.executable, "-c", _KILLED_AFTER_FIRST_BATCH, "classify", *common, "-o", "killed.h5"],
                            capture_output=True, text=True, cwd=work, env=env, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    with h5py.File(work / "killed.h5") as f:
        assert f.attrs["layout"] == "working" and list(f["status"][...]) == [1, 1, 2, 1, 0, 0, 0]
    assert ptm(env, "classify", *common, "-o", "killed.h5", "--resume", cwd=work).returncode == 1

    # Stdout: one object per input, in order, the same in every format.
    records = [json.loads(line) for line in stdout_jsonl.stdout.splitlines()]
    assert [r["path"] for r in records] == [f"photos/{p.name}" for p in sorted(photos.iterdir())]
    assert [r["status"] for r in records] == ["ok", "ok", "error", "ok", "ok", "ok", "ok"]
    assert json.loads(stdout_json.stdout) == records
    long_rows = list(csv.reader(io.StringIO(stdout_csv.stdout)))
    assert list(csv.reader(io.StringIO(stdout_tsv.stdout), dialect="excel-tab")) == long_rows
    expected_long = [["path", "status", "rank", "index", "label", "probability", "error"]]
    for r in records:
        if r["status"] == "error":
            expected_long.append([r["path"], "error", "", "", "", "", r["error"]])
        for p in r.get("predictions", []):
            expected_long.append([r["path"], "ok", str(p["rank"]), str(p["index"]), p["label"], None, ""])
    assert [row[:5] + row[6:] for row in long_rows] == [row[:5] + row[6:] for row in expected_long]

    # Result files: the same objects (plus input_index), the same fields.
    in_file = [json.loads(line) for line in (work / "r.jsonl").read_text().splitlines()]
    assert in_file == [{"input_index": i, **r} for i, r in enumerate(records)]
    wide = list(csv.reader((work / "r.csv").open()))
    assert list(csv.reader((work / "r.tsv").open(), dialect="excel-tab")) == wide

    # HDF5 keeps every bit: one run, merged shards and a resumed run are the same file.
    assert_same_file(work / "r.h5", work / "merged.h5")
    assert_same_file(work / "r.h5", work / "resumed.h5")
    assert_same_file(work / "r.h5", work / "killed.h5")
    with h5py.File(work / "r.h5") as f:
        status = list(f["status"][...])
        probability = f["top_probability"][...]
        index = f["top_index"][...]
    assert status == [1, 1, 2, 1, 1, 1, 1]
    for row, record in enumerate(records):
        if record["status"] != "ok":
            continue
        assert [p["index"] for p in record["predictions"]] == index[row].tolist()
        # Stdout rounds to 6 significant digits and csv to 6 decimals, from the very same float32.
        assert [p["probability"] for p in record["predictions"]] == [float(f"{v:.6g}") for v in probability[row]]
        csv_row = wide[1 + row]
        assert csv_row[6::3] == [f"{v:.6f}" for v in probability[row]]
        assert [r[5] for r in long_rows[1:] if r[0] == record["path"]] == [f"{v:.6f}" for v in probability[row]]


@pytest.mark.slow
def test_ray_engine_writes_the_same_rows_and_numbers(photos, env):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'ptmcli[ray]')")
    work = photos.parent
    args = ["classify", "photos", *LITE, *BATCH, "--top", "5"]
    ray_env = {"RAY_ADDRESS": "", "RAY_AUTH_MODE": "disabled"}
    assert ptm(env, *args, "-o", "r.h5", cwd=work).returncode == 1
    on_ray = ptm(env, *args, "-o", "ray.h5", "--engine", "ray", cwd=work, extra=ray_env)
    assert on_ray.returncode == 1, on_ray.stderr
    assert on_ray.stderr.count("ptm: photos/c_broken.jpg: ") == 1
    # Ray's own start-up and worker chatter stays off ptm's stderr (it goes to a log without --debug).
    assert [line for line in on_ray.stderr.splitlines() if not line.startswith("ptm: ")] == []
    assert_same_file(work / "r.h5", work / "ray.h5")


def f_status(path: Path) -> list[int]:
    with h5py.File(path) as f:
        return list(f["status"][...])


# --- --fail-fast ---------------------------------------------------------------------------------


@pytest.fixture
def bad_second(tmp_path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(EXAMPLES / "coffee.png", folder / "1_coffee.png")
    (folder / "2_bad.png").write_bytes(b"not an image")
    shutil.copy(EXAMPLES / "chelsea.png", folder / "3_chelsea.png")
    shutil.copy(EXAMPLES / "coffee.png", folder / "4_coffee.png")
    return folder


@pytest.mark.parametrize("batch", ["4", "1"])
def test_fail_fast_prints_nothing_after_the_first_failure(run_ptm, bad_second, batch):
    done = run_ptm("classify", bad_second, *LITE, "--batch-size", batch, "--format", "jsonl", "--with-errors",
                   "--fail-fast")
    assert done.returncode == 1
    assert [(r["path"].rsplit("/", 1)[1], r["status"]) for r in map(json.loads, done.stdout.splitlines())] == \
        [("1_coffee.png", "ok"), ("2_bad.png", "error")]
    assert done.stderr.count("ptm: ") == 1 and "2_bad.png: not an image" in done.stderr


def test_fail_fast_result_file_stops_at_the_failure(run_ptm, bad_second, tmp_path):
    done = run_ptm("classify", bad_second, *LITE, "-o", tmp_path / "r.h5", "--fail-fast")
    assert done.returncode == 1
    assert "stopped at the first failed input (--fail-fast)" in done.stderr
    assert f_status(tmp_path / "r.h5") == [1, 2, 0, 0]


def test_fail_fast_starts_no_forward_pass_for_later_inputs():
    from ptmcli.pipeline.classification import classify_batches
    from ptmcli.pipeline.inputs import InputItem

    class Counting:
        categories = ["a", "b"]
        decode_workers = 1
        feature_dim = 1

        def __init__(self):
            self.passes: list[list[int]] = []

        def prepare(self, path: str):
            if path.startswith("bad"):
                raise ValueError("broken")
            return np.full((2, 2, 3), int(path[-1]), dtype=np.uint8)

        def forward(self, arrays, top, pad_to=None, features=False):
            self.passes.append([int(a[0, 0, 0]) for a in arrays])
            probs = np.tile(np.array([[0.25, 0.75]], dtype=np.float32), (len(arrays), 1))
            return probs, np.tile(np.array([[1, 0]]), (len(arrays), 1)), None

    work = list(enumerate(InputItem(p) for p in ["ok1", "ok2", "bad3", "ok4", "ok5"]))
    for batch_size, passes in ((8, [[1, 2]]), (2, [[1, 2]]), (3, [[1, 2]])):
        backend = Counting()
        out = list(classify_batches(backend, work, top=1, batch_size=batch_size, pad_to=batch_size, fail_fast=True))
        assert backend.passes == passes
        assert [row for rows, _ in out for row in rows] == [0, 1, 2]
        assert out[-1][1].results[-1].error is not None
    backend = Counting()
    list(classify_batches(backend, work, top=1, batch_size=2, pad_to=2, fail_fast=False))
    assert backend.passes == [[1, 2], [4], [5]]


def test_fail_fast_zebrafy_writes_no_file_after_the_failure(run_ptm, tmp_path, make_image):
    weights = save_generator(tmp_path / "small.pth", "book", ngf=4, n_blocks=1)
    folder = tmp_path / "in"
    make_image("1.png", size=(40, 40), folder=folder)
    (folder / "2.png").write_bytes(b"broken")
    make_image("3.png", size=(40, 40), folder=folder)
    done = run_ptm("zebrafy", folder, "-o", tmp_path / "out/", "--weights", weights, "--fail-fast",
                   "--batch-size", "4")
    assert done.returncode == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["1_zebra.png"]


# --- folders without images ----------------------------------------------------------------------


def test_an_empty_folder_alone_is_named(run_ptm, tmp_path):
    (tmp_path / "x.jpg").mkdir()  # a folder, whatever its name says
    done = run_ptm("classify", tmp_path / "x.jpg", *LITE)
    assert done.returncode == 2
    assert done.stderr.startswith(f"ptm: error: no images to classify: {tmp_path / 'x.jpg'}: a folder with no images")


def test_an_empty_folder_among_others_is_a_failed_input(run_ptm, tmp_path):
    (tmp_path / "empty").mkdir()
    done = run_ptm("classify", EXAMPLES / "coffee.png", tmp_path / "empty", *LITE, "--format", "jsonl")
    assert done.returncode == 1
    assert [json.loads(line)["path"] for line in done.stdout.splitlines()] == [str(EXAMPLES / "coffee.png")]
    assert done.stderr == f"ptm: {tmp_path / 'empty'}: a folder with no images in it (searched recursively " \
                          "for image file extensions)\n"


def test_an_empty_folder_is_named_by_zebrafy_too(run_ptm, tmp_path):
    (tmp_path / "empty").mkdir()
    done = run_ptm("zebrafy", tmp_path / "empty", "-o", tmp_path / "out/")
    assert done.returncode == 2
    assert f"no images to zebrafy: {tmp_path / 'empty'}" in done.stderr


def test_an_empty_folder_is_named_by_export_hdf5_too(run_ptm, tmp_path):
    (tmp_path / "empty").mkdir()
    alone = run_ptm("export-hdf5", tmp_path / "empty", "-o", tmp_path / "out.h5")
    assert alone.returncode == 2
    assert f"no images to export: {tmp_path / 'empty'}" in alone.stderr
    assert not (tmp_path / "out.h5").exists()
