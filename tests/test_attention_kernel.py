"""The fused inference attention kernel (kernels/attention.py) against its numpy reference, and
models with it against the unfused path."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minibert
import minibert.kernels.attention as attention_kernel
from conftest import ATOL_HF, MODEL_CASES, case_dir, load_reference, model_inputs
from minibert import functional as F
from minibert.kernels import use_fast_kernels
from minibert.kernels.attention import _attention_context_reference, attention_context

NEG = np.finfo(np.float32).min  # padding_mask_bias's constant
# Mask biases a caller may pass: real key, the old BERT constant, a large one, padding.
BIASES = (0.0, -1e4, -1e9, NEG)

# float32 tolerance of kernel against reference: both compute the same float32 scores when
# q . k is exact (small integers), so only the exp (fast exp vs numpy's, 3e-8 relative), the
# sums' order and probs @ v's order differ, a few float32 ulps of max |v|.
ATOL_EXACT_SCORES = 2e-6
# With arbitrary floats the dot products round differently too (BLAS with fused
# multiply-adds against four products per step): about D ulps of |q| |k| in each score.
ATOL_FLOAT = 1e-5


@st.composite
def attention_inputs(draw, integer_qk: bool):
    """q, k, v (B, T, C), a mask bias (B, T) and a scale; q, k small integers when asked."""
    B, T, H = draw(st.integers(1, 3)), draw(st.integers(1, 20)), draw(st.integers(1, 3))
    D = draw(st.sampled_from([1, 2, 3, 4, 5, 7, 8, 9, 16, 33]))
    shape = (B, T, H * D)
    if integer_qk:  # exact dot products in float32, whatever the summation order
        qk = st.integers(-8, 8).map(float)
        q = draw(hnp.arrays(np.float32, shape, elements=qk))
        k = draw(hnp.arrays(np.float32, shape, elements=qk))
        scale = draw(st.sampled_from([D**-0.5, 1e-3, 3.0, 100.0, 1e4]))  # logits up to 2e7
    else:
        real = st.floats(-2, 2, width=32)
        q = draw(hnp.arrays(np.float32, shape, elements=real))
        k = draw(hnp.arrays(np.float32, shape, elements=real))
        scale = D**-0.5
    v = draw(hnp.arrays(np.float32, shape, elements=st.floats(-4, 4, width=32)))
    if not integer_qk or draw(st.booleans()):  # a 0/1 mask as models build it, rows may be all 0
        mask = draw(hnp.arrays(np.int64, (B, T), elements=st.integers(0, 1)))
        bias = F.padding_mask_bias(mask, np.float32)
    else:
        # any mix of additive biases, extremes included. Only with exact scores: -1e9 + score
        # rounds to a multiple of 64, so one ulp of difference in a score could move it by 64
        bias = draw(hnp.arrays(np.float32, (B, T), elements=st.sampled_from(BIASES)))
    return q, k, v, bias, scale, H


@given(attention_inputs(integer_qk=True))
def test_kernel_equals_reference_exact_scores(inputs):
    q, k, v, bias, scale, H = inputs
    got = attention_context(q, k, v, bias, scale, H)
    expected = _attention_context_reference(q, k, v, bias, scale, H)
    assert got.dtype == np.float32
    assert got.shape == q.shape
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, expected, atol=ATOL_EXACT_SCORES, rtol=1e-6)


@given(attention_inputs(integer_qk=False))
def test_kernel_equals_reference_floats(inputs):
    q, k, v, bias, scale, H = inputs
    got = attention_context(q, k, v, bias, scale, H)
    expected = _attention_context_reference(q, k, v, bias, scale, H)
    np.testing.assert_allclose(got, expected, atol=ATOL_FLOAT, rtol=1e-5)


@pytest.mark.parametrize("path", ["avx512", "avx2"])
@pytest.mark.parametrize(
    ("B", "T", "H", "D"), [(2, 7, 3, 64), (1, 50, 2, 32), (3, 100, 1, 16), (1, 9, 4, 24)]
)
def test_each_tile_path(path, B, T, H, D, monkeypatch):
    """Both tile widths (kernels/float32_tile.py) run on any x86 CPU; on one without AVX-512,
    LLVM splits the 512-bit tiles into halves."""
    monkeypatch.setattr(attention_kernel, "float32_path", lambda: path)
    rng = np.random.default_rng(T)
    q, k, v = (rng.normal(size=(B, T, H * D)).astype(np.float32) for _ in range(3))
    mask = (rng.random((B, T)) > 0.3).astype(np.int64)
    bias = F.padding_mask_bias(mask, np.float32)
    got = attention_context(q, k, v, bias, D**-0.5, H)
    expected = _attention_context_reference(q, k, v, bias, D**-0.5, H)
    np.testing.assert_allclose(got, expected, atol=ATOL_FLOAT, rtol=1e-5)


def test_fully_padded_row_attends_uniformly():
    """As transformers: every score is finfo.min, so the weights are 1/T and ctx is v's mean."""
    rng = np.random.default_rng(0)
    q, k, v = (rng.normal(size=(2, 5, 6)).astype(np.float32) for _ in range(3))
    mask = np.array([[1, 1, 0, 1, 0], [0, 0, 0, 0, 0]])
    ctx = attention_context(q, k, v, F.padding_mask_bias(mask, np.float32), 0.5, 2)
    np.testing.assert_allclose(ctx[1], np.broadcast_to(v[1].mean(0), (5, 6)), atol=1e-6)


