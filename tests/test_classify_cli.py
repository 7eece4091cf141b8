"""`ptm classify` through the real entry point: exit codes, streams, formats, hostile inputs."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from conftest import EXAMPLES, ROOT, shared_file

LITE = ["--model", "efficientnet_lite0"]


def jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_help_of_every_command_imports_no_heavy_module():
    import subprocess

    commands = [[], ["classify"], ["models"], ["zebrafy"], ["weights"], ["weights", "list"], ["inspect-tensor"],
                ["export-hdf5"], ["merge"], ["report"]]
    code = (
        "import sys, runpy\n"
        f"for argv in {[['ptm', *c, '--help'] for c in commands]!r}:\n"
        "    sys.argv = argv\n"
        "    try:\n"
        "        runpy.run_module('ptmcli', run_name='__main__')\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = [m for m in ('torch', 'torchvision', 'numpy', 'h5py', 'PIL', 'av', 'onnxruntime')\n"
        "         if m in sys.modules]\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    for option in ("--top", "--side-by-side", "search order", "--select", "--compression", "--partial",
                   "NAME_files/"):
        assert option in done.stdout
    assert done.stderr.strip().endswith("HEAVY []")


def test_version(run_ptm):
    from ptmcli import __version__

    done = run_ptm("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"ptm {__version__}"


def test_coffee_is_espresso_and_chelsea_a_cat(run_ptm):
    done = run_ptm("classify", EXAMPLES / "coffee.png", EXAMPLES / "chelsea.png", *LITE, "--format", "jsonl")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    coffee, chelsea = jsonl(done.stdout)
    assert coffee["predictions"][0]["label"] == "espresso"
    assert coffee["predictions"][0]["probability"] > 0.8
    cats = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}
    assert cats & {p["label"] for p in chelsea["predictions"][:3]}
    assert [p["rank"] for p in coffee["predictions"]] == [1, 2, 3, 4, 5]


def test_book_dog_is_a_golden_retriever(run_ptm):
    bobby = shared_file("bobby.jpg")
    done = run_ptm("classify", bobby, *LITE, "--format", "json", "--top", "3")
    assert done.returncode == 0, done.stderr
    [record] = json.loads(done.stdout)
    first = record["predictions"][0]
    assert first["label"] == "golden retriever"
    assert first["probability"] > 0.9  # TF-style (x - 127) / 128 input; mean/std would give ~0.85


def test_pipe_output_is_plain_tsv(run_ptm):
    done = run_ptm("classify", EXAMPLES / "coffee.png", *LITE, "--top", "2")
    assert done.returncode == 0
    assert "\x1b[" not in done.stdout and "│" not in done.stdout
    rows = list(csv.reader(io.StringIO(done.stdout), dialect="excel-tab"))
    assert rows[0] == ["path", "status", "rank", "index", "label", "probability", "error"]
    assert rows[1][:5] == [str(EXAMPLES / "coffee.png"), "ok", "1", "967", "espresso"]
    assert len(rows) == 3


def test_folder_with_corrupt_file(run_ptm, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(EXAMPLES / "coffee.png", folder / "a_coffee.PNG")
    (folder / "b_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    (folder / "sub").mkdir()
    shutil.copy(EXAMPLES / "chelsea.png", folder / "sub" / "c.png")
    (folder / "notes.txt").write_text("ignored: not an image extension")

    done = run_ptm("classify", folder, *LITE, "--format", "jsonl")
    assert done.returncode == 1
    records = jsonl(done.stdout)
    assert [Path(r["path"]).name for r in records] == ["a_coffee.PNG", "c.png"]
    assert all(r["status"] == "ok" for r in records)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "b_broken.jpg" in lines[0]
    assert "Traceback" not in done.stderr

    aligned = run_ptm("classify", folder, *LITE, "--format", "jsonl", "--with-errors")
    rows = jsonl(aligned.stdout)
    assert [r["status"] for r in rows] == ["ok", "error", "ok"]
    assert "b_broken.jpg" in rows[1]["error"]


def test_fail_fast_stops_at_first_failure(run_ptm, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"garbage")
    done = run_ptm("classify", bad, EXAMPLES / "coffee.png", *LITE, "--fail-fast", "--batch-size", "1",
                   "--format", "jsonl")
    assert done.returncode == 1
    assert done.stdout == ""


def test_paths_from_stdin_and_missing_file(run_ptm, tmp_path):
    listing = f"{EXAMPLES / 'coffee.png'}\n{tmp_path / 'nope.jpg'}\n\n"
    done = run_ptm("classify", "-", *LITE, "--format", "csv", "--top", "1", input=listing)
    assert done.returncode == 1
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [r["label"] for r in rows] == ["espresso"]
    assert "nope.jpg" in done.stderr and "no such file" in done.stderr


def test_offline_without_resnet101_weights_says_how_to_fix(run_ptm, tmp_path):
    done = run_ptm("classify", tmp_path / "x.jpg", "--offline")
    assert done.returncode == 2
    assert "resnet101" in done.stderr
    assert "--weights" in done.stderr and "efficientnet_lite0" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--model", "resnet10"], "did you mean"),
        (["--device", "cuda:7"], "cuda"),
        (["--device", "tpu"], "not a device"),
    ],
)
def test_cannot_start(run_ptm, args, expected):
    if "cuda:7" in args:
        import torch

        if torch.cuda.device_count() > 7:
            pytest.skip("this machine has 8 GPUs")
    done = run_ptm("classify", EXAMPLES / "coffee.png", *LITE, *args)
    assert done.returncode == 2
    assert expected in done.stderr
    assert "Traceback" not in done.stderr


def test_no_inputs(run_ptm, tmp_path):
    (tmp_path / "empty").mkdir()
    done = run_ptm("classify", tmp_path / "empty", *LITE)
    assert done.returncode == 2
    assert "no images" in done.stderr


def test_debug_shows_traceback(run_ptm):
    done = run_ptm("--debug", "classify", "x.jpg", "--model", "resnet10")
    assert done.returncode != 0
    assert "Traceback" in done.stderr


def test_damaged_cached_weights_fail_cleanly(run_ptm, tmp_path):
    weights_dir = tmp_path / "wdir"
    weights_dir.mkdir()
    (weights_dir / "efficientnet-lite0-57934424.pth").write_bytes(b"\0" * 1000)
    done = run_ptm("classify", EXAMPLES / "coffee.png", *LITE, env={"PTM_WEIGHTS_DIR": str(weights_dir)})
    assert done.returncode == 2
    assert "damaged" in done.stderr and "Traceback" not in done.stderr


def test_weights_that_run_code_are_refused(run_ptm, tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    import pickle

    evil.write_bytes(pickle.dumps({"weight": Evil()}))
    done = run_ptm("classify", EXAMPLES / "coffee.png", *LITE, "--weights", evil)
    assert done.returncode == 2
    assert f"weights file {evil} was refused: it holds more than tensors (unpickling it would import " \
           "posix.system)" in done.stderr
    assert not marker.exists()


def test_weights_of_another_model_name_the_keys(run_ptm, tmp_path):
    import torch

    path = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(3, 3), "_fc.bias": torch.zeros(1000)}, path)
    done = run_ptm("classify", EXAMPLES / "coffee.png", *LITE, "--weights", path)
    assert done.returncode == 2
    assert "missing" in done.stderr and "_conv_stem.weight" in done.stderr
    assert "unexpected" in done.stderr and "conv.weight" in done.stderr


@pytest.mark.slow
def test_resnet101_checkpoint_matches_plain_torchvision(run_ptm, tmp_path, make_image):
    import torch
    import torchvision
    from PIL import Image

    torch.manual_seed(0)
    model = torchvision.models.resnet101().eval()
    checkpoint = tmp_path / "resnet101-random.pth"
    torch.save(model.state_dict(), checkpoint)
    image_path = make_image("odd.jpg", size=(301, 257), quality=90)

    weights = torchvision.models.ResNet101_Weights.DEFAULT
    with torch.inference_mode():
        batch = weights.transforms()(Image.open(image_path).convert("RGB")).unsqueeze(0)
        probs = model(batch).softmax(1)[0]
    top = probs.topk(5)

    done = run_ptm("classify", image_path, "--weights", checkpoint, "--format", "json")
    assert done.returncode == 0, done.stderr
    [record] = json.loads(done.stdout)
    assert [p["index"] for p in record["predictions"]] == top.indices.tolist()
    assert [p["probability"] for p in record["predictions"]] == pytest.approx(top.values.tolist(), rel=1e-4)
    assert record["predictions"][0]["label"] == weights.meta["categories"][top.indices[0]]


def test_models_lists_torchvision_and_lite(run_ptm):
    done = run_ptm("models", "--format", "json")
    assert done.returncode == 0
    records = {r["name"]: r for r in json.loads(done.stdout)}
    assert records["efficientnet_lite0"]["present"] is True
    assert records["resnet101"]["acc1"] == pytest.approx(81.886)
    assert records["resnet101"]["present"] is False  # isolated caches
    assert len(records) >= 80
    narrow = run_ptm("models", "resnet1*", "--format", "jsonl")
    assert {json.loads(l)["name"] for l in narrow.stdout.splitlines()} == {"resnet101", "resnet152", "resnet18"}


def test_python_dash_m_works(isolated_env):
    import subprocess

    done = subprocess.run([sys.executable, "-m", "ptmcli", "--version"], capture_output=True, text=True,
                          env=isolated_env, cwd=ROOT)
    assert done.returncode == 0 and done.stdout.startswith("ptm ")

