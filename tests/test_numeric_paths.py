"""The float-sensitive tests (marker ``numeric``) again, on another floating-point path.

A seeded run is reproducible only on one path: the CPU's instruction set picks oneDNN's
convolution kernels and ATen's vectorised ones, and the thread count changes reduction order. A
test that trains, predicts or compares floats must assert what holds on every path, so this
runs those tests once more in a fresh process with oneDNN held to SSE4.1, ATen's scalar kernels
and one thread: a path no CI machine takes natively, whatever its CPU.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .conftest import REPO

OTHER_PATH = {
    "ONEDNN_MAX_CPU_ISA": "SSE41",
    "ATEN_CPU_CAPABILITY": "default",
    "OMP_NUM_THREADS": "1",
}


@pytest.mark.skipif(bool(os.environ.get("MTL_OTHER_PATH")), reason="already on the other path")
def test_float_sensitive_tests_hold_on_another_kernel_path(tmp_path):
    env = os.environ | OTHER_PATH | {"MTL_OTHER_PATH": "1"}
    argv = [sys.executable, "-m", "pytest", "-m", "numeric", "-q", "-p", "no:cacheprovider",
            "--basetemp", str(tmp_path / "runs"), str(REPO / "tests")]  # fmt: skip
    done = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert " passed" in done.stdout.splitlines()[-1]
