"""Symmetric int8 rounding, fake quantisation as a forward/backward pair, and the group-wise
low-bit rounding and int4 nibble packing of quant/groupwise.py (at the end of the file).

    scale = max |x| / 127 over an axis      q = clip(round(x / scale), -127, 127)      x ~ q scale

Symmetric: no zero point, and -128 is never used, so a product of two quantised matrices needs no
correction terms and the int32 accumulator's bound stays symmetric (127^2 K < 2^31). quant/int8.py
applies this per output channel to weights and per row to activations; kernels/int8_matmul.py
quantises activations with the same arithmetic inside its kernel.

Fake quantisation (quantization-aware training) rounds values to the grid int8 inference will
use and keeps them in float. Rounding has zero gradient almost everywhere, so its backward is
the straight-through estimator: the identity (Bengio et al. 2013; Zafrir et al. 2019, Q8BERT).

The functions use the array namespace of their input (numpy, or cupy on a GPU);
int8_linear_forward is the int8 layer written out, the readable path a GPU takes.

Shapes: x (..., K) -> q (..., K) int8, scale (...) float32 for the default axis=-1.
"""

import numpy as np

from ..backend import xp_of

QMAX = 127  # symmetric int8: [-127, 127]
TINY = np.finfo(np.float32).tiny  # the smallest normal float32: smaller scales count as 0


def quantize_symmetric(x, axis=-1):
    """x (float) -> (q int8, scale float32): q = round(x / scale) with one scale per slice
    along every axis but `axis`, scale = max |x| / 127 over that axis (1 where all are 0, or
    too close to 0 for a normal float32 scale)."""
    xp = xp_of(x)
    x = xp.asarray(x, dtype=np.float32)
    amax = xp.abs(x).max(axis=axis, keepdims=True)
    scale = (amax / np.float32(QMAX)).astype(np.float32)
    # a slice whose scale would be 0 or subnormal (|x| < 1.5e-36, where 1 / scale overflows)
    # counts as all zeros: scale 1, q 0
    scale = xp.where(scale >= TINY, scale, np.float32(1.0)).astype(np.float32)
    # times the reciprocal, as the activation kernel does (a division costs ~10x a product);
    # it can differ from x / scale by an ulp, which moves a value only at an exact .5 tie
    inverse = (np.float32(1.0) / scale).astype(np.float32)
    q = xp.clip(xp.rint(x * inverse), -QMAX, QMAX).astype(np.int8)
    return q, xp.squeeze(scale, axis=axis)


def dequantize(q, scale, axis=-1):
    """The float32 values q * scale stand for (scale broadcast along `axis`)."""
    xp = xp_of(q)
    return q.astype(np.float32) * xp.expand_dims(xp.asarray(scale, np.float32), axis)


def int8_linear_forward(x, w_q, w_scale, bias=None):
    """The int8 layer written out (kernels/int8_matmul.py's reference, step by step): x
    quantised per row, the exact int32 product with the int8 weight, then dequantised with both
    scales and the bias added, in float32. Shapes: x (M, K) float32, w_q (N, K) int8, w_scale
    (N,), bias (N,) or None -> (M, N) float32"""
    a_q, a_scale = quantize_symmetric(x)  # (M, K) int8, (M,)
    y = (a_q.astype(np.int32) @ w_q.astype(np.int32).T).astype(np.float32)  # (M, N), exact
    y *= a_scale[:, None]
    y *= w_scale[None, :]
    if bias is not None:
        y += bias
    return y


def fake_quantize(x, axis=-1):
    """Round x to the int8 grid it would get and return it in x's dtype: quantise, dequantise."""
    q, scale = quantize_symmetric(x, axis)
    return dequantize(q, scale, axis).astype(x.dtype)


def fake_quant_forward(x, axis=-1):
    """fake_quantize as an op: the rounded values, and an empty cache (backward needs nothing).
    Shapes: x (..., K) -> (..., K)"""
    return fake_quantize(x, axis), ()


def fake_quant_backward(dy, cache):
    """The straight-through estimator: the rounding counts as the identity. Shapes: as dy"""
    return dy


# --- group-wise low-bit rounding (Q-BERT) ---------------------------------------------------
# A weight row (one output channel, K input channels) is cut into groups of `group_size`
# consecutive input channels, each with its own scale: scale_g = max |w| over the group / qmax,
# qmax = 2^(bits-1) - 1 (7 for int4, 127 for int8). When group_size does not divide K the last
# group is shorter: the row is padded with zeros to a whole number of groups, which changes no
# scale (zeros never raise a max) and stores zeros. Shapes: w (N, K) -> q (N, G * group_size)
# int8, scale (N, G) float32 with G = ceil(K / group_size).


def group_qmax(bits: int) -> int:
    """The largest code of a symmetric `bits`-bit grid: 7 for int4, 127 for int8."""
    return 2 ** (bits - 1) - 1


def quantize_groups(w, bits: int, group_size: int):
    """w (N, K) float -> (q (N, G * group_size) int8, scale (N, G) float32), symmetric per group
    of `group_size` input channels, the row padded with zeros to whole groups."""
    w = np.asarray(w, dtype=np.float32)
    n, k = w.shape
    groups = -(-k // group_size)
    padded = np.zeros((n, groups * group_size), np.float32)
    padded[:, :k] = w
    blocks = padded.reshape(n, groups, group_size)
    qmax = np.float32(group_qmax(bits))
    scale = (np.max(np.abs(blocks), axis=-1) / qmax).astype(np.float32)  # (N, G)
    scale = np.where(scale >= TINY, scale, np.float32(1.0)).astype(np.float32)
    inverse = (np.float32(1.0) / scale).astype(np.float32)
    q = np.clip(np.rint(blocks * inverse[..., None]), -qmax, qmax).astype(np.int8)
    return q.reshape(n, groups * group_size), scale


def dequantize_groups(q, scale, width: int):
    """The float32 values q (N, G * group_size) int8 and scale (N, G) stand for, cut back to the
    first `width` input channels: (N, width) float32, each value q * scale rounded once."""
    n, padded = q.shape
    groups = scale.shape[-1]
    blocks = q.reshape(n, groups, padded // groups).astype(np.float32)
    return (blocks * scale[..., None]).reshape(n, padded)[:, :width]


def pack_int4(q):
    """int4 codes (..., K) int8 in [-8, 7] -> (..., ceil(K / 2)) uint8, two to a byte, the low
    nibble first: byte j holds code 2j in bits 0-3 and code 2j + 1 in bits 4-7, each as its
    4-bit two's complement (-1 -> 0xF). An odd K leaves the last high nibble 0."""
    xp = xp_of(q)
    q = xp.asarray(q)
    if q.shape[-1] % 2:
        q = xp.concatenate([q, xp.zeros((*q.shape[:-1], 1), q.dtype)], axis=-1)
    nibbles = q.astype(np.uint8) & np.uint8(0x0F)  # two's complement, low 4 bits
    return nibbles[..., 0::2] | (nibbles[..., 1::2] << np.uint8(4))


def unpack_int4(packed, width: int):
    """pack_int4 undone: (..., ceil(width / 2)) uint8 -> (..., width) int8 in [-8, 7]."""
    xp = xp_of(packed)
    packed = xp.asarray(packed, dtype=np.uint8)
    low = (packed & np.uint8(0x0F)).astype(np.int8)
    high = (packed >> np.uint8(4)).astype(np.int8)
    codes = xp.stack([low, high], axis=-1).reshape(*packed.shape[:-1], -1)[..., :width]
    return xp.where(codes > 7, codes - 16, codes).astype(np.int8)  # sign-extend the nibble
