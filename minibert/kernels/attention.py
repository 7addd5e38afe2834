"""Fused attention for inference, one (batch, head) pair at a time, without (B, H, T, T) arrays.

    ctx[b, t, h*D:(h+1)*D] = softmax(q_bh[t] . k_bh^T * scale + mask_bias[b]) @ v_bh

q, k and v are the (B, T, C) outputs of the three projections. Head h reads their columns
h*D:(h+1)*D where they are, and ctx is written straight into a (B, T, C) array, so neither the
split-heads nor the merge-heads copy exists, and the attention probabilities are never kept:
this path is for inference that does not ask for them.

The reference splits the heads, runs the masked softmax kernel's reference between two batched
products and merges the heads again (functional/attention.py explains each step). The float32
Numba kernel runs the (batch, head) pairs in parallel. Each pair copies its keys, transposed,
and its values into a small scratch, then goes through the queries two rows at a time: a row
of scores per query (q . k^T along keys, four head dimensions per step), the masked softmax
kernel's steps on that row (same scale-then-mask order, same exp), and probs @ v (four keys per
step). Only two rows
of T scores exist at any time. Blocking two rows by four products per step is what keeps the
loops vectorised without fused multiply-adds.

Padded keys (mask bias = finfo(float32).min, padding_mask_bias's constant) are left out of
the scratch: next to any real key their weight is exactly 0 in the reference too, since
exp(finfo.min - max) underflows. A batch row without real keys keeps every key, which gives
the reference's uniform weights. float64 (gradient checks) takes the reference.

Skipping padding is where the kernel wins. Measured as one core's CPU time against the unfused
path (two batched BLAS matmuls around the masked softmax kernel), without padding it takes
1.0-1.2x the time at D = 32 and 1.15-1.3x at D = 64 (BLAS has fused multiply-adds; we keep
multiplies and adds apart, as every kernel here); with a third of the keys padding and at least
32 tokens, 0.70-0.99x; with half, 0.55-0.77x. So SelfAttention runs it only where
attention_context_pays says so.
"""

import numpy as np

from .jit import device, fast_kernels_enabled, run_kernel
from .softmax import _masked_softmax_reference, softmax_row

prange = range  # numba.prange once compiled (see jit.jit_kernel)

NEG = np.float32(np.finfo(np.float32).min)  # padding_mask_bias's bias for a padded key
FUSED_MIN_TOKENS = 32  # at 16 tokens the kernel was not faster at any padding
FUSED_MIN_PADDING = 1 / 3  # share of padded keys from which the kernel was faster
LANES = 8  # float32 numbers in an AVX2 vector


def _attention_context_reference(q, k, v, mask_bias, scale, num_heads):
    """Shapes: q, k, v (B, T, C), mask_bias (B, T) additive -> ctx (B, T, C)"""
    B, T, C = q.shape
    D = C // num_heads
    qh, kh, vh = (x.reshape(B, T, num_heads, D).transpose(0, 2, 1, 3) for x in (q, k, v))
    scores = qh @ kh.transpose(0, 1, 3, 2)  # (B, H, T, T)
    probs = _masked_softmax_reference(scores, mask_bias, scale)  # (B, H, T, T)
    return (probs @ vh).transpose(0, 2, 1, 3).reshape(B, T, C)  # heads side by side again


@device
def _gather_head(k, v, bias, b, c0, D):
    """One head's real keys, transposed, (D, n), its values (n, D) and key biases (n,), n
    rounded up to a multiple of LANES with keys of weight 0 (k = v = 0, bias -inf)."""
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
    # whole vectors of keys: with a remainder the loops ran up to 1.5x slower
    n = (real + LANES - 1) // LANES * LANES
    kt = np.zeros((D, n), np.float32)  # (D, n): the score loop then runs along keys
    vs = np.zeros((n, D), np.float32)  # (n, D)
    bs = np.full(n, -np.inf, np.float32)  # (n,): exp(-inf - max) is exactly 0
    for j in range(real):
        s = keys[j]
        bs[j] = bias[s]
        for d in range(D):
            kt[d, j] = k[b, s, c0 + d]
            vs[j, d] = v[b, s, c0 + d]
    return kt, vs, bs


