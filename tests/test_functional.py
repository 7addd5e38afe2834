"""The functional ops against independent math: formulas in float64, properties (hypothesis),
and the Numba kernels against their numpy references."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from conftest import assert_within, sum_atol
from minibert import functional as F
from minibert.kernels import use_fast_kernels
from minibert.kernels.cpu import host_features
from minibert.kernels.fastexp import (
    _float32_from_bits,
    _int32_bits,
    _multiply_add,
    exp_nonpositive,
)
from minibert.kernels.gelu import _gelu_erf_reference, gelu_erf
from minibert.kernels.jit import jit_kernel


def floats(shape, lo=-4.0, hi=4.0, dtype=np.float64):
    return hnp.arrays(dtype, shape, elements=st.floats(lo, hi, width=np.dtype(dtype).itemsize * 8))


shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=9)


def exact_gelu(x):
    return np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.ravel()]).reshape(
        x.shape
    )


# --- activations -------------------------------------------------------------------------
def test_gelu_float64_kernel_is_exact():
    x = np.linspace(-8, 8, 2001)
    np.testing.assert_allclose(gelu_erf(x), exact_gelu(x), rtol=1e-15, atol=1e-15)


def test_gelu_float32_kernel_within_as_bound():
    # A&S 7.1.26 has |erf error| < 1.5e-7, so |gelu error| < 0.5 |x| 1.5e-7 + float32 rounding
    x = np.linspace(-10, 10, 20001).astype(np.float32)
    err = np.abs(gelu_erf(x).astype(np.float64) - exact_gelu(x.astype(np.float64)))
    bound = 0.5 * np.abs(x) * 1.5e-7 + 4 * np.finfo(np.float32).eps * np.maximum(np.abs(x), 1)
    assert (err <= bound).all()


@given(x=floats(shapes, -30, 30, np.float32))
def test_gelu_kernel_equals_reference(x):
    np.testing.assert_allclose(gelu_erf(x), _gelu_erf_reference(x), atol=2e-6, rtol=1e-6)


def test_gelu_reference_path_when_fast_kernels_are_off():
    x = np.linspace(-5, 5, 101).astype(np.float32)
    previous = use_fast_kernels(False)
    try:
        slow = gelu_erf(x)
    finally:
        use_fast_kernels(previous)
    np.testing.assert_array_equal(slow, _gelu_erf_reference(x))


TANH_GELU = lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))  # noqa: E731
FORMULAS = {
    "gelu": exact_gelu,
    "gelu_new": TANH_GELU,
    "gelu_pytorch_tanh": TANH_GELU,
    "gelu_fast": TANH_GELU,
    "quick_gelu": lambda x: x / (1 + np.exp(-1.702 * x)),
    "relu": lambda x: np.maximum(x, 0),
    "silu": lambda x: x / (1 + np.exp(-x)),
}


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_activation_formulas(name):
    x = np.linspace(-6, 6, 241)
    y, _ = F.activation_forward(name, x)
    np.testing.assert_allclose(y, FORMULAS[name](x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_activations_finite_at_extremes(name):
    x = np.array([-1e4, -88.0, 0.0, 88.0, 1e4], np.float32)
    with np.errstate(all="raise"):
        y, _ = F.activation_forward(name, x)
    assert np.isfinite(y).all()
    assert y.dtype == np.float32


def test_gelu_variants_differ_a_little():
    x = np.linspace(-4, 4, 801)
    erf, _ = F.activation_forward("gelu", x)
    tanh, _ = F.activation_forward("gelu_new", x)
    assert 1e-4 < np.abs(erf - tanh).max() < 1e-3  # why the config's name matters


# --- softmax, layernorm, linear -------------------------------------------------------------
@given(x=floats(shapes, -50, 50), shift=st.floats(-100, 100))
def test_softmax_sums_to_one_and_is_shift_invariant(x, shift):
    p, _ = F.softmax_forward(x.copy())
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-12)
    q, _ = F.softmax_forward(x + shift)
    np.testing.assert_allclose(p, q, atol=1e-12)


def test_softmax_huge_logits_do_not_overflow():
    x = np.array([[1e30, 0.0, -1e30], [np.finfo(np.float32).min] * 3], np.float32)
    p, _ = F.softmax_forward(x)
    np.testing.assert_allclose(p, [[1, 0, 0], [1 / 3] * 3], atol=1e-7)


@given(x=floats(shapes, -10, 10))
def test_layernorm_normalises(x):
    C = x.shape[-1]
    y, _ = F.layernorm_forward(x, np.ones(C), np.zeros(C), 1e-12)
    # a constant row has x - mean ~ 1e-15 and rstd = 1e6 (eps 1e-12): rounding shows at 1e-9
    np.testing.assert_allclose(y.mean(-1), 0.0, atol=1e-7)
    spread = x.std(-1)
    var = (y * y).mean(-1)
    np.testing.assert_allclose(var[spread > 1e-3], 1.0, rtol=1e-6)


def test_layernorm_matches_formula():
    rng = np.random.default_rng(0)
    x, w, b = rng.normal(size=(3, 5, 7)), rng.normal(size=7), rng.normal(size=7)
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    y, _ = F.layernorm_forward(x, w, b, 1e-5)
    rstd = 1 / np.sqrt(var + 1e-5)
    # the two means are sums of C terms of size |x|, scaled by rstd and w, then b is added
    terms = (np.abs(x) + np.abs(mu)) * rstd * np.abs(w) + np.abs(b)  # (3, 5, 7)
    assert_within(y, (x - mu) * rstd * w + b, sum_atol(terms, 2 * 7))


def test_linear_matches_einsum():
    rng = np.random.default_rng(1)
    x, w, b = rng.normal(size=(2, 3, 5)), rng.normal(size=(4, 5)), rng.normal(size=4)
    y, _ = F.linear_forward(x, w, b)
    # BLAS and einsum may add the 5 products in different orders: bound by their size
    terms = np.abs(x) @ np.abs(w).T + np.abs(b)  # (2, 3, 4)
    atol = sum_atol(terms, 5 + 1)
    assert_within(y, np.einsum("bti,oi->bto", x, w) + b, atol)
    y0, _ = F.linear_forward(x, w)
    assert_within(y0, y - b, atol)


# --- attention ------------------------------------------------------------------------------
def test_split_and_merge_heads_are_inverse():
    x = np.arange(2 * 3 * 12.0).reshape(2, 3, 12)
    h = F.split_heads(x, 4)
    assert h.shape == (2, 4, 3, 3)
    np.testing.assert_array_equal(h[:, 1], x[..., 3:6])  # head 1 sees columns 3..5
    np.testing.assert_array_equal(F.merge_heads(h), x)


@given(data=st.data())
def test_masked_keys_get_zero_weight_and_do_not_matter(data):
    B, H, T, D = (data.draw(st.integers(1, 4)) for _ in range(4))
    q, k, v = (data.draw(floats((B, H, T, D))) for _ in range(3))
    mask = data.draw(hnp.arrays(np.int64, (B, T), elements=st.integers(0, 1)))
    mask[:, 0] = 1  # at least one visible key per row
    bias = F.padding_mask_bias(mask, np.float64)
    ctx, probs, _ = F.attention_forward(q, k, v, bias)
    np.testing.assert_array_equal(probs * (1 - mask)[:, None, None, :], 0.0)
    k2, v2 = k.copy(), v.copy()
    hidden = mask == 0
    k2[np.broadcast_to(hidden[:, None, :, None], k.shape)] = 123.0
    v2[np.broadcast_to(hidden[:, None, :, None], v.shape)] = -321.0
    ctx2, _, _ = F.attention_forward(q, k2, v2, bias)
    np.testing.assert_allclose(ctx2, ctx, atol=1e-12)


def test_attention_matches_loop():
    rng = np.random.default_rng(2)
    q, k, v = (rng.normal(size=(1, 2, 3, 4)) for _ in range(3))
    ctx, probs, _ = F.attention_forward(q, k, v)
    for h in range(2):
        s = q[0, h] @ k[0, h].T / 2.0  # sqrt(D) = 2
        p = np.exp(s - s.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        # an error d in a score moves its probability by a factor exp(d): relative
        np.testing.assert_allclose(probs[0, h], p, rtol=1e-12)
        # ctx sums T = 3 products that may cancel: bound by their size
        atol = sum_atol(np.abs(p) @ np.abs(v[0, h]), 3)
        assert_within(ctx[0, h], p @ v[0, h], atol)


def test_sinusoidal_table_formula():
    table = F.sinusoidal_table(6, 8, np.float64)
    for pos in range(6):
        for j in range(8):
            angle = pos / 10000 ** (2 * (j // 2) / 8)
            assert table[pos, j] == pytest.approx(
                math.sin(angle) if j % 2 == 0 else math.cos(angle)
            )


@given(x=floats(shapes, -30, 30, np.float32))
def test_gelu_grad_kernels_equal_reference(x):
    from minibert.kernels.gelu import _gelu_grad_reference, gelu_erf_grad

    np.testing.assert_allclose(gelu_erf_grad(x), _gelu_grad_reference(x), atol=1e-6, rtol=1e-6)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(
        gelu_erf_grad(x64), _gelu_grad_reference(x64), rtol=1e-14, atol=1e-15
    )


def _vexp(out, x):
    for i in range(x.size):
        out[i] = exp_nonpositive(x[i])


def test_fast_exp_is_float32_accurate():
    x = np.concatenate([np.linspace(-79.99, 0, 100_001), -(2.0 ** -np.arange(1, 30)), [0.0]])
    x = np.concatenate([x, [-80.0, -1e4, -np.inf, np.nan]]).astype(np.float32)
    out = np.empty_like(x)
    kernel = jit_kernel(_vexp) or _vexp
    kernel(out, x)
    exact = np.exp(x[:-4].astype(np.float64))
    rel = np.abs(out[:-4] - exact) / exact
    assert rel.max() < 1.2e-7  # about one float32 ulp
    assert out[-5] == 1.0  # exp(0)
    np.testing.assert_array_equal(out[-4:], 0.0)  # masked scores weigh exactly nothing


def test_float32_from_bits_intrinsic_equals_numpy_view():
    from minibert.kernels.fastexp import float32_from_bits

    bits = np.array([0, 1, 127 << 23, (127 + 5) << 23, 0x7F7FFFFF, -(2**31), 0x7FC00000], np.int32)
    fn = jit_kernel(_bits_kernel)
    out = np.empty(bits.size, np.float32)
    fn(out, bits)
    np.testing.assert_array_equal(out.view(np.int32), bits)
    for b in bits:
        assert np.float32(float32_from_bits(b)).view(np.int32) == b


def _bits_kernel(out, bits):
    for i in range(bits.size):
        out[i] = _float32_from_bits(bits[i])


def test_int32_bits_intrinsic_is_the_inverse_view():
    from minibert.kernels.fastexp import int32_bits

    bits = [0, 1, 127 << 23, (127 + 5) << 23, 0x7F7FFFFF, -(2**31), -1, 0x7FC00000]
    bits = np.array(bits, np.int32)
    values = bits.view(np.float32)
    out = np.empty(bits.size, np.int32)
    jit_kernel(_int32_bits_kernel)(out, values)
    np.testing.assert_array_equal(out, bits)
    for b, v in zip(bits, values, strict=True):
        assert int32_bits(v) == b


def _int32_bits_kernel(out, values):
    for i in range(values.size):
        out[i] = _int32_bits(values[i])


@given(
    a=floats((64,), -1e3, 1e3, np.float32),
    b=floats((64,), -1e3, 1e3, np.float32),
    c=floats((64,), -1e6, 1e6, np.float32),
)
def test_fused_multiply_add_intrinsic_rounds_once(a, b, c):
    """The intrinsic against its numpy statement (the product exact in float64, one rounding
    to float32); they may differ only where a float64 tie is rounded again, by one ulp."""
    from minibert.kernels.fastexp import fused_multiply_add

    out = np.empty_like(a)
    jit_kernel(_multiply_add_kernel)(out, a, b, c)
    expected = np.array([fused_multiply_add(*v) for v in zip(a, b, c, strict=True)], np.float32)
    ulps = np.abs(out.view(np.int32).astype(np.int64) - expected.view(np.int32).astype(np.int64))
    assert ulps.max() <= 1
    if "fma" in host_features():  # (1 + 2^-12)^2 - 1: a multiply rounds away the 2^-24
        ones = [np.array([v], np.float32) for v in (1 + 2.0**-12, 1 + 2.0**-12, -1.0)]
        out1 = np.empty(1, np.float32)
        jit_kernel(_multiply_add_kernel)(out1, *ones)
        assert out1[0] == np.float32(2.0**-11 + 2.0**-24)


def _multiply_add_kernel(out, a, b, c):
    for i in range(a.size):
        out[i] = _multiply_add(a[i], b[i], c[i])


@given(data=st.data())
def test_masked_softmax_kernel_equals_reference(data):
    from minibert.kernels.softmax import _masked_softmax_reference, masked_softmax

    B, H, T = (data.draw(st.integers(1, 5)) for _ in range(3))
    scores = data.draw(floats((B, H, T, T), -1e4, 1e4, np.float32))
    mask = data.draw(hnp.arrays(np.int64, (B, T), elements=st.integers(0, 1)))
    bias = F.padding_mask_bias(mask, np.float32)
    expected = _masked_softmax_reference(scores, bias, 0.3)
    got = masked_softmax(scores.copy(), bias, 0.3)
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=1e-5)
    np.testing.assert_array_equal(
        got * (1 - mask)[:, None, None, :] * mask.max(1)[:, None, None, None], 0.0
    )


@given(
    x=floats(hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=9), -8, 8, np.float32),
    seed=st.integers(0, 2**16),
)
def test_fused_bias_gelu_equals_reference(x, seed):
    from minibert.kernels.gelu import gelu_bias_inplace

    bias = np.random.default_rng(seed).normal(size=x.shape[-1]).astype(np.float32)
    expected = _gelu_erf_reference(x + bias)
    got = gelu_bias_inplace(x.copy(), bias)
    np.testing.assert_allclose(got, expected, atol=2e-6, rtol=1e-6)


@given(
    x=floats(hnp.array_shapes(min_dims=2, max_dims=3, min_side=2, max_side=9), -8, 8, np.float32),
    seed=st.integers(0, 2**16),
)
def test_fused_bias_residual_layernorm_equals_reference(x, seed):
    from minibert.kernels.layernorm import add_layernorm

    rng = np.random.default_rng(seed)
    C = x.shape[-1]
    residual = rng.normal(size=x.shape).astype(np.float32)
    w, b, bias = (rng.normal(size=C).astype(np.float32) for _ in range(3))
    v = (x + bias) + residual
    expected, _ = F.layernorm_forward(v, w, b, 1e-5)
    got = add_layernorm(x, residual, w, b, 1e-5, bias)
    # float32 sums in another order: x - mean loses ~ulp(max |x|) to cancellation, which
    # the division by the standard deviation magnifies (a row of near-equal values, as 4.0
    # plus small terms, is ill-conditioned); the tolerance follows that, times |w|
    ulp = 2.0**-23 * np.abs(v).max(-1, keepdims=True)
    std = np.sqrt(v.astype(np.float64).var(-1, keepdims=True) + 1e-5)
    tol = 1e-6 + 1e-6 * np.abs(expected) + np.abs(w) * 16 * ulp / std
    assert np.all(np.abs(got - expected) <= tol), np.max(np.abs(got - expected) - tol)
