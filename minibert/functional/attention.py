"""Scaled dot-product attention with a padding mask (Vaswani et al. 2017, section 3.2.1).

    scores = q k^T / sqrt(D) + mask_bias        probs = softmax(scores)        ctx = probs v

The padding mask is additive: 0 where a key may be attended, and the most negative finite number
of the dtype where it is padding (as transformers' eager attention does), so after softmax a
padded key gets exactly zero weight. A row whose keys are all padding gets uniform weights over
them (finite, never NaN), again as in transformers.

Shapes: B batch, H heads, T tokens, D head width, C = H * D.
"""

import numpy as np

from ..kernels.softmax import masked_softmax


def padding_mask_bias(attention_mask, dtype):
    """0/1 mask of shape (B, T) -> additive bias (B, 1, 1, T) broadcast over heads and queries."""
    neg = np.finfo(dtype).min  # torch.finfo(dtype).min, as transformers uses
    keep = attention_mask.astype(dtype)  # (B, T)
    return ((1.0 - keep) * neg)[:, None, None, :]  # (B, 1, 1, T)


def split_heads(x, num_heads):
    """(B, T, C) -> (B, H, T, D): each head sees its own D-wide slice of the hidden vector."""
    B, T, C = x.shape
    return x.reshape(B, T, num_heads, C // num_heads).transpose(0, 2, 1, 3)  # (B, H, T, D)


def merge_heads(x):
    """(B, H, T, D) -> (B, T, C): concatenate the heads again."""
    B, H, T, D = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, T, H * D)  # (B, T, C)


def attention_forward(q, k, v, mask_bias=None):
    """Masked scaled dot-product attention for every (batch, head) pair.

    Shapes: q, k, v (B, H, T, D), mask_bias (B, 1, 1, T) or None -> ctx (B, H, T, D),
    probs (B, H, T, T)
    """
    B, H, T, D = q.shape
    scale = D**-0.5  # scaled after the product, as transformers does, so rounding matches
    scores = q @ k.transpose(0, 1, 3, 2)  # (B, H, T, T)
    if mask_bias is None:
        mask_bias = np.zeros((B, T), scores.dtype)
    # probs = softmax(scores * scale + mask_bias): one fused kernel, numpy reference beside it
    probs = masked_softmax(scores, mask_bias.reshape(B, T), scale)  # (B, H, T, T)
    ctx = probs @ v  # (B, H, T, D)
    return ctx, probs, (q, k, v, probs)
