"""Dynamic per-row quantisation of activations, the int8 linear layer's input step.

    scale[m] = max |x[m]| / 127,   q[m, k] = round(x[m, k] / scale[m])  in [-127, 127]

written straight into the operand layout of a GEMM path (int8_layout.pad_rows: int16 for the
vpmaddwd paths, u8 shifted by +128 for VNNI and AMX), so int8_matmul reads it as it is. The
Numba kernel does the reference's arithmetic row by row in parallel; the row maximum goes
through the floats' bit patterns, which LLVM vectorises.
"""

import numpy as np

from . import cpu
from .fastexp import _float32_from_bits
from .int8_layout import activation_shift, empty_rows, pad_rows
from .jit import device, run_kernel

prange = range  # numba.prange once compiled (see jit.jit_kernel)

TINY = np.float32(np.finfo(np.float32).tiny)  # smaller scales would overflow 1 / scale


def _quantize_rows_reference(x, path: str = "avx2"):
    """x (M, K) float32 -> (a (M_pad, K_pad), scale (M,) float32): the int8 values
    q[m] = round(x[m] * (1 / scale[m])) with scale[m] = max |x[m]| / 127 (1 for an all-zero
    row), laid out for `path` (int8_layout.pad_rows: int16, or u8 shifted by +128)."""
    amax = np.max(np.abs(x), axis=1) if x.shape[1] else np.zeros(x.shape[0], np.float32)
    scale = (amax / np.float32(127.0)).astype(np.float32)
    scale = np.where(scale >= TINY, scale, np.float32(1.0)).astype(np.float32)  # ~0: zeros
    inverse = (np.float32(1.0) / scale).astype(np.float32)
    q = np.clip(np.rint(x * inverse[:, None]), -127, 127).astype(np.int8)
    return pad_rows(q, path), scale


@device
def _row_absmax(bits):
    """max |x| of a float32 row, given the row's IEEE 754 bits as int32 (row.view(np.int32)).

    With the sign bit cleared, the bit patterns of non-negative floats sort as the floats do,
    and NaN and infinity sort above every finite value: so the float maximum is an integer
    maximum, which LLVM vectorises (a float max reduction stays scalar without fast-math).
    Returns inf for a row holding NaN or infinity, which quantize_rows turns into an error."""
    top = np.int32(0)
    for k in range(bits.shape[0]):
        top = max(top, bits[k] & np.int32(0x7FFFFFFF))
    if top >= np.int32(0x7F800000):  # infinity, or NaN above it
        return np.float32(np.inf)
    return _float32_from_bits(top)


def _quantize_rows_numba(a, scale, x, shift):
    """The reference's arithmetic, row by row in parallel, writing the path's layout straight
    away: a[m, k] = q + shift (int16 with shift 0, or u8 with shift 128)."""
    M, K = x.shape
    low, high = np.float32(-127.0), np.float32(127.0)
    bits = x.view(np.int32)  # (M, K): the floats' bit patterns
    for m in prange(M):
        amax = _row_absmax(bits[m])
        s = amax / np.float32(127.0)
        s = s if s >= TINY else np.float32(1.0)  # 0 or subnormal: the row counts as zeros
        scale[m] = s
        inverse = np.float32(1.0) / s
        for k in range(K):
            q = min(max(np.rint(x[m, k] * inverse), low), high)
            a[m, k] = np.int32(q) + shift


def quantize_rows(x, path: str | None = None):
    """Dynamic symmetric per-row quantisation of activations, laid out for a GEMM path.

    Shapes: x (M, K) float32 -> a (M_pad, K_pad) int16 holding int8 values, or u8 holding them
    + 128 (int8_layout.pad_rows), and scale (M,) float32. path: default the CPU's best. Rows
    with a non-finite value raise ValueError (they would poison the scale)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    path = path or cpu.int8_path()
    M, K = x.shape
    a = empty_rows(M, K, path)
    scale = np.empty(M, np.float32)
    shift = activation_shift(path)
    if M and K and run_kernel(_quantize_rows_numba, (a, scale, x, shift), parallel=True):
        if not np.isfinite(scale).all():
            raise ValueError("quantize_rows: the activations hold NaN or infinity")
        return a, scale
    if not np.isfinite(x).all():
        raise ValueError("quantize_rows: the activations hold NaN or infinity")
    return _quantize_rows_reference(x, path)
