"""Fused attention for inference, one (batch, head) pair at a time, without (B, H, T, T) arrays.

    ctx[b, t, h*D:(h+1)*D] = softmax(q_bh[t] . k_bh^T * scale + mask_bias[b]) @ v_bh

q, k and v are the (B, T, C) outputs of the three projections. Head h reads their columns
h*D:(h+1)*D where they are, and ctx is written straight into a (B, T, C) array, so neither the
split-heads nor the merge-heads copy exists, and the attention probabilities are never kept:
this path is for inference that does not ask for them.

The reference splits the heads, runs the masked softmax kernel's reference between two batched
products and merges the heads again (functional/attention.py explains each step). The float32
Numba kernel runs the (batch, head) pairs in parallel. Each pair copies its keys, transposed,
and its values into a small scratch, then takes the queries QUERY_BLOCK rows at a time: the
block's scores q . k^T in float32 tiles (kernels/float32_tile.py: a 6 x 64 block of scores in
registers, fused multiply-adds along the head's width), the masked softmax kernel's steps on
each row (same scale-then-mask order, same exp), and probs @ v in tiles again. Only
QUERY_BLOCK rows of scores exist at a time (48 x T float32: 96 KB at 512 tokens).

Padded keys (mask bias = finfo(float32).min, padding_mask_bias's constant) are left out of
the scratch: next to any real key their weight is exactly 0 in the reference too, since
exp(finfo.min - max) underflows. A batch row without real keys keeps every key, which gives
the reference's uniform weights. float64 (gradient checks) takes the reference.

Measured on MiniLM's shapes (8 x 128 tokens, 12 heads of 32; Intel Xeon with AVX-512), one
layer's attention takes 4.0 ms on one thread against 4.0 ms for the unfused path (two batched
BLAS products around the masked softmax kernel), and 2.3 ms on two threads against 6.4 ms: the
unfused path wakes BLAS's own threads for each of its 2 x 96 small products, and on two cores
those wake-ups cost more than the products. So SelfAttention runs the kernel for every float32
inference that does not return the attention probabilities (attention_context_runs).
"""

import numpy as np

from .cpu import float32_path
from .float32_tile import LANES, ROWS, tiled_product
from .jit import device, fast_kernels_enabled, run_kernel
from .softmax import _masked_softmax_reference, softmax_row

prange = range  # numba.prange once compiled (see jit.jit_kernel)

NEG = np.float32(np.finfo(np.float32).min)  # padding_mask_bias's bias for a padded key
QUERY_BLOCK = 8 * ROWS  # queries whose scores exist at once: 48 x n float32 per thread


def _attention_context_reference(q, k, v, mask_bias, scale, num_heads):
    """Shapes: q, k, v (B, T, C), mask_bias (B, T) additive -> ctx (B, T, C)"""
    B, T, C = q.shape
    D = C // num_heads
    qh, kh, vh = (x.reshape(B, T, num_heads, D).transpose(0, 2, 1, 3) for x in (q, k, v))
    scores = qh @ kh.transpose(0, 1, 3, 2)  # (B, H, T, T)
    probs = _masked_softmax_reference(scores, mask_bias, scale)  # (B, H, T, T)
    return (probs @ vh).transpose(0, 2, 1, 3).reshape(B, T, C)  # heads side by side again


@device
def _gather_head(k, v, bias, b, c0, D, width):
    """One head's real keys, transposed, (D, n), its values (n, width) and key biases (n,), n
    rounded up to a multiple of LANES with keys of weight 0 (k = v = 0, bias -inf) and the
    values' columns beyond D zero."""
    T = bias.shape[0]
    keys = np.empty(T, np.int64)
    real = 0
    for s in range(T):
        if bias[s] > NEG:  # padding gets exactly zero weight next to a real key: skip it
            keys[real] = s
            real += 1
    if real == 0:  # no real key: keep them all, for the reference's uniform weights
        for s in range(T):
            keys[s] = s
        real = T
    n = (real + LANES - 1) // LANES * LANES  # whole vectors of keys
    kt = np.zeros((D, n), np.float32)  # (D, n): a row of scores is a row of tiles
    vs = np.zeros((n, width), np.float32)  # (n, width)
    bs = np.full(n, -np.inf, np.float32)  # (n,): exp(-inf - max) is exactly 0
    for j in range(real):
        s = keys[j]
        bs[j] = bias[s]
        for d in range(D):
            kt[d, j] = k[b, s, c0 + d]
            vs[j, d] = v[b, s, c0 + d]
    return kt, vs, bs


