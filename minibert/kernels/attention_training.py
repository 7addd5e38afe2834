"""Attention while training: the forward that keeps the probabilities, and the backward, one
(batch, head) pair at a time.

The readable version is functional/attention.py (attention_forward, attention_backward): two
batched products around the masked softmax, and for the backward

    dv = P_used^T dctx      dP = (dctx v^T + dprobs_out) * keep      dS = softmax'(dP) * scale
    dq = dS k               dk = dS^T q

numpy runs each of those as B x H small products (128 x 128 x 64 for a small BERT at 128
tokens), each waking BLAS's threads, with (B, H, T, T) temporaries between them. The kernels
here run the pairs in parallel on Numba's threads, each pair's products in float32 register
tiles (kernels/float32_tile.py) on scratch copies padded to whole tiles, with the same
softmax steps as the masked softmax kernel (softmax_row: scale, then mask, float64 sums).
Dropout's mask is drawn by the caller from its numpy Generator exactly as dropout_forward
draws it, so a seeded run makes the same draws with or without the kernels.

Shapes: q, k, v, ctx (B, H, T, D) (any strides: split_heads' views), mask_bias (B, T),
probs and keep (B, H, T, T). float32 only: float64 (the gradient checks) runs the reference.
"""

import numpy as np

from .cpu import float32_path
from .float32_tile import LANES, ROWS, tiled_product
from .jit import device, fast_kernels_enabled, run_kernel
from .softmax import softmax_row

prange = range  # numba.prange once compiled (see jit.jit_kernel)


@device
def _whole(n, multiple):
    """n rounded up to a multiple."""
    return (n + multiple - 1) // multiple * multiple


@device(inline=False)
def _forward_pair(ctx, probs, q, k, v, mask_bias, keep, scale, wide, bh):
    """probs[b, h] = softmax(q k^T * scale + mask), ctx[b, h] = (probs * keep) v for one pair
    (keep of shape (0, 0, 0, 0): no dropout)."""
    B, H, T, D = q.shape
    b, h = bh // H, bh % H
    rows, n, width = _whole(T, ROWS), _whole(T, LANES), _whole(D, LANES)
    queries = np.zeros((rows, D), np.float32)  # rows past T stay 0
    kt = np.zeros((D, n), np.float32)  # keys transposed: a row of scores is a row of tiles
    vs = np.zeros((n, width), np.float32)
    bias = np.full(n, -np.inf, np.float32)  # columns past T: exp(-inf - max) = 0
    for t in range(T):
        bias[t] = mask_bias[b, t]
        for d in range(D):
            queries[t, d] = q[b, h, t, d]
            kt[d, t] = k[b, h, t, d]
            vs[t, d] = v[b, h, t, d]
    scores = np.empty((rows, n), np.float32)
    tiled_product(queries, kt, scores, rows, D, wide)  # (rows, n) = q k^T
    dropout = keep.shape[0] > 0
    for t in range(T):
        row = scores[t]
        softmax_row(row, bias, scale)
        for s in range(T):
            probs[b, h, t, s] = row[s]
        if dropout:
            for s in range(T):
                row[s] *= keep[b, h, t, s]
    out = np.empty((rows, width), np.float32)
    tiled_product(scores, vs, out, rows, n, wide)  # (rows, width) = probs_used v
    for t in range(T):
        for d in range(D):
            ctx[b, h, t, d] = out[t, d]


def _forward_numba(ctx, probs, q, k, v, mask_bias, keep, scale, wide):
    for bh in prange(q.shape[0] * q.shape[1]):
        # int64: the index is int64 here, uint64 in the parallel loop (see attention.py)
        _forward_pair(ctx, probs, q, k, v, mask_bias, keep, scale, wide, np.int64(bh))


