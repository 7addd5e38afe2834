"""The float32 linear kernel (kernels/float32_linear.py): BLAS's sgemm on blocks in Numba's
threads and the transposed register tiles, each with the bias and GELU epilogues, against numpy;
which path a product takes; the job plans; the fallbacks."""

from unittest import mock

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minibert.kernels import float32_linear as fl
from minibert.kernels import use_fast_kernels
from minibert.kernels.gelu import _gelu_erf_reference


def _sgemm_or_skip():
    if fl.sgemm_address() is None:
        pytest.skip("no cblas_sgemm found in numpy's BLAS here: linear runs numpy's product")


def _integers(rng, shape):
    """Small integers as float32: every product and sum is exact, in any order."""
    return rng.integers(-8, 9, shape).astype(np.float32)


PATHS = ("blas", "transposed")


def _path(path):
    """Force linear onto `path` for a block (whatever the CPU and the rows would choose)."""
    if path == "blas":
        _sgemm_or_skip()
    return mock.patch.object(fl, "linear_path", return_value=path)


@pytest.mark.parametrize("path", PATHS)
@given(
    m=st.integers(1, 300),
    k=st.integers(1, 70),
    n=st.integers(1, 90),
    threads=st.sampled_from([1, 2, 3]),
    seed=st.integers(0, 2**32 - 1),
)
def test_jobs_cover_the_product_exactly(path, m, k, n, threads, seed):
    """Every job plan (rows or channels split, remainders: rows past a whole tile, channels
    past a whole block) writes each output once, exactly."""
    import numba

    rng = np.random.default_rng(seed)
    x, w, bias = _integers(rng, (m, k)), _integers(rng, (n, k)), _integers(rng, (n,))
    # the plan for `threads` threads, whatever the pool has
    with _path(path), mock.patch.object(numba, "get_num_threads", return_value=threads):
        np.testing.assert_array_equal(fl.linear(x, w), x @ w.T)
        np.testing.assert_array_equal(fl.linear(x, w, bias), x @ w.T + bias)


@pytest.mark.parametrize("path", PATHS)
@given(m=st.integers(1, 140), n=st.integers(1, 40), seed=st.integers(0, 2**32 - 1))
def test_layers_sharing_their_input_are_each_exact(path, m, n, seed):
    """linears: q, k and v from one x, in one parallel loop, each its own product and bias."""
    rng = np.random.default_rng(seed)
    x = _integers(rng, (m, 33))
    weights = [_integers(rng, (n, 33)) for _ in range(3)]
    biases = [_integers(rng, (n,)) for _ in range(3)]
    with _path(path):
        ys = fl.linears(x, weights, biases)
    for y, w, b in zip(ys, weights, biases, strict=True):
        np.testing.assert_array_equal(y, x @ w.T + b)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("count", [1, 2, 4, 7])
def test_any_number_of_layers_sharing_their_input(path, count):
    """The kernels take LAYER_SLOTS layers a call (fewer are padded, more are split): each of
    any number comes out as its own product."""
    rng = np.random.default_rng(count)
    x = _integers(rng, (20, 19))
    weights = [_integers(rng, (11, 19)) for _ in range(count)]
    biases = [_integers(rng, (11,)) for _ in range(count)]
    with _path(path):
        ys = fl.linears(x, weights, biases)
    assert len(ys) == count
    for y, w, b in zip(ys, weights, biases, strict=True):
        np.testing.assert_array_equal(y, x @ w.T + b)


@pytest.mark.parametrize("path", PATHS)
def test_one_and_three_layers_share_one_compiled_kernel(path):
    """linear (one layer) and q, k, v (three) call the kernel with tuples of the same length,
    so a first forward compiles it once, not once per count (about 1.6 s each)."""
    from minibert.kernels.jit import jit_kernel

    kernel = {"blas": fl._linear_numba, "transposed": fl._linear_transposed}[path]
    rng = np.random.default_rng(0)
    x, w = _integers(rng, (4, 8)), _integers(rng, (5, 8))
    with _path(path):
        fl.linear(x, w)
        fl.linears(x, [w, w, w], [None] * 3)
        fl.feed_forward(x, _integers(rng, (6, 8)), None, _integers(rng, (5, 6)))
    compiled = jit_kernel(kernel, parallel=True)
    if compiled is None:
        pytest.skip("Numba is not usable here")
    tuple_lengths = {
        len(arg) for sig in compiled.signatures for arg in sig if hasattr(arg, "count")
    }
    assert tuple_lengths == {fl.LAYER_SLOTS}


def test_few_rows_take_the_transposed_tiles_on_512_bit_cpus():
    if not fl.fast_kernels_enabled():
        pytest.skip("Numba is not usable here: every product is numpy's")
    with mock.patch.object(fl, "float32_path", return_value="avx512"):
        assert fl.linear_path(1) == fl.linear_path(fl.FEW_ROWS) == "transposed"
        many = fl.linear_path(fl.FEW_ROWS + 1)
    with mock.patch.object(fl, "float32_path", return_value="avx2"):
        few = fl.linear_path(16)
    expected = "blas" if fl.sgemm_address() is not None else "reference"
    assert many == few == expected


