"""Activation functions, by the names config.json uses for them.

  gelu               0.5 x (1 + erf(x / sqrt 2))                       exact; BERT and co.
  gelu_new           0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))   tanh approximation; ALBERT
  gelu_pytorch_tanh  the same formula as gelu_new (torch's approximate="tanh")
  gelu_fast          the same formula, written as 0.7978845608 x (1 + 0.044715 x^2)
  quick_gelu         x sigmoid(1.702 x)
  relu               max(x, 0)
  silu               x sigmoid(x)
  tanh               tanh(x)  (the pooler's and RoBERTa's classifier's activation)
Shapes: x (...) -> (...)

Exact GELU runs on the CPU through kernels/gelu.py; on a GPU (cupy arrays), through the same
formulas as that file's references, with cupy's erf.
"""

import math

import numpy as np

from .. import backend
from ..backend import xp_of
from ..kernels.gelu import INV_SQRT_2PI, SQRT_HALF, gelu_erf, gelu_erf_grad

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _sigmoid(x):
    # 0.5 (1 + tanh(x / 2)) equals 1 / (1 + exp(-x)) but never overflows for large |x|
    return 0.5 * (1.0 + xp_of(x).tanh(0.5 * x))


def gelu_forward(x):
    if xp_of(x) is np:
        return gelu_erf(x), (x,)
    # on the GPU: x Phi(x) in float64, as the CPU reference computes it
    return (0.5 * x * (1.0 + backend.erf(x.astype(np.float64) * SQRT_HALF))).astype(x.dtype), (x,)


def gelu_backward(dy, cache):
    (x,) = cache
    if xp_of(x) is np:
        return dy * gelu_erf_grad(x)  # d/dx x Phi(x) = Phi(x) + x phi(x)
    x64 = x.astype(np.float64)  # on the GPU, the CPU reference's formula
    cdf = 0.5 * (1.0 + backend.erf(x64 * SQRT_HALF))  # Phi(x)
    return dy * (cdf + x64 * xp_of(x).exp(-0.5 * x64 * x64) * INV_SQRT_2PI).astype(x.dtype)


def gelu_tanh_forward(x):
    inner = SQRT_2_OVER_PI * (x + 0.044715 * x**3)  # (...)
    t = xp_of(x).tanh(inner)
    return 0.5 * x * (1.0 + t), (x, t)


def gelu_tanh_backward(dy, cache):
    x, t = cache
    dinner = SQRT_2_OVER_PI * (1.0 + 3 * 0.044715 * x * x)  # d inner / dx
    return dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * dinner)  # tanh' = 1 - tanh^2


def quick_gelu_forward(x):
    s = _sigmoid(1.702 * x)
    return x * s, (x, s)


def quick_gelu_backward(dy, cache):
    x, s = cache
    return dy * (s + 1.702 * x * s * (1.0 - s))  # sigmoid' = s (1 - s)


def relu_forward(x):
    return xp_of(x).maximum(x, 0), (x,)


def relu_backward(dy, cache):
    (x,) = cache
    return dy * (x > 0)  # the gradient at exactly 0 is 0, as in torch


def silu_forward(x):
    s = _sigmoid(x)
    return x * s, (x, s)


def silu_backward(dy, cache):
    x, s = cache
    return dy * (s + x * s * (1.0 - s))


def tanh_forward(x):
    y = xp_of(x).tanh(x)
    return y, (y,)


def tanh_backward(dy, cache):
    (y,) = cache
    return dy * (1.0 - y * y)


ACTIVATION_FORWARD = {
    "gelu": gelu_forward,
    "gelu_new": gelu_tanh_forward,
    "gelu_pytorch_tanh": gelu_tanh_forward,
    "gelu_fast": gelu_tanh_forward,
    "quick_gelu": quick_gelu_forward,
    "relu": relu_forward,
    "silu": silu_forward,
    "tanh": tanh_forward,
}
ACTIVATION_BACKWARD = {
    gelu_forward: gelu_backward,
    gelu_tanh_forward: gelu_tanh_backward,
    quick_gelu_forward: quick_gelu_backward,
    relu_forward: relu_backward,
    silu_forward: silu_backward,
    tanh_forward: tanh_backward,
}


def activation_forward(name, x):
    """Apply the activation called `name` in config.json. Shapes: x (...) -> (...)"""
    return ACTIVATION_FORWARD[name](x)


def activation_backward(name, dy, cache):
    """Gradient of activation_forward(name, x) given its cache. Shapes: dy (...) -> dx (...)"""
    return ACTIVATION_BACKWARD[ACTIVATION_FORWARD[name]](dy, cache)
