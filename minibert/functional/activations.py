"""Activation functions, by the names config.json uses for them.

  gelu               0.5 x (1 + erf(x / sqrt 2))                       exact; BERT, RoBERTa, DistilBERT
  gelu_new           0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))   tanh approximation; ALBERT
  gelu_pytorch_tanh  the same formula as gelu_new (torch's approximate="tanh")
  gelu_fast          the same formula, written as 0.7978845608 x (1 + 0.044715 x^2)
  quick_gelu         x sigmoid(1.702 x)
  relu               max(x, 0)
  silu               x sigmoid(x)
Shapes: x (...) -> (...)
"""

import math

from ..backend import xp_of
from ..kernels.gelu import gelu_erf

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _sigmoid(x):
    # 0.5 (1 + tanh(x / 2)) equals 1 / (1 + exp(-x)) but never overflows for large |x|
    return 0.5 * (1.0 + xp_of(x).tanh(0.5 * x))


def gelu_forward(x):
    return gelu_erf(x), (x,)


def gelu_tanh_forward(x):
    inner = SQRT_2_OVER_PI * (x + 0.044715 * x**3)  # (...)
    t = xp_of(x).tanh(inner)
    return 0.5 * x * (1.0 + t), (x, t)


def quick_gelu_forward(x):
    s = _sigmoid(1.702 * x)
    return x * s, (x, s)


def relu_forward(x):
    return xp_of(x).maximum(x, 0), (x,)


def silu_forward(x):
    s = _sigmoid(x)
    return x * s, (x, s)


ACTIVATION_FORWARD = {
    "gelu": gelu_forward,
    "gelu_new": gelu_tanh_forward,
    "gelu_pytorch_tanh": gelu_tanh_forward,
    "gelu_fast": gelu_tanh_forward,
    "quick_gelu": quick_gelu_forward,
    "relu": relu_forward,
    "silu": silu_forward,
}


def activation_forward(name, x):
    """Apply the activation called `name` in config.json. Shapes: x (...) -> (...)"""
    return ACTIVATION_FORWARD[name](x)
