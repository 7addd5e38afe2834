"""How int8 operands are laid out for each GEMM path, and the inner loops' numpy statements.

Two layouts (kernels/cpu.py says which path a CPU takes):

    int16 pairs  (avx2, avx512): the weight widened to int16 in panels of 16 output channels,
                 k in pairs, panels[p, kk, c, t] = w[16 p + c, 2 kk + t]: one k-pair of a panel
                 is 64 contiguous bytes. Activations widened to int16, K padded to even, so a
                 pair a[m, 2 kk : 2 kk + 2] is one 32-bit load broadcast to every lane; the
                 vector instruction is `vpmaddwd` (int16 x int16 pairs into int32).
    u8 quads     (avx-vnni, avx512-vnni, amx): the weight as int8 in panels of 16 output
                 channels, k in fours, panels[p, kq, c, t] = w[16 p + c, 4 kq + t]: one k-quad of
                 a panel is 64 bytes, one 512-bit register, and 16 quads are one AMX B tile.
                 Activations are shifted by +128 into u8 (a + 128 lies in [0, 255]), K padded
                 to a multiple of 64 (an AMX A tile is 64 bytes wide). The instructions
                 (`vpdpbusd`, `tdpbusd`) multiply unsigned by signed bytes, so each output
                 carries 128 x the sum of its weight row, which `correction` holds and the
                 kernels subtract:

                     sum_k (a + 128) w = sum_k a w + 128 sum_k w

                 All of it is int32 arithmetic modulo 2^32; the result is exact wherever the
                 true s8 x s8 sum fits in int32, which K <= MAX_K guarantees for our scheme.

Padding is zeros in the weight, so padded k, rows and channels add nothing to the real outputs.
Weights are packed once per layer (quant.QuantLinear keeps the PackedWeight); int16 pairs take 2
bytes per parameter in memory, u8 quads 1.

Both operands start on a cache line (aligned_empty): numpy only promises 16 bytes, and an AMX
tile row or a 512-bit load that straddles two lines costs two. Measured on one core at K = 768,
a 32 x 32 AMX block ran 282 cycles per 64-byte step of K with operands 16 or 32 bytes off a
line and 86-120 with both on one (2.4x).
"""

import math

import numpy as np

MAX_K = (2**31 - 1) // (127 * 127)  # 133,144: the largest K with 127^2 * K < 2^31
PANEL = 16  # output channels per panel, in both layouts
SHIFT = 128  # the u8 layout's offset: a + 128
INT16_PATHS = ("avx2", "avx512")
U8_PATHS = ("avx-vnni", "avx512-vnni", "amx")
# Each path's tile: rows of activations by panels of 16 output channels, sized so that the
# accumulators, the panel vectors and a broadcast fit in the vector registers (kernels/simd.py)
AVX2_ROWS, AVX2_PANELS = 4, 1  # 4 x 2 <8 x i32> + 2 + 1 of 16 ymm registers
AVX512_ROWS, AVX512_PANELS = 8, 2  # 8 x 2 <16 x i32> + 2 + 1 of 32 zmm registers
AVX_VNNI_ROWS, AVX_VNNI_PANELS = 4, 1  # as avx2
AVX512_VNNI_ROWS, AVX512_VNNI_PANELS = 6, 4  # 6 x 4 + 4 + 1 of 32 zmm registers
AMX_ROWS, AMX_PANELS = 32, 2  # two A tiles by two B tiles into four accumulator tiles
TILE_ROWS = {
    "avx2": AVX2_ROWS,
    "avx512": AVX512_ROWS,
    "avx-vnni": AVX_VNNI_ROWS,
    "avx512-vnni": AVX512_VNNI_ROWS,
    "amx": AMX_ROWS,
}
TILE_PANELS = {
    "avx2": AVX2_PANELS,
    "avx512": AVX512_PANELS,
    "avx-vnni": AVX_VNNI_PANELS,
    "avx512-vnni": AVX512_VNNI_PANELS,
    "amx": AMX_PANELS,
}
CACHE_LINE = 64  # bytes
PANEL_MULTIPLE = 4  # panels are padded to a multiple of every path's TILE_PANELS
K_MULTIPLE = {"int16": 2, "u8": 64}


