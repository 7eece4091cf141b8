"""`ptm classify` on videos: one row per sampled frame, named by the video and the frame's time,
in every format and results file, with --resume, merge and the report; hostile videos fail one
line each. Clips are made here (tests/video_helpers.py); the model is EfficientNet-Lite0."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

pytest.importorskip("av")

from conftest import EXAMPLES, ROOT
from video_helpers import frames_of, make_clip

LITE = ["--model", "efficientnet_lite0", "--top", "2"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """3 s at 25 fps, 160 x 96, with an AAC tone."""
    return make_clip(tmp_path_factory.mktemp("clips") / "ride.mp4", seconds=3.0, size=(160, 96))


@pytest.fixture(scope="module")
def gif(tmp_path_factory) -> Path:
    """An animated GIF: 6 frames of 100 .. 600 ms (times 0, .1, .3, .6, 1.0, 1.5 s)."""
    import numpy as np
    from PIL import Image

    path = tmp_path_factory.mktemp("gifs") / "blink.gif"
    frames = [Image.fromarray(np.full((40, 56, 3), 30 * i, np.uint8)) for i in range(6)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=[100, 200, 300, 400, 500, 600])
    return path


def classify(run_ptm, *args, **kwargs):
    return run_ptm("classify", *map(str, args), *LITE, **kwargs)


def jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def test_a_video_is_a_row_per_second_with_its_time_in_every_format(run_ptm, clip, gif):
    photo = EXAMPLES / "coffee.png"
    done = classify(run_ptm, clip, photo, gif, "--format", "jsonl")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    records = jsonl(done.stdout)
    assert [(r["path"], r.get("time")) for r in records] == [
        (str(clip), 0.0), (str(clip), 1.0), (str(clip), 2.0), (str(photo), None), (str(gif), 0.0), (str(gif), 1.0)]
    assert list(records[0]) == ["path", "time", "status", "predictions"]
    assert records[3]["predictions"][0]["label"] == "espresso"

    every = jsonl(classify(run_ptm, clip, "--every", "20", "--format", "jsonl").stdout)
    assert [r["time"] for r in every] == [0.0, 0.8, 1.6, 2.4]  # frames 0, 20, 40, 60 at 25 fps
    half = jsonl(classify(run_ptm, gif, "--every", "0.5s", "--format", "jsonl").stdout)
    assert [r["time"] for r in half] == [0.0, 0.6, 1.0, 1.5]  # the first frame at or after each 0.5 s

    as_json = json.loads(classify(run_ptm, clip, photo, "--format", "json").stdout)
    assert [r.get("time") for r in as_json] == [0.0, 1.0, 2.0, None]
    for fmt, delimiter in (("csv", ","), ("tsv", "\t")):
        rows = list(csv.reader(io.StringIO(classify(run_ptm, clip, photo, "--format", fmt).stdout),
                               delimiter=delimiter))
        assert rows[0] == ["path", "time", "status", "rank", "index", "label", "probability", "error"]
        assert [(r[0], r[1], r[3]) for r in rows[1:]] == [
            (str(clip), t, rank) for t in ("0.000000", "1.000000", "2.000000") for rank in ("1", "2")
        ] + [(str(photo), "", "1"), (str(photo), "", "2")]
    table = classify(run_ptm, clip, "--format", "table").stdout
    assert "time" in table and "1.000 s" in table and "2.000 s" in table

    # A run of photos alone prints what it always did: no time column.
    assert classify(run_ptm, photo, "--format", "tsv").stdout.splitlines()[0] == \
        "path\tstatus\trank\tindex\tlabel\tprobability\terror"


def test_a_frame_is_classified_exactly_as_the_same_frame_saved_as_a_png(run_ptm, tmp_path, clip):
    from PIL import Image

    frames = dict((round(t, 6), picture) for picture, t in frames_of(clip))
    for t in (0.0, 1.0, 2.0):
        Image.fromarray(frames[t]).save(tmp_path / f"at_{t:.0f}.png")
    # One row a forward pass: a row's numbers also depend on its place in a batch (CPU kernels).
    done = classify(run_ptm, clip, "--format", "jsonl", "--batch-size", "1")
    pngs = classify(run_ptm, *(tmp_path / f"at_{t:.0f}.png" for t in (0.0, 1.0, 2.0)), "--format", "jsonl",
                    "--batch-size", "1")
    assert done.returncode == pngs.returncode == 0, done.stderr + pngs.stderr
    assert [r["predictions"] for r in jsonl(done.stdout)] == [r["predictions"] for r in jsonl(pngs.stdout)]


def _results(path: Path) -> list:
    """A results file's rows as (input_index, path, time, top labels), whatever its format."""
    if path.suffix == ".h5":
        import h5py
        import numpy as np

        with h5py.File(path, "r") as f:
            stored = f["time"][...] if "time" in f else np.full(f["path"].shape, np.nan)
            times = [None if np.isnan(t) else float(t) for t in stored]
            return list(zip(f["input_index"][...].tolist(), f["path"].asstr()[...].tolist(), times,
                            [tuple(row) for row in f["top_label"].asstr()[...].tolist()]))
    if path.suffix == ".jsonl":
        return [(r["input_index"], r["path"], r.get("time"), tuple(p["label"] for p in r["predictions"]))
                for r in jsonl(path.read_text())]
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    return [(int(r["input_index"]), r["path"], float(r["time"]) if r.get("time") else None,
             (r["label_1"], r["label_2"])) for r in rows]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".h5"])