@device(inline=False)  # compiled once, for the one-thread and the parallel build alike
def _attention_pair(ctx, q, k, v, mask_bias, scale, num_heads, wide, bh):
    """ctx's columns of head bh % num_heads in batch row bh // num_heads (see below)."""
    B, T, C = q.shape
    D = C // num_heads
    width = (D + LANES - 1) // LANES * LANES  # the context's columns, whole vectors
    b, c0 = bh // num_heads, (bh % num_heads) * D
    kt, vs, bias = _gather_head(k, v, mask_bias[b], b, c0, D, width)  # (D, n), (n, width)
    n = bias.shape[0]
    queries = np.zeros((QUERY_BLOCK, D), np.float32)  # rows past the last query stay 0
    scores = np.empty((QUERY_BLOCK, n), np.float32)
    out = np.empty((QUERY_BLOCK, width), np.float32)
    for t0 in range(0, T, QUERY_BLOCK):
        rows = min(QUERY_BLOCK, T - t0)
        for r in range(rows):
            for d in range(D):
                queries[r, d] = q[b, t0 + r, c0 + d]
        for r in range(rows, QUERY_BLOCK):  # (a loop: a slice assignment compiles slowly)
            for d in range(D):
                queries[r, d] = 0
        tiled = (rows + ROWS - 1) // ROWS * ROWS
        tiled_product(queries, kt, scores, tiled, D, wide)  # (tiled, n) = q . k^T
        for r in range(rows):
            softmax_row(scores[r], bias, scale)  # scale, mask, softmax, as the reference
        tiled_product(scores, vs, out, tiled, n, wide)  # (tiled, width) = probs @ v
        for r in range(rows):
            for d in range(D):
                ctx[b, t0 + r, c0 + d] = out[r, d]


def _attention_context_numba(ctx, q, k, v, mask_bias, scale, num_heads, wide):
    """ctx (B, T, C) = attention of every (batch, head) pair, in parallel over the pairs;
    q, k, v (B, T, C) and mask_bias (B, T) contiguous float32; wide: 512-bit tiles."""
    for bh in prange(q.shape[0] * num_heads):
        # int64: Numba types this index int64 here and uint64 in the parallel loop it builds,
        # and would compile _attention_pair once for each (about 1.6 s of a first forward)
        _attention_pair(ctx, q, k, v, mask_bias, scale, num_heads, wide, np.int64(bh))


def attention_context(q, k, v, mask_bias, scale, num_heads):
    """softmax(q k^T * scale + mask_bias) v for every head, heads side by side, for inference
    (the probabilities are not returned). Shapes: q, k, v (B, T, C), mask_bias (B, T)
    additive, or None -> ctx (B, T, C)"""
    B, T, C = q.shape
    if mask_bias is None:
        mask_bias = np.zeros((B, T), q.dtype)
    if (
        all(isinstance(x, np.ndarray) and x.dtype == np.float32 for x in (q, k, v, mask_bias))
        and k.shape == v.shape == q.shape
        and C % num_heads == 0
    ):
        ctx = np.empty_like(q, order="C")
        arrays = tuple(np.ascontiguousarray(x) for x in (q, k, v, mask_bias))
        args = (ctx, *arrays, np.float32(scale), num_heads, float32_path() == "avx512")
        if run_kernel(_attention_context_numba, args, True):
            return ctx
    return _attention_context_reference(q, k, v, mask_bias, scale, num_heads)


def attention_context_runs(x) -> bool:
    """Whether SelfAttention's inference runs attention_context rather than the unfused path
    (batched matmul, masked softmax kernel, batched matmul) on x (B, T, C): for float32 numpy
    with the Numba kernels on (see the module docstring for the figures)."""
    return isinstance(x, np.ndarray) and x.dtype == np.float32 and fast_kernels_enabled()