def layout_of(path: str) -> str:
    """ "int16" or "u8": the operand layout a path's kernel reads."""
    if path in INT16_PATHS:
        return "int16"
    if path in U8_PATHS:
        return "u8"
    raise ValueError(f"unknown int8 GEMM path {path!r}; the paths are {INT16_PATHS + U8_PATHS}")


class PackedWeight:
    """An int8 weight (N, K) laid out for one path's GEMM kernel (see the module docstring).

    Attributes: panels (P, K_pad / 2, 16, 2) int16 or (P, K_pad / 4, 16, 4) int8; correction
    (P * 16,) int32, 128 x each weight row's sum (zeros for the int16 layout); n = N, k = K
    (before padding); path, the kernel it was packed for; negated, minus the correction, the
    values the AMX kernel's accumulator tiles start from."""

    __slots__ = ("panels", "correction", "negated", "n", "k", "path")

    def __init__(self, panels, correction, n, k, path):
        self.panels, self.correction, self.n, self.k, self.path = panels, correction, n, k, path
        self.negated = aligned_empty(correction.shape, np.int32)  # tile rows load whole lines
        np.negative(correction, out=self.negated)  # int32, wrapping as the sums do

    @property
    def shape(self):
        return (self.n, self.k)

    @property
    def layout(self) -> str:
        return layout_of(self.path)

    def unpack(self):
        """The int8 (N, K) weight back (for the reference path, and for checks)."""
        P, Kg, _, group = self.panels.shape
        w = self.panels.transpose(0, 2, 1, 3).reshape(P * PANEL, Kg * group)
        return w[: self.n, : self.k].astype(np.int8)


def aligned_empty(shape, dtype):
    """np.empty(shape, dtype) whose first byte starts a cache line (a view into a buffer one
    line longer; numpy's own allocations are only 16-byte aligned)."""
    dtype = np.dtype(dtype)
    shape = (shape,) if isinstance(shape, int) else shape
    size = (
        math.prod(shape) * dtype.itemsize
    )  # (np.prod costs 2 us: a short forward calls this 60 times)
    buffer = np.empty(size + CACHE_LINE, np.uint8)
    skip = -buffer.ctypes.data % CACHE_LINE
    return buffer[skip : skip + size].view(dtype).reshape(shape)


def aligned_full(shape, value, dtype):
    """np.full(shape, value, dtype), starting on a cache line (aligned_empty)."""
    out = aligned_empty(shape, dtype)
    out.fill(value)
    return out


