"""The int8 matmul kernel: exact equality with the int32 numpy product, the reference fallback,
argument checks, and the dequantising epilogue against float64."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minibert.kernels import use_fast_kernels
from minibert.kernels.int8_matmul import (
    MAX_K,
    PANEL,
    ROW_CHUNK,
    ROWS,
    PackedWeight,
    _int8_matmul_reference,
    dot_tile,
    int8_linear,
    int8_matmul,
    pack_weight,
    widen_rows,
)


def _rand(rng, shape):
    return rng.integers(-128, 128, size=shape, dtype=np.int8)


def _exact(a, b):
    out = int8_matmul(a, b)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, _int8_matmul_reference(a, b))
    return out


@given(
    m=st.integers(1, 37),
    k=st.integers(1, 300),
    n=st.integers(1, 40),
    seed=st.integers(0, 2**32 - 1),
)
def test_matches_reference_exactly(m, k, n, seed):
    rng = np.random.default_rng(seed)
    _exact(_rand(rng, (m, k)), _rand(rng, (n, k)))


@pytest.mark.parametrize(
    "shape",
    [
        (1, 1, 1),
        (1, 768, 3072),
        (128, 768, 1),
        (3, (4 * ROWS), (2 * ROWS)),
        (ROW_CHUNK + ROWS + 1, 33, PANEL + 1),  # a second row chunk, a partial tile and panel
        (2 * ROW_CHUNK, 64, 2 * PANEL),  # whole tiles, panels and chunks only
    ],
)
def test_edge_shapes(shape):
    m, k, n = shape
    rng = np.random.default_rng(0)
    _exact(_rand(rng, (m, k)), _rand(rng, (n, k)))


@pytest.mark.parametrize(("va", "vb"), [(-128, -128), (127, 127), (-128, 127), (127, -128)])
def test_extreme_values(va, vb):
    m, k, n = ROWS + 1, 771, 13
    a = np.full((m, k), va, np.int8)
    b = np.full((n, k), vb, np.int8)
    out = _exact(a, b)
    assert out[0, 0] == va * vb * k


def test_k_near_the_bound():
    k = MAX_K
    assert 127**2 * k < 2**31 <= 127**2 * (k + 1)
    a = np.full((2, k), 127, np.int8)
    b = np.full((3, k), 127, np.int8)
    b[1] = -127
    b[2, ::2] = -128  # mixed signs partly cancel
    out = _exact(a, b)
    assert out[0, 0] == 127 * 127 * k
    assert out[1, 1] == -127 * 127 * k


def test_non_contiguous_operands():
    rng = np.random.default_rng(3)
    a, b = _rand(rng, (9, 40)), _rand(rng, (40, 21))
    _exact(a[::2], b.T)  # a strided view and a transposed one are read as they are


def test_packed_weight_round_trip_and_reuse():
    rng = np.random.default_rng(4)
    w = _rand(rng, (PANEL + 3, 11))  # N and K both need padding
    packed = pack_weight(w)
    assert isinstance(packed, PackedWeight)
    assert packed.shape == w.shape
    assert packed.panels.shape == (2, 6, PANEL, 2)
    np.testing.assert_array_equal(packed.unpack(), w)
    a = _rand(rng, (5, 11))
    np.testing.assert_array_equal(int8_matmul(a, packed), _int8_matmul_reference(a, w))


_TILE = []


def _compiled_tile():
    """The intrinsic in a tiny compiled function (once per session)."""
    from minibert.kernels.jit import numba_available

    if not numba_available():
        pytest.skip("numba is not importable here")
    if not _TILE:
        import numba

        from minibert.kernels.simd import int16_dot_tile

        @numba.njit
        def run(a16, row, panels, p, tile):
            int16_dot_tile(a16, row, panels, p, tile)

        _TILE.append(run)
    return _TILE[0]


@given(k=st.integers(1, 200), seed=st.integers(0, 2**32 - 1))
def test_intrinsic_equals_its_numpy_statement(k, seed):
    """The LLVM vector loop of kernels/simd.py against dot_tile, the numpy line it implements."""
    run = _compiled_tile()
    rng = np.random.default_rng(seed)
    a16 = widen_rows(_rand(rng, (2 * ROWS, k)))
    panels = pack_weight(_rand(rng, (2 * PANEL + 5, k))).panels
    for row, p in [(0, 0), (ROWS, 2)]:
        ours = np.full((ROWS, PANEL), -7, np.int32)
        run(a16, row, panels, p, ours)
        expected = np.empty_like(ours)
        dot_tile(a16, row, panels, p, expected)
        np.testing.assert_array_equal(ours, expected)


def test_empty_k_and_rows():
    assert (int8_matmul(np.zeros((2, 0), np.int8), np.zeros((3, 0), np.int8)) == 0).all()
    assert int8_matmul(np.zeros((0, 4), np.int8), np.zeros((3, 4), np.int8)).shape == (0, 3)


def test_reference_fallback():
    rng = np.random.default_rng(1)
    a, b = _rand(rng, (7, 300)), _rand(rng, (70, 300))
    previous = use_fast_kernels(False)
    try:
        out = int8_matmul(a, b)
    finally:
        use_fast_kernels(previous)
    np.testing.assert_array_equal(out, a.astype(np.int64) @ b.astype(np.int64).T)


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        (np.zeros((2, 4), np.int16), np.zeros((3, 4), np.int8), "a must be int8"),
        (np.zeros((2, 4), np.int8), np.zeros((3, 4), np.uint8), "b must be int8"),
        (np.zeros((2, 4), np.float32), np.zeros((3, 4), np.int8), "a must be int8"),
        (np.zeros(4, np.int8), np.zeros((3, 4), np.int8), "a must be 2-D"),
        (np.zeros((2, 4), np.int8), np.zeros((3, 5), np.int8), "K differs"),
        ([[1, 2]], np.zeros((3, 2), np.int8), "numpy array"),
        (np.zeros((1, MAX_K + 1), np.int8), np.zeros((1, MAX_K + 1), np.int8), "overflow"),
    ],
)
def test_bad_arguments(a, b, message):
    with pytest.raises(ValueError, match=message):
        int8_matmul(a, b)


def _linear_float64(a_q, a_scale, w_q, w_scale, bias, gelu):
    y = a_q.astype(np.float64) @ w_q.astype(np.float64).T
    y = y * a_scale.astype(np.float64)[:, None] * w_scale.astype(np.float64)[None, :]
    if bias is not None:
        y = y + bias
    if gelu:
        erf = np.vectorize(math.erf)
        y = 0.5 * y * (1.0 + erf(y / math.sqrt(2.0)))
    return y


@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("gelu", [False, True])
def test_linear_epilogue(with_bias, gelu):
    rng = np.random.default_rng(2)
    m, k, n = 9, 200, 70
    a_q, w_q = _rand(rng, (m, k)), _rand(rng, (n, k))
    a_scale = rng.uniform(1e-3, 2e-2, m).astype(np.float32)
    w_scale = rng.uniform(1e-4, 1e-3, n).astype(np.float32)
    bias = rng.normal(size=n).astype(np.float32) if with_bias else None
    y = int8_linear(a_q, a_scale, w_q, w_scale, bias=bias, gelu=gelu)
    assert y.dtype == np.float32
    assert y.shape == (m, n)
    expected = _linear_float64(a_q, a_scale, w_q, w_scale, bias, gelu)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_linear_bad_scales():
    a, w = np.zeros((2, 4), np.int8), np.zeros((3, 4), np.int8)
    with pytest.raises(ValueError, match="a_scale"):
        int8_linear(a, np.ones(3), w, np.ones(3))
    with pytest.raises(ValueError, match="w_scale"):
        int8_linear(a, np.ones(2), w, np.ones(2))
    with pytest.raises(ValueError, match="bias"):
        int8_linear(a, np.ones(2), w, np.ones(3), bias=np.ones(4))
