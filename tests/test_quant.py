"""int8 quantisation: the scheme's arithmetic, the activation kernel against its reference,
quantized models of every family and head against their float32 originals, save/load round
trips, the per-model kernel switch, and fake quantisation for quantization-aware training."""

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from safetensors import safe_open

import minibert
from conftest import MODEL_CASES, case_dir, load_reference, model_inputs, needs_minilm
from minibert import functional as F
from minibert.errors import InputError
from minibert.functional.quantize import dequantize, fake_quantize, quantize_symmetric
from minibert.kernels import cpu, use_fast_kernels
from minibert.kernels.int8_activations import _quantize_rows_reference, quantize_rows
from minibert.kernels.int8_layout import pack_weight
from minibert.kernels.int8_matmul import int8_linear_rows
from minibert.nn import Linear
from minibert.quant import QuantEmbedding, QuantLinear, enable_fake_quant, is_quantized

CASES = [c for c in MODEL_CASES if not c.startswith("bert-bin")]


# --- the scheme ---------------------------------------------------------------------------
@given(
    hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=2, max_dims=2, max_side=20),
        elements=st.floats(-1e4, 1e4, width=32),
    )
)
def test_symmetric_rounding_error_is_at_most_half_a_step(x):
    q, scale = quantize_symmetric(x)
    assert q.dtype == np.int8
    assert scale.shape == (x.shape[0],)
    assert np.all(np.abs(q.astype(int)) <= 127)  # -128 is never used
    err = np.abs(dequantize(q, scale) - x)
    assert np.all(err <= scale[:, None] * 0.5 * (1 + 1e-6) + 1e-30)
    rows_with_values = np.abs(x).max(axis=1) / 127 >= np.finfo(np.float32).tiny
    # the largest entry of each row lands on +-127 exactly
    assert np.all(np.abs(q[rows_with_values]).max(axis=1) == 127)


def test_all_zero_rows_get_scale_one():
    q, scale = quantize_symmetric(np.zeros((2, 5), np.float32))
    assert (q == 0).all()
    np.testing.assert_array_equal(scale, [1.0, 1.0])


