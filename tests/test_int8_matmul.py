"""The int8 matmul kernels: every path this CPU can run (kernels/cpu.py) equals the int32 numpy
product exactly; the paths it cannot run are skipped, each with its reason. Also the layouts,
the intrinsics against their numpy statements, the reference fallback, the argument checks,
and the dequantising epilogue against float64."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minibert.kernels import cpu, use_fast_kernels
from minibert.kernels.int8_layout import (
    INT16_PATHS,
    MAX_K,
    PANEL,
    TILE_ROWS,
    PackedWeight,
    amx_dot_block,
    dot_tile,
    dot_tile_512,
    pack_weight,
    pad_rows,
    u8s8_dot_tile,
)
from minibert.kernels.int8_matmul import (
    COLUMN_GROUP,
    FEW_JOBS,
    ROW_CHUNK,
    _int8_matmul_reference,
    int8_linear,
    int8_matmul,
)

SKIPPED = cpu.skipped_int8_paths()
PATHS = [
    pytest.param(p, marks=pytest.mark.skipif(p in SKIPPED, reason=f"{p}: {SKIPPED.get(p)}"))
    for p in cpu.INT8_PATHS
]


def _rand(rng, shape):
    return rng.integers(-128, 128, size=shape, dtype=np.int8)


def _exact(a, b, path):
    out = int8_matmul(a, b, path=path)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, _int8_matmul_reference(a, b))
    return out


def test_the_cpu_runs_at_least_the_portable_path():
    assert "avx2" in cpu.int8_paths(respect_cap=False)
    assert cpu.int8_path() in cpu.int8_paths()
    assert set(SKIPPED) | set(cpu.int8_paths(respect_cap=False)) == set(cpu.INT8_PATHS)


@pytest.mark.parametrize("path", PATHS)
@given(
    m=st.integers(1, 70),
    k=st.integers(1, 300),
    n=st.integers(1, 90),
    seed=st.integers(0, 2**32 - 1),
)
def test_matches_reference_exactly(path, m, k, n, seed):
    rng = np.random.default_rng(seed)
    _exact(_rand(rng, (m, k)), _rand(rng, (n, k)), path)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    "shape",
    [
        (1, 1, 1),
        (1, 768, 3072),
        (128, 768, 1),
        (3, 4 * 8, 2 * 8),
        (ROW_CHUNK + 33, 65, PANEL + 1),  # a second row chunk, partial tiles and panels, K > 64
        (2 * ROW_CHUNK, 128, 2 * COLUMN_GROUP),  # whole tiles, panels, chunks and groups only
        (7, 64, COLUMN_GROUP + 48),  # few jobs: narrow column groups, the last partly filled
        (4 * ROW_CHUNK + 5, 64, 4 * COLUMN_GROUP + 16),  # enough jobs for wide groups, edges
    ],
)
def test_edge_shapes(path, shape):
    m, k, n = shape
    if m > 4 * ROW_CHUNK:  # the case it stands for: enough jobs for COLUMN_GROUP-wide groups
        assert -(-m // ROW_CHUNK) * -(-n // COLUMN_GROUP) >= FEW_JOBS
    rng = np.random.default_rng(0)
    _exact(_rand(rng, (m, k)), _rand(rng, (n, k)), path)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("va", "vb"), [(-128, -128), (127, 127), (-128, 127), (127, -128)])
def test_extreme_values(path, va, vb):
    m, k, n = 9, 771, 13
    a = np.full((m, k), va, np.int8)
    b = np.full((n, k), vb, np.int8)
    out = _exact(a, b, path)
    assert out[0, 0] == va * vb * k


@pytest.mark.parametrize("path", PATHS)
def test_k_near_the_bound(path):
    """At K = MAX_K the u8 paths' shifted sums pass 2^31 and wrap: the result is still exact,
    since every step is int32 arithmetic modulo 2^32 and the true sum fits."""
    k = MAX_K
    assert 127**2 * k < 2**31 <= 127**2 * (k + 1)
    a = np.full((2, k), 127, np.int8)
    b = np.full((3, k), 127, np.int8)
    b[1] = -127
    b[2, ::2] = -128  # mixed signs partly cancel
    out = _exact(a, b, path)
    assert out[0, 0] == 127 * 127 * k
    assert out[1, 1] == -127 * 127 * k


def test_non_contiguous_operands():
    rng = np.random.default_rng(3)
    a, b = _rand(rng, (9, 40)), _rand(rng, (40, 21))
    _exact(a[::2], b.T, None)  # a strided view and a transposed one are read as they are


@pytest.mark.parametrize("path", cpu.INT8_PATHS)
def test_packed_weight_layout_and_round_trip(path):
    """Packing needs no CPU support: the layout is numpy. Each layout pads N to whole tiles of
    panels and K to its own multiple, and unpacks to the weight."""
    rng = np.random.default_rng(4)
    w = _rand(rng, (PANEL + 3, 11))  # N and K both need padding
    packed = pack_weight(w, path)
    assert isinstance(packed, PackedWeight)
    assert packed.shape == w.shape
    if path in INT16_PATHS:
        assert packed.panels.shape == (4, 6, PANEL, 2)
        assert packed.panels.dtype == np.int16
        assert not packed.correction.any()
    else:
        assert packed.panels.shape == (4, 16, PANEL, 4)  # K padded to 64: 16 quads
        assert packed.panels.dtype == np.int8
        np.testing.assert_array_equal(packed.correction[: w.shape[0]], 128 * w.sum(1))
    np.testing.assert_array_equal(packed.unpack(), w)


@pytest.mark.parametrize("path", cpu.INT8_PATHS)
def test_operands_start_on_a_cache_line(path):
    """Packed weights, their corrections and activation rows start on a 64-byte line, so
    that no tile row or vector load straddles two (numpy only promises 16 bytes)."""
    rng = np.random.default_rng(7)
    for n, k in [(1, 1), (17, 11), (70, 130)]:
        packed = pack_weight(_rand(rng, (n, k)), path)
        rows = pad_rows(_rand(rng, (3, k)), path)
        for array in (packed.panels, packed.correction, rows):
            assert array.ctypes.data % 64 == 0
            assert array.flags.c_contiguous


@pytest.mark.parametrize("path", PATHS)
def test_a_packed_weight_is_reused(path):
    rng = np.random.default_rng(5)
    w, a = _rand(rng, (40, 70)), _rand(rng, (5, 70))
    packed = pack_weight(w, path)
    np.testing.assert_array_equal(int8_matmul(a, packed), _int8_matmul_reference(a, w))


def test_a_path_the_cpu_cannot_run_is_an_error_not_a_crash(monkeypatch):
    """Its instructions would kill the process (SIGILL): the boundary refuses it by name."""
    monkeypatch.setattr(cpu, "int8_paths", lambda respect_cap=True: ["avx2"])
    w = np.ones((3, 4), np.int8)
    with pytest.raises(ValueError, match="cannot run the int8 path 'amx'"):
        int8_matmul(np.ones((2, 4), np.int8), pack_weight(w, "amx"))


def test_minibert_isa_caps_the_path(monkeypatch):
    monkeypatch.setenv(cpu.ISA_VARIABLE, "avx2")
    assert cpu.int8_path() == "avx2"
    assert cpu.int8_paths() == ["avx2"]
    monkeypatch.setenv(cpu.ISA_VARIABLE, "avx9")
    with pytest.raises(ValueError, match="MINIBERT_ISA='avx9' is not a path"):
        cpu.int8_path()


# where AMX's accumulator tiles start (the kernel passes minus the correction): any int32,
# the extremes included, so that the sums' wrap-around is checked too
AMX_START = np.random.default_rng(7).integers(-(2**31), 2**31, 4096).astype(np.int32)
AMX_START[:2] = (-(2**31), 2**31 - 1)


def _amx_statement(a, row, panels, p, tile):
    amx_dot_block(a, row, panels, p, tile, AMX_START)


STATEMENTS = {  # path: (intrinsic name in kernels/simd.py, numpy statement, tile shape)
    "avx2": ("int16_dot_tile", dot_tile, (TILE_ROWS["avx2"], 16)),
    "avx512": ("int16_dot_tile_512", dot_tile_512, (TILE_ROWS["avx512"], 32)),
    "avx-vnni": ("u8s8_dot_tile_256", u8s8_dot_tile, (TILE_ROWS["avx-vnni"], 16)),
    "avx512-vnni": ("u8s8_dot_tile_512", u8s8_dot_tile, (TILE_ROWS["avx512-vnni"], 64)),
    "amx": ("amx_dot_block", _amx_statement, (32, 32)),
}
_COMPILED = {}


def _compiled(path):
    """The path's intrinsic in a tiny compiled function (once per session)."""
    from minibert.kernels.jit import numba_available

    if not numba_available():
        pytest.skip("numba is not importable here")
    if path not in _COMPILED:
        import numba

        from minibert.kernels import simd
        from minibert.kernels.int8_layout import amx_config

        intrinsic = getattr(simd, STATEMENTS[path][0])
        if path == "amx":
            begin, end = simd.amx_begin, simd.amx_end

            @numba.njit
            def run(a, row, panels, p, tile, start, config):
                begin(config)
                intrinsic(a, row, panels, p, tile, start)
                end()

            config = amx_config()
            _COMPILED[path] = lambda *args: run(*args, AMX_START, config)
        else:

            @numba.njit
            def run(a, row, panels, p, tile):
                intrinsic(a, row, panels, p, tile)

            _COMPILED[path] = run
    return _COMPILED[path]


