"""Token elimination (PoWER-BERT) on the tiny classifiers of all four families.

The expected values come from a plain numpy encoder written here, apart from the library: it
starts from transformers' embedding output (hidden_states_0 of the stored fixtures), runs each
layer, scores the positions by the attention they receive, keeps the top ones and goes on.
With nothing dropped it must reproduce transformers' stored hidden states and logits, which
checks the reference itself; with vectors dropped, the library must equal it.
"""

import math

import numpy as np
import pytest

import minibert
from conftest import ATOL_HF, ATOL_INVARIANT, FIXTURES
from minibert.compression.token_elimination import (
    check_retention,
    eliminate_tokens,
    search_retention,
    significance,
)
from minibert.errors import InputError

CASES = ("bert-seqcls", "albert-seqcls", "distilbert-seqcls", "roberta-seqcls")
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
TOL = 1e-5  # float32 forwards of the same arithmetic, summed in another order

ACTIVATIONS = {
    "relu": lambda x: np.maximum(x, 0),
    "silu": lambda x: x / (1 + np.exp(-x)),
    "gelu": lambda x: 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2))),
    "gelu_new": lambda x: 0.5 * x * (1 + np.tanh(0.7978845608 * (x + 0.044715 * x**3))),
}


def load_case(case):
    model = minibert.load(FIXTURES / case)
    with np.load(FIXTURES / case / "reference.npz") as z:
        ref = {k: z[k] for k in z.files}
    return model, ref, {k: ref[k] for k in INPUTS if k in ref}


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def reference_elimination(model, x, mask, retention):
    """The readable PoWER-BERT forward: layer by layer from the embedding output x (B, T, C),
    keeping retention[j] positions after step j's attention. Returns the kept positions per
    step, the last hidden state and the logits."""
    config = model.config
    p = model.get_parameter
    act = ACTIVATIONS[config.hidden_act]
    B, T, C = x.shape
    positions = np.tile(np.arange(T), (B, 1))
    kept = []
    for step, index in enumerate(model.encoder.schedule):
        name = f"encoder.layers.{index}."

        def linear(v, path, name=name):
            return v @ p(name + path + ".weight").T + p(name + path + ".bias")

        H, t = config.num_attention_heads, x.shape[1]
        D = C // H
        q, k, v = (linear(x, f"attn.{n}").reshape(B, t, H, D).transpose(0, 2, 1, 3) for n in "qkv")
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(D)  # (B, H, t, t)
        # transformers' mask: the float32 minimum added to padded keys (a fully padded row
        # then attends uniformly instead of dividing 0 by 0)
        scores = scores + (1 - mask[:, None, None, :]) * np.finfo(np.float32).min
        scores = scores - scores.max(-1, keepdims=True)
        probs = np.exp(scores) / np.exp(scores).sum(-1, keepdims=True)
        ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(B, t, C)
        eps = config.layer_norm_eps
        h = layer_norm(x + linear(ctx, "attn.o"), p(name + "ln1.weight"), p(name + "ln1.bias"), eps)
        if retention[step] < t:
            received = (probs * mask[:, None, :, None]).sum(axis=(1, 2))  # over heads, queries
            received[mask == 0] = -np.inf
            received[:, 0] = np.inf  # [CLS] stays
            rows = []
            for b in range(B):  # the retention[step] best, earlier first on ties, in order
                order = sorted(range(t), key=lambda i, b=b: (-received[b, i], i))
                rows.append(sorted(order[: retention[step]]))
            chosen = np.array(rows)
            h = np.take_along_axis(h, chosen[:, :, None], axis=1)
            mask = np.take_along_axis(mask, chosen, axis=1)
            positions = np.take_along_axis(positions, chosen, axis=1)
        f = linear(act(linear(h, "ffn.up")), "ffn.down")
        x = layer_norm(h + f, p(name + "ln2.weight"), p(name + "ln2.bias"), eps)
        kept.append(positions)
    first = x[:, 0]
    if hasattr(model, "pooler"):  # BERT, ALBERT: tanh pooler, then dropout and out
        first = np.tanh(first @ p("pooler.dense.weight").T + p("pooler.dense.bias"))
    if hasattr(model.classifier, "dense"):  # RoBERTa: dense + tanh; DistilBERT: + ReLU
        head_act = np.tanh if config.model_type == "roberta" else ACTIVATIONS["relu"]
        first = head_act(first @ p("classifier.dense.weight").T + p("classifier.dense.bias"))
    logits = first @ p("classifier.out.weight").T + p("classifier.out.bias")
    return kept, x, logits


def dropping_retention(model, T):
    """Each step keeps fewer: about 60% of T, then 30%, ... (at least 1)."""
    steps = len(model.encoder.schedule)
    return tuple(max(1, math.ceil(T * 0.6 / (step + 1))) for step in range(steps))


