"""Knowledge-distillation losses, each a forward/backward pair.

    soft_target     T^2 KL(softmax(t / T) || softmax(s / T)), the mean over kept rows
                    (Hinton et al. 2015; DistilBERT's L_ce, Sanh et al. 2019)
    cosine          1 - cos(s, t), the mean over kept rows (DistilBERT's L_cos)
    masked_mse      sum(keep (pred - target)^2) / (number of kept elements)
    hidden_mse      masked_mse(s W^T + b, t) over kept tokens (TinyBERT's L_hidn, Jiao et al. 2020)
    attention_mse   masked_mse of attention probabilities over real (query, key) pairs (L_attn)
    sentence_cosine 1 - cos(mean_pool(s) W^T + b, mean_pool(t)) per sequence, the mean over the
                    batch: agreement of sentence embeddings, through the projection when C < C'
                    (mean_pool: pooling.py's sentence-transformers mean)

The student's array is always the first argument; the teacher's is a target and gets no gradient
(the teacher runs in eval mode and is not trained). The hard-label loss is cross_entropy in
losses.py. A `mask` is a 0/1 array over the rows (the leading axes) that count, e.g. the attention
mask (B, T); None counts every row. A loss over no kept row is 0 with a zero gradient, as
cross_entropy does.

Shapes: N rows (any leading axes), K classes, B batch, T tokens, C student width, C' teacher width,
H heads.
"""

import numpy as np

from .linear import linear_backward, linear_forward
from .losses import log_softmax
from .pooling import mean_pool_backward, mean_pool_forward

COSINE_EPS = 1e-12  # added to each squared norm, as torch's cosine_embedding_loss does


def _kept_rows(shape, mask):
    """Indices of the kept rows of an array (..., K) viewed as (N, K). Shapes: mask (...) -> (n,)"""
    N = int(np.prod(shape[:-1]))
    if mask is None:
        return np.arange(N)
    mask = np.asarray(mask)
    if mask.shape != tuple(shape[:-1]):
        raise ValueError(f"mask has shape {mask.shape}, expected {tuple(shape[:-1])}")
    return np.nonzero(mask.reshape(-1))[0]  # (n,)


def _scatter_rows(drows, rows, shape):
    """Gradients of the kept rows back into a zero array of the full shape."""
    dfull = np.zeros((int(np.prod(shape[:-1])), shape[-1]), drows.dtype)  # (N, K)
    dfull[rows] = drows
    return dfull.reshape(shape)


def soft_target_forward(student_logits, teacher_logits, temperature=1.0, mask=None):
    """T^2 KL(p_t || p_s) with p = softmax(logits / T), the mean over kept rows.

    This is torch's nn.KLDivLoss(reduction="batchmean")(log p_s, p_t) * T^2 on the kept rows, as
    DistilBERT's distiller computes it. The soft cross-entropy -sum p_t log p_s differs from the
    KL by the teacher's entropy, a constant for the student: same gradient, but the KL is 0 when
    the student matches. The T^2 keeps the gradient's size as T changes (Hinton et al. 2015,
    section 2), since d/ds of KL(softmax(t/T) || softmax(s/T)) scales as 1/T.
    Shapes: student_logits, teacher_logits (..., K), mask (...) or None -> loss (), cache
    """
    K = student_logits.shape[-1]
    rows = _kept_rows(student_logits.shape, mask)  # (n,)
    T = float(temperature)
    logp_s = log_softmax(student_logits.reshape(-1, K)[rows] / T)  # (n, K)
    logp_t = log_softmax(teacher_logits.reshape(-1, K)[rows].astype(logp_s.dtype) / T)  # (n, K)
    p_t = np.exp(logp_t)  # (n, K); a p_t that underflows to 0 adds 0, as torch's xlogy does
    n = max(len(rows), 1)
    loss = (p_t * (logp_t - logp_s)).sum() * (T * T / n)
    return student_logits.dtype.type(loss), (logp_s, p_t, rows, student_logits.shape, T)


