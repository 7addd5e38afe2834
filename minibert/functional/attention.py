"""Scaled dot-product attention with a padding mask (Vaswani et al. 2017, section 3.2.1).

    scores = q k^T / sqrt(D) + mask_bias        probs = softmax(scores)        ctx = probs v

The padding mask is additive, one number per key, (B, T) until attention adds it to the scores
of every head and query: 0 where a key may be attended, and the most negative finite number
of the dtype where it is padding (as transformers' eager attention does), so after softmax a
padded key gets exactly zero weight. A row whose keys are all padding gets uniform weights over
them (finite, never NaN), again as in transformers.

On a GPU (cupy arrays) the readable code below runs with cupy: the fused Numba kernels are
for the CPU.

Shapes: B batch, H heads, T tokens, D head width, C = H * D.
"""

import numpy as np

from ..backend import xp_of
from ..kernels.attention_training import attention_backward_fused, attention_forward_fused
from ..kernels.softmax import masked_softmax
from .dropout import dropout_mask
from .softmax import softmax_backward, softmax_forward


def padding_mask_bias(attention_mask, dtype):
    """0/1 mask -> additive bias: 0 for a token, the dtype's most negative number for padding.

    Shapes: attention_mask (B, T) -> (B, T); attention broadcasts it over heads and queries."""
    neg = np.finfo(dtype).min  # torch.finfo(dtype).min, as transformers uses
    keep = attention_mask.astype(dtype)  # (B, T)
    return (1.0 - keep) * neg  # (B, T)


def split_heads(x, num_heads):
    """(B, T, C) -> (B, H, T, D): each head sees its own D-wide slice of the hidden vector."""
    B, T, C = x.shape
    return x.reshape(B, T, num_heads, C // num_heads).transpose(0, 2, 1, 3)  # (B, H, T, D)


def merge_heads(x):
    """(B, H, T, D) -> (B, T, C): concatenate the heads again."""
    B, H, T, D = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, T, H * D)  # (B, T, C)


def attention_forward(q, k, v, mask_bias=None, dropout=0.0, rng=None):
    """Masked scaled dot-product attention for every (batch, head) pair.

    With dropout > 0 (training), attention weights are dropped and rescaled before they mix
    the values, as in BERT. Shapes: q, k, v (B, H, T, D), mask_bias (B, T) or None ->
    ctx (B, H, T, D), probs (B, H, T, T)
    """
    B, H, T, D = q.shape
    scale = D**-0.5  # scaled after the product, as transformers does, so rounding matches
    on_cpu = xp_of(q) is np
    if mask_bias is None:
        mask_bias = xp_of(q).zeros((B, T), q.dtype)
    # float32 with the kernels on: every step below for each (batch, head) pair in one kernel
    # (kernels/attention_training.py), dropout's mask drawn here as dropout_forward draws it
    keep = dropout_mask((B, H, T, T), q.dtype, dropout, rng) if dropout > 0 else None
    fused = attention_forward_fused(q, k, v, mask_bias, scale, keep) if on_cpu else None
    if fused is not None:
        ctx, probs = fused
        return ctx, (probs if keep is None else probs * keep), (q, k, v, probs, keep)
    scores = q @ k.transpose(0, 1, 3, 2)  # (B, H, T, T)
    # probs = softmax(scores * scale + mask_bias[:, None, None, :]): the bias broadcast over
    # heads and queries, on the CPU in one fused kernel (its numpy reference beside it)
    if on_cpu:
        probs = masked_softmax(scores, mask_bias, scale)  # (B, H, T, T)
    else:  # the kernel's reference, step by step
        probs, _ = softmax_forward(scores * scale + mask_bias[:, None, None, :])
    probs_used = probs if keep is None else probs * keep  # dropout_forward with the mask drawn
    ctx = probs_used @ v  # (B, H, T, D)
    return ctx, probs_used, (q, k, v, probs, keep)


def attention_backward(dctx, cache, dprobs_out=None):
    """Gradients of attention_forward; the mask is a constant and gets none.

    dprobs_out is the gradient of an outside loss on the returned probs (an attention-map
    distillation loss), added to the one arriving through ctx; None when there is none.
    Shapes: dctx (B, H, T, D), dprobs_out (B, H, T, T) or None -> dq, dk, dv (B, H, T, D)
    """
    q, k, v, probs, keep = cache
    scale = q.shape[-1] ** -0.5
    fused = None
    if xp_of(q) is np:
        fused = attention_backward_fused(dctx, q, k, v, probs, keep, dprobs_out, scale)
    if fused is not None:  # float32 with the kernels on: kernels/attention_training.py
        return fused
    probs_used = probs if keep is None else probs * keep  # keep holds 0 or 1 / (1 - p)
    dv = probs_used.transpose(0, 1, 3, 2) @ dctx  # (B, H, T, D); forward: ctx = probs v
    dprobs = dctx @ v.transpose(0, 1, 3, 2)  # (B, H, T, T)
    if dprobs_out is not None:  # the returned probs are probs_used: both gradients meet here
        dprobs = dprobs + dprobs_out
    if keep is not None:
        dprobs = dprobs * keep  # through the dropout
    dscores = softmax_backward(dprobs, (probs,)) * scale  # forward: softmax(scale q k^T + mask)
    dq = dscores @ k  # (B, H, T, D)
    dk = dscores.transpose(0, 1, 3, 2) @ q  # (B, H, T, D)
    return dq, dk, dv