@device(inline=False)
def _backward_pair(dq, dk, dv, dctx, q, k, v, probs, keep, dprobs_out, scale, wide, bh):
    """dq, dk, dv of one pair (functional/attention.py's attention_backward, step by step)."""
    B, H, T, D = q.shape
    b, h = bh // H, bh % H
    rows, n, width = _whole(T, ROWS), _whole(T, LANES), _whole(D, LANES)
    size = max(rows, n)  # P_used and dS are read transposed too: square, padded both ways
    dropout, outside = keep.shape[0] > 0, dprobs_out.shape[0] > 0
    # operands, zero-padded to whole tiles: P_used (size, size), dctx (rows, width), v^T (D, n),
    # and k, q (rows, width) as the right-hand sides of dq and dk
    used = np.zeros((size, size), np.float32)
    dc = np.zeros((rows, width), np.float32)
    vt = np.zeros((D, n), np.float32)
    ks = np.zeros((rows, width), np.float32)
    qs = np.zeros((rows, width), np.float32)
    for t in range(T):
        for s in range(T):
            used[t, s] = probs[b, h, t, s] * keep[b, h, t, s] if dropout else probs[b, h, t, s]
        for d in range(D):
            dc[t, d] = dctx[b, h, t, d]
            vt[d, t] = v[b, h, t, d]
            ks[t, d] = k[b, h, t, d]
            qs[t, d] = q[b, h, t, d]
    out = np.empty((rows, width), np.float32)
    # forward: ctx = P_used v  ->  dv = P_used^T dctx (a transposed view: tiles read any strides)
    tiled_product(used.T, dc, out, rows, T, wide)
    for s in range(T):
        for d in range(D):
            dv[b, h, s, d] = out[s, d]
    # dP = dctx v^T (+ the outside gradient), through the dropout
    dp = np.empty((rows, n), np.float32)
    tiled_product(dc, vt, dp, rows, D, wide)
    ds = np.zeros((size, size), np.float32)  # dS, zero outside T x T
    for t in range(T):
        total = 0.0  # sum_s dP[t, s] P[t, s], in float64
        for s in range(T):
            g = dp[t, s]
            if outside:
                g += dprobs_out[b, h, t, s]
            if dropout:
                g *= keep[b, h, t, s]
            dp[t, s] = g
            total += g * probs[b, h, t, s]
        for s in range(T):  # softmax's backward, then the forward's scale
            p = probs[b, h, t, s]
            ds[t, s] = p * (dp[t, s] - np.float32(total)) * scale
    # forward: scores = q k^T  ->  dq = dS k, dk = dS^T q
    tiled_product(ds, ks, out, rows, T, wide)
    for t in range(T):
        for d in range(D):
            dq[b, h, t, d] = out[t, d]
    tiled_product(ds.T, qs, out, rows, T, wide)
    for s in range(T):
        for d in range(D):
            dk[b, h, s, d] = out[s, d]


def _backward_numba(dq, dk, dv, dctx, q, k, v, probs, keep, dprobs_out, scale, wide):
    for bh in prange(q.shape[0] * q.shape[1]):
        # int64: as in _forward_numba
        _backward_pair(
            dq, dk, dv, dctx, q, k, v, probs, keep, dprobs_out, scale, wide, np.int64(bh)
        )


_NONE = np.zeros((0, 0, 0, 0), np.float32)  # "no dropout" / "no outside gradient"


def _float32(*arrays) -> bool:
    return all(isinstance(x, np.ndarray) and x.dtype == np.float32 for x in arrays if x is not None)


def attention_forward_fused(q, k, v, mask_bias, scale, keep=None):
    """(ctx, probs) of functional/attention.py's attention_forward with keep = dropout's
    scaled mask (or None), or None when the kernel does not apply (not float32, or the
    kernels are off): the caller then runs the readable code."""
    B, H, T, D = q.shape
    if not fast_kernels_enabled():  # (before float32_path: reading the CPU loads LLVM, 40 MB)
        return None
    if not (_float32(q, k, v, mask_bias, keep) and k.shape == v.shape == q.shape):
        return None
    ctx = np.empty((B, H, T, D), np.float32)
    probs = np.empty((B, H, T, T), np.float32)
    args = (ctx, probs, q, k, v, np.ascontiguousarray(mask_bias), _NONE if keep is None else keep)
    if run_kernel(_forward_numba, (*args, np.float32(scale), float32_path() == "avx512"), True):
        return ctx, probs
    return None


def attention_backward_fused(dctx, q, k, v, probs, keep, dprobs_out, scale):
    """(dq, dk, dv) of functional/attention.py's attention_backward, or None when the kernel
    does not apply (as attention_forward_fused)."""
    if not (fast_kernels_enabled() and _float32(dctx, q, k, v, probs, keep, dprobs_out)):
        return None
    dq, dk, dv = (np.empty(q.shape, np.float32) for _ in range(3))
    keep = _NONE if keep is None else keep
    outside = _NONE if dprobs_out is None else dprobs_out
    args = (dq, dk, dv, dctx, q, k, v, probs, keep, outside, np.float32(scale))
    if run_kernel(_backward_numba, (*args, float32_path() == "avx512"), True):
        return dq, dk, dv
    return None
