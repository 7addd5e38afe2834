"""int8 x int8 -> int32 matrix product, the core of int8 inference for linear layers.

    out[m, n] = sum_k a[m, k] * w[n, k]          a (M, K) int8, w (N, K) int8, out (M, N) int32

w is a weight in PyTorch's (out_features, in_features) layout. Every product lies in
[-127 * 128, 128 * 128], so int32 accumulation is exact while 128^2 * K < 2^31; we require the
symmetric bound of our quantisation scheme, 127^2 * K < 2^31, i.e. K <= MAX_K = 133,144 (BERT's
largest K is 3072). The kernel is exact (integers: no rounding anywhere), so its test is
equality with the reference.

How it is fast. AVX2 has no int8 dot-product instruction (that is AVX-512 VNNI), but it has
`vpmaddwd`: 16 int16 x int16 products summed pairwise into 8 int32 lanes, twice the
multiply-adds of a float32 FMA. So both operands are widened to int16 once, up front:
  * the weight is packed when the model is quantised (`pack_weight`), into panels of 16
    output channels, k in pairs: panels[p, kk, c, t] = w[16 p + c, 2 kk + t]. One k-pair step of
    a panel is 64 contiguous bytes, two vector loads;
  * each row of activations becomes int16 with K padded to even (`widen_rows`), so a pair
    a[m, 2kk : 2kk + 2] is one 32-bit load, broadcast to every lane.
The inner loop (kernels/simd.py, LLVM vector IR because Numba's integer typing hides the
pattern from LLVM) computes a 4 x 16 tile of int32 accumulators held in registers for all of K.
The kernels below run it over tiles: in parallel over panels (prange), rows in chunks that stay
in L2 while a thread's panel stays in L1. `int8_linear` fuses the epilogue into the same pass:
dequantise by per-row activation and per-output-channel weight scales, add the bias, and
optionally apply the exact GELU, writing float32 without ever storing the int32 matrix.
Packed weights take 2 bytes per parameter in memory (half of float32); files keep int8.
"""

import numpy as np

from .gelu import erf_as, gelu_erf, half_gauss
from .jit import device, lowered_as, run_kernel

prange = range  # numba.prange once compiled (see jit.jit_kernel)

MAX_K = (2**31 - 1) // (127 * 127)  # 133,144: the largest K with 127^2 * K < 2^31
ROWS = 4  # rows per register tile (kernels/simd.py)
PANEL = 16  # output channels per panel
TINY = np.float32(np.finfo(np.float32).tiny)  # smaller scales would overflow 1 / scale
ROW_CHUNK = 64  # rows of a walked per panel before moving on: 64 x K int16 stay in L2


class PackedWeight:
    """An int8 weight (N, K) widened to int16 and laid out in panels for the GEMM kernel.

    Attributes: panels (P, K_pad / 2, 16, 2) int16, n = N, k = K (before padding)."""

    __slots__ = ("panels", "n", "k")

    def __init__(self, panels, n, k):
        self.panels, self.n, self.k = panels, n, k

    @property
    def shape(self):
        return (self.n, self.k)

    def unpack(self):
        """The int8 (N, K) weight back (for saving, and for checks)."""
        P, K2 = self.panels.shape[:2]
        w = self.panels.transpose(0, 2, 1, 3).reshape(P * PANEL, K2 * 2)
        return w[: self.n, : self.k].astype(np.int8)


