"""Inverted dropout (Srivastava et al. 2014), a forward/backward pair.

In training, zero each element with probability p and scale the survivors by 1 / (1 - p), so
the expected value is unchanged and evaluation needs no rescaling. The random mask comes from
an explicit numpy Generator, never global state.

Shapes: x (...) -> (...)
"""


def dropout_forward(x, p, rng):
    """Shapes: x (...) -> (...). The cache holds keep = mask / (1 - p), the backward's factor."""
    if p <= 0:
        return x, (None,)
    keep = dropout_mask(x.shape, x.dtype, p, rng)  # (...)
    return x * keep, (keep,)


def dropout_mask(shape, dtype, p, rng):
    """keep: 0 for a dropped element, 1 / (1 - p) for a kept one, drawn from rng (the draws
    dropout_forward makes, for kernels that apply the mask themselves)."""
    if not 0 <= p < 1:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    # uniform draws in x's precision (float32 draws cost half of float64 ones)
    keep = (rng.random(shape, dtype=dtype) >= p).astype(dtype)  # (...)
    keep *= dtype.type(1 / (1 - p))
    return keep


def dropout_backward(dy, cache):
    """Shapes: dy (...) -> dx (...): the same elements dropped, the same scale."""
    (keep,) = cache
    return dy if keep is None else dy * keep
