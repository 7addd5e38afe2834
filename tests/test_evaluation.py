"""minibert/evaluation/: the metrics and the agreement measures on hand-made values (the Lee
benchmark is tested with the distillation recipes, whose fixtures it uses; timing with compare)."""

import numpy as np
import pytest

from minibert.evaluation.agreement import mean_cosine, nearest, top1_agreement
from minibert.evaluation.metrics import average_ranks, classification_metrics, pearson, spearman


def test_classification_metrics():
    m = classification_metrics([1, 0, 1, 1], [1, 0, 0, 1])
    assert m["accuracy"] == 0.75
    assert m["f1"] == pytest.approx((2 / 3 + 0.8) / 2)


def test_spearman_with_ties():
    x = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0])
    np.testing.assert_array_equal(average_ranks(x), [4, 1.5, 5, 1.5, 6, 8, 3, 7])
    assert spearman(x, x**3) == pytest.approx(1.0)
    assert spearman(x, -x) == pytest.approx(-1.0)
    # brute force: Pearson of ranks counted pair by pair
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 4, 30).astype(float), rng.normal(size=30)

    def ranks(v):
        return np.array([(v < u).sum() + ((v == u).sum() + 1) / 2 for u in v])

    assert spearman(a, b) == pytest.approx(np.corrcoef(ranks(a), ranks(b))[0, 1], abs=1e-12)


def test_pearson_of_a_line_and_of_a_constant():
    x = np.arange(6.0)
    assert pearson(x, 2 * x + 1) == pytest.approx(1.0)
    assert pearson(x, -x) == pytest.approx(-1.0)
    assert pearson(x, np.ones(6)) == 0.0  # undefined: reported as no correlation


def test_top1_agreement():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 4))
    assert top1_agreement(x, x) == 1.0
    assert top1_agreement(3 * x, np.concatenate([x, np.zeros((10, 2))], 1)) == 1.0
    assert 0 <= top1_agreement(x, rng.normal(size=(10, 7))) <= 1


def test_nearest_and_mean_cosine():
    x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.8]])
    assert nearest(x).tolist() == [1, 0, 3, 2]
    assert mean_cosine(x, 5 * x) == pytest.approx(1.0)
    assert mean_cosine(x, -x) == pytest.approx(-1.0)
    a, b = np.array([[1.0, 0.0], [0.9, 0.1]]), np.array([[2.0, 0.0], [0.8, 0.1]])
    second = (0.9 * 0.8 + 0.1 * 0.1) / (np.hypot(0.9, 0.1) * np.hypot(0.8, 0.1))
    assert mean_cosine(a, b) == pytest.approx((1.0 + second) / 2)
