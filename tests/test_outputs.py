"""Result files without a model: HDF5 layout, crash safety, resume, merge, text files, shards."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest

from ptmcli.errors import OutputExists, OutputUnwritable, UsageProblem
from ptmcli.pipeline.inputs import collect
from ptmcli.pipeline.shards import Shard, in_shard, parse_shard, select
from ptmcli.results import BatchOutput, Classification, Prediction
from ptmcli.sinks.merge import merge_results
from ptmcli.sinks.resultfile import (
    ERROR,
    OK,
    PENDING,
    Row,
    RunInfo,
    check_output,
    open_results,
)

CLASSES = tuple(f"class {i} ü" for i in range(10))


def info(**changes) -> RunInfo:
    base = dict(model="fake", weights_file="fake.pth", weights_sha256="ab" * 32,
                preprocess={"resize": 256, "crop": 224}, top_k=3, categories=CLASSES,
                save_probabilities=True, feature_dim=4, inputs_total=0, ptm_version="test")
    base.update(changes)
    return RunInfo(**base)


def path_seed(path: str) -> int:
    return zlib.crc32(path.encode()) % 100_000


def fake_output(rows: list[Row], failing: set[str] = frozenset(), features: int = 4) -> BatchOutput:
    """Numbers derived from the input's path (as a model's from its content): checkable later."""
    results, probs, feats = [], [], []
    for row in rows:
        if row.path in failing:
            results.append(Classification(row.path, error=f"{row.path}: not an image"))
            probs.append(np.full(len(CLASSES), np.nan, np.float32))
            feats.append(np.full(features, np.nan, np.float32))
            continue
        p = np.random.default_rng(path_seed(row.path)).dirichlet(np.ones(len(CLASSES))).astype(np.float32)
        top = np.argsort(-p)[:3]
        results.append(Classification(row.path, tuple(
            Prediction(rank=r + 1, index=int(i), label=CLASSES[i], probability=float(p[i]))
            for r, i in enumerate(top))))
        probs.append(p)
        feats.append(np.full(features, path_seed(row.path), np.float32))
    return BatchOutput(results, np.stack(probs), np.stack(feats))


def run_rows(results, rows: list[Row], failing=frozenset(), batch=4, stop_after=None) -> None:
    todo = list(results.todo)
    for n, start in enumerate(range(0, len(todo), batch)):
        if stop_after is not None and n >= stop_after:
            return
        local = todo[start:start + batch]
        results.write(local, fake_output([rows[i] for i in local], failing))


def make_rows(n: int, prefix: str = "img") -> list[Row]:
    return [Row(i, f"{prefix}{i:03d}.png") for i in range(n)]


def read_all(path: Path) -> tuple[dict, dict]:
    with h5py.File(path, "r") as f:
        return {k: f.attrs[k] for k in f.attrs}, {name: f[name][...] for name in f}


def assert_same_file(a: Path, b: Path) -> None:
    attrs_a, data_a = read_all(a)
    attrs_b, data_b = read_all(b)
    assert {k: str(v) for k, v in attrs_a.items()} == {k: str(v) for k, v in attrs_b.items()}
    assert sorted(data_a) == sorted(data_b)
    for name in data_a:
        x, y = data_a[name], data_b[name]
        assert x.dtype == y.dtype, name
        if x.dtype.kind == "f":
            assert np.array_equal(x, y, equal_nan=True), name
        else:
            assert np.array_equal(x, y), name


def complete_file(path: Path, rows, failing=frozenset(), **info_changes) -> Path:
    info_changes.setdefault("inputs_total", len(rows))
    results = open_results(path, rows, info(**info_changes), resume=False)
    run_rows(results, rows, failing)
    results.close()
    return path


# --- HDF5 -----------------------------------------------------------------------------------


def test_hdf5_layout_rows_in_input_order(tmp_path):
    rows = make_rows(10)
    path = complete_file(tmp_path / "r.h5", rows, failing={"img003.png"})
    attrs, data = read_all(path)
    assert attrs["layout"] == "final" and bool(attrs["complete"])
    assert attrs["model"] == "fake" and int(attrs["top_k"]) == 3
    assert json.loads(attrs["preprocess"]) == {"resize": 256, "crop": 224}
    with h5py.File(path, "r") as f:
        assert list(f["path"].asstr()[...]) == [r.path for r in rows]
        assert list(f["status"][...]) == [OK, OK, OK, ERROR, OK, OK, OK, OK, OK, OK]
        assert h5py.check_enum_dtype(f["status"].dtype) == {"pending": 0, "ok": 1, "error": 2}
        assert f["error"].asstr()[3] == "img003.png: not an image"
        assert f["error"].asstr()[2] == ""
        assert list(f["top_index"][3]) == [-1, -1, -1]
        labels = f["top_label"].asstr()[...]
        classes = f["classes"].asstr()[...]
        assert all(labels[i, j] == classes[f["top_index"][i, j]] for i in range(10) if i != 3 for j in range(3))
        assert np.isnan(f["probabilities"][3]).all() and np.isnan(f["features"][3]).all()
        probs = f["probabilities"][...]
        np.testing.assert_array_equal(np.take_along_axis(probs, f["top_index"][...].clip(0), 1)[[0, 1, 2, 4]],
                                      f["top_probability"][[0, 1, 2, 4]])
        assert f["features"][7, 0] == path_seed("img007.png")
        for name in ("probabilities", "features", "status", "path"):
            assert f[name].compression == "gzip" and f[name].maxshape[0] is None


def test_resume_in_place_equals_uninterrupted(tmp_path):
    rows = make_rows(23)
    failing = {"img005.png", "img020.png"}
    whole = complete_file(tmp_path / "whole.h5", rows, failing)

    path = tmp_path / "r.h5"
    first = open_results(path, rows, info(inputs_total=23), resume=False)
    run_rows(first, rows, failing, stop_after=3)
    first.abort()  # as if killed between batches
    with h5py.File(path, "r") as f:
        assert f.attrs["layout"] == "working"
        assert list(np.bincount(f["status"][...], minlength=3)) == [11, 11, 1]  # pending, ok, error
    again = open_results(path, rows, info(inputs_total=23), resume=True)
    assert again.todo[0] == 5 and again.todo[1:] == list(range(12, 23))  # the failed row is retried
    run_rows(again, rows, failing)
    again.close()
    assert_same_file(whole, path)


def test_resume_after_inputs_changed_keeps_done_rows_by_path(tmp_path):
    rows = make_rows(12)
    path = tmp_path / "r.h5"
    first = open_results(path, rows, info(inputs_total=12), resume=False)
    run_rows(first, rows, stop_after=2)
    first.abort()
    # A file appeared in the middle of the sorted list: every later position moved.
    grown = [Row(i, p) for i, p in enumerate(sorted([r.path for r in rows] + ["img001b.png"]))]
    again = open_results(path, grown, info(inputs_total=13), resume=True)
    done = set(range(13)) - set(again.todo)
    assert {grown[i].path for i in done} == {r.path for r in rows[:8]}
    run_rows(again, grown)
    again.close()
    assert_same_file(complete_file(tmp_path / "whole.h5", grown), path)


def test_resume_of_final_file_retries_failed_rows(tmp_path):
    rows = make_rows(6)
    path = complete_file(tmp_path / "r.h5", rows, failing={"img002.png"})
    again = open_results(path, rows, info(inputs_total=6), resume=True)
    assert again.todo == [2]
    run_rows(again, rows)  # the file is readable now
    again.close()
    assert_same_file(complete_file(tmp_path / "whole.h5", rows), path)
    nothing = open_results(path, rows, info(inputs_total=6), resume=True)
    assert nothing.todo == []
    before = path.stat().st_mtime_ns
    nothing.close()
    assert path.stat().st_mtime_ns == before


def test_resume_refuses_other_settings_and_keeps_the_file(tmp_path):
    rows = make_rows(4)
    path = complete_file(tmp_path / "r.h5", rows)
    before = path.read_bytes()
    with pytest.raises(OutputUnwritable) as caught:
        open_results(path, rows, info(inputs_total=4, top_k=5), resume=True)
    assert any("--top" in hint for hint in caught.value.hints)
    with pytest.raises(OutputUnwritable):
        open_results(path, rows, info(inputs_total=4, weights_sha256="cd" * 32), resume=True)
    with pytest.raises(OutputUnwritable):
        open_results(path, rows, info(inputs_total=4, save_probabilities=False), resume=True)
    assert path.read_bytes() == before


def test_existing_output_needs_resume_or_force(tmp_path):
    (tmp_path / "r.h5").write_bytes(b"x")
    with pytest.raises(OutputExists):
        check_output(str(tmp_path / "r.h5"), resume=False, force=False)
    check_output(str(tmp_path / "r.h5"), resume=False, force=True)
    with pytest.raises(UsageProblem):
        check_output(str(tmp_path / "r.txt"), resume=False, force=False)
    with pytest.raises(OutputUnwritable):
        check_output(str(tmp_path / "r.h5" / "inner.h5"), resume=False, force=False)
    with pytest.raises(OutputUnwritable, match="not a ptm|cannot open"):
        open_results(tmp_path / "r.h5", make_rows(2), info(), resume=True)


def test_write_failure_keeps_earlier_rows(tmp_path, monkeypatch):
    rows = make_rows(12)
    path = tmp_path / "r.h5"
    results = open_results(path, rows, info(inputs_total=12), resume=False)
    run_rows(results, rows, stop_after=1)
    original = h5py.Dataset.__setitem__

    def disk_full(self, key, value):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(h5py.Dataset, "__setitem__", disk_full)
    with pytest.raises(OutputUnwritable, match="No space left on device") as caught:
        run_rows(results, rows)
    assert "4 results" in caught.value.message
    monkeypatch.setattr(h5py.Dataset, "__setitem__", original)
    results.abort()
    with h5py.File(path, "r") as f:
        assert list(f["status"][...]) == [OK] * 4 + [PENDING] * 8


_WRITER = r"""
import sys
import numpy as np
sys.path.insert(0, sys.argv[2])
from test_outputs import info, make_rows, fake_output  # noqa: E402
from ptmcli.sinks.resultfile import open_results
rows = make_rows(4000)
results = open_results(__import__("pathlib").Path(sys.argv[1]), rows, info(inputs_total=4000), resume=False)
print("ready", flush=True)
for start in range(0, 4000, 8):
    local = list(range(start, start + 8))
    results.write(local, fake_output([rows[i] for i in local]))
