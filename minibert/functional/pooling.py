"""Pooling: one vector per sequence from its token vectors, as sentence-transformers does it.

    mean                  the average of the real tokens' vectors (padding left out by the
                          mask), a forward/backward pair (distillation trains through it)
    cls                   the first real token's vector ([CLS]; the first token after the
                          prompt when a prompt is left out of the mask)
    max                   each dimension's maximum over the real tokens
    mean_sqrt_len_tokens  the sum of the real tokens' vectors divided by sqrt(count)
    weightedmean          the average with weights 1, 2, ..., T by position (later tokens
                          count more, as in SGPT)
    lasttoken             the last real token's vector (zeros when a row has none)

The mask says which tokens are pooled: the attention mask, or the attention mask with a prompt's
tokens zeroed. Several modes at once (sentence-transformers' pooling_mode tuple) concatenate their
vectors in the order given. l2_normalize scales the pooled vectors to unit length, so that a dot
product is the cosine. Shapes: B sequences, T tokens, C width.
"""

import numpy as np

POOLINGS = ("mean", "cls", "max", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")


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


def _first_real(mask):
    """Index of each row's first real token (0 for a row without one). Shapes: (B, T) -> (B,)"""
    return np.argmax(mask > 0, axis=1)


def _last_real(mask):
    """Index of each row's last real token, -1 for a row without one. Shapes: (B, T) -> (B,)"""
    T = mask.shape[1]
    from_end = np.argmax(mask[:, ::-1] > 0, axis=1)  # (B,): real tokens after the last one
    return np.where((mask > 0).any(1), T - 1 - from_end, -1)


def pool_one(hidden, mask, pooling: str):
    """One of POOLINGS, forward only. Shapes: hidden (B, T, C), mask (B, T) of 0/1 -> (B, C)"""
    rows = np.arange(hidden.shape[0])  # (B,)
    m = np.asarray(mask)[..., None].astype(hidden.dtype)  # (B, T, 1)
    if pooling == "mean":
        return mean_pool_forward(hidden, mask)[0]
    if pooling == "cls":
        return hidden[rows, _first_real(mask)]  # position 0 unless a prompt is left out
    if pooling == "max":
        # a row without real tokens gives the dtype's lowest value (sentence-transformers: -inf)
        return np.where(m > 0, hidden, np.finfo(hidden.dtype).min).max(1)
    if pooling == "mean_sqrt_len_tokens":
        count = np.maximum(m.sum(1), 1e-9)  # (B, 1)
        return (hidden * m).sum(1) / np.sqrt(count)
    if pooling == "weightedmean":
        # weights are positions counted from 1 at the first token of the row (the tokenizer
        # pads on the right), so leaving a prompt out keeps the text's own weights
        weights = m * np.arange(1, hidden.shape[1] + 1, dtype=hidden.dtype)[:, None]  # (B, T, 1)
        return (hidden * weights).sum(1) / np.maximum(weights.sum(1), 1e-9)
    if pooling == "lasttoken":
        last = _last_real(mask)  # (B,)
        return np.where((last >= 0)[:, None], hidden[rows, np.maximum(last, 0)], 0)
    raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")


def pool(hidden, mask, pooling):
    """Pool with one mode (a str) or several (a tuple, their vectors concatenated in order).

    Shapes: hidden (B, T, C), mask (B, T) of 0/1 -> (B, C) per mode, (B, k C) for k modes
    """
    if isinstance(pooling, str):
        return pool_one(hidden, mask, pooling)
    return np.concatenate([pool_one(hidden, mask, mode) for mode in pooling], axis=-1)


def check_pooling(pooling) -> tuple:
    """A pooling given as a str or a sequence of str, as a tuple of modes; ValueError naming
    what is wrong otherwise."""
    modes = (pooling,) if isinstance(pooling, str) else pooling
    if not isinstance(modes, (tuple, list)) or not modes or any(m not in POOLINGS for m in modes):
        raise ValueError(f"pooling must be one of {POOLINGS} (or a tuple of them), got {pooling!r}")
    return tuple(modes)


def l2_normalize(x, eps: float = 1e-12):
    """Rows scaled to unit length (torch.nn.functional.normalize's eps). Shapes: (N, C) -> (N, C)"""
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), eps)
