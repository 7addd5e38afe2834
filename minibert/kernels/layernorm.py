"""LayerNorm fused with the residual add before it: y = LayerNorm(x + residual).

The reference is functional/layernorm.py applied to x + residual. The Numba kernel reads each
row once for the mean, once for the variance and once to write, parallel over rows, with no
(B, T, C) temporaries. Inference only: training keeps the reference, whose cache the backward
pass needs.
"""

import numpy as np

from .jit import run_kernel

prange = range  # numba.prange once compiled (see jit.jit_kernel)


def _add_layernorm_reference(x, residual, w, b, eps):
    """Shapes: x, residual (..., C), w/b (C,) -> (..., C)"""
    from ..functional.layernorm import layernorm_forward

    return layernorm_forward(x + residual, w, b, eps)[0]


def _add_layernorm_numba(out, x, bias, residual, w, b, eps):
    """Rows of out (N, C) = LayerNorm(x + bias + residual) rows; all arrays contiguous."""
    N, C = x.shape
    for n in prange(N):
        total = x[n, 0] * 0
        for c in range(C):
            v = (x[n, c] + bias[c]) + residual[n, c]  # the order of linear + bias, then add
            out[n, c] = v
            total += v
        mu = total / C
        sq = total * 0
        for c in range(C):  # two passes (mean, then variance) as the reference: no cancellation
            d = out[n, c] - mu
            sq += d * d
        rstd = (sq / C + eps) ** -0.5
        for c in range(C):
            out[n, c] = (out[n, c] - mu) * rstd * w[c] + b[c]


def add_layernorm(x, residual, w, b, eps, bias=None):
    """LayerNorm(x + bias + residual) over the last axis; `bias` is the preceding linear
    layer's, left for this pass to add. Shapes: x, residual (..., C), bias (C,) -> (..., C)"""
    if bias is None:
        bias = np.zeros(x.shape[-1], x.dtype)
    arrays = (x, residual, w, b, bias)
    if (
        all(isinstance(a, np.ndarray) and a.dtype == x.dtype for a in arrays)
        and x.dtype
        in (
            np.float32,
            np.float64,
        )
        and residual.shape == x.shape
    ):
        C = x.shape[-1]
        x2 = np.ascontiguousarray(x).reshape(-1, C)
        r2 = np.ascontiguousarray(residual).reshape(-1, C)
        out = np.empty_like(x2)
        args = (
            out,
            x2,
            np.ascontiguousarray(bias),
            r2,
            np.ascontiguousarray(w),
            np.ascontiguousarray(b),
            x.dtype.type(eps),
        )
        if run_kernel(_add_layernorm_numba, args, parallel=True):
            return out.reshape(x.shape)
    return _add_layernorm_reference(x + bias, residual, w, b, eps)
