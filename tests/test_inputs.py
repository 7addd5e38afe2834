"""Bad input gets a ValueError naming what was wrong, never garbage or a crash."""

import numpy as np
import pytest

import minibert
from conftest import case_dir
from minibert.errors import InputError


@pytest.fixture(scope="module")
def bert():
    return minibert.load(case_dir("bert-base"))  # V = 99, 20 positions, 2 token types


@pytest.fixture(scope="module")
def roberta():
    return minibert.load(case_dir("roberta-base"))  # pad id 1: 20 - 2 = 18 positions usable


IDS = np.array([[5, 6, 7], [8, 9, 0]])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"input_ids": np.array([[5, 99, 7]])}, r"holds 99 at \(0, 1\), outside the vocabulary"),
        ({"input_ids": np.array([[5, -1, 7]])}, "holds -1"),
        ({"input_ids": np.full((1, 21), 5)}, "sequence length 21 exceeds the 20 positions"),
        ({"input_ids": IDS.astype(np.float32)}, "input_ids must hold integers, got dtype float32"),
        ({"input_ids": IDS.astype(bool)}, "input_ids must hold integers"),
        ({"input_ids": np.zeros((0, 3), np.int64)}, "input_ids is empty"),
        ({"input_ids": np.zeros((2, 0), np.int64)}, "input_ids is empty"),
        ({"input_ids": np.array([5, 6, 7])}, r"shape \(batch, tokens\), got shape \(3,\)"),
        ({"input_ids": [[1, 2], [3]]}, "ragged"),
        (
            {"input_ids": IDS, "attention_mask": np.ones((2, 4))},
            r"attention_mask has shape \(2, 4\)",
        ),
        ({"input_ids": IDS, "attention_mask": np.full((2, 3), 2)}, "only 0 .* and 1"),
        ({"input_ids": IDS, "attention_mask": np.full((2, 3), -1)}, r"only 0 .* and 1.*\[-1\]"),
        ({"input_ids": IDS, "attention_mask": np.full((2, 3), 0.5)}, r"only 0 .* and 1.*\[0\.5\]"),
        ({"input_ids": IDS, "attention_mask": np.full((2, 3), "1")}, "must hold 0/1 values"),
        ({"input_ids": IDS, "token_type_ids": np.zeros((3, 3), int)}, "token_type_ids has shape"),
        (
            {"input_ids": IDS, "token_type_ids": np.full((2, 3), 2)},
            r"token_type_ids must lie in \[0, 2\)",
        ),
        (
            {"input_ids": IDS, "token_type_ids": np.zeros((2, 3))},
            "token_type_ids must hold integers",
        ),
    ],
)
def test_bad_inputs_raise_named_errors(bert, kwargs, match):
    with pytest.raises(InputError, match=match):
        bert(**kwargs)


def test_errors_are_value_errors(bert):
    with pytest.raises(ValueError):  # noqa: PT011 (the class is the point)
        bert(np.array([[1000]]))


def test_roberta_max_length_counts_the_position_offset(roberta):
    roberta(np.full((1, 18), 5))
    with pytest.raises(InputError, match="19 exceeds the 18 positions"):
        roberta(np.full((1, 19), 5))


def test_roberta_single_token_type(roberta):
    with pytest.raises(InputError, match=r"\[0, 1\)"):
        roberta(IDS, token_type_ids=np.ones_like(IDS))


def test_distilbert_accepts_zero_token_types_only():
    model = minibert.load(case_dir("distilbert-base"))
    a = model(IDS).last_hidden_state
    b = model(IDS, token_type_ids=np.zeros_like(IDS)).last_hidden_state
    np.testing.assert_array_equal(a, b)
    with pytest.raises(InputError, match="token_type_ids"):
        model(IDS, token_type_ids=np.ones_like(IDS))


def test_lists_and_other_int_dtypes_work(bert):
    a = bert(IDS).last_hidden_state
    np.testing.assert_array_equal(bert(IDS.tolist()).last_hidden_state, a)
    np.testing.assert_array_equal(bert(IDS.astype(np.int32)).last_hidden_state, a)
    np.testing.assert_array_equal(bert(IDS.astype(np.uint16)).last_hidden_state, a)
    mask = np.ones_like(IDS, dtype=bool)
    np.testing.assert_array_equal(bert(IDS, attention_mask=mask).last_hidden_state, a)
    for dtype in (np.uint8, np.int32, np.float32):  # 0/1 masks of every kind of number
        mask = np.ones_like(IDS, dtype=dtype)
        np.testing.assert_array_equal(bert(IDS, attention_mask=mask).last_hidden_state, a)


def test_bad_load_dtype():
    with pytest.raises(ValueError, match="dtype must be 'float32' or 'float64'"):
        minibert.load(case_dir("bert-base"), dtype="float16")
