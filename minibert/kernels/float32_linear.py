"""Float32 linear layers for inference, in Numba's threads, bias and GELU added in cache.

    y = x W^T + b   (then GELU, for the feed-forward's first layer)
    x (M, K), W (N, K) in PyTorch's (out, in) layout, b (N,) -> y (M, N)

numpy's `x @ W.T` runs on BLAS's own thread pool, and every other kernel of a forward runs on
Numba's. On two cores the pools take turns: each product wakes BLAS's sleeping thread, each
kernel after it wakes Numba's, and in a virtual machine a sleeping core takes a long time to
wake (0.3-0.6 ms per product after a pause, measured on the Intel Xeon: MiniLM at 1 x 128
tokens took 60 ms instead of 27). Here the product is cut into jobs that Numba's threads share,
one pool does all the work, and its threads can stay awake between the kernels of a forward
(kernels/jit.py's thread policy). Two ways to do a job:

    BLAS blocks   blocks of rows by blocks of output channels, each one call of the same BLAS's
                  cblas_sgemm, one-threaded (kernels/native.py's intrinsic calls it by address),
                  then the bias (and GELU) on the block before it leaves the cache.
    transposed    for few rows (up to FEW_ROWS) on CPUs with 512-bit vectors: y^T = W x^T with
    tiles         kernels/float32_tile.py's register tile, six output channels (six rows of W,
                  read where they are, one number at a time) by up to 64 rows of x (x^T's rows
                  hold them side by side, as whole vectors), for all of K. Each job takes a run
                  of channels, adds the bias (and GELU) to its tile and writes it into y.

Why the second: BLAS packs both operands into its own layout at every call, which is most of
the work when rows are few: at 16 rows it ran at 53 GFLOP/s on MiniLM's shapes. The transposed
tiles read W once, as it is, and transpose only x (M x K, small when M is): cycling through a
forward's 36 weights of MiniLM's shapes (so that they are not in cache, as in a forward), two
threads of an Intel Xeon with AVX-512, they ran at 136 / 142 / 176 / 188 GFLOP/s at 16 / 32 /
64 / 128 rows against BLAS blocks' 53 / 82 / 125 / 181, and on BERT-base's shapes 105 / 215 /
216 against 54 / 139 / 189 at 16 / 64 / 128 rows; at 256 rows BLAS was ahead (210 against 187).
On AVX2 the wide tile would not fit the 16 vector registers, and no AVX2 machine measured the
narrow one, so those CPUs take the BLAS blocks.

The cblas_sgemm comes from the BLAS numpy loaded (found through threadpoolctl; numpy's wheels
ship OpenBLAS), checked once on a small product against numpy. Without it (another BLAS, not
x86-64, no threadpoolctl), and for anything but float32 numpy arrays, linear runs the readable
reference below, numpy's product.
"""

import ctypes
import platform

import numpy as np

from .cpu import float32_path
from .float32_tile import LANES, ROWS, dot_tile_6x1, dot_tile_6x2, dot_tile_6x4
from .gelu import erf_as, gelu_erf, half_gauss
from .jit import (
    blas_libraries,
    device,
    fast_kernels_enabled,
    kernels_call_blas,
    lowered_as,
    run_kernel,
    single_threaded_blas,
)

prange = range  # numba.prange once compiled (see jit.jit_kernel)

# cblas_sgemm's names, with numpy's OpenBLAS (64-bit integers, prefixed) first
SGEMM_NAMES = ("scipy_cblas_sgemm64_", "cblas_sgemm64_", "scipy_cblas_sgemm", "cblas_sgemm")
# rows of a job when the rows are split (large inputs): on MiniLM's and BERT-base's shapes with
# 1,024 rows and 2 threads, blocks of 512 rows ran at 281-302 GFLOP/s, of 256 at 255-284, of
# 128 at 220-241 (OpenBLAS packs each block's operands again; Intel Xeon, AVX-512)
ROW_BLOCK = 512
FEW_ROWS = 128  # at most this many rows take the transposed tiles (see the module docstring)
TILE_WIDTH = 4 * LANES  # rows of x in the widest tile: 64
LAYER_SLOTS = 3  # layers per kernel call, whatever their number (_slots): q, k and v
_STATE = {"sgemm": None}


