"""The first run's compile: one line says what happens, and the compiled kernels are cached, in
the package's folder or, where that is not writable, in the user's cache folder."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import minibert

RUN_A_KERNEL = """
import numpy as np
from minibert.kernels.layernorm import add_layernorm
x = np.ones((3, 8), np.float32)
add_layernorm(x, x, np.ones(8, np.float32), np.zeros(8, np.float32), 1e-5)
"""


def _run(code, cwd, env):
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=cwd, env=env
    )


def test_read_only_package_caches_in_the_user_folder_and_says_so_once(tmp_path):
    """A copy of the package whose kernels folder cannot hold a cache (its __pycache__ is a file
    here: a read-only install, for a process that may write anywhere, as root can): the first
    run announces the compile and caches under XDG_CACHE_HOME; the second is silent."""
    package = Path(minibert.__file__).parent
    site = tmp_path / "site"
    shutil.copytree(package, site / "minibert", ignore=shutil.ignore_patterns("__pycache__"))
    (site / "minibert" / "kernels" / "__pycache__").write_text("not a folder")
    cache = tmp_path / "cache"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_CACHE")}
    env |= {"PYTHONPATH": str(site), "XDG_CACHE_HOME": str(cache), "PYTHONDONTWRITEBYTECODE": "1"}
    first = _run(RUN_A_KERNEL, tmp_path, env)
    lines = [line for line in first.stderr.splitlines() if line.startswith("minibert:")]
    assert len(lines) == 1, first.stderr
    assert "compiling its Numba kernels" in lines[0]
    assert str(cache) in lines[0]
    assert list(cache.rglob("*.nbi")), "no Numba cache index in the user's cache folder"
    second = _run(RUN_A_KERNEL, tmp_path, env)
    assert "minibert:" not in second.stderr