def test_transposed_groups():
    assert fl.transposed_groups(384, 1) == 1  # one thread: one job per layer
    assert fl.transposed_groups(384, 2) == 4  # two per thread
    assert fl.transposed_groups(7, 4) == 2  # no more than the blocks of 6 channels


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("shape", [(1, 384, 1536), (128, 384, 384), (700, 64, 300), (37, 50, 70)])
def test_gelu_epilogue(path, shape):
    m, k, n = shape
    rng = np.random.default_rng(0)
    x = rng.standard_normal((m, k), np.float32)
    w = rng.standard_normal((n, k), np.float32) / np.float32(np.sqrt(k))
    bias = rng.standard_normal(n, np.float32)
    exact = _gelu_erf_reference(x.astype(np.float64) @ w.T.astype(np.float64) + bias)
    # the product's float32 rounding (about sqrt(k) ulps of values near 1), then A&S's erf
    with _path(path):
        np.testing.assert_allclose(fl.linear(x, w, bias, gelu=True), exact, atol=2e-5, rtol=0)
        np.testing.assert_allclose(fl.linear(x, w, None, gelu=True), _gelu_erf_reference(
            x.astype(np.float64) @ w.T.astype(np.float64)), atol=2e-5, rtol=0)  # fmt: skip


def test_plan_jobs():
    assert fl.plan_jobs(16, 1536, 1) == (16, 1536)  # one thread: one job
    assert fl.plan_jobs(128, 384, 2) == (128, 192)  # few rows: split by channels
    assert fl.plan_jobs(128, 385, 2) == (128, 208)  # a multiple of 16, the rest in the last
    assert fl.plan_jobs(1024, 384, 2) == (512, 384)  # many rows: 2 blocks of 512
    assert fl.plan_jobs(1100, 384, 2) == (275, 384)  # 4 blocks, an even count


def test_numpy_product_where_the_kernel_does_not_apply(monkeypatch):
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((5, 7)), rng.standard_normal((3, 7))
    y = fl.linear(x, w, np.ones(3))  # float64: numpy's product
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, x @ w.T + 1)
    x32, w32 = x.astype(np.float32), w.astype(np.float32)
    previous = use_fast_kernels(False)
    try:
        np.testing.assert_array_equal(fl.linear(x32, w32), x32 @ w32.T)
    finally:
        use_fast_kernels(previous)
    monkeypatch.setitem(fl._STATE, "sgemm", 0)  # as where no cblas_sgemm was found ...
    monkeypatch.setattr(fl, "float32_path", lambda: "avx2")  # ... and no 512-bit vectors
    np.testing.assert_array_equal(fl.linear(x32, w32), x32 @ w32.T)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match=r"x has 4 features, the weight \(out, in\) \(3, 5\)"):
        fl.linear(np.zeros((2, 4), np.float32), np.zeros((3, 5), np.float32))


def test_found_sgemm_is_checked_against_numpy():
    """On x86-64 with numpy's own OpenBLAS the kernel path must be there (not silently off)."""
    import platform

    from minibert.kernels.jit import blas_libraries

    libraries = blas_libraries()
    if platform.machine().lower() not in ("x86_64", "amd64") or not any(
        "openblas" in path for path in libraries
    ):
        pytest.skip(f"not x86-64 with OpenBLAS (BLAS here: {libraries})")
    assert fl.sgemm_address() is not None


@pytest.mark.parametrize("path", PATHS)
@given(
    m=st.integers(1, 140),
    c=st.integers(1, 40),
    f=st.integers(1, 70),
    up_bias=st.booleans(),
    down_bias=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_feed_forward_equals_its_two_linear_layers(path, m, c, f, up_bias, down_bias, seed):
    """feed_forward keeps the GELU output transposed on the transposed path: the same sums in
    the same order as two linear calls, so the same values exactly, whatever the path."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, c), np.float32)
    w_up = rng.standard_normal((f, c), np.float32) / np.float32(np.sqrt(c))
    w_down = rng.standard_normal((c + 3, f), np.float32) / np.float32(np.sqrt(f))
    b_up = rng.standard_normal(f, np.float32) if up_bias else None
    b_down = rng.standard_normal(c + 3, np.float32) if down_bias else None
    with _path(path):
        got = fl.feed_forward(x, w_up, b_up, w_down, b_down)
        expected = fl.linear(fl.linear(x, w_up, b_up, gelu=True), w_down, b_down)
    np.testing.assert_array_equal(got, expected)


def test_feed_forward_checks_shapes():
    x, w_up = np.zeros((2, 4), np.float32), np.zeros((6, 4), np.float32)
    with pytest.raises(ValueError, match=r"x has 6 features, the weight \(out, in\) \(3, 5\)"):
        fl.feed_forward(x, w_up, None, np.zeros((3, 5), np.float32))


def _broken_transposed(xt, rows, weights, biases, outs, layers, groups, add_bias, gelu, transposed):
    """Numba cannot type this (a module it does not know): the tiles failing on some CPU."""
    import warnings

    warnings.warn("never reached", stacklevel=1)


def _no_reference(*args):
    raise AssertionError("numpy's product ran: the BLAS blocks were skipped")


def test_tiles_that_fail_to_compile_fall_back_to_the_blas_blocks(monkeypatch):
    _sgemm_or_skip()
    from minibert.kernels import jit

    rng = np.random.default_rng(3)
    x, w, bias = _integers(rng, (5, 7)), _integers(rng, (9, 7)), _integers(rng, (9,))
    monkeypatch.setattr(fl, "_linear_transposed", _broken_transposed)
    monkeypatch.setattr(fl, "_linear_reference", _no_reference)
    monkeypatch.setitem(jit._STATE, "warned", True)  # (the one warning is another test's)
    with _path("transposed"):
        np.testing.assert_array_equal(fl.linear(x, w, bias), x @ w.T + bias)
