"""Layer normalisation (Ba et al. 2016): normalise each vector over its last axis, then scale
and shift. eps sits inside the square root, as in torch.nn.LayerNorm.

Shapes: x (..., C), w (C,), b (C,) -> (..., C)
"""


def layernorm_forward(x, w, b, eps):
    """Normalise over the last axis, then scale and shift. Shapes: x (..., C), w/b (C,) -> (..., C)"""
    mu = x.mean(-1, keepdims=True)  # (..., 1)
    xc = x - mu  # (..., C)
    # the biased variance (divide by C), as torch does
    rstd = ((xc * xc).mean(-1, keepdims=True) + eps) ** -0.5  # (..., 1)
    xhat = xc * rstd  # (..., C)
    return xhat * w + b, (xhat, w, rstd)
