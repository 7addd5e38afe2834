"""Layer normalisation (Ba et al. 2016), a forward/backward pair.

Normalise each vector over its last axis, then scale and shift. eps sits inside the square
root, as in torch.nn.LayerNorm.

Shapes: x (..., C), w (C,), b (C,) -> (..., C)
"""


def layernorm_forward(x, w, b, eps):
    """Normalise over the last axis, then scale and shift.

    Shapes: x (..., C), w/b (C,) -> (..., C)
    """
    mu = x.mean(-1, keepdims=True)  # (..., 1)
    xc = x - mu  # (..., C)
    # the biased variance (divide by C), as torch does
    rstd = ((xc * xc).mean(-1, keepdims=True) + eps) ** -0.5  # (..., 1)
    xhat = xc * rstd  # (..., C)
    return xhat * w + b, (xhat, w, rstd)


def layernorm_backward(dy, cache):
    """Gradients of layernorm_forward. Shapes: dy (..., C) -> dx (..., C), dw (C,), db (C,)"""
    xhat, w, rstd = cache
    lead = tuple(range(dy.ndim - 1))  # every axis except C
    dw = (dy * xhat).sum(lead)  # forward: y = xhat * w + b
    db = dy.sum(lead)
    g = dy * w  # gradient with respect to xhat
    # xhat = (x - mean) * rstd: both mean and rstd depend on every x in the row, which gives
    # the two subtracted terms (llm.c doc/layernorm derives it step by step)
    dx = rstd * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True))
    return dx, dw, db
