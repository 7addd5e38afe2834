"""Exact GELU, 0.5 x (1 + erf(x / sqrt 2)) (Hendrycks & Gimpel 2016), BERT's "gelu".

numpy has no erf, so the reference maps Python's math.erf over the array: exact and slow.
The Numba kernels:
  * float64 calls libm's erf, exact as the reference (gradient checks run in float64);
  * float32 uses Abramowitz & Stegun's formula 7.1.26,
        erf(z) = 1 - (a1 t + a2 t^2 + a3 t^3 + a4 t^4 + a5 t^5) exp(-z^2),  t = 1 / (1 + p z),
    whose absolute error is below 1.5e-7 (1 to 2 float32 ulps near 1), with the vectorisable
    exp of kernels/fastexp.py: libm's erf costs 7x more here. docs/numerics.md lists this.
"""

import math

import numpy as np

from .fastexp import exp_nonpositive
from .jit import device, run_kernel

SQRT_HALF = 0.7071067811865476  # 1 / sqrt(2)
prange = range  # numba.prange once compiled (see jit.jit_kernel)

# Abramowitz & Stegun 7.1.26
AS_P = 0.3275911
AS_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
INV_SQRT_2PI = 0.3989422804014327  # 1 / sqrt(2 pi)


def _gelu_erf_reference(x):
    """The readable version: exact erf through the math module. Shapes: x (...) -> (...)"""
    erf = np.vectorize(math.erf, otypes=[np.float64])
    return (0.5 * x * (1.0 + erf(x.astype(np.float64) * SQRT_HALF))).astype(x.dtype)


def _gelu_erf_numba(out, x):
    """out[i] = gelu(x[i]) with libm's erf, over flat contiguous float64 arrays."""
    for i in prange(x.size):
        v = x[i]
        out[i] = 0.5 * v * (1.0 + math.erf(v * SQRT_HALF))


@device
def erf_as(v, gauss):
    """erf(v / sqrt 2) by A&S 7.1.26, float32, given gauss = exp(-v^2 / 2) (the caller may
    need it again, for the density)."""
    one = np.float32(1.0)
    z = abs(v) * np.float32(SQRT_HALF)
    t = one / (one + np.float32(AS_P) * z)
    poly = np.float32(AS_A[4])  # Horner's rule, highest power first
    poly = poly * t + np.float32(AS_A[3])
    poly = poly * t + np.float32(AS_A[2])
    poly = poly * t + np.float32(AS_A[1])
    poly = poly * t + np.float32(AS_A[0])
    erf_abs = one - poly * t * gauss
    return erf_abs if v >= 0 else -erf_abs  # erf is odd


@device
def half_gauss(v):
    """exp(-v^2 / 2) in float32, through the vectorisable exp."""
    return np.float32(exp_nonpositive(np.float32(-0.5) * v * v))


def _gelu_erf_as_numba(out, x):
    """out[i] = gelu(x[i]) with A&S 7.1.26 for erf, over flat contiguous float32 arrays."""
    for i in prange(x.size):
        v = x[i]
        out[i] = np.float32(0.5) * v * (np.float32(1.0) + erf_as(v, half_gauss(v)))


def _gelu_grad_numba(out, x):
    """out[i] = d gelu / dx at x[i] = Phi(x) + x phi(x), with libm's erf (float64)."""
    for i in prange(x.size):
        v = x[i]
        cdf = 0.5 * (1.0 + math.erf(v * SQRT_HALF))  # Phi(x), the standard normal CDF
        pdf = math.exp(-0.5 * v * v) * INV_SQRT_2PI  # phi(x), its density
        out[i] = cdf + v * pdf


def _gelu_grad_as_numba(out, x):
    """The same with A&S 7.1.26 for erf, over float32 arrays (as the float32 forward)."""
    for i in prange(x.size):
        v = x[i]
        gauss = half_gauss(v)  # exp(-x^2 / 2): erf's and the density's
        cdf = np.float32(0.5) * (np.float32(1.0) + erf_as(v, gauss))
        out[i] = cdf + v * gauss * np.float32(INV_SQRT_2PI)


def _gelu_bias_as_numba(x, bias):
    """x <- gelu(x + bias) row by row, in place, float32, A&S erf.

    One array read and written at the same index: LLVM vectorises the loop with no check. With
    separate `out` and `x` arguments it must check at run time that they do not overlap, and
    in place they do, so it ran the scalar loop (6.8 ns a value instead of 1.0, Intel Xeon)."""
    N, C = x.shape
    for n in prange(N):
        for c in range(C):
            v = x[n, c] + bias[c]
            x[n, c] = np.float32(0.5) * v * (np.float32(1.0) + erf_as(v, half_gauss(v)))


def gelu_bias_inplace(x, bias):
    """x <- gelu(x + bias) for a linear layer's output before its bias: one pass instead of
    two, and no new array (inference only: training keeps x for the backward pass).
    Shapes: x (..., F) float32, bias (F,) -> x"""
    if (
        isinstance(x, np.ndarray)
        and x.dtype == np.float32
        and x.flags.c_contiguous
        and bias.dtype == np.float32
    ):
        x2 = x.reshape(-1, x.shape[-1])
        if run_kernel(_gelu_bias_as_numba, (x2, np.ascontiguousarray(bias)), parallel=True):
            return x
    x += bias
    x[...] = gelu_erf(x)
    return x


def gelu_erf(x):
    """Exact GELU on a numpy array (float32 or float64), through Numba when available."""
    if type(x).__module__.startswith("cupy"):
        import cupyx.scipy.special as special  # the cupy backend brings its own erf

        return 0.5 * x * (1.0 + special.erf(x * SQRT_HALF))
    return _elementwise(x, _gelu_erf_as_numba, _gelu_erf_numba, _gelu_erf_reference)


def _gelu_grad_reference(x):
    """d gelu / dx = Phi(x) + x phi(x), exact through math.erf. Shapes: x (...) -> (...)"""
    erf = np.vectorize(math.erf, otypes=[np.float64])
    x64 = x.astype(np.float64)
    cdf = 0.5 * (1.0 + erf(x64 * SQRT_HALF))
    return (cdf + x64 * np.exp(-0.5 * x64 * x64) * INV_SQRT_2PI).astype(x.dtype)


def gelu_erf_grad(x):
    """The derivative of exact GELU at x (for the backward pass). Shapes: x (...) -> (...)"""
    return _elementwise(x, _gelu_grad_as_numba, _gelu_grad_numba, _gelu_grad_reference)


def _elementwise(x, kernel32, kernel64, reference):
    """Run an element-by-element kernel (the float32 or the float64 one) over a fresh output,
    or the numpy reference when Numba is off or the dtype is neither."""
    x = np.ascontiguousarray(x)
    if x.dtype not in (np.float32, np.float64):
        return reference(x)
    out = np.empty_like(x)
    kernel = kernel32 if x.dtype == np.float32 else kernel64
    if run_kernel(kernel, (out.reshape(-1), x.reshape(-1)), parallel=True):
        return out
    return reference(x)
