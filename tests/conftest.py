"""Fixtures: tiny images and checkpoints written in tmp_path, and a real `ptm` subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SHARED_DATA = Path(os.environ.get("PTM_SHARED_DATA") or ROOT.parent / "shared" / "data")


def shared_file(name: str) -> Path:
    """A sample from ../shared/data, or skip: a fresh clone must pass without it."""
    path = SHARED_DATA / name
    if not path.is_file():
        pytest.skip(f"{path} not present")
    return path


def ptm_command() -> list[str]:
    # The console script installed beside this interpreter is the real entry point.
    script = Path(sys.executable).with_name("ptm")
    if script.exists():
        return [str(script)]
    found = shutil.which("ptm")
    return [found] if found else [sys.executable, "-m", "ptmcli"]


def ptm_in_fresh_interpreter(args: list[str], env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    """`ptm ARGS` in a new interpreter that prints, last on stderr, `IMPORTED [heavy modules] CODE`:
    which of torch and torchvision the run imported, and its exit code."""
    code = (
        "import sys\n"
        "from ptmcli import cli\n"
        f"sys.argv = ['ptm', *{[str(a) for a in args]!r}]\n"
        "try:\n    cli.main()\nexcept SystemExit as exit:\n    code = exit.code\n"
        "print('IMPORTED', [m for m in ('torch', 'torchvision') if m in sys.modules], code, file=sys.stderr)\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=timeout)


@pytest.fixture
def isolated_env(tmp_path: Path) -> dict[str, str]:
    """Caches in tmp_path, so nothing the machine has cached (or lacks) changes the outcome."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PTM_")}
    env.update(
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        TORCH_HOME=str(tmp_path / "torch-home"),
        PTM_OFFLINE="1",
        # The reference runtime, so a test's first run does not export and time every runtime in
        # its fresh cache; tests/test_runtimes.py and test_one_path.py cover the others.
        PTM_RUNTIME="torch",
        NO_COLOR="1",
        COLUMNS="200",
    )
    return env


@pytest.fixture
def run_ptm(isolated_env):
    def run(*args: str, input: str | None = None, env: dict | None = None, cwd: Path | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*ptm_command(), *map(str, args)],
            input=input,
            capture_output=True,
            text=True,
            env={**isolated_env, **(env or {})},
            cwd=cwd or ROOT,
            timeout=timeout,
        )

    return run


@pytest.fixture
def make_image(tmp_path: Path):
    """Write a small image (noise, so models see texture) and return its path."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)

    def make(name: str, size=(64, 48), mode="RGB", folder: Path | None = None, **save_kwargs) -> Path:
        folder = folder or tmp_path
        folder.mkdir(parents=True, exist_ok=True)
        w, h = size
        array = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        image = Image.fromarray(array, "RGB")
        if mode != "RGB":
            image = image.convert(mode)
        path = folder / name
        image.save(path, **save_kwargs)
        return path

    return make


def pytest_collection_modifyitems(config, items):
    """`gpu` tests run where CUDA is (TORCH_DEVICE picks the card) and skip elsewhere."""
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in gpu_items:
        item.add_marker(skip)


@pytest.fixture
def cuda_device() -> str:
    return os.environ.get("TORCH_DEVICE", "cuda")