"""


@pytest.mark.slow
def test_sigkill_at_random_moments_leaves_a_readable_consistent_file(tmp_path):
    """The claim in sinks/hdf5_results.py: a killed writer never leaves an unreadable file or a row marked
    ok whose numbers are not on disk."""
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    rng = random.Random(6)
    checked = 0
    for trial in range(8):
        path = tmp_path / f"k{trial}.h5"
        proc = subprocess.Popen([sys.executable, str(script), str(path), str(Path(__file__).parent)],
                                stdout=subprocess.PIPE,
                                env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)})
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(rng.uniform(0.05, 0.8))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with h5py.File(path, "r") as f:  # opens, without h5clear or locking tricks
            status = f["status"][...]
            done = np.flatnonzero(status == OK)
            assert set(np.unique(status)) <= {PENDING, OK}
            paths = f["path"].asstr()[...]
            np.testing.assert_array_equal(f["features"][...][done, 0], [path_seed(p) for p in paths[done]])
            assert not np.isnan(f["probabilities"][...][done]).any()
            assert paths[-1] == "img3999.png"
        checked += len(done)
    assert checked > 0


# --- merge -----------------------------------------------------------------------------------


def shard_files(tmp_path, rows, count, failing=frozenset(), **changes):
    files = []
    for k in range(1, count + 1):
        mine = [r for r in rows if in_shard(r.path, Shard(k, count))]
        files.append(complete_file(tmp_path / f"shard-{k}.h5", mine, failing,
                                   shard=f"{k}/{count}", **changes))
    return files


def test_merged_shards_equal_one_unsharded_run(tmp_path):
    rows = make_rows(30)
    rows[4] = Row(4, "img004-with-a-long-name-so-its-error-is-the-longest.png")
    failing = {rows[4].path}
    whole = complete_file(tmp_path / "whole.h5", rows, failing, inputs_total=30)
    files = shard_files(tmp_path, rows, 3, failing, inputs_total=30)
    assert all(0 < h5py.File(f, "r")["status"].shape[0] < 30 for f in files)
    assert sum(h5py.File(f, "r")["error"].dtype.itemsize > 1 for f in files) == 1
    for order, sources in enumerate((files, files[::-1])):
        merge_results(sources, tmp_path / f"all{order}.h5")
        assert_same_file(whole, tmp_path / f"all{order}.h5")


def test_merge_refuses_missing_or_mixed_shards(tmp_path):
    rows = make_rows(20)
    files = shard_files(tmp_path, rows, 3, inputs_total=20)
    with pytest.raises(OutputUnwritable, match="shard 2 of 3 missing"):
        merge_results([files[0], files[2]], tmp_path / "all.h5")
    merge_results([files[0], files[2]], tmp_path / "part.h5", partial=True)
    with h5py.File(tmp_path / "part.h5", "r") as f:
        assert f.attrs["shard"] == "1+3/3" and not f.attrs["complete"]
        assert list(f["input_index"][...]) == sorted(f["input_index"][...])
    other = complete_file(tmp_path / "other.h5", [r for r in rows if in_shard(r.path, Shard(2, 3))],
                          shard="2/3", inputs_total=20, top_k=2)
    with pytest.raises(OutputUnwritable, match="made differently"):
        merge_results([files[0], other, files[2]], tmp_path / "all.h5")
    with pytest.raises(OutputExists):
        merge_results(files, tmp_path / "part.h5")


# --- text -------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_text_resume_rewrites_in_input_order(tmp_path, suffix):
    rows = make_rows(14)
    failing = {"img002.png"}
    plain = info(save_probabilities=False, feature_dim=None, inputs_total=14)
    whole = tmp_path / f"whole{suffix}"
    results = open_results(whole, rows, plain, resume=False)
    run_rows(results, rows, failing)
    results.close()

    path = tmp_path / f"r{suffix}"
    first = open_results(path, rows, plain, resume=False)
    run_rows(first, rows, failing, stop_after=2)
    first.abort()
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"input_index": 8, "path": "img0')  # what a killed writer leaves
    again = open_results(path, rows, plain, resume=True)
    assert again.todo == [2, *range(8, 14)]
    run_rows(again, rows, failing)
    again.close()
    assert path.read_text(encoding="utf-8") == whole.read_text(encoding="utf-8")
    lines = whole.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 14 + (suffix == ".csv")
    if suffix == ".jsonl":
        record = json.loads(lines[2])
        assert record == {"input_index": 2, "path": "img002.png", "status": "error",
                          "error": "img002.png: not an image"}
        assert len(json.loads(lines[0])["predictions"]) == 3
    else:
        assert lines[0].startswith("input_index,path,status,error,class_1,label_1,probability_1")


def test_text_merge(tmp_path):
    rows = make_rows(10)
    plain = info(save_probabilities=False, feature_dim=None)
    whole = tmp_path / "whole.jsonl"
    results = open_results(whole, rows, plain, resume=False)
    run_rows(results, rows)
    results.close()
    parts = []
    for k in (1, 2):
        part = tmp_path / f"part{k}.jsonl"
        mine = [r for r in rows if in_shard(r.path, Shard(k, 2))]
        results = open_results(part, mine, plain, resume=False)
        run_rows(results, mine)
        results.close()
        parts.append(part)
    merge_results(parts, tmp_path / "all.jsonl")
    assert (tmp_path / "all.jsonl").read_text() == whole.read_text()


# --- shards -----------------------------------------------------------------------------------


def test_parse_shard():
    assert parse_shard("3/8") == Shard(3, 8)
    assert str(parse_shard(" 1 / 1 ")) == "1/1"
    for bad in ("0/4", "5/4", "x", "1/0", "1-4"):
        with pytest.raises(UsageProblem):
            parse_shard(bad)
    with pytest.raises(UsageProblem) as caught:
        parse_shard("0/4")
    assert any("ID + 1" in hint for hint in caught.value.hints)


def test_shards_partition_and_stay_put_when_files_are_added(tmp_path):
    folder = tmp_path / "photos"
    for i in range(60):
        (folder / f"d{i % 4}").mkdir(parents=True, exist_ok=True)
        (folder / f"d{i % 4}" / f"p{i}.jpg").write_bytes(b"x")
    inputs = collect([str(folder)])
    parts = [select(inputs, Shard(k, 4)) for k in range(1, 5)]
    positions = sorted(e.position for part in parts for e in part)
    assert positions == list(range(60))
    assert all(5 <= len(part) <= 25 for part in parts)
    before = {e.key: k for k, part in enumerate(parts) for e in part}
    for i in range(60, 80):
        (folder / "d0" / f"new{i}.jpg").write_bytes(b"x")
    after = {e.key: k for k in range(4) for e in select(collect([str(folder)]), Shard(k + 1, 4))}
    assert {key: after[key] for key in before} == before
    # The same tree at another place (or named through a relative path) splits the same way.
    moved = tmp_path / "elsewhere"
    folder.rename(moved)
    assert {e.key: k for k in range(4) for e in select(collect([str(moved)]), Shard(k + 1, 4))} == after
    assert inputs[0].key == "d0/p0.jpg"


def test_an_empty_shard_is_a_valid_empty_file(tmp_path):
    path = complete_file(tmp_path / "empty.h5", [], inputs_total=5, shard="3/4")
    with h5py.File(path, "r") as f:
        assert f["path"].shape == (0,) and f["features"].shape == (0, 4) and f.attrs["complete"]


def test_csv_quotes_commas_and_drops_newlines_in_errors(tmp_path):
    rows = [Row(0, "a,b.png"), Row(1, 'say "hi".png')]
    plain = info(save_probabilities=False, feature_dim=None)
    results = open_results(tmp_path / "r.csv", rows, plain, resume=False)
    batch = fake_output(rows, failing={'say "hi".png'})
    batch.results[1] = Classification('say "hi".png', error="broken\nfile")
    results.write([0, 1], batch)
    results.close()
    import csv

    table = list(csv.reader(open(tmp_path / "r.csv", newline="", encoding="utf-8")))
    assert [row[1] for row in table[1:]] == ["a,b.png", 'say "hi".png']
    assert table[2][2:4] == ["error", "broken file"]
    assert len(table[1]) == len(table[0]) == 4 + 3 * 3