@device
def _scores_2rows(kt, q0, q1, s0, s1):
    """s0 = q0 . kt, s1 = q1 . kt: two rows of scores (n,), four head dimensions per step."""
    D, n = kt.shape
    D4 = D - D % 4
    s0[:] = 0
    s1[:] = 0
    for d in range(0, D4, 4):
        k0, k1, k2, k3 = kt[d], kt[d + 1], kt[d + 2], kt[d + 3]
        a0, a1, a2, a3 = q0[d], q0[d + 1], q0[d + 2], q0[d + 3]
        b0, b1, b2, b3 = q1[d], q1[d + 1], q1[d + 2], q1[d + 3]
        for j in range(n):  # along keys, contiguous: this loop vectorises
            x0, x1, x2, x3 = k0[j], k1[j], k2[j], k3[j]
            s0[j] += (a0 * x0 + a1 * x1) + (a2 * x2 + a3 * x3)
            s1[j] += (b0 * x0 + b1 * x1) + (b2 * x2 + b3 * x3)
    for d in range(D4, D):  # the D % 4 dimensions left
        kd = kt[d]
        a0, b0 = q0[d], q1[d]
        for j in range(n):
            s0[j] += a0 * kd[j]
            s1[j] += b0 * kd[j]


@device
def _context_2rows(vs, p0, p1, o0, o1):
    """o0 = p0 @ vs, o1 = p1 @ vs: two rows of context (D,), four keys per step."""
    n, D = vs.shape
    n4 = n - n % 4
    o0[:] = 0
    o1[:] = 0
    for j in range(0, n4, 4):
        v0, v1, v2, v3 = vs[j], vs[j + 1], vs[j + 2], vs[j + 3]
        a0, a1, a2, a3 = p0[j], p0[j + 1], p0[j + 2], p0[j + 3]
        b0, b1, b2, b3 = p1[j], p1[j + 1], p1[j + 2], p1[j + 3]
        for d in range(D):  # along the head's width, contiguous
            x0, x1, x2, x3 = v0[d], v1[d], v2[d], v3[d]
            o0[d] += (a0 * x0 + a1 * x1) + (a2 * x2 + a3 * x3)
            o1[d] += (b0 * x0 + b1 * x1) + (b2 * x2 + b3 * x3)
    for j in range(n4, n):  # the n % 4 keys left
        vj = vs[j]
        a0, b0 = p0[j], p1[j]
        for d in range(D):
            o0[d] += a0 * vj[d]
            o1[d] += b0 * vj[d]


def _attention_context_numba(ctx, q, k, v, mask_bias, scale, num_heads):
    """ctx (B, T, C) = attention of every (batch, head) pair, in parallel over the pairs;
    q, k, v (B, T, C) and mask_bias (B, T) contiguous float32."""
    B, T, C = q.shape
    D = C // num_heads
    for bh in prange(B * num_heads):
        b, c0 = bh // num_heads, (bh % num_heads) * D
        kt, vs, bias = _gather_head(k, v, mask_bias[b], b, c0, D)  # (D, n), (n, D), (n,)
        n = bias.shape[0]
        scores = np.empty((2, n), np.float32)  # (2, n): two query rows at a time
        spare = np.empty(D, np.float32)  # (D,): the second output row when T is odd
        for t0 in range(0, T, 2):
            t1 = min(t0 + 1, T - 1)
            out1 = ctx[b, t1, c0 : c0 + D] if t1 > t0 else spare
            _scores_2rows(kt, q[b, t0, c0 : c0 + D], q[b, t1, c0 : c0 + D], scores[0], scores[1])
            softmax_row(scores[0], bias, scale)
            softmax_row(scores[1], bias, scale)
            _context_2rows(vs, scores[0], scores[1], ctx[b, t0, c0 : c0 + D], out1)


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
        if run_kernel(_attention_context_numba, (ctx, *arrays, np.float32(scale), num_heads), True):
            return ctx
    return _attention_context_reference(q, k, v, mask_bias, scale, num_heads)


def attention_context_pays(x, mask_bias, num_heads) -> bool:
    """Whether SelfAttention's inference should run attention_context rather than the unfused
    path (batched matmul, masked softmax kernel, batched matmul) on x (B, T, C).

    Only where it measured faster: float32 numpy with the Numba kernels on, at least
    FUSED_MIN_TOKENS tokens, and at least FUSED_MIN_PADDING of the keys padding (which the
    kernel skips; see the module docstring for the figures)."""
    if not (isinstance(x, np.ndarray) and x.dtype == np.float32 and fast_kernels_enabled()):
        return False
    B, T, _ = x.shape
    if T < FUSED_MIN_TOKENS or mask_bias is None:
        return False
    padded = np.count_nonzero(mask_bias <= NEG, axis=1)  # (B,): mask_bias is (B, T)
    skipped = padded[padded < T].sum()  # a row of padding only keeps every key
    return skipped >= FUSED_MIN_PADDING * B * T