def soft_target_backward(dloss, cache):
    """d loss / d s = T (p_s - p_t) / n on the kept rows: the 1/T of the softmax times T^2.

    Shapes: dloss () -> dstudent_logits (..., K)
    """
    logp_s, p_t, rows, shape, T = cache
    n = max(len(rows), 1)
    drows = (np.exp(logp_s) - p_t) * logp_s.dtype.type(dloss * T / n)  # (n, K)
    return _scatter_rows(drows, rows, shape)


def cosine_forward(student, teacher, mask=None):
    """Mean over kept rows of 1 - cos(s, t): torch's CosineEmbeddingLoss with target 1.

    cos = s.t / sqrt((|s|^2 + eps)(|t|^2 + eps)), eps = 1e-12 on each squared norm, as torch.
    Shapes: student, teacher (..., C), mask (...) or None -> loss (), cache
    """
    if student.shape != teacher.shape:
        raise ValueError(f"cosine loss needs equal shapes, got {student.shape}, {teacher.shape}")
    C = student.shape[-1]
    rows = _kept_rows(student.shape, mask)  # (n,)
    s = student.reshape(-1, C)[rows]  # (n, C)
    t = teacher.reshape(-1, C)[rows].astype(s.dtype)  # (n, C)
    ss = (s * s).sum(-1) + COSINE_EPS  # (n,)
    denom = np.sqrt(ss * ((t * t).sum(-1) + COSINE_EPS))  # (n,)
    cos = (s * t).sum(-1) / denom  # (n,)
    loss = (1.0 - cos).sum() / max(len(rows), 1)
    return student.dtype.type(loss), (s, t, ss, denom, cos, rows, student.shape)


def cosine_backward(dloss, cache):
    """d cos / d s = t / denom - cos s / (|s|^2 + eps), since d denom / d s = denom s / |s|^2.

    Shapes: dloss () -> dstudent (..., C)
    """
    s, t, ss, denom, cos, rows, shape = cache
    dcos = -dloss / max(len(rows), 1)  # forward: loss = mean(1 - cos)
    ds = dcos * (t / denom[:, None] - (cos / ss)[:, None] * s)  # (n, C)
    return _scatter_rows(ds.astype(s.dtype), rows, shape)


def masked_mse_forward(pred, target, keep=None):
    """sum(keep (pred - target)^2) / (number of kept elements); keep None is the plain mean.

    Shapes: pred, target (...), keep 0/1 broadcastable to pred, or None -> loss (), cache
    """
    diff = pred - target.astype(pred.dtype)  # (...)
    if keep is None:
        count = diff.size
    else:
        keep = np.broadcast_to(np.asarray(keep, pred.dtype), diff.shape)  # (...)
        diff = diff * keep  # a dropped element adds nothing and gets no gradient
        count = int(keep.sum())
    count = max(count, 1)
    return pred.dtype.type((diff * diff).sum() / count), (diff, count)


def masked_mse_backward(dloss, cache):
    """d loss / d pred = 2 keep (pred - target) / count. Shapes: dloss () -> dpred (...)"""
    diff, count = cache
    return diff * diff.dtype.type(2.0 * dloss / count)


def hidden_mse_forward(student_hidden, weight, bias, teacher_hidden, mask=None):
    """TinyBERT's L_hidn: MSE(h_s W^T + b, h_t) over kept tokens and every teacher feature.

    W (a Linear of the distillation objective, not of the student) maps the student's width C
    to the teacher's C'; weight None compares h_s and h_t directly (equal widths). Unlike
    TinyBERT's code, padded tokens are left out of the mean (their states mean nothing).
    Shapes: student_hidden (B, T, C), weight (C', C), bias (C',) or None, teacher_hidden
    (B, T, C'), mask (B, T) or None -> loss (), cache
    """
    if weight is None:
        pred, linear_cache = student_hidden, None
    else:
        pred, linear_cache = linear_forward(student_hidden, weight, bias)  # (B, T, C')
    if pred.shape != teacher_hidden.shape:
        raise ValueError(
            f"projected student states have shape {pred.shape} but the teacher's "
            f"have {teacher_hidden.shape}"
        )
    keep = None if mask is None else np.asarray(mask)[..., None]  # (B, T, 1)
    loss, mse_cache = masked_mse_forward(pred, teacher_hidden, keep)
    return loss, (linear_cache, mse_cache)


