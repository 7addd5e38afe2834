"""int8 x int8 -> int32 matrix product, the core of int8 inference for linear layers.

    out[m, n] = sum_k a[m, k] * b[n, k]          a (M, K) int8, b (N, K) int8, out (M, N) int32

b is a weight in PyTorch's (out_features, in_features) layout, so both operands are read along
K, row by row. Every product lies in [-127 * 128, 128 * 128], so int32 accumulation is exact
while 128^2 * K < 2^31; we require the slightly stricter, symmetric bound of the quantisation
scheme, 127^2 * K < 2^31, i.e. K <= MAX_K = 133,142 (BERT's largest K is 3072).

The Numba kernel is exact (integers: no rounding anywhere), so its test is equality with the
reference. Its inner loop runs four dot products over K (four rows of a against one row of b)
in int32 lanes, which LLVM vectorises (sign-extending loads, vpmulld, vpaddd on AVX2).
`int8_linear` adds the dequantising epilogue: per-row activation scales, per-output-channel
weight scales, bias and an optional exact GELU.
"""

import numpy as np

from .jit import run_kernel

prange = range  # numba.prange once compiled (see jit.jit_kernel)

MAX_K = (2**31 - 1) // (127 * 127)  # 133,142: the largest K with 127^2 * K < 2^31

ROWS = 4  # rows of a per block: each row of b loaded once feeds ROWS dot products


def _int8_matmul_reference(a, b):
    """Shapes: a (M, K) int8, b (N, K) int8 -> (M, N) int32"""
    return a.astype(np.int32) @ b.astype(np.int32).T


def _int8_matmul_numba(out, a, b):
    """out = a @ b.T in int32; a (M, K), b (N, K) contiguous int8, out (M, N) contiguous int32.

    Parallel over blocks of ROWS rows of a: for each row of b, ROWS dot products over K share
    its loads. The explicit int32 casts keep every sum in int32 (Numba widens int32 + int32 to
    int64, which halves the vector width); the last block repeats row M - 1 where M is not a
    multiple of ROWS and writes only the real rows."""
    M, K = a.shape
    N = b.shape[0]
    last = M - 1
    for block in prange((M + ROWS - 1) // ROWS):
        i0 = block * ROWS
        r0 = a[i0]
        r1 = a[min(i0 + 1, last)]
        r2 = a[min(i0 + 2, last)]
        r3 = a[min(i0 + 3, last)]
        for j in range(N):
            w = b[j]
            c0 = np.int32(0)
            c1 = np.int32(0)
            c2 = np.int32(0)
            c3 = np.int32(0)
            for k in range(K):
                y = np.int32(w[k])
                c0 = np.int32(c0 + np.int32(r0[k]) * y)
                c1 = np.int32(c1 + np.int32(r1[k]) * y)
                c2 = np.int32(c2 + np.int32(r2[k]) * y)
                c3 = np.int32(c3 + np.int32(r3[k]) * y)
            out[i0, j] = c0
            if i0 + 1 <= last:
                out[i0 + 1, j] = c1
            if i0 + 2 <= last:
                out[i0 + 2, j] = c2
            if i0 + 3 <= last:
                out[i0 + 3, j] = c3


def _check(a, b):
    """Raise ValueError naming what is wrong with the operands of int8_matmul."""
    for name, x in (("a", a), ("b", b)):
        if not isinstance(x, np.ndarray):
            raise ValueError(f"int8_matmul: {name} must be a numpy array, got {type(x).__name__}")
        if x.dtype != np.int8:
            raise ValueError(f"int8_matmul: {name} must be int8, got {x.dtype}")
        if x.ndim != 2:
            raise ValueError(f"int8_matmul: {name} must be 2-D, got shape {x.shape}")
        if not x.flags.c_contiguous:
            raise ValueError(f"int8_matmul: {name} must be C-contiguous (np.ascontiguousarray)")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"int8_matmul: K differs: a is {a.shape} (M, K) and b is {b.shape} (N, K)")
    if a.shape[1] > MAX_K:
        raise ValueError(
            f"int8_matmul: K = {a.shape[1]} may overflow the int32 accumulator "
            f"(127^2 * K must stay below 2^31: K <= {MAX_K})"
        )


def int8_matmul(a, b):
    """a @ b.T, exact in int32, for K <= MAX_K (127^2 * K < 2^31, K < 133,143).

    Shapes: a (M, K) int8, b (N, K) int8 (a weight, (out, in)) -> (M, N) int32.
    Raises ValueError for other dtypes, shapes, non-contiguous operands or too large a K."""
    _check(a, b)
    out = np.empty((a.shape[0], b.shape[0]), dtype=np.int32)
    if out.size == 0 or a.shape[1] == 0:
        out[...] = 0
        return out
    if run_kernel(_int8_matmul_numba, (out, a, b), parallel=True):
        return out
    return _int8_matmul_reference(a, b)


def int8_linear(a_q, a_scale, w_q, w_scale, bias=None, gelu=False):
    """Dequantised int8 linear layer:

        y = (a_q @ w_q.T) * a_scale[:, None] * w_scale[None, :] + bias,   then GELU if asked.

    Shapes: a_q (M, K) int8, a_scale (M,) per-row activation scales, w_q (N, K) int8,
    w_scale (N,) per-output-channel weight scales, bias (N,) or None -> (M, N) float32."""
    acc = int8_matmul(a_q, w_q)
    M, N = acc.shape
    a_scale = np.asarray(a_scale, dtype=np.float32)
    w_scale = np.asarray(w_scale, dtype=np.float32)
    if a_scale.shape != (M,):
        raise ValueError(f"int8_linear: a_scale must have shape ({M},), got {a_scale.shape}")
    if w_scale.shape != (N,):
        raise ValueError(f"int8_linear: w_scale must have shape ({N},), got {w_scale.shape}")
    if bias is not None:
        bias = np.ascontiguousarray(bias, dtype=np.float32)
        if bias.shape != (N,):
            raise ValueError(f"int8_linear: bias must have shape ({N},), got {bias.shape}")
    y = acc.astype(np.float32)
    y *= a_scale[:, None]
    y *= w_scale[None, :]
    if gelu:
        from .gelu import gelu_bias_inplace

        return gelu_bias_inplace(y, bias if bias is not None else np.zeros(N, np.float32))
    if bias is not None:
        y += bias
    return y
