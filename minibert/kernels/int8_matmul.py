"""int8 x int8 -> int32 matrix product, the core of int8 inference for linear layers.

    out[m, n] = sum_k a[m, k] * w[n, k]          a (M, K) int8, w (N, K) int8, out (M, N) int32

w is a weight in PyTorch's (out_features, in_features) layout. Every product lies in
[-127 * 128, 128 * 128], so int32 accumulation is exact while 128^2 * K < 2^31; we require the
symmetric bound of our quantisation scheme, 127^2 * K < 2^31, i.e. K <= MAX_K = 133,144 (BERT's
largest K is 3072). Every path is exact (integers: no rounding anywhere), so their tests are
equality with the reference.

How it is fast: by the instructions the CPU has (kernels/cpu.py picks the path, int8_layout.py
lays the operands out for it, kernels/simd.py writes each inner loop in LLVM IR):

    avx2, avx512      int16 pairs: `vpmaddwd`, a ROWS x 16 (avx512: 8 x 32) tile of int32
                      accumulators in registers for all of K
    avx-vnni,         u8 x s8 quads: `vpdpbusd`, four byte products per int32 lane, a 4 x 16
    avx512-vnni       (avx512-vnni: 6 x 64) tile
    amx               u8 x s8 tiles: `tdpbusd` on AMX tile registers, a 32 x 32 block

The kernels below run the path's tile over the output, in parallel over (row chunk, column
group) jobs, rows in chunks that stay in L2 while a job's weight panels stay in L1.
`int8_linear` fuses the epilogue into the same pass: subtract the u8 layout's correction,
dequantise by per-row activation and per-output-channel weight scales, add the bias, and
optionally apply the exact GELU, writing float32 without ever storing the int32 matrix.
"""

import numpy as np

from . import cpu
from .fastexp import _int32_bits
from .gelu import erf_as, gelu_erf, half_gauss
from .int8_activations import quantize_rows
from .int8_layout import (
    AMX_PANELS,
    AMX_ROWS,
    AVX2_PANELS,
    AVX2_ROWS,
    AVX512_PANELS,
    AVX512_ROWS,
    AVX512_VNNI_PANELS,
    AVX512_VNNI_ROWS,
    AVX_VNNI_PANELS,
    AVX_VNNI_ROWS,
    MAX_K,
    PANEL,
    PackedWeight,
    activation_shift,
    amx_begin,
    amx_config,
    amx_dot_block,
    amx_end,
    dot_tile,
    dot_tile_512,
    pack_weight,
    pad_rows,
    u8s8_dot_tile,
)
from .jit import device, fast_kernels_enabled, lowered_as, run_kernel

prange = range  # numba.prange once compiled (see jit.jit_kernel)

ROW_CHUNK = 96  # rows per job, a multiple of every tile's rows (4, 6, 8, 32)
COLUMN_GROUP = 256  # output channels per job, a multiple of every tile's (16, 32, 64)
NARROW_GROUP = 64  # ... when that leaves fewer than FEW_JOBS jobs (a short input)
FEW_JOBS = 16  # BERT-base at 1 x 16, N = 768: 3 jobs of 256 channels kept one of 2 threads idle

_dot_tile = lowered_as("minibert.kernels.simd:int16_dot_tile")(dot_tile)
_dot_tile_512 = lowered_as("minibert.kernels.simd:int16_dot_tile_512")(dot_tile_512)
_u8s8_tile_512 = lowered_as("minibert.kernels.simd:u8s8_dot_tile_512")(u8s8_dot_tile)
_u8s8_tile_256 = lowered_as("minibert.kernels.simd:u8s8_dot_tile_256")(u8s8_dot_tile)
_amx_block = lowered_as("minibert.kernels.simd:amx_dot_block")(amx_dot_block)
_amx_begin = lowered_as("minibert.kernels.simd:amx_begin")(amx_begin)
_amx_end = lowered_as("minibert.kernels.simd:amx_end")(amx_end)


def _int8_matmul_reference(a, b):
    """Shapes: a (M, K) int8, b (N, K) int8 -> (M, N) int32"""
    return a.astype(np.int32) @ b.astype(np.int32).T