def hidden_mse_backward(dloss, cache):
    """Shapes: dloss () -> dstudent_hidden (B, T, C), dweight (C', C), dbias (C',); the last
    two are None without a projection"""
    linear_cache, mse_cache = cache
    dpred = masked_mse_backward(dloss, mse_cache)  # (B, T, C')
    if linear_cache is None:
        return dpred, None, None
    return linear_backward(dpred, linear_cache)  # forward: pred = h_s W^T + b


def attention_pair_mask(mask):
    """(query, key) pairs where both are real tokens. Shapes: mask (B, T) -> (B, 1, T, T)"""
    m = np.asarray(mask)
    return (m[:, None, :, None] * m[:, None, None, :]).astype(np.int8)  # (B, 1, T, T)


def attention_mse_forward(student_probs, teacher_probs, mask=None):
    """MSE between attention probabilities over real (query, key) pairs, every head.

    We compare probabilities (softmax outputs), not TinyBERT's unnormalised scores: softmax
    ignores a shift of a row's scores, so scores carry a per-row constant that no output depends
    on and that an MSE would still try to match; padded keys have probability exactly 0 in both
    models, so no threshold is needed to drop the mask constant (TinyBERT zeroes scores <= -100);
    and probabilities are what output_attentions returns and what model.backward accepts.
    Shapes: student_probs, teacher_probs (B, H, T, T), mask (B, T) or None -> loss (), cache
    """
    if student_probs.shape != teacher_probs.shape:
        raise ValueError(
            f"attention maps differ in shape: student {student_probs.shape}, "
            f"teacher {teacher_probs.shape} (the heads must match)"
        )
    keep = None if mask is None else attention_pair_mask(mask)  # (B, 1, T, T)
    return masked_mse_forward(student_probs, teacher_probs, keep)


def attention_mse_backward(dloss, cache):
    """Shapes: dloss () -> dstudent_probs (B, H, T, T), zero on padded pairs"""
    return masked_mse_backward(dloss, cache)


def sentence_cosine_forward(student_hidden, weight, bias, teacher_hidden, mask=None):
    """1 - cos between the student's and the teacher's mean-pooled sentence vectors, the mean
    over the batch.

    A narrower student's vector goes through the objective's projection first (weight None:
    equal widths). Mean pooling is a weighted average whose weights sum to 1, so
    mean_pool(h W^T + b) = mean_pool(h) W^T + b: this is the cosine between the mean-pooled
    projected states, and we project after pooling, B vectors instead of B T.
    Shapes: student_hidden (B, T, C), weight (C', C) or None, bias (C',) or None,
    teacher_hidden (B, T, C'), mask (B, T) or None -> loss (), cache
    """
    pooled, pool_cache = mean_pool_forward(student_hidden, mask)  # (B, C)
    target, _ = mean_pool_forward(teacher_hidden.astype(student_hidden.dtype), mask)  # (B, C')
    linear_cache = None
    if weight is not None:
        pooled, linear_cache = linear_forward(pooled, weight, bias)  # (B, C')
    keep = None if mask is None else (np.asarray(mask).sum(1) > 0)  # (B,) an empty row: no loss
    loss, cosine_cache = cosine_forward(pooled, target, keep)
    return loss, (pool_cache, linear_cache, cosine_cache)


def sentence_cosine_backward(dloss, cache):
    """Shapes: dloss () -> dstudent_hidden (B, T, C), dweight (C', C), dbias (C',); the last
    two are None without a projection"""
    pool_cache, linear_cache, cosine_cache = cache
    dpooled = cosine_backward(dloss, cosine_cache)  # (B, C') or (B, C)
    dweight = dbias = None
    if linear_cache is not None:  # forward: pooled = mean_pool(h) W^T + b
        dpooled, dweight, dbias = linear_backward(dpooled, linear_cache)  # (B, C)
    return mean_pool_backward(dpooled, pool_cache), dweight, dbias
