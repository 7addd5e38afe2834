"""Softmax over the last axis.

Shapes: x (..., N) -> probs (..., N), each row summing to 1.
"""

from ..backend import xp_of


def softmax_forward(x):
    """probs = exp(x - max) / sum(exp(x - max)). Shapes: x (..., N) -> (..., N)"""
    # subtract the row max so exp never overflows; the result is unchanged (shift invariance)
    e = x - x.max(-1, keepdims=True)  # (..., N)
    # exp in place into e: saves one (B, H, T, T) allocation on the attention hot path
    xp_exp(e)
    e /= e.sum(-1, keepdims=True)
    return e, (e,)


def xp_exp(a):
    """exp in place, on numpy or cupy arrays (operators and methods need no xp; ufuncs do)."""
    xp_of(a).exp(a, out=a)


def softmax_backward(dprobs, cache):
    """Gradient of softmax: dx_i = p_i (dp_i - sum_j dp_j p_j). Shapes: (..., N) -> (..., N)"""
    (probs,) = cache
    return probs * (dprobs - (dprobs * probs).sum(-1, keepdims=True))