@device
def _finish(out, tile, i, j0, a_scale, w_scale, bias, correction, gelu, raw):
    """Write a tile's int32 sums to out[i:, j0:] (the part inside out): minus the u8 layout's
    correction, wrapped to int32 (the sums are modulo 2^32); then, unless raw, dequantised by
    the row and channel scales, plus the bias, through GELU if asked.

    Row by row over 1-D views that start at 0: indexed at j0 + c, Numba wraps every index that
    might be negative around (numpy's negative indexing) and LLVM kept the loops scalar."""
    M, N = out.shape
    n = min(tile.shape[1], N - j0)
    half, one = np.float32(0.5), np.float32(1.0)
    correction_, w_scale_, bias_ = correction[j0 : j0 + n], w_scale[j0 : j0 + n], bias[j0 : j0 + n]
    for r in range(min(tile.shape[0], M - i)):
        sums, row, s = tile[r, :n], out[i + r, j0 : j0 + n], a_scale[i + r]
        if raw:
            for c in range(n):
                row[c] = np.int32(np.int64(sums[c]) - np.int64(correction_[c]))
        elif gelu:
            for c in range(n):
                total = np.int32(np.int64(sums[c]) - np.int64(correction_[c]))
                v = np.float32(total) * s * w_scale_[c] + bias_[c]
                row[c] = half * v * (one + erf_as(v, half_gauss(v)))
        else:
            for c in range(n):
                total = np.int32(np.int64(sums[c]) - np.int64(correction_[c]))
                row[c] = np.float32(total) * s * w_scale_[c] + bias_[c]


