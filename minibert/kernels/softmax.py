"""Scaled, masked softmax over attention scores, in place: the loop between two attention matmuls.

    probs[b, h, t, :] = softmax(scores[b, h, t, :] * scale + mask_bias[b, :])

The reference is four numpy lines (functional/softmax.py explains the softmax and its
gradient; this file needs only the forward, and keeps its own copy). The float32 Numba
kernel works row by row, parallel over (batch, head) pairs, with a vectorised exp
(kernels/fastexp.py) instead of numpy's seven passes over the (B, H, T, T) array. float64 runs
the reference: it is for gradient checks, where exactness matters more than speed.
"""

import numpy as np

from ..backend import xp_of
from .fastexp import exp_nonpositive
from .jit import device, run_kernel

prange = range  # numba.prange once compiled (see jit.jit_kernel)


def _masked_softmax_reference(scores, mask_bias, scale):
    """Shapes: scores (B, H, T, S), mask_bias (B, S) additive -> probs (B, H, T, S)"""
    x = scores * scale + mask_bias[:, None, None, :]  # (B, H, T, S): scale, then mask
    e = x - x.max(-1, keepdims=True)  # subtract the row max so exp never overflows
    xp_of(e).exp(e, out=e)  # in place (numpy, or cupy for device arrays)
    return e / e.sum(-1, keepdims=True)


@device
def softmax_row(row, bias, scale):
    """row <- softmax(row * scale + bias) for one row (S,) of scores and its key biases (S,).

    Scale, then mask, as the reference. The max and the sum are split over eight accumulators,
    so that they are not one long dependency chain (Numba keeps float order strict, so LLVM
    does not vectorise a reduction itself); the sum is in float64. A row without a finite
    score (NaN, or -inf everywhere) becomes NaN."""
    n = row.shape[0]
    n8 = n - n % 8
    for j in range(n):
        row[j] = row[j] * scale + bias[j]  # scale, then mask, as the reference
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = row[0]
    for j in range(0, n8, 8):
        m0, m1, m2, m3 = (
            max(m0, row[j]),
            max(m1, row[j + 1]),
            max(m2, row[j + 2]),
            max(m3, row[j + 3]),
        )
        m4, m5, m6, m7 = (
            max(m4, row[j + 4]),
            max(m5, row[j + 5]),
            max(m6, row[j + 6]),
            max(m7, row[j + 7]),
        )
    top = max(max(max(m0, m1), max(m2, m3)), max(max(m4, m5), max(m6, m7)))
    for j in range(n8, n):
        top = max(top, row[j])
    for j in range(n):
        row[j] = exp_nonpositive(row[j] - top)  # <= 0 once the max is subtracted
    t0 = t1 = t2 = t3 = t4 = t5 = t6 = t7 = 0.0  # float64 sums, as the softmax kernel
    for j in range(0, n8, 8):
        t0, t1, t2, t3 = t0 + row[j], t1 + row[j + 1], t2 + row[j + 2], t3 + row[j + 3]
        t4, t5, t6, t7 = t4 + row[j + 4], t5 + row[j + 5], t6 + row[j + 6], t7 + row[j + 7]
    total = ((t0 + t1) + (t2 + t3)) + ((t4 + t5) + (t6 + t7))
    for j in range(n8, n):
        total += row[j]
    inv = np.float32(1.0 / total) if total > 0.0 else np.float32(np.nan)  # -inf everywhere
    for j in range(n):
        row[j] *= inv


def _masked_softmax_numba(scores, mask_bias, scale):
    """In place over contiguous float32 scores (B, H, T, S); mask_bias (B, S)."""
    B, H, T, S = scores.shape
    for bh in prange(B * H):
        b, h = bh // H, bh % H
        bias = mask_bias[b]
        for t in range(T):
            softmax_row(scores[b, h, t], bias, scale)


def masked_softmax(scores, mask_bias, scale):
    """softmax(scores * scale + mask_bias) over the last axis, overwriting scores when the Numba
    kernel runs. Shapes: scores (B, H, T, S), mask_bias (B, S) -> (B, H, T, S)"""
    if (
        isinstance(scores, np.ndarray)
        and scores.flags.c_contiguous
        and scores.dtype == np.float32  # float64 (gradient checks) takes the exact reference
        and mask_bias.dtype == scores.dtype
    ):
        bias = np.ascontiguousarray(mask_bias)
        if run_kernel(_masked_softmax_numba, (scores, bias, scores.dtype.type(scale)), True):
            return scores
    return _masked_softmax_reference(scores, mask_bias, scale)
