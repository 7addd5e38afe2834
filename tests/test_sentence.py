"""Sentence embeddings and the real all-MiniLM-L6-v2 against transformers' stored outputs."""

import json

import numpy as np
import pytest

import minibert
from conftest import ATOL_HF, FIXTURES, needs_minilm
from minibert.errors import InputError
from minibert.functional.pooling import l2_normalize, pool
from minibert.sentence import FolderOverrideWarning

pytestmark = pytest.mark.minilm

with np.load(FIXTURES / "minilm" / "reference.npz") as _z:
    REF = {k: _z[k] for k in _z.files}
SENTENCES = json.loads((FIXTURES / "minilm" / "sentences.json").read_text())


@pytest.fixture(scope="module")
def encoder():
    return minibert.SentenceEncoder()  # the installed MiniLM


@needs_minilm
def test_tokenizer_ids_match_transformers(encoder):
    enc = encoder.tokenizer(SENTENCES, padding=True, truncation=True, max_length=256)
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        np.testing.assert_array_equal(enc[key], REF[key])


@needs_minilm
def test_model_outputs_match_transformers(encoder):
    out = encoder.model(
        REF["input_ids"], attention_mask=REF["attention_mask"], token_type_ids=REF["token_type_ids"]
    )
    np.testing.assert_allclose(out.pooler_output, REF["pooler_output"], atol=ATOL_HF)
    n = len(REF["last_hidden_state"])
    np.testing.assert_allclose(out.last_hidden_state[:n], REF["last_hidden_state"], atol=ATOL_HF)


@needs_minilm
@pytest.mark.parametrize("batch_size", [1, 3, 32])
def test_sentence_embeddings_match_sentence_transformers(encoder, batch_size):
    vectors = encoder.encode(SENTENCES, batch_size=batch_size)
    assert vectors.shape == (len(SENTENCES), 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, REF["sentence_embeddings"], atol=ATOL_HF)


@needs_minilm
def test_cls_and_max_pooling(encoder):
    n = len(REF["last_hidden_state"])
    hidden, mask = REF["last_hidden_state"], REF["attention_mask"][:n]
    for pooling, expected in [
        ("cls", hidden[:, 0]),
        ("max", np.stack([h[m == 1].max(0) for h, m in zip(hidden, mask, strict=True)])),
    ]:
        # MiniLM's modules.json says mean pooling: another one is honoured, with a warning
        with pytest.warns(FolderOverrideWarning, match="overrides the folder's Pooling"):
            enc = minibert.SentenceEncoder(encoder.path, pooling=pooling, normalize=False)
        np.testing.assert_allclose(enc.encode(SENTENCES[:n]), expected, atol=ATOL_HF)


@needs_minilm
def test_similarity_and_errors(encoder):
    sim = encoder.similarity(SENTENCES[:4])
    np.testing.assert_allclose(np.diag(sim), 1.0, atol=1e-5)
    np.testing.assert_allclose(sim, sim.T, atol=1e-6)
    with pytest.raises(InputError, match="at least one text"):
        encoder.encode([])
    with pytest.raises(ValueError, match="batch_size"):
        encoder.encode(["a"], batch_size=0)


def test_pool_and_normalise_by_hand():
    hidden = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    mask = np.array([[1, 1, 0], [0, 0, 0]])
    np.testing.assert_allclose(pool(hidden, mask, "mean"), [[1, 2], [0, 0]])
    np.testing.assert_allclose(pool(hidden, mask, "cls"), [[0, 1], [6, 7]])
    np.testing.assert_allclose(pool(hidden, mask, "max")[0], [2, 3])
    np.testing.assert_allclose(np.linalg.norm(l2_normalize(hidden[0]), axis=1), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="pooling"):
        pool(hidden, mask, "median")
