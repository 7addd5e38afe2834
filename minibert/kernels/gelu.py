"""Exact GELU, 0.5 x (1 + erf(x / sqrt 2)) (Hendrycks & Gimpel 2016), BERT's "gelu".

numpy has no erf, so the reference maps Python's math.erf over the array (exact, slow), and the
Numba kernel calls the same libm erf in a parallel loop.
"""

import math

import numpy as np

from .jit import run_kernel

SQRT_HALF = 0.7071067811865476  # 1 / sqrt(2)
prange = range  # numba.prange once compiled (see jit.jit_kernel)


def _gelu_erf_reference(x):
    """The readable version: exact erf through the math module. Shapes: x (...) -> (...)"""
    erf = np.vectorize(math.erf, otypes=[np.float64])
    return (0.5 * x * (1.0 + erf(x.astype(np.float64) * SQRT_HALF))).astype(x.dtype)


def _gelu_erf_numba(out, x):
    """out[i] = gelu(x[i]) over flat contiguous arrays; parallel over elements."""
    for i in prange(x.size):
        v = x[i]
        out[i] = 0.5 * v * (1.0 + math.erf(v * SQRT_HALF))


def gelu_erf(x):
    """Exact GELU on a numpy array (float32 or float64), through Numba when available."""
    if type(x).__module__.startswith("cupy"):
        import cupyx.scipy.special as special  # the cupy backend brings its own erf

        return 0.5 * x * (1.0 + special.erf(x * SQRT_HALF))
    x = np.ascontiguousarray(x)
    out = np.empty_like(x)
    if run_kernel(_gelu_erf_numba, (out.reshape(-1), x.reshape(-1)), parallel=True):
        return out
    return _gelu_erf_reference(x)
