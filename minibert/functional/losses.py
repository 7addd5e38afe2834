"""Losses with Hugging Face's semantics, each a forward/backward pair.

cross_entropy: mean over the targets that are not ignore_index (-100), as torch's
CrossEntropyLoss; a batch whose targets are all ignored has loss 0 and zero gradient (torch
returns NaN there; we prefer a number, and say so in docs/numerics.md).

Shapes: N rows, K classes.
"""

import numpy as np

IGNORE_INDEX = -100


def log_softmax(logits):
    """log p = x - max - log(sum(exp(x - max))). Shapes: (..., K) -> (..., K)"""
    shifted = logits - logits.max(-1, keepdims=True)  # exp never overflows
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def cross_entropy_forward(logits, labels, ignore_index=IGNORE_INDEX):
    """Mean of -log p(label) over rows whose label is not ignore_index.

    Shapes: logits (N, K), labels (N,) integers -> loss (), cache
    """
    labels = np.asarray(labels).reshape(-1)
    valid = labels != ignore_index  # (N,)
    logp = log_softmax(logits)  # (N, K)
    count = int(valid.sum())
    picked = logp[np.nonzero(valid)[0], labels[valid]]  # (count,)
    loss = -picked.sum() / max(count, 1)
    return logits.dtype.type(loss), (logp, labels, valid, count)


def cross_entropy_backward(dloss, cache):
    """d loss / d logits = (softmax - onehot(label)) / count on valid rows, 0 on ignored ones.

    Shapes: dloss () -> dlogits (N, K). Labels get no gradient.
    """
    logp, labels, valid, count = cache
    dlogits = np.exp(logp)  # (N, K): the probabilities
    rows = np.nonzero(valid)[0]
    dlogits[rows, labels[valid]] -= 1.0
    dlogits[~valid] = 0.0
    return dlogits * (dloss / max(count, 1))


def mse_forward(pred, target):
    """Mean squared error over every element (regression heads, num_labels = 1).

    Shapes: pred (...), target (...) -> loss ()
    """
    diff = pred - target.astype(pred.dtype)
    return pred.dtype.type((diff * diff).mean()), (diff,)


def mse_backward(dloss, cache):
    (diff,) = cache
    return diff * (2.0 * dloss / diff.size)