def test_results_files_hold_the_times_and_resume_and_merge_by_path_and_time(run_ptm, tmp_path, clip, suffix):
    photo = EXAMPLES / "chelsea.png"
    whole = tmp_path / f"whole{suffix}"
    done = classify(run_ptm, photo, clip, "-o", whole)
    assert done.returncode == 0 and done.stdout == "", done.stderr
    rows = _results(whole)
    assert [(i, p, t) for i, p, t, _ in rows] == [(0, str(photo), None), (1, str(clip), 0.0),
                                                   (2, str(clip), 1.0), (3, str(clip), 2.0)]
    if suffix != ".h5":
        # A run stopped after two rows: --resume does the other frames, and the file equals a whole run.
        cut = tmp_path / f"cut{suffix}"
        lines = whole.read_text().splitlines(keepends=True)
        cut.write_text("".join(lines[:2 if suffix == ".jsonl" else 3]))
        assert classify(run_ptm, photo, clip, "-o", cut, "--resume").returncode == 0
        assert cut.read_text() == whole.read_text()
    # Shards (a video is never split between them) merge into what one run writes.
    shards = [tmp_path / f"shard{k}{suffix}" for k in (1, 2)]
    for k, shard in enumerate(shards, 1):
        assert classify(run_ptm, photo, clip, EXAMPLES / "camera.png", "-o", shard,
                        "--shard", f"{k}/2").returncode == 0
    merged, one = tmp_path / f"merged{suffix}", tmp_path / f"one{suffix}"
    assert run_ptm("merge", *shards, "-o", merged).returncode == 0
    assert classify(run_ptm, photo, clip, EXAMPLES / "camera.png", "-o", one).returncode == 0
    assert _results(merged) == _results(one)
    videos = [{p for _, p, t, _ in _results(shard) if t is not None} for shard in shards]
    assert sorted(map(len, videos)) == [0, 1]
    # And the report reads them back: the video's frames as one strip.
    report = tmp_path / "report.html"
    assert run_ptm("report", merged, "-o", report).returncode == 0
    page = report.read_text()
    assert page.count('class="card strip"') == 1 and page.count('class="time"') == 3


def test_old_results_files_without_times_resume_with_a_video_added(run_ptm, tmp_path, clip):
    photo = EXAMPLES / "coffee.png"
    for suffix in (".h5", ".jsonl", ".csv"):
        old = tmp_path / f"old{suffix}"
        assert classify(run_ptm, photo, "-o", old).returncode == 0  # the layout ptm always wrote
        before = _results(old) if suffix != ".h5" else None
        done = classify(run_ptm, photo, clip, "-o", old, "--resume")
        if suffix == ".csv":  # its columns cannot hold a time: refused, the file untouched
            assert done.returncode == 2 and "no column for video frames' times" in done.stderr
            assert _results(old) == before
            continue
        assert done.returncode == 0, done.stderr
        assert [(p, t) for _, p, t, _ in _results(old)] == [(str(photo), None), (str(clip), 0.0),
                                                            (str(clip), 1.0), (str(clip), 2.0)]
    report = tmp_path / "old.html"
    assert run_ptm("report", tmp_path / "old.csv", "-o", report).returncode == 0


def test_hostile_videos_fail_one_line_each_and_the_photos_are_done(run_ptm, tmp_path, clip):
    data = clip.read_bytes()
    hostile = tmp_path / "in"
    hostile.mkdir()
    (hostile / "truncated.mp4").write_bytes(data[: len(data) // 3])
    (hostile / "empty.mp4").write_bytes(b"")
    (hostile / "junk.mkv").write_bytes(os.urandom(3000))
    make_clip(hostile / "header_only.mp4", seconds=0.4, size=(64, 48), audio=False)
    header_only = (hostile / "header_only.mp4").read_bytes()
    (hostile / "header_only.mp4").write_bytes(header_only[: header_only.index(b"mdat") + 4])
    shutil.copy(EXAMPLES / "coffee.png", hostile / "photo.png")
    out = tmp_path / "out.jsonl"
    for args in (["--format", "jsonl"], ["-o", out]):
        done = classify(run_ptm, hostile, *args)
        assert done.returncode == 1
        lines = sorted(done.stderr.splitlines())
        names = ("empty.mp4", "header_only.mp4", "junk.mkv", "truncated.mp4")
        assert [line.split(": ")[1] for line in lines] == [str(hostile / name) for name in names]
        assert lines[0] == f"ptm: {hostile / 'empty.mp4'}: an empty file"
        assert all("cannot decode video" in line or "without a frame" in line for line in lines[1:]), lines
        assert "Traceback" not in done.stderr
    assert [r["path"] for r in jsonl(out.read_text()) if r["status"] == "ok"] == \
        [str(hostile / "photo.png")]

    done = classify(run_ptm, clip, "--format", "jsonl", env={"PTM_MAX_PIXELS": "10000"})
    assert done.returncode == 1
    assert done.stderr == (f"ptm: {clip}: 160x96 video frames are more than 10,000 pixels; "
                           "set PTM_MAX_PIXELS to allow them\n")


def test_every_is_checked_before_anything_is_read(run_ptm, clip):
    for bad in ("0", "0s", "abc", "1.5", "-1s"):
        done = classify(run_ptm, clip, "--every", bad)
        assert done.returncode == 2 and "--every" in done.stderr.splitlines()[0], (bad, done.stderr)


def test_help_imports_no_pyav():
    import subprocess

    code = ("import sys\nfrom ptmcli import cli\nsys.argv = ['ptm', 'classify', '--help']\n"
            "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
            "print('HEAVY', [m for m in ('av', 'torch') if m in sys.modules], file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert "--every" in done.stdout
    assert done.stderr.strip().splitlines()[-1] == "HEAVY []"
