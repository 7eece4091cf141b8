"""Smoke runs of the benchmark scripts: they must keep working, whatever the numbers."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT


@pytest.mark.slow
def test_classify_benchmark_smoke(isolated_env):
    done = subprocess.run([sys.executable, "benchmarks/bench_classify.py", "--quick"], capture_output=True,
                          text=True, cwd=ROOT, env=isolated_env, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "book loop" in done.stdout and "ptm --precision fp32" in done.stdout
