"""Pooling: one vector per sequence from its token vectors, as sentence-transformers does it.

    mean   the average of the real tokens' vectors (padding left out by the attention mask),
           a forward/backward pair (distillation trains through it)
    cls    the first token's vector
    max    each dimension's maximum over the real tokens

l2_normalize scales the pooled vectors to unit length, so that a dot product is the cosine.
Shapes: B sequences, T tokens, C width.
"""

import numpy as np

POOLINGS = ("mean", "cls", "max")


def mean_pool_forward(hidden, mask=None):
    """Mean of the vectors of real tokens. A sequence without a real token pools to zeros (the
    count is clipped, not 0/0). Shapes: hidden (B, T, C), mask (B, T) or None -> (B, C), cache
    """
    B, T, _ = hidden.shape
    m = np.ones((B, T, 1), hidden.dtype) if mask is None else np.asarray(mask)[..., None]
    m = m.astype(hidden.dtype)  # (B, T, 1)
    count = np.maximum(m.sum(1), 1e-9)  # (B, 1)
    return (hidden * m).sum(1) / count, (m, count)


def mean_pool_backward(dpooled, cache):
    """Each real token gets dpooled / count; padding gets nothing. Shapes: (B, C) -> (B, T, C)"""
    m, count = cache
    return dpooled[:, None, :] * (m / count[:, None, :])  # forward: sum_t m_t h_t / count


def pool(hidden, mask, pooling: str):
    """Any of POOLINGS, forward only. Shapes: hidden (B, T, C), mask (B, T) of 0/1 -> (B, C)"""
    if pooling == "mean":
        return mean_pool_forward(hidden, mask)[0]
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "max":
        m = mask[..., None]  # (B, T, 1)
        return np.where(m > 0, hidden, np.finfo(hidden.dtype).min).max(1)
    raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")


def l2_normalize(x, eps: float = 1e-12):
    """Rows scaled to unit length (torch.nn.functional.normalize's eps). Shapes: (N, C) -> (N, C)"""
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), eps)