def pack_weight(w_q):
    """int8 (N, K) -> PackedWeight; N is padded to a multiple of 16 and K to even with zeros."""
    _check_operand("w", w_q)
    N, K = w_q.shape
    P, K2 = -(-N // PANEL), -(-K // 2)
    padded = np.zeros((P * PANEL, K2 * 2), np.int16)
    padded[:N, :K] = w_q
    panels = padded.reshape(P, PANEL, K2, 2).transpose(0, 2, 1, 3)  # (P, K2, 16, 2)
    return PackedWeight(np.ascontiguousarray(panels), N, K)


def widen_rows(a_q):
    """int8 (M, K) -> int16 (M_pad, K_pad): rows padded to a multiple of ROWS, K to even, with
    zeros (the kernel computes whole tiles; padded rows and columns add nothing)."""
    M, K = a_q.shape
    out = np.zeros((-(-M // ROWS) * ROWS, K + K % 2), np.int16)
    out[:M, :K] = a_q
    return out


def dot_tile(a16, row, panels, p, tile):
    """The inner loop's statement in numpy (compiled, kernels call kernels/simd.py's intrinsic):

    tile[r, c] = sum_k a16[row + r, k] * w[16 p + c, k]     r < ROWS, c < PANEL"""
    w = panels[p].transpose(1, 0, 2).reshape(PANEL, -1)  # (16, K_pad): this panel's channels
    tile[:] = a16[row : row + ROWS].astype(np.int32) @ w.T.astype(np.int32)


_dot_tile = lowered_as("minibert.kernels.simd:int16_dot_tile")(dot_tile)


def _int8_matmul_reference(a, b):
    """Shapes: a (M, K) int8, b (N, K) int8 -> (M, N) int32"""
    return a.astype(np.int32) @ b.astype(np.int32).T


def _int8_matmul_numba(out, a16, panels):
    """out (M, N) int32 = a @ w.T over tiles; a16 from widen_rows, panels from pack_weight."""
    M, N = out.shape
    P = panels.shape[0]
    chunks = (a16.shape[0] + ROW_CHUNK - 1) // ROW_CHUNK
    for job in prange(chunks * P):  # one parallel region; each thread gets whole row chunks
        start, p = (job // P) * ROW_CHUNK, job % P
        stop = min(start + ROW_CHUNK, a16.shape[0])
        tile = np.empty((ROWS, PANEL), np.int32)
        cols = min(PANEL, N - p * PANEL)
        for i in range(start, stop, ROWS):
            _dot_tile(a16, i, panels, p, tile)
            for r in range(min(ROWS, M - i)):
                for c in range(cols):
                    out[i + r, p * PANEL + c] = tile[r, c]


def _int8_linear_numba(out, a16, a_scale, panels, w_scale, bias, gelu):
    """out (M, N) float32 = dequantised a @ w.T + bias, then GELU if gelu: one pass over tiles."""
    M, N = out.shape
    half = np.float32(0.5)
    one = np.float32(1.0)
    P = panels.shape[0]
    chunks = (a16.shape[0] + ROW_CHUNK - 1) // ROW_CHUNK
    for job in prange(chunks * P):  # as in _int8_matmul_numba
        start, p = (job // P) * ROW_CHUNK, job % P
        stop = min(start + ROW_CHUNK, a16.shape[0])
        tile = np.empty((ROWS, PANEL), np.int32)
        cols = min(PANEL, N - p * PANEL)
        for i in range(start, stop, ROWS):
            _dot_tile(a16, i, panels, p, tile)
            for r in range(min(ROWS, M - i)):
                s = a_scale[i + r]
                for c in range(cols):
                    j = p * PANEL + c
                    v = np.float32(tile[r, c]) * s * w_scale[j] + bias[j]
                    if gelu:
                        v = half * v * (one + erf_as(v, half_gauss(v)))
                    out[i + r, j] = v


def _check_operand(name, x):
    if not isinstance(x, np.ndarray):
        raise ValueError(f"int8_matmul: {name} must be a numpy array, got {type(x).__name__}")
    if x.dtype != np.int8:
        raise ValueError(f"int8_matmul: {name} must be int8, got {x.dtype}")
    if x.ndim != 2:
        raise ValueError(f"int8_matmul: {name} must be 2-D, got shape {x.shape}")
    if x.shape[1] > MAX_K:
        raise ValueError(
            f"int8_matmul: K = {x.shape[1]} may overflow the int32 accumulator "
            f"(127^2 * K must stay below 2^31: K <= {MAX_K})"
        )


def _check(a, w):
    """Raise ValueError naming what is wrong with the operands of int8_matmul."""
    _check_operand("a", a)
    if not isinstance(w, PackedWeight):
        _check_operand("b", w)
    if a.shape[1] != w.shape[1]:
        raise ValueError(f"int8_matmul: K differs: a is {a.shape} (M, K) and b is {w.shape} (N, K)")


def int8_matmul(a, b):
    """a @ b.T, exact in int32, for K <= MAX_K (127^2 * K < 2^31, K <= 133,144).

    Shapes: a (M, K) int8, b (N, K) int8 (a weight, (out, in)) or its PackedWeight -> (M, N)
    int32. Raises ValueError for other dtypes, shapes, or too large a K."""
    _check(a, b)
    out = np.zeros((a.shape[0], b.shape[0]), dtype=np.int32)
    if out.size == 0 or a.shape[1] == 0:
        return out
    packed = b if isinstance(b, PackedWeight) else pack_weight(b)
    if run_kernel(_int8_matmul_numba, (out, widen_rows(a), packed.panels), parallel=True):
        return out
    return _int8_matmul_reference(a, packed.unpack())


def int8_linear(a_q, a_scale, w_q, w_scale, bias=None, gelu=False):
    """Dequantised int8 linear layer, in one pass:

        y = (a_q @ w_q.T) * a_scale[:, None] * w_scale[None, :] + bias,   then GELU if asked.

    Shapes: a_q (M, K) int8, a_scale (M,) per-row activation scales, w_q (N, K) int8 or its
    PackedWeight, w_scale (N,) per-output-channel weight scales, bias (N,) or None -> (M, N)
    float32."""
    _check(a_q, w_q)
    M, N = a_q.shape[0], w_q.shape[0]
    a_scale = np.ascontiguousarray(a_scale, dtype=np.float32)
    w_scale = np.ascontiguousarray(w_scale, dtype=np.float32)
    if a_scale.shape != (M,):
        raise ValueError(f"int8_linear: a_scale must have shape ({M},), got {a_scale.shape}")
    if w_scale.shape != (N,):
        raise ValueError(f"int8_linear: w_scale must have shape ({N},), got {w_scale.shape}")
    bias = np.zeros(N, np.float32) if bias is None else np.ascontiguousarray(bias, np.float32)
    if bias.shape != (N,):
        raise ValueError(f"int8_linear: bias must have shape ({N},), got {bias.shape}")
    packed = w_q if isinstance(w_q, PackedWeight) else pack_weight(w_q)
    out = np.empty((M, N), np.float32)
    args = (out, widen_rows(a_q), a_scale, packed.panels, w_scale, bias, bool(gelu))
    if M and N and run_kernel(_int8_linear_numba, args, parallel=True):
        return out
    return _int8_linear_reference(a_q, a_scale, packed.unpack(), w_scale, bias, gelu)


def _int8_linear_reference(a_q, a_scale, w_q, w_scale, bias, gelu):
    """The readable epilogue: exact int32 product, then dequantise, bias and GELU in float32."""
    y = _int8_matmul_reference(a_q, w_q).astype(np.float32)
    y *= a_scale[:, None]
    y *= w_scale[None, :]
    y += bias
    if gelu:
        y = gelu_erf(y)
    return y


# --- dynamic per-row activation quantisation, and the whole int8 linear layer ---------------
def _quantize_rows_reference(x):
    """x (M, K) float32 -> (a16 (M_pad, K_pad) int16 holding int8 values, scale (M,) float32):
    a16[m] = round(x[m] * (1 / scale[m])) with scale[m] = max |x[m]| / 127 (1 for an all-zero
    row)."""
    amax = np.max(np.abs(x), axis=1) if x.shape[1] else np.zeros(x.shape[0], np.float32)
    scale = (amax / np.float32(127.0)).astype(np.float32)
    scale = np.where(scale >= TINY, scale, np.float32(1.0)).astype(np.float32)  # ~0: zeros
    inverse = (np.float32(1.0) / scale).astype(np.float32)
    q = np.clip(np.rint(x * inverse[:, None]), -127, 127).astype(np.int8)
    return widen_rows(q), scale


@device
def _row_absmax(row):
    """max |row| over eight accumulators (eight short dependency chains); inf when the row
    holds NaN or infinity, which quantize_rows turns into a ValueError."""
    K = row.shape[0]
    K8 = K - K % 8
    big = np.float32(3.4e38)  # above it: inf; NaN fails every comparison
    zero = np.float32(0.0)
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = zero
    bad = False
    for k in range(0, K8, 8):
        v0, v1, v2, v3 = abs(row[k]), abs(row[k + 1]), abs(row[k + 2]), abs(row[k + 3])
        v4, v5, v6, v7 = abs(row[k + 4]), abs(row[k + 5]), abs(row[k + 6]), abs(row[k + 7])
        m0, m1, m2, m3 = max(m0, v0), max(m1, v1), max(m2, v2), max(m3, v3)
        m4, m5, m6, m7 = max(m4, v4), max(m5, v5), max(m6, v6), max(m7, v7)
        bad |= not (v0 + v1 + v2 + v3 + v4 + v5 + v6 + v7 <= np.float32(np.inf))
    amax = max(max(max(m0, m1), max(m2, m3)), max(max(m4, m5), max(m6, m7)))
    for k in range(K8, K):
        v = abs(row[k])
        amax = max(amax, v)
        bad |= not (v <= big)
    return np.float32(np.inf) if bad or not (amax <= big) else amax


def _quantize_rows_numba(a16, scale, x):
    """The reference's arithmetic, row by row in parallel, writing int16 straight away."""
    M, K = x.shape
    for m in prange(M):
        amax = _row_absmax(x[m])
        s = amax / np.float32(127.0)
        s = s if s >= TINY else np.float32(1.0)  # 0 or subnormal: the row counts as zeros
        scale[m] = s
        inverse = np.float32(1.0) / s
        for k in range(K):
            q = np.rint(x[m, k] * inverse)
            a16[m, k] = np.int16(min(max(q, np.float32(-127.0)), np.float32(127.0)))


def quantize_rows(x):
    """Dynamic symmetric per-row quantisation of activations, widened for the GEMM.

    Shapes: x (M, K) float32 -> a16 (M_pad, K_pad) int16 (int8 values, zero padding), scale (M,)
    float32. Rows with a non-finite value raise ValueError (they would poison the scale)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    M, K = x.shape
    a16 = np.zeros((-(-M // ROWS) * ROWS, K + K % 2), np.int16)
    scale = np.empty(M, np.float32)
    if M and K and run_kernel(_quantize_rows_numba, (a16, scale, x), parallel=True):
        if not np.isfinite(scale).all():
            raise ValueError("quantize_rows: the activations hold NaN or infinity")
        return a16, scale
    if not np.isfinite(x).all():
        raise ValueError("quantize_rows: the activations hold NaN or infinity")
    return _quantize_rows_reference(x)


def int8_linear_rows(x, packed, w_scale, bias=None, gelu=False):
    """The int8 linear layer from float32 inputs: quantise each row of x, multiply by the packed
    int8 weight in int32, dequantise, add the bias, GELU if asked.

    Shapes: x (M, K) float32, packed: PackedWeight of (N, K), w_scale (N,), bias (N,) or None
    -> (M, N) float32."""
    M, K = x.shape
    if K != packed.k:
        raise ValueError(f"int8_linear_rows: x has {K} features, the weight expects {packed.k}")
    a16, a_scale = quantize_rows(x)
    N = packed.n
    bias = np.zeros(N, np.float32) if bias is None else bias
    out = np.empty((M, N), np.float32)
    args = (out, a16, a_scale, packed.panels, w_scale, bias, bool(gelu))
    if M and N and run_kernel(_int8_linear_numba, args, parallel=True):
        return out
    a_q = a16[:M, :K].astype(np.int8)
    return _int8_linear_reference(a_q, a_scale, packed.unpack(), w_scale, bias, gelu)