@pytest.mark.parametrize("case", CASES)
def test_reference_reproduces_transformers_with_nothing_dropped(case):
    model, ref, inputs = load_case(case)
    T = ref["input_ids"].shape[1]
    steps = len(model.encoder.schedule)
    _, last, logits = reference_elimination(
        model, ref["hidden_states_0"], ref["attention_mask"], (T,) * steps
    )
    np.testing.assert_allclose(last, ref[f"hidden_states_{steps}"], atol=ATOL_HF, rtol=0)
    np.testing.assert_allclose(logits, ref["logits"], atol=ATOL_HF, rtol=0)


@pytest.mark.parametrize("case", CASES)
def test_full_retention_is_the_model_bit_for_bit(case):
    model, ref, inputs = load_case(case)
    T = ref["input_ids"].shape[1]
    steps = len(model.encoder.schedule)
    out = model(**inputs, output_hidden_states=True)
    eliminated = eliminate_tokens(model, [T] * steps, **inputs, output_hidden_states=True)
    np.testing.assert_array_equal(eliminated.output.logits, out.logits)
    for ours, theirs in zip(eliminated.output.hidden_states, out.hidden_states, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    for kept in eliminated.kept:
        np.testing.assert_array_equal(kept, np.tile(np.arange(T), (len(kept), 1)))


@pytest.mark.parametrize("case", CASES)
def test_elimination_equals_the_readable_reference(case):
    model, ref, inputs = load_case(case)
    T = ref["input_ids"].shape[1]
    retention = dropping_retention(model, T)
    assert retention[0] < T
    eliminated = eliminate_tokens(model, retention, **inputs, output_hidden_states=True)
    embedded = eliminated.output.hidden_states[0]
    np.testing.assert_allclose(embedded, ref["hidden_states_0"], atol=ATOL_HF, rtol=0)
    kept, last, logits = reference_elimination(
        model, ref["hidden_states_0"], ref["attention_mask"], retention
    )
    for ours, theirs in zip(eliminated.kept, kept, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    # padded rows are kept only where a sequence has fewer real tokens than the count, and
    # nothing reads them: compare the real ones
    real = np.take_along_axis(ref["attention_mask"], kept[-1], axis=1) > 0
    np.testing.assert_allclose(eliminated.output.hidden_states[-1][real], last[real], atol=TOL)
    np.testing.assert_allclose(eliminated.output.logits, logits, atol=TOL, rtol=0)


@pytest.mark.parametrize("case", CASES)
def test_first_choice_follows_transformers_attention(case):
    """The first step's kept positions are the top ones of transformers' own attention maps."""
    model, ref, inputs = load_case(case)
    T = ref["input_ids"].shape[1]
    retention = dropping_retention(model, T)
    eliminated = eliminate_tokens(model, retention, **inputs)
    scores = significance(ref["attentions_0"], ref["attention_mask"])
    scores[:, 0] = np.inf
    expected = np.sort(np.argsort(-scores, axis=1, kind="stable")[:, : retention[0]], axis=1)
    np.testing.assert_array_equal(eliminated.kept[0], expected)


@pytest.mark.parametrize("case", CASES)
def test_shapes_shrink_and_cls_stays_first(case):
    model, ref, inputs = load_case(case)
    T = ref["input_ids"].shape[1]
    retention = dropping_retention(model, T)
    eliminated = eliminate_tokens(model, retention, **inputs, output_hidden_states=True)
    B, C = ref["input_ids"].shape[0], model.config.hidden_size
    shapes = [h.shape for h in eliminated.output.hidden_states]
    assert shapes == [(B, T, C)] + [(B, k, C) for k in retention]
    assert eliminated.output.last_hidden_state.shape == (B, retention[-1], C)
    for kept, k in zip(eliminated.kept, retention, strict=True):
        assert kept.shape == (B, k)
        assert (kept[:, 0] == 0).all()
        assert (np.diff(kept, axis=1) > 0).all()  # in sequence order, no repeats


def test_cls_is_kept_even_when_it_receives_the_least():
    model, ref, inputs = load_case("bert-seqcls")
    probs = np.full((1, 2, 4, 4), 0.25, np.float32)
    probs[..., 0] = 0.0  # nobody attends to [CLS]
    probs[..., 1] = 0.5
    mask = np.ones((1, 4), np.int64)
    assert np.argmin(significance(probs, mask)[0]) == 0
    eliminated = eliminate_tokens(model, [1, 1], **inputs)
    np.testing.assert_array_equal(eliminated.kept[-1], np.zeros((3, 1), np.int64))


def test_significance_sums_heads_and_real_queries_and_drops_padding():
    rng = np.random.default_rng(0)
    probs = rng.random((2, 3, 5, 5)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    scores = significance(probs, mask)
    np.testing.assert_allclose(scores[0, :3], probs[0, :, :3, :3].sum(axis=(0, 1)), rtol=1e-6)
    np.testing.assert_allclose(scores[1], probs[1].sum(axis=(0, 1)), rtol=1e-6)
    assert np.isneginf(scores[0, 3:]).all()


def test_dropping_only_padding_changes_no_real_output():
    """A row whose real tokens all fit in every count loses only padding, which nothing reads."""
    model, ref, inputs = load_case("bert-seqcls")
    lengths = ref["attention_mask"].sum(1)  # 7, 3, 5
    eliminated = eliminate_tokens(model, [5, 5], **inputs)
    full = model(**inputs)
    fits = lengths <= 5
    assert fits.tolist() == [False, True, True]
    np.testing.assert_allclose(
        eliminated.output.logits[fits], full.logits[fits], atol=ATOL_INVARIANT, rtol=0
    )
    assert not np.allclose(eliminated.output.logits[0], full.logits[0], atol=ATOL_INVARIANT)


def test_base_model_gives_pooled_vectors():
    base = minibert.load(FIXTURES / "bert-base")
    with np.load(FIXTURES / "bert-base" / "reference.npz") as z:
        ids, mask = z["input_ids"], z["attention_mask"]
    T = ids.shape[1]
    full = eliminate_tokens(base, [T, T], ids, mask)
    np.testing.assert_array_equal(full.output.pooler_output, base(ids, mask).pooler_output)
    assert eliminate_tokens(base, [3, 2], ids, mask).output.last_hidden_state.shape[1] == 2


@pytest.mark.parametrize(
    ("retention", "words"),
    [
        ([5, 6], "must not increase"),
        ([8, 3], "more than the 7 tokens"),
        ([3, 0], "at least 1"),
        ([3], "needs one count for each"),
        ([3, 2, 1], "has 3 counts"),
        ([3.0, 2], "integer count"),
        (4, "list of 2 counts"),
        ("42", "list of 2 counts"),
    ],
)
def test_bad_retention_is_a_named_input_error(retention, words):
    model, ref, inputs = load_case("bert-seqcls")
    with pytest.raises(InputError, match=words):
        eliminate_tokens(model, retention, **inputs)


def test_models_that_read_every_position_are_refused():
    model = minibert.load(FIXTURES / "bert-mlm")
    ids = np.array([[2, 5, 6, 3]])
    with pytest.raises(InputError, match="reads \\[CLS\\] only"):
        eliminate_tokens(model, [4, 4], ids)


def test_training_mode_is_refused():
    model, ref, inputs = load_case("bert-seqcls")
    model.train()
    with pytest.raises(InputError, match="model.eval"):
        eliminate_tokens(model, [7, 7], **inputs)


def test_check_retention_returns_plain_ints():
    assert check_retention(np.array([6, 4, 4]), 3, 8) == (6, 4, 4)


def test_search_takes_the_smallest_counts_within_tolerance():
    """A made-up score: full marks while step 0 keeps >= 32 and step 1 >= 16, then falling."""
    tried = []

    def score_of(retention):
        tried.append(retention)
        return 0.9 - 0.1 * (retention[0] < 32) - 0.05 * (retention[1] < 16)

    counts = [64, 48, 32, 24, 16, 8, 4]
    best, score = search_retention(score_of, 3, 64, tolerance=0.01, counts=counts)
    assert best == (32, 16, 4)
    assert score == pytest.approx(0.9)
    assert tried[0] == (64, 64, 64)
    assert len(set(tried)) == len(tried)  # no configuration is scored twice
    best, score = search_retention(score_of, 3, 64, tolerance=0.06, counts=counts)
    assert best == (32, 4, 4)
    assert score == pytest.approx(0.85)


def test_search_needs_counts_in_range():
    with pytest.raises(InputError, match="between 1 and 8"):
        search_retention(lambda r: 1.0, 2, 8, 0.01, counts=[0, 9])


@pytest.mark.parametrize("scheme", [{}, {"bits": 4, "group_size": 8}])
def test_quantized_models_eliminate_too(scheme):
    """int8 and group-wise int4 layers run the same steps: full retention is the quantized
    model's own output, and a shorter one drops vectors from it."""
    model, ref, inputs = load_case("bert-seqcls")
    quantized = minibert.quantize(model, **scheme)
    full = eliminate_tokens(quantized, [7, 7], **inputs)
    np.testing.assert_array_equal(full.output.logits, quantized(**inputs).logits)
    short = eliminate_tokens(quantized, [4, 2], **inputs, output_hidden_states=True)
    assert short.output.hidden_states[-1].shape == (3, 2, model.config.hidden_size)
