"""`ptm zebrafy --shard K/N` and `--engine ray`: the same pictures as one local run, bit for bit.

The work is split by the same shard rule and run by the same engines as classify's; outputs are
planned over the whole input list, so every shard names its files as the whole run would.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from zebra_helpers import save_generator


@pytest.fixture(scope="module")
def small_weights(tmp_path_factory) -> Path:
    return save_generator(tmp_path_factory.mktemp("w") / "small.pth", "book", ngf=4, n_blocks=1)


@pytest.fixture
def photos(tmp_path, make_image) -> Path:
    folder = tmp_path / "photos"
    # Two sizes (batches group equal sizes), one with alpha, one in a sub-folder, one broken.
    for i in range(4):
        make_image(f"p{i}.png", size=(40, 32), folder=folder)
    make_image("wide.png", size=(56, 32), folder=folder / "sub")
    make_image("clear.png", size=(40, 32), mode="RGBA", folder=folder)
    (folder / "broken.png").write_bytes(b"not a png")
    return folder


# Every runtime: the exported ones open the same files in every shard and actor (onnxruntime is in
# the default install; openvino in the `openvino` extra).
RUNTIMES = ["torch", "onnxruntime", pytest.param("openvino", marks=pytest.mark.skipif(
    importlib.util.find_spec("openvino") is None, reason="OpenVINO is not installed"))]


def pictures(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


def zebrafy(run_ptm, photos: Path, weights: Path, out: Path, *extra: str, env: dict | None = None):
    return run_ptm("zebrafy", photos, "-o", f"{out}/", "--weights", weights, "--size", "0", "--batch-size", "3",
                   "--side-by-side", *extra, env=env)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_shards_together_write_what_one_local_run_writes(run_ptm, tmp_path, photos, small_weights, runtime):
    env = {"PTM_RUNTIME": runtime}
    local = zebrafy(run_ptm, photos, small_weights, tmp_path / "local", env=env)
    assert local.returncode == 1 and "broken.png" in local.stderr, local.stderr
    expected = pictures(tmp_path / "local")
    assert len(expected) == 6

    from ptmcli.pipeline.shards import Shard, in_shard

    lines = []
    for k in (1, 2):
        done = zebrafy(run_ptm, photos, small_weights, tmp_path / "sharded", "--shard", f"{k}/2", env=env)
        assert done.returncode == (1 if in_shard("broken.png", Shard(k, 2)) else 0), done.stderr
        lines += done.stdout.splitlines()
    assert pictures(tmp_path / "sharded") == expected
    assert sorted(lines) == sorted(line.replace("/local/", "/sharded/") for line in local.stdout.splitlines())


def test_shard_is_checked_before_any_work(run_ptm, tmp_path, photos, small_weights):
    done = zebrafy(run_ptm, photos, small_weights, tmp_path / "out", "--shard", "3/2")
    assert done.returncode == 2 and "shard 3 of 2 does not exist" in done.stderr
    assert not (tmp_path / "out").exists()
    done = zebrafy(run_ptm, photos, small_weights, tmp_path / "out", "--actors", "2")
    assert done.returncode == 2 and "--actors is for --engine ray" in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_engine_ray_writes_what_the_local_engine_writes(run_ptm, tmp_path, photos, small_weights, runtime):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'ptmcli[ray]')")
    # Ray's actors run one thread each: so does the local run.
    one_thread = {"OMP_NUM_THREADS": "1", "PTM_RUNTIME": runtime}
    local = zebrafy(run_ptm, photos, small_weights, tmp_path / "local", "--report", tmp_path / "local.html",
                    env=one_thread)
    on_ray = zebrafy(run_ptm, photos, small_weights, tmp_path / "ray", "--engine", "ray", "--actors", "1",
                     "--report", tmp_path / "ray.html",
                     env={**one_thread, "RAY_ADDRESS": "", "RAY_AUTH_MODE": "disabled"})
    assert on_ray.returncode == 1, on_ray.stderr
    assert "broken.png" in on_ray.stderr
    assert pictures(tmp_path / "ray") == pictures(tmp_path / "local")
    assert on_ray.stdout.replace("/ray/", "/local/") == local.stdout
    assert "complete: 7 inputs" in (tmp_path / "ray.html").read_text()