def _linear_reference(x, w, bias, gelu):
    """The readable layer: numpy's product, the bias, GELU. Shapes: x (M, K), w (N, K)."""
    y = x @ w.T  # (M, N)
    if bias is not None:
        y += bias
    return gelu_erf(y) if gelu else y


def sgemm(address, trans_a, trans_b, a, b, out):
    """out = op(a) @ op(b), op(t) = t.T if trans_ else t (the readable statement of
    kernels/native.py's sgemm, which calls BLAS's cblas_sgemm at `address`)."""
    out[:, :] = (a.T if trans_a else a) @ (b.T if trans_b else b)


_sgemm = lowered_as("minibert.kernels.native:sgemm")(sgemm)


# The epilogues go row by row, over contiguous 1-D views that start at 0: indexed with an offset
# that might be negative, Numba wraps each index around (numpy's negative indexing) element by
# element, and a 2-D view's strides are unknown to the compiler; either way LLVM kept the loop
# scalar (GELU took 5.6 ms instead of 0.8 for 1024 x 1536 values).
@device
def _add_bias(row, bias):
    """row += bias."""
    for c in range(row.shape[0]):
        row[c] += bias[c]


@device
def _add_bias_gelu(row, bias):
    """row <- GELU(row + bias), in place (so LLVM vectorises it)."""
    half, one = np.float32(0.5), np.float32(1.0)
    for c in range(row.shape[0]):
        v = row[c] + bias[c]
        row[c] = half * v * (one + erf_as(v, half_gauss(v)))


