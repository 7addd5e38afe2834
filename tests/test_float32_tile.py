"""The float32 register tile (kernels/float32_tile.py): each compiled shape against its numpy
statement, on strided views, and the path that chooses the tiles."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minibert.kernels import cpu
from minibert.kernels.float32_tile import LANES, ROWS, WIDTHS, dot_tile

SHAPES = sorted({v for widths in WIDTHS.values() for v in widths})  # vectors per tile row
_COMPILED = {}


def _compiled(vectors):
    """The intrinsic of a tile `vectors` wide in a tiny compiled function (once per session)."""
    from minibert.kernels.jit import numba_available

    if not numba_available():
        pytest.skip("numba is not importable here")
    if vectors not in _COMPILED:
        import numba

        from minibert.kernels import simd

        intrinsic = getattr(simd, f"float32_tile_{ROWS}x{vectors}")

        @numba.njit
        def run(a, row, b, col, depth, tile):
            intrinsic(a, row, b, col, depth, tile)

        _COMPILED[vectors] = run
    return _COMPILED[vectors]


def _operands(rng, vectors, depth, integers):
    """a (2 ROWS + 3, depth) as a strided view, b (depth, 2 widths + 16) with an offset
    column, and the output a view into a larger array filled with a marker."""
    width = vectors * LANES
    if integers:  # small integers: every sum is exact, whatever the order or fusing
        a_big = rng.integers(-8, 9, (2 * ROWS + 3, 2 * depth + 1)).astype(np.float32)
        b = rng.integers(-8, 9, (depth, 2 * width + LANES)).astype(np.float32)
    else:
        a_big = rng.standard_normal((2 * ROWS + 3, 2 * depth + 1), dtype=np.float32)
        b = rng.standard_normal((depth, 2 * width + LANES), dtype=np.float32)
    a = a_big[:, 1::2]  # column stride 2: the tile reads a one number at a time
    out = np.full((3 * ROWS, 3 * width), -7.0, np.float32)
    return a, b, out


@pytest.mark.parametrize("vectors", SHAPES)
@given(depth=st.integers(1, 96), seed=st.integers(0, 2**32 - 1))
def test_tile_equals_its_numpy_statement(vectors, depth, seed):
    """Exact with small integers, at two positions in a and b, written into a view."""
    run = _compiled(vectors)
    width = vectors * LANES
    rng = np.random.default_rng(seed)
    a, b, out = _operands(rng, vectors, depth, integers=True)
    for row, col in [(0, 0), (ROWS + 3, width + LANES)]:
        ours = out.copy()
        run(a, row, b, col, depth, ours[ROWS : 2 * ROWS, width : 2 * width])
        expected = out.copy()
        dot_tile(a, row, b, col, depth, expected[ROWS : 2 * ROWS, width : 2 * width])
        np.testing.assert_array_equal(ours, expected)  # and nothing outside the tile moved


@pytest.mark.parametrize("vectors", SHAPES)
def test_tile_with_real_numbers(vectors):
    """Fused multiply-adds round once per step: within float32's rounding of the sum."""
    run = _compiled(vectors)
    width = vectors * LANES
    rng = np.random.default_rng(0)
    depth = 384
    a, b, out = _operands(rng, vectors, depth, integers=False)
    run(a, 2, b, 5, depth, out[:ROWS, :width])
    exact = a[2 : 2 + ROWS].astype(np.float64) @ b[:, 5 : 5 + width].astype(np.float64)
    bound = depth * np.finfo(np.float32).eps * (np.abs(a[2 : 2 + ROWS]) @ np.abs(b[:, 5:])).max()
    np.testing.assert_allclose(out[:ROWS, :width], exact, atol=bound, rtol=0)


def test_float32_path_follows_the_cpu_and_the_cap(monkeypatch):
    wide = "avx512f" in cpu.host_features()
    assert cpu.float32_path() == ("avx512" if wide else "avx2")
    monkeypatch.setenv(cpu.ISA_VARIABLE, "avx2")
    assert cpu.float32_path() == "avx2"
