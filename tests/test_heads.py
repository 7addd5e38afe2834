"""The task heads beyond the reference comparisons: how a sequence classifier picks its loss
(problem_type), and the errors a head's targets raise."""

import numpy as np
import pytest

import minibert
from conftest import case_dir, load_reference, model_inputs
from minibert.errors import InputError


def multilabel_batch():
    ref = load_reference("bert-multilabel")
    with np.load(case_dir("bert-multilabel") / "training.npz") as z:
        return model_inputs(ref), z["labels"], float(z["loss"])


def test_multilabel_labels_may_be_integers_when_the_config_says_multi_label():
    inputs, labels, loss = multilabel_batch()
    model = minibert.load(case_dir("bert-multilabel"))
    assert model.config.hf_extra["problem_type"] == "multi_label_classification"
    out = model(**inputs, labels=labels.astype(np.int64))  # 0/1 as integers: still BCE
    np.testing.assert_allclose(out.loss, loss, rtol=1e-5)


def test_problem_type_follows_the_labels_when_the_config_names_none():
    """transformers' rule: integer labels are single-label, float labels multi-label."""
    ref = load_reference("bert-seqcls")  # 3 labels, no problem_type in config.json
    model = minibert.load(case_dir("bert-seqcls"))
    assert "problem_type" not in model.config.hf_extra
    logits = model(**model_inputs(ref)).logits  # (B, 3)
    targets = np.array([[1, 0, 1], [0, 0, 0], [1, 1, 0]], np.float32)
    out = model(**model_inputs(ref), labels=targets)
    bce = np.logaddexp(0, logits) - logits * targets  # -log sigmoid terms, per element
    np.testing.assert_allclose(out.loss, bce.mean(), rtol=1e-5)
    out = model(**model_inputs(ref), labels=np.array([0, 2, 1]))
    logp = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
    np.testing.assert_allclose(out.loss, -logp[[0, 1, 2], [0, 2, 1]].mean(), rtol=1e-5)


@pytest.mark.parametrize(
    ("case", "labels", "match"),
    [
        ("bert-multilabel", np.zeros((3, 3), np.float32), r"shape \(3, 3\), expected \(3, 4\)"),
        ("bert-multilabel", np.full((3, 4), np.nan, np.float32), "NaN"),
        ("bert-multilabel", np.array([["a"] * 4] * 3), "numbers"),
        ("albert-regression", np.zeros((3, 2)), r"expected \(3,\) or \(3, 1\)"),
        ("roberta-regression", np.zeros(2), r"expected \(2, 2\)"),
        ("bert-seqcls", np.array([0, 1, 3]), r"outside \[0, 3\)"),
    ],
)
def test_bad_labels_are_named(case, labels, match):
    model = minibert.load(case_dir(case))
    with pytest.raises(InputError, match=match):
        model(**model_inputs(load_reference(case)), labels=labels)