def _linear_numba(address, x, weights, biases, outs, layers, row_block, col_block, add_bias, gelu):
    """outs[i] = x @ weights[i].T (+ biases[i]) (GELU) for the first `layers` of the layers
    (tuples of LAYER_SLOTS, _slots: q, k and v share their input), in jobs of row_block x
    col_block, all in one parallel loop."""
    M, N = outs[0].shape
    groups = (N + col_block - 1) // col_block
    chunks = (M + row_block - 1) // row_block
    per_layer = chunks * groups
    for job in prange(layers * per_layer):
        layer, part = job // per_layer, job % per_layer
        w, bias, out = weights[layer], biases[layer], outs[layer]
        row, col = (part // groups) * row_block, (part % groups) * col_block
        rows, cols = min(row_block, M - row), min(col_block, N - col)
        block = out[row : row + rows, col : col + cols]
        _sgemm(address, 0, 1, x[row : row + rows], w[col : col + cols], block)
        for r in range(row, row + rows):
            if gelu:
                _add_bias_gelu(out[r, col : col + cols], bias[col : col + cols])
            elif add_bias:
                _add_bias(out[r, col : col + cols], bias[col : col + cols])


@device
def _add_constant(row, value):
    """row += value."""
    for c in range(row.shape[0]):
        row[c] += value


@device
def _add_constant_gelu(row, value):
    """row <- GELU(row + value), in place."""
    half, one = np.float32(0.5), np.float32(1.0)
    for c in range(row.shape[0]):
        v = row[c] + value
        row[c] = half * v * (one + erf_as(v, half_gauss(v)))


@device
def _tile_rows(w, channel, xt, first, depth, tile, width):
    """tile[:, :width] = w[channel:channel + ROWS, :depth] @ xt[:depth, first:first + width],
    width 16, 32, 48 or 64: the widest tiles that cover it."""
    if width == 4 * LANES:
        dot_tile_6x4(w, channel, xt, first, depth, tile)
    elif width >= 2 * LANES:
        dot_tile_6x2(w, channel, xt, first, depth, tile[:, : 2 * LANES])
        if width > 2 * LANES:
            dot_tile_6x1(w, channel, xt, first + 2 * LANES, depth, tile[:, 2 * LANES : width])
    else:
        dot_tile_6x1(w, channel, xt, first, depth, tile[:, :LANES])


@device(inline=False)  # compiled once, whatever tuple of layers the kernel is given
def _transposed_block(w, c0, bias, xt, rows, out, add_bias, gelu, tile, transposed):
    """y[:rows, c0:c0 + ROWS] (fewer where the weight ends) for one block of ROWS channels, as
    W[c0:c0 + ROWS] x^T in tiles of up to 64 rows, each with its bias (and GELU) added before
    it is written: into out (rows, N) (tile[c, r] is y[r0 + r, c0 + c]), or with `transposed`
    into out (N, width), y^T, whole tile rows at a time. The columns of y^T past `rows` then
    hold values computed from x^T's zero padding, which only ever reach rows past `rows` of a
    product that reads y^T as its x^T. A block that the weight's channels do not fill reads a
    zero-padded copy of them."""
    N = w.shape[0]
    K, width = xt.shape
    channels = min(ROWS, N - c0)
    a, a0 = w, c0
    if channels < ROWS:
        a, a0 = np.zeros((ROWS, K), np.float32), 0
        for c in range(channels):  # (a loop: Numba's slice assignment takes seconds to compile)
            for k in range(K):
                a[c, k] = w[c0 + c, k]
    for r0 in range(0, width, TILE_WIDTH):
        columns = min(TILE_WIDTH, width - r0)
        _tile_rows(a, a0, xt, r0, K, tile, columns)
        valid = min(columns, rows - r0)
        for c in range(channels):
            if gelu:
                _add_constant_gelu(tile[c, :valid], bias[c0 + c])
            elif add_bias:
                _add_constant(tile[c, :valid], bias[c0 + c])
        if transposed:
            for c in range(channels):
                row, sums = out[c0 + c], tile[c]
                for r in range(columns):
                    row[r0 + r] = sums[r]
        else:
            for r in range(valid):
                row = out[r0 + r]
                for c in range(channels):
                    row[c0 + c] = tile[c, r]


def _transpose_rows(x, xt):
    """xt (K, width) = x (M, K) transposed, zeros in the columns past M, in parallel over blocks
    of 16 values of k (one cache line of each row of x)."""
    M, K = x.shape
    for k_block in prange((K + LANES - 1) // LANES):
        first, last = k_block * LANES, min(k_block * LANES + LANES, K)
        for r in range(M):
            row = x[r]
            for k in range(first, last):
                xt[k, r] = row[k]
        for k in range(first, last):
            for r in range(M, xt.shape[1]):
                xt[k, r] = 0


def _linear_transposed(xt, rows, weights, biases, outs, layers, groups, add_bias, gelu, transposed):
    """outs[i] = x @ weights[i].T (+ biases[i]) (GELU) for the first `layers` of the layers
    (tuples of LAYER_SLOTS, _slots), as y^T = W x^T
    from xt = x^T (_transpose_rows) of `rows` rows, y written as rows, or transposed (see
    _transposed_block): `groups` jobs per layer, each over a run of ROWS-channel blocks. (Two
    kernels, not one with two parallel loops: Numba compiles this one again for every number of
    layers, and a parallel loop is what takes long to compile.)"""
    N = weights[0].shape[0]
    blocks = (N + ROWS - 1) // ROWS
    per_group = (blocks + groups - 1) // groups
    for job in prange(layers * groups):
        layer, group = job // groups, job % groups
        tile = np.empty((ROWS, TILE_WIDTH), np.float32)
        for block in range(group * per_group, min(blocks, (group + 1) * per_group)):
            w, bias, out = weights[layer], biases[layer], outs[layer]
            _transposed_block(
                w, block * ROWS, bias, xt, rows, out, add_bias, gelu, tile, transposed
            )


def _transposed_input(x):
    """x (M, K) contiguous as the transposed tiles read it: xt (K, M rounded up to LANES),
    zeros past M (_transpose_rows); None where that kernel cannot be compiled."""
    M, K = x.shape
    xt = np.empty((K, -(-M // LANES) * LANES), np.float32)
    return xt if run_kernel(_transpose_rows, (x, xt), parallel=True) else None


def transposed_groups(columns: int, threads: int) -> int:
    """Jobs per layer of the transposed tiles: two per thread (one where a single thread runs),
    no more than the weight has blocks of ROWS channels."""
    return max(1, min(2 * threads if threads > 1 else 1, -(-columns // ROWS)))


def linear_path(rows: int) -> str:
    """ "transposed", "blas" or "reference": how linear computes a float32 product of `rows`
    rows here (the module docstring says why)."""
    if not fast_kernels_enabled():
        return "reference"
    if rows <= FEW_ROWS and float32_path() == "avx512":
        return "transposed"
    return "blas" if sgemm_address() is not None else "reference"


def plan_jobs(rows: int, columns: int, threads: int) -> tuple:
    """(row_block, col_block) of the jobs for `threads` threads: few rows (a short input) are
    split by output channels, `threads` groups of a multiple of 16; many rows by ROW_BLOCK-ish
    blocks, a multiple of `threads` of them, each over every channel."""
    if threads <= 1:
        return max(rows, 1), max(columns, 1)
    if rows <= ROW_BLOCK:
        group = -(-columns // threads)
        return max(rows, 1), max(-(-group // 16) * 16, 1)
    chunks = -(-rows // ROW_BLOCK)
    chunks = -(-chunks // threads) * threads
    return -(-rows // chunks), columns


def sgemm_address() -> int | None:
    """The address of the cblas_sgemm of numpy's BLAS, checked on a small product (found
    once); None where there is none we can use."""
    if _STATE["sgemm"] is None:
        _STATE["sgemm"] = _find_sgemm() or 0
        if _STATE["sgemm"]:
            kernels_call_blas()
    return _STATE["sgemm"] or None


def _find_sgemm() -> int | None:
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None  # the 64-bit-integer calling trick of kernels/native.py is x86-64's
    for path in blas_libraries():
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for name in SGEMM_NAMES:
            function = getattr(library, name, None)
            if function is not None and _sgemm_works(function):
                return ctypes.cast(function, ctypes.c_void_p).value
    return None


def _sgemm_works(function) -> bool:
    """Whether `function`, called as kernels/native.py calls it, gives numpy's product."""
    i64, f32, ptr = ctypes.c_int64, ctypes.c_float, ctypes.c_void_p
    function.argtypes = [i64] * 6 + [f32, ptr, i64, ptr, i64, f32, ptr, i64]
    function.restype = None
    rng = np.random.default_rng(0)
    a, w = rng.standard_normal((3, 5), np.float32), rng.standard_normal((4, 5), np.float32)
    out = np.full((3, 4), np.nan, np.float32)
    function(101, 111, 112, 3, 4, 5, 1.0, a.ctypes.data, 5, w.ctypes.data, 5, 0.0,
             out.ctypes.data, 4)  # fmt: skip
    return bool(np.allclose(out, a @ w.T, rtol=1e-5, atol=1e-5))


def _slots(items: tuple) -> tuple:
    """items (at most LAYER_SLOTS) padded to LAYER_SLOTS with copies of the first, which
    the kernels never reach (they take the count of real layers): Numba compiles a kernel once
    per length of a tuple argument, and each compile of _linear_transposed takes about 1.6 s
    of a first forward (Intel Xeon), so single layers and q, k, v share one."""
    return tuple(items) + (items[0],) * (LAYER_SLOTS - len(items))


def linear(x, w, bias=None, gelu=False):
    """y = x @ w.T + bias, then GELU if asked (inference). Shapes: x (M, K) float32, w (N, K)
    float32, bias (N,) or None -> (M, N) float32; other dtypes take numpy's product."""
    return linears(x, (w,), (bias,), gelu)[0]


def linears(x, weights, biases, gelu=False):
    """[x @ w.T + b for each (w, b)], then GELU if asked, in one parallel loop: the layers that
    read the same input (attention's q, k and v), at inference. Shapes: x (M, K) float32,
    each w (N, K) float32 (the same N), each b (N,) or None -> a list of (M, N) float32."""
    M, K = x.shape
    for w in weights:
        if w.ndim != 2 or w.shape[1] != K:
            raise ValueError(f"linear: x has {K} features, the weight (out, in) {w.shape} expects "
                             f"{w.shape[-1]}")  # fmt: skip
    if len(weights) > LAYER_SLOTS:  # more than the kernels take at once
        first, rest = slice(0, LAYER_SLOTS), slice(LAYER_SLOTS, None)
        return linears(x, weights[first], biases[first], gelu) + linears(
            x, weights[rest], biases[rest], gelu
        )
    N = weights[0].shape[0]
    with_bias = [b is not None for b in biases]
    if (
        M
        and N
        and K
        and all(isinstance(t, np.ndarray) and t.dtype == np.float32 for t in (x, *weights))
        and all(w.shape == weights[0].shape for w in weights)
        and all(b is None or (b.dtype == np.float32 and b.shape == (N,)) for b in biases)
        and len(set(with_bias)) == 1
        and (path := linear_path(M)) != "reference"
    ):
        import numba  # loaded: fast_kernels_enabled imported it

        x = np.ascontiguousarray(x)
        ws = tuple(np.ascontiguousarray(w) for w in weights)
        bs = tuple(
            np.zeros(N, np.float32) if b is None else np.ascontiguousarray(b) for b in biases
        )
        outs = tuple(np.empty((M, N), np.float32) for _ in weights)
        layers, threads = len(weights), numba.get_num_threads()
        ws, bs, slots = _slots(ws), _slots(bs), _slots(outs)
        if path == "transposed" and (xt := _transposed_input(x)) is not None:
            groups = transposed_groups(N, threads)
            args = (xt, M, ws, bs, slots, layers, groups, with_bias[0], gelu, False)
            if run_kernel(_linear_transposed, args, parallel=True):
                return list(outs)
        if sgemm_address() is not None:  # also where the tiles could not be compiled
            row_block, col_block = plan_jobs(M, N, threads)
            args = (sgemm_address(), x, ws, bs, slots, layers, row_block, col_block)
            with single_threaded_blas():
                if run_kernel(_linear_numba, (*args, with_bias[0], gelu), parallel=True):
                    return list(outs)
    return [_linear_reference(x, w, b, gelu) for w, b in zip(weights, biases, strict=True)]


def feed_forward(x, w_up, b_up, w_down, b_down=None):
    """GELU(x @ w_up.T + b_up) @ w_down.T (+ b_down): the feed-forward block at inference.

    On the transposed path (few rows, kernels/float32_linear.py's docstring) the wide GELU
    output stays transposed between the two products: the first writes y^T whole tile rows at
    a time instead of scattering them into rows, and the second reads it as its x^T instead of
    transposing it again. The values are those of the two linear calls exactly (the same sums in
    the same order); elsewhere it is those two calls. Shapes: x (M, C) float32, w_up (F, C),
    b_up (F,) or None, w_down (C', F), b_down (C',) or None -> (M, C') float32."""
    M, C = x.shape
    F = w_up.shape[0]
    arrays = (x, w_up, w_down) + tuple(b for b in (b_up, b_down) if b is not None)
    if (
        M
        and C
        and F
        and all(isinstance(t, np.ndarray) and t.dtype == np.float32 for t in arrays)
        and w_up.shape[1] == C
        and w_down.shape[1] == F
        and (b_up is None or b_up.shape == (F,))
        and (b_down is None or b_down.shape == (w_down.shape[0],))
        and linear_path(M) == "transposed"
    ):
        import numba  # loaded: linear_path asked fast_kernels_enabled

        threads = numba.get_num_threads()
        N = w_down.shape[0]
        x, w_up, w_down = (np.ascontiguousarray(t) for t in (x, w_up, w_down))
        xt = _transposed_input(x)
        if xt is not None:
            ht = np.empty((F, xt.shape[1]), np.float32)  # GELU(x W_up^T + b_up), transposed
            y = np.empty((M, N), np.float32)
            up_bias = np.zeros(F, np.float32) if b_up is None else np.ascontiguousarray(b_up)
            down_bias = np.zeros(N, np.float32) if b_down is None else np.ascontiguousarray(b_down)
            up_groups, down_groups = (transposed_groups(n, threads) for n in (F, N))
            up = (xt, M, *map(_slots, ((w_up,), (up_bias,), (ht,))), 1, up_groups, True, True,
                  True)  # fmt: skip
            down = (ht, M, *map(_slots, ((w_down,), (down_bias,), (y,))), 1, down_groups,
                    b_down is not None, False, False)  # fmt: skip
            if run_kernel(_linear_transposed, up, parallel=True) and run_kernel(
                _linear_transposed, down, parallel=True
            ):
                return y
    return linear(linear(x, w_up, b_up, gelu=True), w_down, b_down)
