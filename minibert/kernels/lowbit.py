"""Group-wise low-bit weights (int4 packed two to a byte, or int8) dequantised to float32.

    w[n, k] = code(n, k) * scale[n, k // group_size]

The reference is functional/quantize.py (unpack_int4, then dequantize_groups): four numpy passes
over the weight. The kernel below does it in one pass, in parallel over output rows, each value
the same single float32 product, so the two agree bit for bit. A low-bit linear layer
(quant/groupwise.py) dequantises its weight with it and hands the float32 matrix to the BLAS
product: the weight stays low-bit in memory between calls.

Layout read: packed (N, P) uint8 with int4 codes, the low nibble first (code 2j in bits 0-3 of
byte j, code 2j + 1 in bits 4-7), or (N, P) int8 codes for 8 bits; scale (N, G) float32.
"""

import numpy as np

from .jit import run_kernel

prange = range  # numba.prange once compiled (see jit.jit_kernel)


def _dequantize_int4_numba(packed, scale, group_size, out):
    N, width = out.shape
    groups = scale.shape[1]
    for n in prange(N):
        for g in range(groups):  # the scale read once per group
            s = scale[n, g]
            for k in range(g * group_size, min((g + 1) * group_size, width)):
                nibble = (np.int32(packed[n, k >> 1]) >> ((k & 1) << 2)) & 15  # low one first
                code = nibble - ((nibble & 8) << 1)  # sign-extend: 8..15 -> -8..-1
                out[n, k] = np.float32(code) * s


def _dequantize_int8_numba(codes, scale, group_size, out):
    N, width = out.shape
    groups = scale.shape[1]
    for n in prange(N):
        for g in range(groups):
            s = scale[n, g]
            for k in range(g * group_size, min((g + 1) * group_size, width)):
                out[n, k] = np.float32(codes[n, k]) * s


def dequantize_weight_fast(weight, scale, bits: int, group_size: int, width: int):
    """The float32 (N, width) weight that `weight` (packed int4 uint8 or int8 codes) and
    `scale` (N, G) stand for, by the compiled kernel; None when Numba is off or unusable (the
    caller then runs the reference)."""
    out = np.empty((weight.shape[0], width), np.float32)
    kernel = _dequantize_int4_numba if bits == 4 else _dequantize_int8_numba
    if run_kernel(kernel, (weight, scale, np.int64(group_size), out), parallel=True):
        return out
    return None