def test_padded_keys_do_not_matter():
    """Editing the keys and values at padded positions changes nothing, bit for bit."""
    rng = np.random.default_rng(1)
    q, k, v = (rng.normal(size=(2, 9, 8)).astype(np.float32) for _ in range(3))
    mask = np.ones((2, 9), np.int64)
    mask[0, 6:] = 0
    mask[1, ::2] = 0
    bias = F.padding_mask_bias(mask, np.float32)
    before = attention_context(q, k, v, bias, 0.5, 2)
    k2, v2 = k.copy(), v.copy()
    k2[mask == 0] = 1e3
    v2[mask == 0] = -1e3
    np.testing.assert_array_equal(attention_context(q, k2, v2, bias, 0.5, 2), before)


def test_float64_takes_the_reference():
    rng = np.random.default_rng(2)
    q, k, v = (rng.normal(size=(2, 4, 6)) for _ in range(3))
    bias = np.zeros((2, 4))
    got = attention_context(q, k, v, bias, 0.5, 3)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, _attention_context_reference(q, k, v, bias, 0.5, 3))


def test_reference_fallback_when_fast_kernels_are_off():
    rng = np.random.default_rng(3)
    q, k, v = (rng.normal(size=(2, 7, 12)).astype(np.float32) for _ in range(3))
    bias = F.padding_mask_bias(np.array([[1] * 7, [1] * 3 + [0] * 4]), np.float32)
    previous = use_fast_kernels(False)
    try:
        slow = attention_context(q, k, v, bias, 0.5, 3)
        assert not attention_kernel.attention_context_runs(q)
    finally:
        use_fast_kernels(previous)
    np.testing.assert_array_equal(slow, _attention_context_reference(q, k, v, bias, 0.5, 3))
    np.testing.assert_allclose(attention_context(q, k, v, bias, 0.5, 3), slow, atol=1e-6)


def padded_inputs(ref):
    """The fixture's inputs with one more row, all padding."""
    inputs = {k: v for k, v in model_inputs(ref).items() if v is not None}
    return {k: np.concatenate([v, np.zeros_like(v[:1])]) for k, v in inputs.items()}


@pytest.mark.parametrize("case", MODEL_CASES)
def test_models_match_transformers_through_the_kernel(case):
    """test_models.py asks for attentions, which takes the unfused path; here the fused one."""
    ref = load_reference(case)
    model = minibert.load(case_dir(case))
    out = model(**model_inputs(ref), output_hidden_states=True)
    for i, hidden in enumerate(out.hidden_states):
        key = f"hidden_states_{i}"
        if key in ref:
            np.testing.assert_allclose(hidden, ref[key], atol=ATOL_HF, rtol=0, err_msg=key)


@pytest.mark.parametrize("case", ["bert-base", "albert-mlm", "distilbert-seqcls", "roberta-base"])
def test_model_with_kernels_on_and_off(case):
    ref = load_reference(case)
    model = minibert.load(case_dir(case))
    inputs = padded_inputs(ref)
    fused = model(**inputs, output_hidden_states=True)
    unfused = model(**inputs, output_hidden_states=True, output_attentions=True)
    assert fused.attentions is None
    assert len(unfused.attentions) > 0
    previous = use_fast_kernels(False)
    try:
        slow = model(**inputs, output_hidden_states=True)
    finally:
        use_fast_kernels(previous)
    for a, b, c in zip(fused.hidden_states, unfused.hidden_states, slow.hidden_states, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
        np.testing.assert_allclose(a, c, atol=1e-5)


def test_eval_uses_the_kernel_only_without_attentions(monkeypatch):
    calls = []

    def counting(*args):
        calls.append(args[0].shape)
        return attention_context(*args)

    monkeypatch.setattr(minibert.nn, "attention_context", counting)
    ref = load_reference("bert-base")
    model = minibert.load(case_dir("bert-base"))
    model(**model_inputs(ref), output_attentions=True)
    model.train(dropout=False)
    model(**model_inputs(ref))
    assert calls == []  # attentions asked for, or training: the unfused path
    model.eval()
    model(**model_inputs(ref))
    assert len(calls) == model.config.num_hidden_layers


def test_the_kernel_runs_for_float32_with_fast_kernels():
    x = np.zeros((2, 64, 24), np.float32)
    runs = attention_kernel.attention_context_runs
    assert runs(x)
    assert not runs(x.astype(np.float64))  # gradient checks: the reference
    previous = use_fast_kernels(False)
    try:
        assert not runs(x)
    finally:
        use_fast_kernels(previous)