@pytest.mark.parametrize("layout_path", ["avx2", "amx"])  # the int16 and the u8 layouts
@given(
    m=st.integers(1, 13),
    k=st.integers(1, 70),
    seed=st.integers(0, 2**32 - 1),
    magnitude=st.sampled_from([1e-40, 1e-36, 1e-30, 1e-3, 1.0, 1e4, 1e30]),
)
def test_quantize_rows_kernel_equals_reference(layout_path, m, k, seed, magnitude):
    """Quantising is numpy-layout work on any CPU: both layouts are checked everywhere."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((m, k)) * magnitude).astype(np.float32)
    x[rng.random((m, k)) < 0.1] = 0.0
    if m > 1:
        x[1] = 0.0  # an all-zero row
    a, scale = quantize_rows(x, layout_path)
    ref, ref_scale = _quantize_rows_reference(x, layout_path)
    np.testing.assert_array_equal(a, ref)
    np.testing.assert_array_equal(scale, ref_scale)
    q, s = quantize_symmetric(x)  # the scheme, as quant.py states it
    shift = 0 if a.dtype == np.int16 else 128  # the u8 layout holds q + 128
    np.testing.assert_array_equal(a[:m, :k].astype(np.int16) - shift, q)
    np.testing.assert_array_equal(scale, s)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_quantize_rows_refuses_non_finite(bad):
    x = np.ones((3, 4), np.float32)
    x[1, 2] = bad
    with pytest.raises(ValueError, match="NaN or infinity"):
        quantize_rows(x)


@pytest.mark.parametrize("gelu", [False, True])
@pytest.mark.parametrize("with_bias", [False, True])
def test_int8_linear_rows_fast_equals_reference(gelu, with_bias):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((11, 37)).astype(np.float32)
    w_q, w_scale = quantize_symmetric(rng.standard_normal((21, 37)).astype(np.float32))
    bias = rng.standard_normal(21).astype(np.float32) if with_bias else None
    packed = pack_weight(w_q, cpu.int8_path())
    fast = int8_linear_rows(x, packed, w_scale, bias, gelu)
    previous = use_fast_kernels(False)
    try:
        slow = int8_linear_rows(x, packed, w_scale, bias, gelu)
    finally:
        use_fast_kernels(previous)
    np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-6)  # GELU: A&S erf vs exact
    # and both are the float computation on the rounded operands
    a_q, a_scale = quantize_symmetric(x)
    y = dequantize(a_q, a_scale).astype(np.float64) @ dequantize(w_q, w_scale).T
    y = y + (bias if with_bias else 0)
    if gelu:
        y, _ = F.activation_forward("gelu", y)
    np.testing.assert_allclose(fast, y, rtol=1e-5, atol=1e-5)


def test_int8_linear_rows_checks_the_width():
    packed = pack_weight(np.zeros((3, 4), np.int8), "avx2")
    with pytest.raises(ValueError, match="expects 4"):
        int8_linear_rows(np.zeros((2, 5), np.float32), packed, np.ones(3, np.float32))


# --- quantized models ---------------------------------------------------------------------
def _relative_gap(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("case", CASES)
def test_quantized_model_tracks_the_float_model(case):
    model = minibert.load(case_dir(case))
    before = {k: v.copy() for k, v in model.named_parameters()}
    qmodel = minibert.quantize(model)
    assert is_quantized(qmodel)
    assert not is_quantized(model)
    for name, array in model.named_parameters():  # the float model is untouched
        np.testing.assert_array_equal(array, before[name])
    inputs = model_inputs(load_reference(case))
    out, qout = model(**inputs), qmodel(**inputs)
    assert type(qout) is type(out)
    for field in ("last_hidden_state", "logits", "start_logits"):
        if getattr(out, field, None) is not None:
            ours, ref = getattr(qout, field), getattr(out, field)
            assert ours.dtype == np.float32
            assert _relative_gap(ours, ref) < 0.06, field  # a few 8-bit steps, not garbage
    linears = [m for m in qmodel.modules() if type(m) is Linear]
    assert linears == [], "every Linear layer is int8"
    assert isinstance(qmodel.embeddings.word, QuantEmbedding)


def test_quantize_without_embeddings_keeps_the_table_float():
    model = minibert.load(case_dir("bert-mlm"))
    qmodel = minibert.quantize(model, embeddings=False)
    assert qmodel.embeddings.word.params["weight"].dtype == np.float32
    assert type(qmodel.mlm.decoder) is Linear  # tied to the float table, stays float
    assert qmodel.mlm.decoder.params["weight"] is qmodel.embeddings.word.params["weight"]


def test_tied_decoder_shares_the_int8_table_and_its_scales():
    qmodel = minibert.quantize(minibert.load(case_dir("bert-mlm")))
    assert isinstance(qmodel.mlm.decoder, QuantLinear)
    for key in ("weight", "weight_scale"):
        assert qmodel.mlm.decoder.params[key] is qmodel.embeddings.word.params[key]


@pytest.mark.parametrize("case", ["bert-mlm", "albert-pretraining", "distilbert-seqcls"])
def test_save_and_load_round_trip(case, tmp_path):
    qmodel = minibert.quantize(minibert.load(case_dir(case)))
    qmodel.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["quantization"]["method"] == "minibert-int8"
    assert config["quantization"]["embeddings"] is True
    with safe_open(str(tmp_path / "model.safetensors"), "np") as f:
        names = set(f.keys())
        int8 = [n for n in names if f.get_tensor(n).dtype == np.int8]
    assert int8, "weights are stored as int8"
    for name in int8:
        assert name + "_scale" in names, f"{name} is stored without its scales"
    loaded = minibert.load(tmp_path)
    assert is_quantized(loaded)
    inputs = model_inputs(load_reference(case))
    a, b = qmodel(**inputs), loaded(**inputs)
    for field in ("last_hidden_state", "logits", "prediction_logits"):
        if getattr(a, field, None) is not None:
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def test_quantized_file_is_about_a_quarter(tmp_path):
    model = minibert.load(case_dir("bert-base"))
    model.save_pretrained(tmp_path / "fp32")
    minibert.quantize(model).save_pretrained(tmp_path / "int8")
    fp32 = (tmp_path / "fp32" / "model.safetensors").stat().st_size
    int8 = (tmp_path / "int8" / "model.safetensors").stat().st_size
    # the tiny fixture keeps LayerNorms and position embeddings float: still well under half
    assert int8 < 0.45 * fp32, (int8, fp32)


def test_quantized_checkpoint_refuses_float64_and_bad_tensors(tmp_path):
    minibert.quantize(minibert.load(case_dir("bert-base"))).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="int8 model"):
        minibert.load(tmp_path, dtype="float64")
    config = json.loads((tmp_path / "config.json").read_text())
    config["quantization"]["method"] = "someone-else"
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(minibert.ConfigError, match="quantization"):
        minibert.load(tmp_path)


def test_quantized_model_refuses_training_and_requantizing():
    model = minibert.load(case_dir("bert-seqcls"))
    qmodel = minibert.quantize(model)
    with pytest.raises(InputError, match="already quantized"):
        minibert.quantize(qmodel)
    ref = load_reference("bert-seqcls")
    qmodel.train()
    with pytest.raises(RuntimeError, match="inference only"):
        qmodel(**model_inputs(ref))
    with pytest.raises(InputError, match="float32"):
        minibert.quantize(minibert.load(case_dir("bert-base"), dtype="float64"))


@needs_minilm
def test_minilm_sentence_embeddings_keep_cosine_099():
    from minibert.pretrained import minilm_path

    sentences = [
        "A man is playing a guitar on the street.",
        "The stock market fell sharply after the announcement.",
        "How do I reset my password?",
        "Photosynthesis turns light into chemical energy.",
        "She couldn't believe the ending of the film!",
        "def main(): return 0",
        "The weather in Paris is mild in spring.",
        "Quantum computers use qubits instead of bits.",
        "I'd like two coffees and a croissant, please.",
        "The treaty was signed in 1648, ending the war.",
        "Dogs are loyal companions.",
        "Résumé: 3 ans d'expérience en Python.",
    ]
    fp32 = minibert.SentenceEncoder(minilm_path())
    vectors = fp32.encode(sentences)
    qencoder = minibert.SentenceEncoder(minilm_path())
    qencoder.model = minibert.quantize(qencoder.model)
    qvectors = qencoder.encode(sentences)
    cosines = np.sum(vectors * qvectors, axis=1)  # both are L2-normalised
    assert cosines.mean() >= 0.99, cosines
    assert cosines.min() >= 0.98, cosines


# --- the per-model kernel switch ----------------------------------------------------------
def test_model_kernels_switch_reference_and_fast_agree():
    model = minibert.load(case_dir("bert-base"))
    inputs = model_inputs(load_reference("bert-base"))
    fast = model(**inputs).last_hidden_state
    model.kernels = "reference"
    slow = model(**inputs).last_hidden_state
    np.testing.assert_allclose(fast, slow, atol=1e-5)
    model.kernels = "numpy"
    with pytest.raises(ValueError, match="kernels must be one of"):
        model(**inputs)


def test_model_kernels_switch_is_per_model(monkeypatch):
    """A reference model runs no Numba kernel; a fast one beside it still does."""
    from minibert.kernels import jit

    compiled = []
    original = jit.jit_kernel

    def spy(py_func, parallel=False):
        fn = original(py_func, parallel)
        compiled.append(fn is not None)
        return fn

    monkeypatch.setattr(jit, "jit_kernel", spy)
    model = minibert.load(case_dir("bert-base"))
    inputs = model_inputs(load_reference("bert-base"))
    model.kernels = "reference"
    model(**inputs)
    assert compiled, "the kernels' entry points were called"
    assert not any(compiled), "a reference model ran a Numba kernel"
    compiled.clear()
    model.kernels = "fast"
    model(**inputs)
    assert any(compiled)


# --- quantization-aware training ----------------------------------------------------------
def test_fake_quant_forward_is_the_int8_arithmetic():
    rng = np.random.default_rng(7)
    lin = Linear(24, 10)
    lin.params["weight"] = rng.standard_normal((10, 24)).astype(np.float32)
    lin.params["bias"] = rng.standard_normal(10).astype(np.float32)
    x = rng.standard_normal((2, 3, 24)).astype(np.float32)
    q = QuantLinear.from_linear(lin)
    lin.fake_quant = True
    np.testing.assert_allclose(lin.forward(x), q.forward(x), rtol=1e-5, atol=1e-5)


def test_fake_quant_backward_is_straight_through():
    rng = np.random.default_rng(8)
    lin = Linear(16, 6)
    lin.params["weight"] = rng.standard_normal((6, 16)).astype(np.float32)
    lin.fake_quant = True
    lin.train()
    lin.zero_grad()
    x = rng.standard_normal((5, 16)).astype(np.float32)
    dy = rng.standard_normal((5, 6)).astype(np.float32)
    lin.forward(x)
    dx = lin.backward(dy)
    xq, wq = fake_quantize(x), fake_quantize(lin.params["weight"])
    np.testing.assert_allclose(dx, dy @ wq, rtol=1e-6)  # rounding counts as the identity
    np.testing.assert_allclose(lin.grads["weight"], dy.T @ xq, rtol=1e-5)


def test_enable_fake_quant_marks_what_quantize_would_make_int8():
    model = minibert.load(case_dir("bert-mlm"))
    enable_fake_quant(model)
    marked = [m for m in model.modules() if getattr(m, "fake_quant", False)]
    assert len(marked) == len([m for m in model.modules() if type(m) is Linear]) - 1
    assert not model.mlm.decoder.fake_quant  # tied: quantized with the embedding table
    enable_fake_quant(model, False)
    assert not any(getattr(m, "fake_quant", False) for m in model.modules())