def pack_weight(w_q, path: str) -> PackedWeight:
    """int8 (N, K) -> PackedWeight for `path`; N and K are padded with zeros."""
    N, K = w_q.shape
    group = 2 if layout_of(path) == "int16" else 4
    multiple = K_MULTIPLE[layout_of(path)]
    panels_needed = -(-N // PANEL)
    P = max(-(-panels_needed // PANEL_MULTIPLE), 1) * PANEL_MULTIPLE
    K_pad = max(-(-K // multiple) * multiple, multiple)
    dtype = np.int16 if group == 2 else np.int8
    padded = np.zeros((P * PANEL, K_pad), dtype)
    padded[:N, :K] = w_q
    panels = aligned_empty((P, K_pad // group, PANEL, group), dtype)
    panels[...] = padded.reshape(P, PANEL, K_pad // group, group).transpose(0, 2, 1, 3)
    correction = aligned_full(P * PANEL, 0, np.int32)
    if group == 4:  # 128 x row sums, wrapped to int32 as the kernels' arithmetic is
        correction[:] = (SHIFT * padded.astype(np.int64).sum(1)).astype(np.int32)
    return PackedWeight(panels, correction, N, K, path)


def padded_shape(M: int, K: int, path: str) -> tuple:
    """The shape of `path`'s activation operand for M rows of K values: rows padded to the
    path's tile, K as pack_weight pads it (at least one tile of each)."""
    rows, multiple = TILE_ROWS[path], K_MULTIPLE[layout_of(path)]
    return (max(-(-M // rows), 1) * rows, max(-(-K // multiple) * multiple, multiple))


def activation_shift(path: str) -> int:
    """What `path`'s activation operand adds to each int8 value: 0 (int16 layout) or SHIFT."""
    return 0 if layout_of(path) == "int16" else SHIFT


def empty_rows(M: int, K: int, path: str):
    """`path`'s activation operand for M x K values, all holding the layout's zero (int16 0,
    or u8 128, the shifted zero), to be filled in."""
    if layout_of(path) == "int16":
        return aligned_full(padded_shape(M, K, path), 0, np.int16)
    return aligned_full(padded_shape(M, K, path), SHIFT, np.uint8)


def pad_rows(a_q, path: str):
    """int8 (M, K) -> the activation operand of `path` (see empty_rows): int16, or u8 shifted
    by +128."""
    M, K = a_q.shape
    out = empty_rows(M, K, path)
    if layout_of(path) == "int16":
        out[:M, :K] = a_q
    else:  # a + 128 in u8 is a's two's-complement byte with its top bit flipped: one pass
        np.bitwise_xor(a_q.view(np.uint8), np.uint8(SHIFT), out=out[:M, :K])
    return out


# --- what the inner loops compute, in numpy (kernels/simd.py compiles each) -----------------------
def dot_tile(a16, row, panels, p, tile):
    """int16 pairs, 256-bit (avx2): tile[r, c] = sum_k a16[row + r, k] w[16 p + c, k] for
    r < tile rows, c < 16."""
    _tile_product(a16, row, panels, p, tile)


def dot_tile_512(a16, row, panels, p, tile):
    """int16 pairs, 512-bit (avx512): the same over tile.shape[1] // 16 panels from p."""
    _tile_product(a16, row, panels, p, tile)


def u8s8_dot_tile(a8, row, panels, p, tile):
    """u8 quads (avx512-vnni, avx-vnni): tile[r, c] = sum_k a8[row + r, k] w[16 p + c, k],
    a8 unsigned and w signed; the correction is the caller's."""
    _tile_product(a8, row, panels, p, tile)


def amx_dot_block(a8, row, panels, p, block, start):
    """u8 quads (amx): the same as u8s8_dot_tile for a 32 x 32 block, added to start's 32
    values for those columns (the kernel passes minus the correction, so the block comes out
    corrected), modulo 2^32 as the int32 hardware sums."""
    _tile_product(a8, row, panels, p, block)
    start_row = start[PANEL * p : PANEL * p + block.shape[1]].astype(np.int64)
    block[:] = (block.astype(np.int64) + start_row).astype(np.int32)  # astype wraps


def amx_begin(config):
    """Load the AMX tile configuration on this thread (nothing to do in numpy)."""


def amx_end():
    """Release this thread's AMX tiles (nothing to do in numpy)."""


def _tile_product(a, row, panels, p, tile):
    rows, columns = tile.shape
    n_panels = columns // PANEL
    w = panels[p : p + n_panels].transpose(0, 2, 1, 3).reshape(columns, -1)  # (columns, K_pad)
    tile[:] = a[row : row + rows].astype(np.int64) @ w.T.astype(np.int64)


def amx_config() -> np.ndarray:
    """The 64-byte AMX tile configuration amx_begin loads: palette 1, tiles 0-7 of 16 rows
    of 64 bytes (accumulators 0-3 as 16 x 16 int32, A tiles 4-5, B tiles 6-7)."""
    config = np.zeros(64, np.uint8)
    config[0] = 1  # palette
    config[16:32].view(np.uint16)[:] = 64  # bytes per row of tiles 0-7
    config[48:56] = 16  # rows of tiles 0-7
    return config
