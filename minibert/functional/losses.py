"""Losses with Hugging Face's semantics, each a forward/backward pair.

cross_entropy: mean over the targets that are not ignore_index (-100), as torch's
CrossEntropyLoss; a batch whose targets are all ignored has loss 0 and zero gradient (torch
returns NaN there; we prefer a number, and say so in docs/numerics.md).
mse: mean squared error (regression). bce_with_logits: the mean binary cross-entropy of
independent sigmoids (multi-label classification), as torch's BCEWithLogitsLoss.

Each loss uses the array namespace of its logits (numpy, or cupy on a GPU), and a loss on the
GPU stays there, a 0-d array.

Shapes: N rows, K classes.
"""

from ..backend import as_scalar, xp_of
from ..config import IGNORE_INDEX


def log_softmax(logits):
    """log p = x - max - log(sum(exp(x - max))). Shapes: (..., K) -> (..., K)"""
    xp = xp_of(logits)
    shifted = logits - logits.max(-1, keepdims=True)  # exp never overflows
    return shifted - xp.log(xp.exp(shifted).sum(-1, keepdims=True))


def cross_entropy_forward(logits, labels, ignore_index=IGNORE_INDEX):
    """Mean of -log p(label) over rows whose label is not ignore_index.

    Only those rows are normalised: a masked-LM batch labels ~15% of its tokens, and the
    (B*T, V) softmax of the others would be computed for nothing.
    Shapes: logits (N, K), labels (N,) integers -> loss (), cache
    """
    xp = xp_of(logits)
    labels = xp.asarray(labels).reshape(-1)
    rows = xp.nonzero(labels != ignore_index)[0]  # (n,)
    logp = log_softmax(logits[rows])  # (n, K)
    picked = logp[xp.arange(len(rows)), labels[rows]]  # (n,)
    loss = -picked.sum() / max(len(rows), 1)
    return as_scalar(loss, logits.dtype), (logp, labels[rows], rows, logits.shape)


def cross_entropy_backward(dloss, cache):
    """d loss / d logits = (softmax - onehot(label)) / n on the n labelled rows, 0 elsewhere.

    Shapes: dloss () -> dlogits (N, K). Labels get no gradient.
    """
    dvalid, rows = cross_entropy_backward_rows(dloss, cache)
    dlogits = xp_of(dvalid).zeros(cache[3], dvalid.dtype)  # (N, K)
    dlogits[rows] = dvalid
    return dlogits


def cross_entropy_backward_rows(dloss, cache):
    """The same gradient as (the n labelled rows, their indices), every other row being 0:
    what a masked-LM head needs to backpropagate through ~15% of its rows only.

    Shapes: dloss () -> dvalid (n, K), rows (n,)
    """
    logp, labels, rows, _ = cache
    xp = xp_of(logp)
    dvalid = xp.exp(logp)  # (n, K): the probabilities
    dvalid[xp.arange(len(rows)), labels] -= 1.0
    dvalid *= dvalid.dtype.type(dloss / max(len(rows), 1))
    return dvalid, rows


def mse_forward(pred, target):
    """Mean squared error over every element (regression heads, num_labels = 1).

    Shapes: pred (...), target (...) -> loss ()
    """
    diff = pred - target.astype(pred.dtype)
    return as_scalar((diff * diff).mean(), pred.dtype), (diff,)


def mse_backward(dloss, cache):
    (diff,) = cache
    return diff * (2.0 * dloss / diff.size)


def bce_with_logits_forward(logits, targets):
    """Binary cross-entropy of sigmoid(logits) against targets in [0, 1], the mean over every
    element, as torch's BCEWithLogitsLoss (multi-label classification: K independent yes/no).

    Per element: max(x, 0) - x y + log(1 + exp(-|x|)), which equals
    -(y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))) without overflow for large |x|.
    Shapes: logits (...), targets (...) -> loss (), cache
    """
    xp = xp_of(logits)
    y = targets.astype(logits.dtype)
    per_element = xp.maximum(logits, 0) - logits * y + xp.log1p(xp.exp(-xp.abs(logits)))
    return as_scalar(per_element.mean(), logits.dtype), (logits, y)


def bce_with_logits_backward(dloss, cache):
    """d loss / d logits = (sigmoid(x) - y) / n over the n elements. Targets get no gradient."""
    logits, y = cache
    sigmoid = 0.5 * (1.0 + xp_of(logits).tanh(0.5 * logits))  # exact and finite for any x
    return (sigmoid - y) * logits.dtype.type(dloss / logits.size)
