"""LayerNorm fused with the residual add before it: y = LayerNorm(x + residual).

The reference is functional/layernorm.py's forward applied to x + residual, written out here
again (five lines) so that the kernel file stands alone. The Numba kernel reads each
row once for the mean, once for the variance and once to write, parallel over rows, with no
(B, T, C) temporaries. Inference only: training keeps the reference, whose cache the backward
pass needs.
"""

import numpy as np

from .jit import device, run_kernel

prange = range  # numba.prange once compiled (see jit.jit_kernel)


def _add_layernorm_reference(x, residual, w, b, eps):
    """Shapes: x, residual (..., C), w/b (C,) -> (..., C)"""
    s = x + residual  # (..., C)
    mu = s.mean(-1, keepdims=True)  # (..., 1)
    sc = s - mu  # (..., C)
    rstd = ((sc * sc).mean(-1, keepdims=True) + eps) ** -0.5  # (..., 1): the biased variance
    return sc * rstd * w + b


@device(reassociate=True)
def _row_sum(row):
    """sum(row), in row's dtype; reassociated, so LLVM sums it in vectors (jit.device)."""
    total = row[0] * 0
    for c in range(row.shape[0]):
        total += row[c]
    return total


@device(reassociate=True)
def _row_square_sum(row, mu):
    """sum((row - mu)^2), reassociated as _row_sum."""
    total = row[0] * 0
    for c in range(row.shape[0]):
        d = row[c] - mu
        total += d * d
    return total


def _add_layernorm_numba(out, x, bias, residual, w, b, eps):
    """Rows of out (N, C) = LayerNorm(x + bias + residual) rows; all arrays contiguous."""
    N, C = x.shape
    for n in prange(N):
        row = out[n]
        for c in range(C):
            row[c] = (x[n, c] + bias[c]) + residual[n, c]  # linear + bias, then the residual
        mu = _row_sum(row) / C
        # two passes (mean, then variance) as the reference: no cancellation
        rstd = (_row_square_sum(row, mu) / C + eps) ** -0.5
        for c in range(C):
            row[c] = (row[c] - mu) * rstd * w[c] + b[c]


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