@pytest.mark.parametrize("path", PATHS)
@given(k=st.integers(1, 200), seed=st.integers(0, 2**32 - 1))
def test_intrinsic_equals_its_numpy_statement(path, k, seed):
    """Each LLVM inner loop of kernels/simd.py against the numpy line it implements."""
    run = _compiled(path)
    _, statement, shape = STATEMENTS[path]
    rows, columns = shape
    rng = np.random.default_rng(seed)
    a = pad_rows(_rand(rng, (2 * rows, k)), path)
    panels = pack_weight(_rand(rng, (2 * columns + 5, k)), path).panels
    for row, p in [(0, 0), (rows, columns // PANEL)]:
        ours = np.full(shape, -7, np.int32)
        run(a, row, panels, p, ours)
        expected = np.empty_like(ours)
        statement(a, row, panels, p, expected)
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


def test_bad_path():
    with pytest.raises(ValueError, match="unknown int8 GEMM path 'sse'"):
        int8_matmul(np.zeros((2, 4), np.int8), np.zeros((3, 4), np.int8), path="sse")


def _linear_float64(a_q, a_scale, w_q, w_scale, bias, gelu):
    y = a_q.astype(np.float64) @ w_q.astype(np.float64).T
    y = y * a_scale.astype(np.float64)[:, None] * w_scale.astype(np.float64)[None, :]
    if bias is not None:
        y = y + bias
    if gelu:
        erf = np.vectorize(math.erf)
        y = 0.5 * y * (1.0 + erf(y / math.sqrt(2.0)))
    return y


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("gelu", [False, True])
# (70, 100) has whole AMX blocks, dequantised in place, and edges
@pytest.mark.parametrize(("m", "k", "n"), [(9, 200, 70), (70, 130, 100)])
def test_linear_epilogue(path, with_bias, gelu, m, k, n):
    rng = np.random.default_rng(2)
    a_q, w_q = _rand(rng, (m, k)), _rand(rng, (n, k))
    a_scale = rng.uniform(1e-3, 2e-2, m).astype(np.float32)
    w_scale = rng.uniform(1e-4, 1e-3, n).astype(np.float32)
    bias = rng.normal(size=n).astype(np.float32) if with_bias else None
    y = int8_linear(a_q, a_scale, w_q, w_scale, bias=bias, gelu=gelu, path=path)
    assert y.dtype == np.float32
    assert y.shape == (m, n)
    expected = _linear_float64(a_q, a_scale, w_q, w_scale, bias, gelu)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("gelu", [False, True])
def test_every_path_gives_the_same_floats(path, gelu):
    """The int32 sums are equal on every path, and the epilogue's float arithmetic is the
    same: so are the outputs, bit for bit."""
    rng = np.random.default_rng(6)
    a_q, w_q = _rand(rng, (33, 130)), _rand(rng, (50, 130))
    a_scale = rng.uniform(1e-3, 2e-2, 33).astype(np.float32)
    w_scale = rng.uniform(1e-4, 1e-3, 50).astype(np.float32)
    bias = rng.normal(size=50).astype(np.float32)
    ours = int8_linear(a_q, a_scale, w_q, w_scale, bias, gelu=gelu, path=path)
    portable = int8_linear(a_q, a_scale, w_q, w_scale, bias, gelu=gelu, path="avx2")
    np.testing.assert_array_equal(ours, portable)


def test_linear_bad_scales():
    a, w = np.zeros((2, 4), np.int8), np.zeros((3, 4), np.int8)
    with pytest.raises(ValueError, match="a_scale"):
        int8_linear(a, np.ones(3), w, np.ones(3))
    with pytest.raises(ValueError, match="w_scale"):
        int8_linear(a, np.ones(2), w, np.ones(2))
    with pytest.raises(ValueError, match="bias"):
        int8_linear(a, np.ones(2), w, np.ones(3), bias=np.ones(4))
