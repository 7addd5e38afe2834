"""Symmetric int8 rounding, and fake quantisation as a forward/backward pair.

    scale = max |x| / 127 over an axis      q = clip(round(x / scale), -127, 127)      x ~ q scale

Symmetric: no zero point, and -128 is never used, so a product of two quantised matrices needs no
correction terms and the int32 accumulator's bound stays symmetric (127^2 K < 2^31). quant.py
applies this per output channel to weights and per row to activations; kernels/int8_matmul.py
quantises activations with the same arithmetic inside its kernel.

Fake quantisation (quantization-aware training) rounds values to the grid int8 inference will
use and keeps them in float. Rounding has zero gradient almost everywhere, so its backward is
the straight-through estimator: the identity (Bengio et al. 2013; Zafrir et al. 2019, Q8BERT).

Shapes: x (..., K) -> q (..., K) int8, scale (...) float32 for the default axis=-1.
"""

import numpy as np

QMAX = 127  # symmetric int8: [-127, 127]
TINY = np.finfo(np.float32).tiny  # the smallest normal float32: smaller scales count as 0


def quantize_symmetric(x, axis=-1):
    """x (float) -> (q int8, scale float32): q = round(x / scale) with one scale per slice
    along every axis but `axis`, scale = max |x| / 127 over that axis (1 where all are 0, or
    too close to 0 for a normal float32 scale)."""
    x = np.asarray(x, dtype=np.float32)
    amax = np.max(np.abs(x), axis=axis, keepdims=True)
    scale = (amax / np.float32(QMAX)).astype(np.float32)
    # a slice whose scale would be 0 or subnormal (|x| < 1.5e-36, where 1 / scale overflows)
    # counts as all zeros: scale 1, q 0
    scale = np.where(scale >= TINY, scale, np.float32(1.0)).astype(np.float32)
    # times the reciprocal, as the activation kernel does (a division costs ~10x a product);
    # it can differ from x / scale by an ulp, which moves a value only at an exact .5 tie
    inverse = (np.float32(1.0) / scale).astype(np.float32)
    q = np.clip(np.rint(x * inverse), -QMAX, QMAX).astype(np.int8)
    return q, np.squeeze(scale, axis=axis)


def dequantize(q, scale, axis=-1):
    """The float32 values q * scale stand for (scale broadcast along `axis`)."""
    return q.astype(np.float32) * np.expand_dims(np.asarray(scale, np.float32), axis)


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
