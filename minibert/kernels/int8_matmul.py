"""int8 x int8 -> int32 matrix product, the core of int8 inference for linear layers.

    out[m, n] = sum_k a[m, k] * b[n, k]          a (M, K) int8, b (N, K) int8, out (M, N) int32

b is a weight in PyTorch's (out_features, in_features) layout, so both operands are read along
K, row by row. Every product lies in [-127 * 128, 128 * 128], so int32 accumulation is exact
while 128^2 * K < 2^31; we require the slightly stricter, symmetric bound of the quantisation
scheme, 127^2 * K < 2^31, i.e. K <= MAX_K = 133,142 (BERT's largest K is 3072).

The Numba kernel is exact (integers: no rounding anywhere), so its test is equality with the
reference. Its inner loop is a dot product over K with int16 products summed into int32, the
pattern LLVM lowers to `vpmaddwd` on AVX2 (pairs of int16 products added into int32 lanes).
`int8_linear` adds the dequantising epilogue: per-row activation scales, per-output-channel
weight scales, bias and an optional exact GELU.
"""

import numpy as np

from .jit import run_kernel

prange = range  # numba.prange once compiled (see jit.jit_kernel)

MAX_K = (2**31 - 1) // (127 * 127)  # 133,142: the largest K with 127^2 * K < 2^31

# Tiles: a block of TILE_N rows of b and TILE_K columns (K) stays in cache while a row of a
# sweeps it (TILE_N * TILE_K bytes = 16 KiB, half of a core's L1 data cache)
TILE_N = 64
TILE_K = 256


def _int8_matmul_reference(a, b):
    """Shapes: a (M, K) int8, b (N, K) int8 -> (M, N) int32"""
    return a.astype(np.int32) @ b.astype(np.int32).T


def _int8_matmul_numba(out, a, b):
    """out = a @ b.T in int32; a (M, K), b (N, K) contiguous int8, out (M, N) contiguous int32.

    Parallel over rows of out; each row walks b in (TILE_N, TILE_K) tiles."""
    M, K = a.shape
    N = b.shape[0]
    for i in prange(M):
        row = a[i]
        for n0 in range(0, N, TILE_N):
            n1 = min(n0 + TILE_N, N)
            for j in range(n0, n1):
                out[i, j] = 0
            for k0 in range(0, K, TILE_K):
                k1 = min(k0 + TILE_K, K)
                for j in range(n0, n1):
                    w = b[j]
                    acc = np.int32(0)
                    for k in range(k0, k1):
                        acc += np.int32(np.int16(row[k]) * np.int16(w[k]))
                    out[i, j] += acc


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
