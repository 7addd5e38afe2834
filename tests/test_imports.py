"""`import minibert` stays light: no torch, transformers or cupy, and numba only when a kernel
first runs (jaxtyping's test_no_jax_dependency)."""

import os
import subprocess
import sys


def test_import_does_not_pull_heavy_modules():
    code = (
        "import sys, minibert\n"
        "heavy = [m for m in ('torch', 'transformers', 'cupy', 'numba') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_public_api():
    import minibert

    for name in ("load", "load_tokenizer", "SentenceEncoder", "EncoderConfig"):
        assert name in minibert.__all__
        assert hasattr(minibert, name)


def test_numba_avoids_a_spinning_openmp_runtime_loaded_before_it():
    """With torch imported first, OMP_WAIT_POLICY comes too late, so Numba's workqueue pool is
    used instead of OpenMP (a stand-in module plays torch here; CI has no torch)."""
    code = (
        "import os, sys, types\n"
        "os.environ.pop('OMP_WAIT_POLICY', None); os.environ.pop('NUMBA_THREADING_LAYER', None)\n"
        "sys.modules['torch'] = types.ModuleType('torch')\n"
        "from minibert.kernels.jit import numba_available\n"
        "import numba\n"
        "print(numba_available(), numba.config.THREADING_LAYER)\n"
    )
    env = {
        k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "NUMBA_THREADING_LAYER")
    }
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.split() == ["True", "workqueue"]
