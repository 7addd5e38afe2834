"""Scores against the truth: classification accuracy and F1, Spearman and Pearson correlations.

classification_metrics (accuracy, macro-F1), and the rank and linear correlations the
similarity benchmarks report (spearman, pearson).

Shapes: N predictions or paired values.
"""

import numpy as np


def classification_metrics(predictions, labels) -> dict:
    """Accuracy and macro-averaged F1 over the classes present in labels or predictions."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    accuracy = float((predictions == labels).mean()) if len(labels) else 0.0
    f1s = []
    for c in np.union1d(predictions, labels):
        tp = int(((predictions == c) & (labels == c)).sum())
        fp = int(((predictions == c) & (labels != c)).sum())
        fn = int(((predictions != c) & (labels == c)).sum())
        f1s.append(2 * tp / max(2 * tp + fp + fn, 1))
    return {"accuracy": accuracy, "f1": float(np.mean(f1s)) if f1s else 0.0}


def average_ranks(x) -> np.ndarray:
    """Ranks 1..N of x, ties sharing the mean of their ranks (scipy's rankdata 'average')."""
    x = np.asarray(x, np.float64)
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    # runs of equal values: each value's first and last position in sorted order
    first = np.searchsorted(sorted_x, sorted_x, side="left")
    last = np.searchsorted(sorted_x, sorted_x, side="right") - 1
    ranks = np.empty(len(x))
    ranks[order] = (first + last) / 2 + 1
    return ranks


def spearman(a, b) -> float:
    """Spearman's rho: the Pearson correlation of the average ranks (ties handled)."""
    return pearson(average_ranks(a), average_ranks(b))


def pearson(a, b) -> float:
    """Pearson's r of two equally long sequences (0 when either is constant)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    a, b = a - a.mean(), b - b.mean()
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denominator) if denominator > 0 else 0.0
