"""The float32 register tile: the inner step of the products the kernels do themselves.

    tile[r, c] = sum_k a[row + r, k] * b[k, col + c]      r < ROWS, c < 16 * vectors, k < depth

a (M, K) float32 with any strides (its numbers are read one at a time and broadcast), b (K, N)
float32 whose rows are contiguous (read 16 numbers at a time), tile (ROWS, 16 * vectors), a
view into a larger float32 array whose rows are contiguous. Nothing is bounds-checked: callers
pad their operands so that every tile lies inside them.

The compiled form (kernels/simd.py, `_float32_tile`) keeps ROWS x vectors accumulators of 16
float32 in registers for the whole k loop. Each step loads `vectors` vectors of b's row k,
broadcasts a's ROWS numbers of column k, and does one fused multiply-add per (row, vector): a
tile of 6 rows by 4 vectors is 24 FMAs for 4 loads and 6 broadcasts, which keeps the two FMA
units of a core busy instead of waiting on memory, as the plain Numba loops before it did (they
stored every partial sum back). Fused multiply-adds round once per step, like BLAS's products,
so sums differ from numpy's by the usual few ulps of float32.

Tile shapes per path (kernels/cpu.py's float32_path):

    avx512   6 rows x 4, 2 or 1 vectors: up to 24 of the 32 zmm registers
    avx2     6 rows x 1 vector (two ymm): 12 of the 16 ymm registers; a wider tile would spill

`dot_tile` is the readable numpy statement of every shape; the names below it are the shapes a
kernel may call, each compiled to its own intrinsic (tests compare each with the statement).
"""

from .jit import device, lowered_as

ROWS = 6  # rows of a tile
LANES = 16  # float32 numbers in one vector of the tile (one zmm register, two ymm)
WIDTHS = {"avx512": (4, 2, 1), "avx2": (1,)}  # vectors per tile row, widest first


def dot_tile(a, row, b, col, depth, tile):
    """tile = a[row:row + rows, :depth] @ b[:depth, col:col + width], rows x width = tile's
    shape (the compiled forms take theirs from their name)."""
    rows, width = tile.shape
    tile[:, :] = a[row : row + rows, :depth] @ b[:depth, col : col + width]


dot_tile_6x4 = lowered_as("minibert.kernels.simd:float32_tile_6x4")(dot_tile)
dot_tile_6x2 = lowered_as("minibert.kernels.simd:float32_tile_6x2")(dot_tile)
dot_tile_6x1 = lowered_as("minibert.kernels.simd:float32_tile_6x1")(dot_tile)


@device(inline=False)  # called by several kernels, several times each: compiled once
def tiled_product(a, b, out, rows, depth, wide):
    """out[:rows] = a[:rows, :depth] @ b[:depth] in tiles of ROWS rows (rows a multiple of
    ROWS; out's width a multiple of LANES), the widest tile the path has for that width."""
    width = out.shape[1]
    vectors = 1
    if wide and width % (4 * LANES) == 0:
        vectors = 4
    elif wide and width % (2 * LANES) == 0:
        vectors = 2
    step = vectors * LANES
    for r0 in range(0, rows, ROWS):
        for c0 in range(0, width, step):
            if vectors == 4:
                dot_tile_6x4(a, r0, b, c0, depth, out[r0 : r0 + ROWS, c0 : c0 + step])
            elif vectors == 2:
                dot_tile_6x2(a, r0, b, c0, depth, out[r0 : r0 + ROWS, c0 : c0 + step])
            else:
                dot_tile_6x1(a, r0, b, c0, depth, out[r0 : r0 + ROWS, c0 : c0 + step])
