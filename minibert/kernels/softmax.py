"""Scaled, masked softmax over attention scores, in place: the hot loop between the two
attention matmuls.

    probs[b, h, t, :] = softmax(scores[b, h, t, :] * scale + mask_bias[b, :])

The reference is three numpy lines (functional/softmax.py does the softmax). The float32 Numba
kernel works row by row, parallel over (batch, head) pairs, with a vectorised exp
(kernels/fastexp.py) instead of numpy's seven passes over the (B, H, T, T) array. float64 runs
the reference: it is for gradient checks, where exactness matters more than speed.
"""

import numpy as np

from .fastexp import exp_nonpositive
from .jit import run_kernel

prange = range  # numba.prange once compiled (see jit.jit_kernel)


def _masked_softmax_reference(scores, mask_bias, scale):
    """Shapes: scores (B, H, T, S), mask_bias (B, S) additive -> probs (B, H, T, S)"""
    from ..functional.softmax import softmax_forward

    x = scores * scale + mask_bias[:, None, None, :]  # (B, H, T, S)
    return softmax_forward(x)[0]


def _masked_softmax_numba(scores, mask_bias, scale):
    """In place over contiguous float32 scores (B, H, T, S); mask_bias (B, S)."""
    B, H, T, S = scores.shape
    for bh in prange(B * H):
        b, h = bh // H, bh % H
        bias = mask_bias[b]
        for t in range(T):
            row = scores[b, h, t]
            top = row[0] * scale + bias[0]
            for s in range(S):
                v = row[s] * scale + bias[s]  # same order as the reference: scale, then mask
                row[s] = v
                top = max(top, v)
            for s in range(S):  # no reduction in this loop, so it vectorises
                row[s] = exp_nonpositive(row[s] - top)  # <= 0 once the max is subtracted
            total = 0.0
            for s in range(S):
                total += row[s]
            inv = np.float32(1.0 / total)
            for s in range(S):
                row[s] *= inv


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