# One kernel per path: the same walk over the output, each with its own inner loop. A job is a
# chunk of ROW_CHUNK rows by a group of `group` output channels (COLUMN_GROUP, or NARROW_GROUP
# when a short input would leave too few jobs for the threads): the group's weight panels
# stay in L2 while every row chunk passes (jobs go group by group), the tile's rows of
# activations stay in L1 across the group, and each row of out is written `group` values
# at a time (writing it in 32-value pieces 12 KB apart took twice as long: the output is larger
# than the caches, and memory favours long runs). out is int32 (raw) or float32.
def _linear_avx2(out, a, a_scale, panels, correction, w_scale, bias, gelu, raw, group):
    M, N = out.shape
    rows, width = a.shape[0], AVX2_PANELS * PANEL
    chunks = (rows + ROW_CHUNK - 1) // ROW_CHUNK
    groups = (N + group - 1) // group
    for job in prange(chunks * groups):
        g, start = job // chunks, (job % chunks) * ROW_CHUNK
        tile = np.empty((AVX2_ROWS, width), np.int32)
        for i in range(start, min(start + ROW_CHUNK, rows), AVX2_ROWS):
            for j in range(g * group, min((g + 1) * group, N), width):
                _dot_tile(a, i, panels, j // PANEL, tile)
                _finish(out, tile, i, j, a_scale, w_scale, bias, correction, gelu, raw)


def _linear_avx512(out, a, a_scale, panels, correction, w_scale, bias, gelu, raw, group):
    M, N = out.shape
    rows, width = a.shape[0], AVX512_PANELS * PANEL
    chunks = (rows + ROW_CHUNK - 1) // ROW_CHUNK
    groups = (N + group - 1) // group
    for job in prange(chunks * groups):
        g, start = job // chunks, (job % chunks) * ROW_CHUNK
        tile = np.empty((AVX512_ROWS, width), np.int32)
        for i in range(start, min(start + ROW_CHUNK, rows), AVX512_ROWS):
            for j in range(g * group, min((g + 1) * group, N), width):
                _dot_tile_512(a, i, panels, j // PANEL, tile)
                _finish(out, tile, i, j, a_scale, w_scale, bias, correction, gelu, raw)


def _linear_avx_vnni(out, a, a_scale, panels, correction, w_scale, bias, gelu, raw, group):
    M, N = out.shape
    rows, width = a.shape[0], AVX_VNNI_PANELS * PANEL
    chunks = (rows + ROW_CHUNK - 1) // ROW_CHUNK
    groups = (N + group - 1) // group
    for job in prange(chunks * groups):
        g, start = job // chunks, (job % chunks) * ROW_CHUNK
        tile = np.empty((AVX_VNNI_ROWS, width), np.int32)
        for i in range(start, min(start + ROW_CHUNK, rows), AVX_VNNI_ROWS):
            for j in range(g * group, min((g + 1) * group, N), width):
                _u8s8_tile_256(a, i, panels, j // PANEL, tile)
                _finish(out, tile, i, j, a_scale, w_scale, bias, correction, gelu, raw)


def _linear_avx512_vnni(out, a, a_scale, panels, correction, w_scale, bias, gelu, raw, group):
    M, N = out.shape
    rows, width = a.shape[0], AVX512_VNNI_PANELS * PANEL
    chunks = (rows + ROW_CHUNK - 1) // ROW_CHUNK
    groups = (N + group - 1) // group
    for job in prange(chunks * groups):
        g, start = job // chunks, (job % chunks) * ROW_CHUNK
        tile = np.empty((AVX512_VNNI_ROWS, width), np.int32)
        for i in range(start, min(start + ROW_CHUNK, rows), AVX512_VNNI_ROWS):
            for j in range(g * group, min((g + 1) * group, N), width):
                _u8s8_tile_512(a, i, panels, j // PANEL, tile)
                _finish(out, tile, i, j, a_scale, w_scale, bias, correction, gelu, raw)


def _linear_amx(out, a, a_scale, panels, correction, w_scale, bias, gelu, raw, group, config):
    """The AMX kernel. Its accumulator tiles start at minus the correction (passed here as
    `correction`, already negated, see _run), so the tiles come out corrected. A block that lies
    wholly inside out is stored there straight from the tiles: as int32 when raw, otherwise as
    the int32 sums' bits in the float32 output, which _dequantise_in_place then turns into
    values while the strip of 32 rows is still in cache (through a separate int32 tile, the
    epilogue took longer than the products: 2,180 against 5,130 GOP/s at 1024 x 768 x 3072 on
    two threads). Blocks on the edges go through the tile and _finish."""
    M, N = out.shape
    rows, width = a.shape[0], AMX_PANELS * PANEL
    chunks = (rows + ROW_CHUNK - 1) // ROW_CHUNK
    groups = (N + group - 1) // group
    corrected = np.zeros(correction.shape[0], np.int32)  # for _finish: nothing left to subtract
    for job in prange(chunks * groups):
        g, start = job // chunks, (job % chunks) * ROW_CHUNK
        first, last = g * group, min((g + 1) * group, N)
        whole = first + (last - first) // width * width  # blocks from first to whole fit out
        tile = np.empty((AMX_ROWS, width), np.int32)
        _amx_begin(config)  # the tiles are per thread: configured per job, released after
        for i in range(start, min(start + ROW_CHUNK, rows), AMX_ROWS):
            inside = i + AMX_ROWS <= M
            for j in range(first, last, width):
                if inside and j < whole:
                    _amx_block(
                        a, i, panels, j // PANEL, out[i : i + AMX_ROWS, j : j + width], correction
                    )
                else:
                    _amx_block(a, i, panels, j // PANEL, tile, correction)
                    _finish(out, tile, i, j, a_scale, w_scale, bias, corrected, gelu, raw)
            if inside and not raw and whole > first:
                _dequantise_in_place(out, i, first, whole, a_scale, w_scale, bias, gelu)
        _amx_end()


@device
def _dequantise_in_place(out, i, j0, j1, a_scale, w_scale, bias, gelu):
    """out[i:i + AMX_ROWS, j0:j1] (float32) holds int32 sums as their bits: replace each by its
    value, sum x row scale x channel scale + bias, through GELU if asked. Reading and writing
    one array at one index lets LLVM vectorise the loop (kernels/gelu.py says why)."""
    half, one = np.float32(0.5), np.float32(1.0)
    w_scale_, bias_ = w_scale[j0:j1], bias[j0:j1]
    for r in range(AMX_ROWS):
        row, s = out[i + r, j0:j1], a_scale[i + r]
        if gelu:
            for c in range(j1 - j0):
                v = np.float32(_int32_bits(row[c])) * s * w_scale_[c] + bias_[c]
                row[c] = half * v * (one + erf_as(v, half_gauss(v)))
        else:
            for c in range(j1 - j0):
                row[c] = np.float32(_int32_bits(row[c])) * s * w_scale_[c] + bias_[c]


KERNELS = {
    "avx2": _linear_avx2,
    "avx512": _linear_avx512,
    "avx-vnni": _linear_avx_vnni,
    "avx512-vnni": _linear_avx512_vnni,
    "amx": _linear_amx,
}
AMX_CONFIG = amx_config()


def column_group(rows: int, columns: int) -> int:
    """The output channels of a job, for `rows` padded rows of activations and `columns`
    output channels: COLUMN_GROUP, or NARROW_GROUP where that would leave fewer than FEW_JOBS
    jobs for the threads (a short input)."""
    jobs = -(-rows // ROW_CHUNK) * -(-columns // COLUMN_GROUP)
    return COLUMN_GROUP if jobs >= FEW_JOBS else NARROW_GROUP


def _run(path, out, a, a_scale, packed, w_scale, bias, gelu, raw) -> bool:
    """Run `path`'s kernel; False when Numba cannot (the caller then runs the reference).
    A path this CPU cannot execute is a ValueError: its instructions would kill the process."""
    if not fast_kernels_enabled():  # the reference runs (and the CPU need not be read)
        return False
    if path not in cpu.int8_paths(respect_cap=False):
        raise ValueError(
            f"this CPU cannot run the int8 path {path!r} (it runs {cpu.int8_paths(False)}; "
            f"{cpu.skipped_int8_paths().get(path, '')})"
        )
    group = column_group(a.shape[0], out.shape[1])
    args = (out, a, a_scale, packed.panels, packed.correction, w_scale, bias, gelu, raw, group)
    if path == "amx":  # its tiles start at minus the correction
        args = args[:4] + (packed.negated,) + args[5:] + (AMX_CONFIG,)
    return run_kernel(KERNELS[path], args, parallel=True)


def _check_operand(name, x):
    if not isinstance(x, np.ndarray):
        raise ValueError(f"int8_matmul: {name} must be a numpy array, got {type(x).__name__}")
    if x.dtype != np.int8:
        raise ValueError(f"int8_matmul: {name} must be int8, got {x.dtype}")
    if x.ndim != 2:
        raise ValueError(f"int8_matmul: {name} must be 2-D, got shape {x.shape}")
    if x.shape[1] > MAX_K:
        raise ValueError(
            f"int8_matmul: K = {x.shape[1]} may overflow the int32 accumulator "
            f"(127^2 * K must stay below 2^31: K <= {MAX_K})"
        )


def _check(a, w):
    """Raise ValueError naming what is wrong with the operands of int8_matmul."""
    _check_operand("a", a)
    if not isinstance(w, PackedWeight):
        _check_operand("b", w)
    if a.shape[1] != w.shape[1]:
        raise ValueError(f"int8_matmul: K differs: a is {a.shape} (M, K) and b is {w.shape} (N, K)")


def _packed(w, path):
    """w as a PackedWeight: as given (its own path), or packed now for `path` (default: the
    CPU's best)."""
    if isinstance(w, PackedWeight):
        return w
    return pack_weight(w, path or cpu.int8_path())


def int8_matmul(a, b, path: str | None = None):
    """a @ b.T, exact in int32, for K <= MAX_K (127^2 * K < 2^31, K <= 133,144).

    Shapes: a (M, K) int8, b (N, K) int8 (a weight, (out, in)) or its PackedWeight -> (M, N)
    int32. path: a kernels/cpu.py path (default: the CPU's best; a PackedWeight's own path).
    Raises ValueError for other dtypes, shapes, or too large a K."""
    _check(a, b)
    if a.shape[0] == 0 or b.shape[0] == 0 or a.shape[1] == 0:
        return np.zeros((a.shape[0], b.shape[0]), dtype=np.int32)
    out = np.empty((a.shape[0], b.shape[0]), dtype=np.int32)  # the kernel writes every value
    packed = _packed(b, path)
    ones = np.ones(max(a.shape[0], packed.n), np.float32)  # unused scales: the result is raw
    bias = np.zeros(packed.n, np.float32)
    rows = pad_rows(np.ascontiguousarray(a), packed.path)
    if _run(packed.path, out, rows, ones, packed, ones, bias, False, True):
        return out
    return _int8_matmul_reference(a, packed.unpack())


def int8_linear(a_q, a_scale, w_q, w_scale, bias=None, gelu=False, path: str | None = None):
    """Dequantised int8 linear layer, in one pass:

        y = (a_q @ w_q.T) * a_scale[:, None] * w_scale[None, :] + bias,   then GELU if asked.

    Shapes: a_q (M, K) int8, a_scale (M,) per-row activation scales, w_q (N, K) int8 or its
    PackedWeight, w_scale (N,) per-output-channel weight scales, bias (N,) or None -> (M, N)
    float32. path as int8_matmul's."""
    _check(a_q, w_q)
    M, N = a_q.shape[0], w_q.shape[0]
    a_scale = np.ascontiguousarray(a_scale, dtype=np.float32)
    w_scale = np.ascontiguousarray(w_scale, dtype=np.float32)
    if a_scale.shape != (M,):
        raise ValueError(f"int8_linear: a_scale must have shape ({M},), got {a_scale.shape}")
    if w_scale.shape != (N,):
        raise ValueError(f"int8_linear: w_scale must have shape ({N},), got {w_scale.shape}")
    bias = np.zeros(N, np.float32) if bias is None else np.ascontiguousarray(bias, np.float32)
    if bias.shape != (N,):
        raise ValueError(f"int8_linear: bias must have shape ({N},), got {bias.shape}")
    packed = _packed(w_q, path)
    out = np.empty((M, N), np.float32)
    rows = pad_rows(np.ascontiguousarray(a_q), packed.path)
    if M and N and _run(packed.path, out, rows, a_scale, packed, w_scale, bias, bool(gelu), False):
        return out
    return _int8_linear_reference(a_q, a_scale, packed.unpack(), w_scale, bias, gelu)


def _int8_linear_reference(a_q, a_scale, w_q, w_scale, bias, gelu):
    """The readable epilogue: exact int32 product, then dequantise, bias and GELU in float32."""
    y = _int8_matmul_reference(a_q, w_q).astype(np.float32)
    y *= a_scale[:, None]
    y *= w_scale[None, :]
    y += bias
    if gelu:
        y = gelu_erf(y)
    return y


# --- the whole int8 linear layer, from float32 inputs ------------------------------------------
def int8_linear_rows(x, packed, w_scale, bias=None, gelu=False, quantized=None):
    """The int8 linear layer from float32 inputs: quantise each row of x, multiply by the packed
    int8 weight in int32, dequantise, add the bias, GELU if asked (the packed weight's path).
    quantized: quantize_rows(x, packed.path) when the caller has it already (layers that share
    their input quantise it once).

    Shapes: x (M, K) float32, packed: PackedWeight of (N, K), w_scale (N,), bias (N,) or None
    -> (M, N) float32."""
    M, K = x.shape
    if K != packed.k:
        raise ValueError(f"int8_linear_rows: x has {K} features, the weight expects {packed.k}")
    a, a_scale = quantized if quantized is not None else quantize_rows(x, packed.path)
    N = packed.n
    bias = np.zeros(N, np.float32) if bias is None else bias
    out = np.empty((M, N), np.float32)
    if M and N and _run(packed.path, out, a, a_scale, packed, w_scale, bias, bool(gelu), False):
        return out
    a_q = (a[:M, :K].astype(np.int16) - activation_shift(packed.path)).astype(np.int8)
    return _int8_linear_reference(a_q, a_scale, packed.unpack(), w_scale, bias, gelu)
