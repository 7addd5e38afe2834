"""Property tests: a sequence's outputs don't depend on how much padding follows it or on what
else is in the batch (to 1e-5), and fully padded rows stay finite."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minibert
from conftest import ATOL_INVARIANT, case_dir

CASES = ["bert-base", "albert-base", "distilbert-base", "roberta-base"]
MODELS = {name: minibert.load(case_dir(name)) for name in CASES}


def pad_batch(model, rows, T=None):
    """Right-pad token lists with the model's pad id into (ids, mask, types) of width T."""
    T = T or max(len(r) for r in rows)
    pad = model.config.pad_token_id
    ids = np.full((len(rows), T), pad, np.int64)
    mask = np.zeros((len(rows), T), np.int64)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
        mask[i, : len(r)] = 1
    types = np.zeros_like(ids) if model.config.type_vocab_size else None
    return ids, mask, types


def run(model, rows, T=None):
    ids, mask, types = pad_batch(model, rows, T)
    out = model(ids, attention_mask=mask, token_type_ids=types)
    return out.last_hidden_state, out.pooler_output


def token_lists(max_len):
    # ids from 3 on: never the pad id of any family (0 for BERT, 1 for RoBERTa)
    return st.lists(st.integers(3, 98), min_size=1, max_size=max_len)


@pytest.mark.parametrize("name", CASES)
@given(data=st.data())
def test_more_padding_changes_nothing(name, data):
    model = MODELS[name]
    longest = model.config.max_length
    row = data.draw(token_lists(longest - 1), label="row")
    extra = data.draw(st.integers(1, longest - len(row)), label="extra padding")
    h1, p1 = run(model, [row])
    h2, p2 = run(model, [row], T=len(row) + extra)
    np.testing.assert_allclose(h2[:, : len(row)], h1, atol=ATOL_INVARIANT)
    if p1 is not None:
        np.testing.assert_allclose(p2, p1, atol=ATOL_INVARIANT)


@pytest.mark.parametrize("name", CASES)
@given(data=st.data())
def test_batch_neighbours_change_nothing(name, data):
    model = MODELS[name]
    longest = model.config.max_length
    row = data.draw(token_lists(longest), label="row")
    others = data.draw(st.lists(token_lists(longest), min_size=1, max_size=4), label="others")
    where = data.draw(st.integers(0, len(others)), label="position in batch")
    batch = others[:where] + [row] + others[where:]
    alone, pooled_alone = run(model, [row])
    together, pooled = run(model, batch)
    np.testing.assert_allclose(together[where, : len(row)], alone[0], atol=ATOL_INVARIANT)
    if pooled is not None:
        np.testing.assert_allclose(pooled[where], pooled_alone[0], atol=ATOL_INVARIANT)


@pytest.mark.parametrize("name", CASES)
def test_fully_padded_row_is_finite(name):
    model = MODELS[name]
    ids, mask, types = pad_batch(model, [[5, 6, 7], [8]])
    mask[1] = 0  # a row of nothing but padding
    out = model(ids, attention_mask=mask, token_type_ids=types, output_attentions=True)
    assert np.isfinite(out.last_hidden_state).all()
    probs = out.attentions[0][1]  # (H, T, T): uniform over the keys, as transformers does
    np.testing.assert_allclose(probs, 1.0 / ids.shape[1], atol=1e-6)
    alone = model(
        ids[:1], attention_mask=mask[:1], token_type_ids=None if types is None else types[:1]
    ).last_hidden_state
    np.testing.assert_allclose(out.last_hidden_state[0], alone[0], atol=ATOL_INVARIANT)
