"""Batch jobs through the real `ptm` entry point: --output, kills and --resume, shards, Ray.

One folder of tiny images (with three bad files) is classified once without interruption; every
other way of producing the same results (killed and resumed, sharded and merged, on Ray) must
give the same file, bit for bit.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import ptm_command
from test_outputs import assert_same_file

N_GOOD = 26
BAD = {"a/broken.png": b"this is not an image", "b/empty.jpg": b"", "b/truncated.png": None}
BATCH = "2"
H5_FLAGS = ["--model", "efficientnet_lite0", "--batch-size", BATCH, "--save-probs", "--save-features"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    from PIL import Image

    root = tmp_path_factory.mktemp("jobs")
    rng = np.random.default_rng(6)
    for i in range(N_GOOD):
        folder = root / "photos" / ("a" if i % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"img{i:02d}.png")
    for name, data in BAD.items():
        if data is None:
            data = (root / "photos" / "a" / "img01.png").read_bytes()[:60]
        (root / "photos" / name).write_bytes(data)
    return root


@pytest.fixture(scope="module")
def module_env(tmp_path_factory) -> dict[str, str]:
    cache = tmp_path_factory.mktemp("cache")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PTM_")}
    env.update(XDG_CACHE_HOME=str(cache / "xdg"), TORCH_HOME=str(cache / "torch"), PTM_OFFLINE="1",
               PTM_RUNTIME="torch", NO_COLOR="1")
    return env


def ptm(env, *args, cwd, extra_env=None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*ptm_command(), *map(str, args)], capture_output=True, text=True,
                          env={**env, **(extra_env or {})}, cwd=cwd, timeout=300, **kwargs)


def start(env, *args, cwd) -> subprocess.Popen:
    return subprocess.Popen([*ptm_command(), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)


def rows_done(path: Path) -> int:
    """Rows with a result in a file another process is writing (hence locking=False)."""
    try:
        with h5py.File(path, "r", locking=False) as f:
            return int((f["status"][...] != 0).sum())
    except (OSError, KeyError):
        return 0


def wait_for_rows(proc: subprocess.Popen, path: Path, at_least: int) -> int:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        done = rows_done(path)
        if done >= at_least:
            return done
        assert proc.poll() is None, f"ptm ended before it could be interrupted: {proc.stderr.read()}"
        time.sleep(0.02)
    raise AssertionError("no progress")


@pytest.fixture(scope="module")
def baseline(workspace, module_env) -> Path:
    done = ptm(module_env, "classify", "photos", "-o", "base.h5", *H5_FLAGS, cwd=workspace)
    assert done.returncode == 1, done.stderr  # three inputs failed, the others were classified
    assert done.stdout == ""
    lines = sorted(done.stderr.splitlines())
    assert [line.split(": ")[1] for line in lines] == sorted(f"photos/{name}" for name in BAD)
    assert "cannot decode image (image file is truncated)" in lines[-1]
    return workspace / "base.h5"


def test_one_row_per_input_aligned(baseline, workspace):
    with h5py.File(baseline, "r") as f:
        paths = list(f["path"].asstr()[...])
        status = f["status"][...]
        assert len(paths) == N_GOOD + len(BAD) == f["features"].shape[0]
        assert paths == sorted(paths) and paths[0] == "photos/a/broken.png"
        assert list(f["input_index"][...]) == list(range(len(paths)))
        failed = [p for p, s in zip(paths, status) if s == 2]
        assert sorted(failed) == sorted(f"photos/{name}" for name in BAD)
        errors = f["error"].asstr()[...]
        assert all(errors[i].startswith(paths[i] + ": ") for i in np.flatnonzero(status == 2))
        assert all(errors[i] == "" for i in np.flatnonzero(status == 1))
        assert f["features"].shape[1] == 1280 and f["probabilities"].shape[1] == 1000
        assert dict(f.attrs)["weights_sha256"] == "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
        assert f.attrs["model"] == "efficientnet_lite0" and f.attrs["complete"]
        assert json.loads(f.attrs["preprocess"])["crop"] == 224
        picks = [i for i in (1, 17, 28) if status[i] == 1]
        expected = {name: f[name][picks] for name in ("top_index", "top_probability", "probabilities", "features")}

    # The rows belong to their paths: the same images classified here, in a batch padded to
    # the same size, give the same numbers bit for bit.
    import torch

    from ptmcli.models import weights
    from ptmcli.models.classifier import Classifier
    from ptmcli.models.device import resolve_device
    from ptmcli.models.registry import get_classifier

    spec = get_classifier("efficientnet_lite0")
    # The device the subprocess picked with --device auto (CUDA where there is one).
    classifier = Classifier(spec, weights.resolve(spec.weights, offline=True), resolve_device("auto"))
    arrays = [classifier.prepare(str(workspace / paths[i])) for i in picks]
    from ptmcli.pipeline.classification import top_predictions

    probs, order, features = classifier.forward(arrays, 5, pad_to=int(BATCH), features=True)
    predictions = top_predictions(probs, order, classifier.categories)
    assert [[p.index for p in row] for row in predictions] == expected["top_index"].tolist()
    np.testing.assert_array_equal([[p.probability for p in row] for row in predictions],
                                  expected["top_probability"])
    np.testing.assert_array_equal(probs, expected["probabilities"])
    np.testing.assert_array_equal(features, expected["features"])
    with torch.inference_mode():
        from ptmcli.models.classifier import to_batch

        embedding = classifier.model.features(to_batch(arrays, spec.preprocess, classifier.device, classifier.dtype))
    np.testing.assert_allclose(features, embedding.float().cpu().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_sigterm_then_sigkill_then_resume_gives_the_uninterrupted_file(baseline, workspace, module_env):
    out = workspace / "stopped.h5"
    # SIGTERM (Slurm's time limit): the batch in flight is written, then exit 143.
    proc = start(module_env, "classify", "photos", "-o", out, *H5_FLAGS, cwd=workspace)
    wait_for_rows(proc, out, 6)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "--resume" in stderr
    with h5py.File(out, "r") as f:
        status = f["status"][...]
        done = int((status != 0).sum())
        assert done % int(BATCH) == 0 and (status[:done] != 0).all() and (status[done:] == 0).all()
        assert done < len(status)

    # SIGKILL (out of memory, node lost) during the resumed run: nothing is flushed on the way out.
    proc = start(module_env, "classify", "photos", "-o", out, "--resume", *H5_FLAGS, cwd=workspace)
    wait_for_rows(proc, out, done + 6)
    proc.kill()
    proc.wait()
    with h5py.File(out, "r") as f:  # readable as it is: no repair tool, no special flags
        status = f["status"][...]
        assert f.attrs["layout"] == "working" and not f.attrs["complete"]
        assert done + 6 <= (status != 0).sum() < len(status)

    finish = ptm(module_env, "classify", "photos", "-o", out, "--resume", *H5_FLAGS, cwd=workspace)
    assert finish.returncode == 1, finish.stderr
    assert_same_file(baseline, out)


@pytest.mark.slow
def test_two_shards_merged_equal_one_unsharded_run(baseline, workspace, module_env):
    sizes = []
    for k in (1, 2):
        done = ptm(module_env, "classify", "photos", "-o", f"shard-{k}.h5", "--shard", f"{k}/2", *H5_FLAGS,
                   cwd=workspace)
        assert done.returncode in (0, 1), done.stderr
        with h5py.File(workspace / f"shard-{k}.h5", "r") as f:
            sizes.append(f["path"].shape[0])
            assert f.attrs["shard"] == f"{k}/2"
    assert sum(sizes) == N_GOOD + len(BAD) and min(sizes) > 0
    merged = ptm(module_env, "merge", "shard-2.h5", "shard-1.h5", "-o", "all.h5", cwd=workspace)
    assert merged.returncode == 0, merged.stderr
    assert merged.stdout == merged.stderr == ""
    assert_same_file(baseline, workspace / "all.h5")


def _limit_file_size(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def assert_jsonl_matches(path: Path, baseline: Path) -> None:
    """The text file has the rows of the HDF5 file: same inputs, order, classes, probabilities."""
    records = [json.loads(line) for line in path.read_text().splitlines()]
    with h5py.File(baseline, "r") as f:
        assert [r["path"] for r in records] == list(f["path"].asstr()[...])
        assert [r["input_index"] for r in records] == list(range(len(records)))
        for record, status, error, index, prob in zip(records, f["status"][...], f["error"].asstr()[...],
                                                      f["top_index"][...], f["top_probability"][...]):
            if status == 1:
                assert record["status"] == "ok" and "error" not in record
                assert [p["index"] for p in record["predictions"]] == list(index)
                assert [p["probability"] for p in record["predictions"]] == [float(f"{p:.6g}") for p in prob]
            else:
                assert record == {"input_index": record["input_index"], "path": record["path"],
                                  "status": "error", "error": error}


@pytest.mark.slow
def test_jsonl_disk_full_midway_then_resume(baseline, workspace, module_env):
    """A write that fails (here: a file-size limit, as a full disk does) stops the run with a
    clear error, keeps what was written, and --resume completes it with the same rows as the
    HDF5 run."""
    args = ["classify", "photos", "-o", "r.jsonl", "--model", "efficientnet_lite0", "--batch-size", BATCH]
    done = ptm(module_env, *args, cwd=workspace, preexec_fn=_limit_file_size(3000))
    assert done.returncode == 2, done.stderr
    assert "could not write r.jsonl (File too large)" in done.stderr
    assert "--resume" in done.stderr and done.stdout == ""
    kept = (workspace / "r.jsonl").read_text().splitlines()
    assert 0 < len(kept) < N_GOOD
    again = ptm(module_env, *args, "--resume", cwd=workspace)
    assert again.returncode == 1, again.stderr
    assert again.stdout == ""
    assert_jsonl_matches(workspace / "r.jsonl", baseline)


def test_no_space_for_hdf5_exits_2_before_any_work(workspace, module_env):
    done = ptm(module_env, "classify", "photos", "-o", "big.h5", *H5_FLAGS, cwd=workspace,
               preexec_fn=_limit_file_size(64_000))
    assert done.returncode == 2
    assert "cannot create big.h5" in done.stderr
    assert "not an image" not in done.stderr  # no input was looked at
    assert not (workspace / "big.h5").exists()
    assert not list(workspace.glob(".big.h5.*"))


@pytest.mark.parametrize("args, message", [
    (["-o", "r.h5", "--save-probs", "--shard", "0/2"], "shard 0 of 2 does not exist"),
    (["--resume"], "--resume and --force need --output"),
    (["-o", "r.jsonl", "--save-features"], "need an HDF5 --output"),
    (["-o", "r.txt"], "unknown kind of file"),
    (["-o", "notes.md/r.h5"], "cannot write notes.md/r.h5"),
    (["-o", "base.h5"], "base.h5 already exists"),
    (["--engine", "spark"], "not an engine"),
])
def test_bad_options_exit_2_before_any_work(baseline, workspace, module_env, args, message):
    (workspace / "notes.md").write_text("a file, not a folder")
    done = ptm(module_env, "classify", "photos", *args, cwd=workspace)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert done.stdout == "" and "Traceback" not in done.stderr


def test_resume_with_other_options_refuses_and_keeps_the_file(baseline, workspace, module_env):
    before = baseline.read_bytes()
    done = ptm(module_env, "classify", "photos", "-o", "base.h5", "--resume", *H5_FLAGS, "--top", "3",
               cwd=workspace)
    assert done.returncode == 2
    assert "made differently" in done.stderr and "--top" in done.stderr
    assert baseline.read_bytes() == before


def test_shard_to_stdout_and_paths_from_stdin(workspace, module_env):
    from ptmcli.pipeline.shards import Shard, in_shard

    listing = [f"photos/b/img{i:02d}.png" for i in range(0, 16, 2)]
    mine = [p for p in listing if in_shard(p, Shard(2, 3))]
    assert 0 < len(mine) < len(listing)
    done = ptm(module_env, "classify", "-", "--shard", "2/3", "--model", "efficientnet_lite0",
               "--format", "jsonl", "--top", "1", cwd=workspace, input="".join(p + "\n" for p in listing))
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["path"] for line in done.stdout.splitlines()] == mine


def test_stop_on_signal_finishes_then_second_interrupt_is_immediate():
    from ptmcli.pipeline.signals import StopOnSignal

    with StopOnSignal() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        assert stop.signum == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


@pytest.mark.slow
def test_ray_engine_equals_local_engine(workspace, module_env):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'ptmcli[ray]')")
    # Ray gives each CPU actor one thread, and PyTorch's CPU kernels round differently with
    # another thread count: compare with a local run on one thread.
    one_thread = {"OMP_NUM_THREADS": "1"}
    flags = ["photos/a/broken.png",
             *sorted(str(p.relative_to(workspace)) for p in (workspace / "photos/a").glob("img0*")), *H5_FLAGS]
    local = ptm(module_env, "classify", *flags, "-o", "local.h5", cwd=workspace, extra_env=one_thread)
    assert local.returncode == 1, local.stderr
    on_ray = ptm(module_env, "classify", *flags, "-o", "ray.h5", "--engine", "ray", cwd=workspace,
                 extra_env={**one_thread, "RAY_ADDRESS": "", "RAY_AUTH_MODE": "disabled"})
    assert on_ray.returncode == 1, on_ray.stderr
    assert "photos/a/broken.png: not an image" in on_ray.stderr
    assert_same_file(workspace / "local.h5", workspace / "ray.h5")


def test_engine_ray_without_ray_installed_says_how_to_install(monkeypatch):
    import sys

    from ptmcli.errors import UsageProblem
    from ptmcli.pipeline.engines import ray_engine

    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    with pytest.raises(UsageProblem) as caught:
        ray_engine.import_ray()
    assert "pip install 'ptmcli[ray]'" in caught.value.hints[0]


def test_features_come_from_the_head_the_registry_names():
    from ptmcli.errors import UsageProblem
    from ptmcli.models.heads import feature_dim
    from ptmcli.models.registry import get_classifier

    assert feature_dim(get_classifier("resnet101")) == 2048
    assert feature_dim(get_classifier("efficientnet_lite0")) == 1280
    assert get_classifier("squeezenet1_0").head is None  # its classifier is a convolution
    with pytest.raises(UsageProblem, match="no Linear classifier layer"):
        feature_dim(get_classifier("squeezenet1_0"))
