"""Scaled, masked softmax over attention scores, in place: the hot loop between the two
attention matmuls.

    probs[b, h, t, :] = softmax(scores[b, h, t, :] * scale + mask_bias[b, :])

The reference is three numpy lines (functional/softmax.py does the softmax); the Numba kernel
makes one pass for the row max and one for exp and sum, parallel over (batch, head) pairs,
instead of numpy's seven passes over the (B, H, T, T) array.
"""

import math

import numpy as np

from .jit import run_kernel

prange = range  # numba.prange once compiled (see jit.jit_kernel)


def _masked_softmax_reference(scores, mask_bias, scale):
    """Shapes: scores (B, H, T, S), mask_bias (B, S) additive -> probs (B, H, T, S)"""
    from ..functional.softmax import softmax_forward

    x = scores * scale + mask_bias[:, None, None, :]  # (B, H, T, S)
    return softmax_forward(x)[0]


def _masked_softmax_numba(scores, mask_bias, scale):
    """In place over contiguous scores (B, H, T, S); mask_bias (B, S)."""
    B, H, T, S = scores.shape
    for bh in prange(B * H):
        b, h = bh // H, bh % H
        bias = mask_bias[b]
        for t in range(T):
            row = scores[b, h, t]
            top = row[0] * scale + bias[0]  # typed like the scores: float32 math stays float32
            for s in range(S):
                v = row[s] * scale + bias[s]  # same order as the reference: scale, then mask
                row[s] = v
                top = max(top, v)
            total = row[0] * 0
            for s in range(S):
                e = math.exp(row[s] - top)  # subtract the max so exp never overflows
                row[s] = e
                total += e
            inv = 1.0 / total
            for s in range(S):
                row[s] *= inv


def masked_softmax(scores, mask_bias, scale):
    """softmax(scores * scale + mask_bias) over the last axis, overwriting scores when the Numba
    kernel runs. Shapes: scores (B, H, T, S), mask_bias (B, S) -> (B, H, T, S)"""
    if (
        isinstance(scores, np.ndarray)
        and scores.flags.c_contiguous
        and scores.dtype in (np.float32, np.float64)
        and mask_bias.dtype == scores.dtype
    ):
        bias = np.ascontiguousarray(mask_bias)
        if run_kernel(_masked_softmax_numba, (scores, bias, scores.dtype.type(scale)), True):
            return scores
    return _masked_softmax_reference(scores, mask_bias, scale)
