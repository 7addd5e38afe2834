"""How closely two sets of sentence vectors agree, row by row.

The same N texts encoded by a teacher and a student, or by a float32 model and its int8 copy:

    mean_cosine      the mean cosine similarity of matching rows (equal widths)
    top1_agreement   the share of texts whose nearest other text is the same under both (any
                     widths: it compares neighbours, not vectors)

Shapes: N texts, C and C' vector widths.
"""

import numpy as np

from ..functional.pooling import l2_normalize


def mean_cosine(a, b) -> float:
    """Mean cosine of rows a[i] and b[i]. Shapes: a, b (N, C)"""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.mean(np.sum(l2_normalize(a) * l2_normalize(b), axis=1)))


def nearest(vectors) -> np.ndarray:
    """For each row, the index of its most similar other row (cosine). Shapes: (N, C) -> (N,)"""
    v = l2_normalize(np.asarray(vectors, np.float64))
    sims = v @ v.T  # (N, N)
    np.fill_diagonal(sims, -np.inf)
    return sims.argmax(1)


def top1_agreement(vectors, reference) -> float:
    """The share of rows whose nearest other row (cosine) is the same under both sets of
    vectors. Shapes: vectors (N, C), reference (N, C'), N >= 2; widths may differ."""
    return float(np.mean(nearest(vectors) == nearest(reference)))
