"""The inner loops of the int8 GEMM (one per CPU path) and the float32 register tile, written
as LLVM IR (Numba intrinsics).

Numba types every product of two int32 as int64, so LLVM cannot see that int16 x int16 pairs
summed into int32 lanes is all the integer GEMM needs: a plain Numba loop vectorises to
vpmulld on 8 lanes (0.3-0.6x of float32 sgemm). Here we state the loop in LLVM's vector types:

    for kk in range(K // 2):                          # one pair of k per step
        b = panel[kk]                                 # 16 columns x 2 k, as <32 x i16>
        for r in range(ROWS):                         # ROWS rows of a share that load
            pair = a[row + r, 2kk : 2kk + 2]          # 2 x i16, broadcast to all lanes
            acc[r] += even(pair * b) + odd(pair * b)  # <16 x i32> -> pairwise sums <8 x i32>

The last line, the product of sign-extended int16 vectors followed by the sum of its even and
odd lanes, is the pattern LLVM's x86 backend turns into one `vpmaddwd` (16 multiply-adds per
instruction on AVX2, twice the 8 float32 FMAs of a `vfmadd` lane set); on other CPUs it
compiles to their own widening multiplies. The accumulators are 2 x ROWS <8 x i32> vectors that
LLVM keeps in registers for the whole K loop: 8 of the 16 ymm registers for ROWS = 4.

`int16_dot_tile(a16, row, panels, p, tile)` computes

    tile[r, c] = sum_k a16[row + r, k] * w[16 p + c, k]     r < ROWS, c < 16

with a16 (M, K) int16 (K even), panels (P, K / 2, 16, 2) int16 holding w (N, K) as
panels[p, kk, c, t] = w[16 p + c, 2 kk + t], and tile (ROWS, 16) int32, all C-contiguous.
Nothing is bounds-checked: int8_matmul.py validates and pads before calling it. Its readable
numpy statement is `int8_matmul.dot_tile`, and tests compare the two.

The other paths (kernels/cpu.py chooses one) read activations shifted to u8 and weights as s8:

    u8s8_dot_tile   VNNI's `vpdpbusd`: four u8 x s8 products summed into each int32 lane, on
                    512-bit vectors (AVX-512 VNNI) or 256-bit ones (AVX-VNNI)
    amx_dot_block   AMX's `tdpbusd` on tiles: a 32 x 32 block of int32 results per call

Their readable numpy statements are int8_matmul.u8s8_dot_tile and int8_matmul.amx_dot_block.

`float32_tile_<rows>x<vectors>` is kernels/float32_tile.py's tile: rows x vectors <16 x float>
accumulators and one `llvm.fma` per (row, vector) and k (two fused multiply-adds on AVX2's
256-bit registers; a multiply and an add on a CPU without FMA).

Importing this module imports Numba and llvmlite; kernels/jit.py imports it only when a kernel
that uses an intrinsic is compiled.
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .cpu import host_features
from .float32_tile import LANES, ROWS
from .int8_layout import (
    AVX2_PANELS,
    AVX2_ROWS,
    AVX512_PANELS,
    AVX512_ROWS,
    AVX512_VNNI_PANELS,
    AVX512_VNNI_ROWS,
    AVX_VNNI_PANELS,
    AVX_VNNI_ROWS,
    PANEL,
)

_I8, _I16, _I32, _I64 = ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64)
_V8_I32 = ir.VectorType(_I32, 8)
_V16_I16 = ir.VectorType(_I16, 16)
_V16_I32 = ir.VectorType(_I32, 16)
_VOID = ir.VoidType()
_F32 = ir.FloatType()


def _pairwise_madd(builder, x, y):
    """<2n x i16> x <2n x i16> -> <n x i32>: lane i = x[2i] y[2i] + x[2i+1] y[2i+1] (vpmaddwd)."""
    width = x.type.count
    wide = ir.VectorType(_I32, width)
    half = ir.VectorType(_I32, width // 2)
    prod = builder.mul(builder.sext(x, wide), builder.sext(y, wide))
    even = ir.Constant(half, list(range(0, width, 2)))
    odd = ir.Constant(half, list(range(1, width, 2)))
    return builder.add(
        builder.shuffle_vector(prod, prod, even), builder.shuffle_vector(prod, prod, odd)
    )


def _address(builder, base, *terms):
    """base (an integer address) + sum of (index, stride) products, both i64."""
    for index, stride in terms:
        base = builder.add(base, builder.mul(index, stride))
    return base


def _load(builder, address, ty, align):
    return builder.load(builder.inttoptr(address, ty.as_pointer()), align=align)


def _broadcast(builder, value, vector_type):
    """A scalar in every lane of vector_type."""
    lanes = builder.insert_element(
        ir.Constant(vector_type, ir.Undefined), value, ir.Constant(_I32, 0)
    )
    mask = ir.Constant(ir.VectorType(_I32, vector_type.count), [0] * vector_type.count)
    return builder.shuffle_vector(lanes, lanes, mask)


def _int8_tile(rows, panels_per_tile, lanes, step_type, multiply_add):
    """A tile intrinsic `name(a, row, panels, p, tile)` for `rows` rows by `panels_per_tile`
    panels of 16 columns, accumulating in vectors of `lanes` int32. One step of k reads, per
    panel, PANEL // lanes vectors of `step_type` (64 bytes: a k-pair of int16, or a k-quad of
    bytes, for 16 columns), and per row the 4 bytes of a at that step, broadcast to every lane;
    multiply_add(builder, acc, a_lanes, b) is the instruction that adds their products."""
    acc_type = ir.VectorType(_I32, lanes)
    per_panel = PANEL // lanes  # vectors per panel per row

    @intrinsic
    def dot_tile(typingctx, a, row, panels, p, tile):
        sig = types.void(a, row, panels, p, tile)

        def codegen(context, builder, signature, args):
            a_val, row_val, panels_val, p_val, tile_val = args
            a_ty, _, panels_ty, _, tile_ty = signature.args
            A = context.make_array(a_ty)(context, builder, a_val)
            W = context.make_array(panels_ty)(context, builder, panels_val)
            T = context.make_array(tile_ty)(context, builder, tile_val)
            a_strides = cgutils.unpack_tuple(builder, A.strides)
            w_strides = cgutils.unpack_tuple(builder, W.strides)
            t_strides = cgutils.unpack_tuple(builder, T.strides)
            steps = cgutils.unpack_tuple(builder, W.shape)[1]
            zero = ir.Constant(acc_type, [0] * lanes)
            # allocas in the entry block: LLVM promotes them to registers (mem2reg)
            acc = [
                [
                    cgutils.alloca_once_value(builder, zero)
                    for _ in range(panels_per_tile * per_panel)
                ]
                for _ in range(rows)
            ]
            w_base = _address(
                builder, builder.ptrtoint(W.data, _I64), (_int64(builder, p_val), w_strides[0])
            )
            a_base = _address(
                builder, builder.ptrtoint(A.data, _I64), (_int64(builder, row_val), a_strides[0])
            )
            four = ir.Constant(_I64, 4)  # bytes of a per step: an int16 pair, or four u8
            with cgutils.for_range(builder, steps) as loop:
                k = loop.index
                w_at = _address(builder, w_base, (k, w_strides[1]))
                b = [  # a panel's step is 64 bytes: `per_panel` vectors of `lanes` columns
                    _load(
                        builder,
                        _address(
                            builder,
                            w_at,
                            (ir.Constant(_I64, j), w_strides[0]),
                            (ir.Constant(_I64, h), ir.Constant(_I64, lanes * 4)),
                        ),
                        step_type,
                        4,
                    )
                    for j in range(panels_per_tile)
                    for h in range(per_panel)
                ]
                for r in range(rows):
                    a_at = _address(
                        builder, a_base, (ir.Constant(_I64, r), a_strides[0]), (k, four)
                    )
                    a_lanes = _broadcast(builder, _load(builder, a_at, _I32, 1), acc_type)
                    for v in range(len(b)):
                        total = multiply_add(builder, builder.load(acc[r][v]), a_lanes, b[v])
                        builder.store(total, acc[r][v])
            t_base = builder.ptrtoint(T.data, _I64)
            for r in range(rows):
                for v in range(len(acc[r])):
                    at = _address(
                        builder,
                        t_base,
                        (ir.Constant(_I64, r), t_strides[0]),
                        (ir.Constant(_I64, v), ir.Constant(_I64, lanes * 4)),
                    )
                    builder.store(
                        builder.load(acc[r][v]),
                        builder.inttoptr(at, acc_type.as_pointer()),
                        align=4,
                    )
            return context.get_dummy_value()

        return sig, codegen

    return dot_tile


def _int16_tile(rows, panels_per_tile, lanes):
    """The int16-pair tile (`vpmaddwd`): a (int16, K even) and panels of k-pairs."""
    pair_type = ir.VectorType(_I16, 2 * lanes)  # `lanes` columns x one k-pair

    def multiply_add(builder, acc, a_lanes, b):
        return builder.add(acc, _pairwise_madd(builder, builder.bitcast(a_lanes, pair_type), b))

    return _int8_tile(rows, panels_per_tile, lanes, pair_type, multiply_add)


def _vnni_tile(rows, panels_per_tile, lanes):
    """The u8 x s8 tile (`vpdpbusd`, 512- or 256-bit): a (u8, K a multiple of 64) and panels of
    k-quads."""
    vec = ir.VectorType(_I32, lanes)
    name = f"llvm.x86.avx512.vpdpbusd.{lanes * 32}"

    def multiply_add(builder, acc, a_lanes, b):
        dot = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vec, [vec, vec, vec]), name
        )
        return builder.call(dot, [acc, a_lanes, b])

    return _int8_tile(rows, panels_per_tile, lanes, vec, multiply_add)


int16_dot_tile = _int16_tile(AVX2_ROWS, AVX2_PANELS, 8)
int16_dot_tile_512 = _int16_tile(AVX512_ROWS, AVX512_PANELS, 16)
u8s8_dot_tile_256 = _vnni_tile(AVX_VNNI_ROWS, AVX_VNNI_PANELS, 8)
u8s8_dot_tile_512 = _vnni_tile(AVX512_VNNI_ROWS, AVX512_VNNI_PANELS, 16)


def _int64(builder, value):
    return builder.sext(value, _I64) if value.type != _I64 else value


def _float32_tile(rows, vectors):
    """The float32 tile intrinsic for `rows` rows by `vectors` vectors of LANES columns."""
    vec = ir.VectorType(_F32, LANES)
    vector_bytes = ir.Constant(_I64, LANES * 4)
    fused = "fma" in host_features()

    @intrinsic
    def float32_dot_tile(typingctx, a, row, b, col, depth, tile):
        sig = types.void(a, row, b, col, depth, tile)

        def codegen(context, builder, signature, args):
            a_val, row_val, b_val, col_val, depth_val, tile_val = args
            a_ty, _, b_ty, _, _, tile_ty = signature.args
            A = context.make_array(a_ty)(context, builder, a_val)
            B = context.make_array(b_ty)(context, builder, b_val)
            T = context.make_array(tile_ty)(context, builder, tile_val)
            a_strides = cgutils.unpack_tuple(builder, A.strides)
            b_strides = cgutils.unpack_tuple(builder, B.strides)
            t_strides = cgutils.unpack_tuple(builder, T.strides)
            fma = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vec, [vec, vec, vec]), f"llvm.fma.v{LANES}f32"
            )
            zero = ir.Constant(vec, [0.0] * LANES)
            acc = [
                [cgutils.alloca_once_value(builder, zero) for _ in range(vectors)]
                for _ in range(rows)
            ]
            a_base = _address(
                builder, builder.ptrtoint(A.data, _I64), (_int64(builder, row_val), a_strides[0])
            )
            b_base = _address(
                builder,
                builder.ptrtoint(B.data, _I64),
                (_int64(builder, col_val), ir.Constant(_I64, 4)),
            )
            with cgutils.for_range(builder, _int64(builder, depth_val)) as loop:
                k = loop.index
                b_at = _address(builder, b_base, (k, b_strides[0]))
                b_row = [
                    _load(
                        builder,
                        _address(builder, b_at, (ir.Constant(_I64, v), vector_bytes)),
                        vec,
                        4,
                    )
                    for v in range(vectors)
                ]
                a_at = _address(builder, a_base, (k, a_strides[1]))
                for r in range(rows):
                    at = _address(builder, a_at, (ir.Constant(_I64, r), a_strides[0]))
                    lanes = _broadcast(builder, _load(builder, at, _F32, 4), vec)
                    for v in range(vectors):
                        total = builder.load(acc[r][v])
                        if fused:
                            total = builder.call(fma, [lanes, b_row[v], total])
                        else:
                            total = builder.fadd(builder.fmul(lanes, b_row[v]), total)
                        builder.store(total, acc[r][v])
            t_base = builder.ptrtoint(T.data, _I64)
            for r in range(rows):
                for v in range(vectors):
                    at = _address(
                        builder,
                        t_base,
                        (ir.Constant(_I64, r), t_strides[0]),
                        (ir.Constant(_I64, v), vector_bytes),
                    )
                    builder.store(
                        builder.load(acc[r][v]), builder.inttoptr(at, vec.as_pointer()), align=4
                    )
            return context.get_dummy_value()

        return sig, codegen

    return float32_dot_tile


float32_tile_6x4 = _float32_tile(ROWS, 4)  # ROWS is 6
float32_tile_6x2 = _float32_tile(ROWS, 2)
float32_tile_6x1 = _float32_tile(ROWS, 1)


def _amx(builder, name, *args):
    """Call the AMX intrinsic `name` (tile numbers as i8 constants, pointers, i64 strides)."""
    fn = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(_VOID, [a.type for a in args]), name
    )
    return builder.call(fn, list(args))


@intrinsic
def amx_begin(typingctx, config):
    """Load the tile configuration (the 64 bytes of int8_layout.amx_config) on this thread."""
    sig = types.void(config)

    def codegen(context, builder, signature, args):
        G = context.make_array(signature.args[0])(context, builder, args[0])
        _amx(builder, "llvm.x86.ldtilecfg", builder.bitcast(G.data, _I8.as_pointer()))
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def amx_end(typingctx):
    """Release the tiles of this thread (after its last amx_dot_block)."""
    sig = types.void()

    def codegen(context, builder, signature, args):
        _amx(builder, "llvm.x86.tilerelease")
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def amx_dot_block(typingctx, a8, row, panels, p, block, start):
    """block (32, 32) int32 = start[16 p : 16 p + 32] (on every row) + a8[row:row + 32] (u8) @
    the weight of panels p and p + 1 (s8), over all of K (a multiple of 64): the accumulator
    tiles are loaded from `start` with a row stride of 0 (one row read 16 times), then two A
    tiles by two B tiles go into them; block may be a view into a larger array (its row
    stride is the tile store's). The thread must have run amx_begin first."""
    sig = types.void(a8, row, panels, p, block, start)

    def codegen(context, builder, signature, args):
        a_val, row_val, panels_val, p_val, block_val, start_val = args
        a_ty, _, panels_ty, _, block_ty, start_ty = signature.args
        A = context.make_array(a_ty)(context, builder, a_val)
        W = context.make_array(panels_ty)(context, builder, panels_val)
        C = context.make_array(block_ty)(context, builder, block_val)
        S = context.make_array(start_ty)(context, builder, start_val)
        a_strides = cgutils.unpack_tuple(builder, A.strides)
        w_strides = cgutils.unpack_tuple(builder, W.strides)
        c_strides = cgutils.unpack_tuple(builder, C.strides)
        k_steps = builder.sdiv(cgutils.unpack_tuple(builder, W.shape)[1], ir.Constant(_I64, 16))
        row64 = builder.sext(row_val, _I64) if row_val.type != _I64 else row_val
        p64 = builder.sext(p_val, _I64) if p_val.type != _I64 else p_val
        ptr = _I8.as_pointer()

        def tile(n):
            return ir.Constant(_I8, n)

        start_base = _address(
            builder, builder.ptrtoint(S.data, _I64), (p64, ir.Constant(_I64, 16 * 4))
        )
        for c in range(4):  # C0 C1 / C2 C3: rows 0-15 / 16-31, columns 0-15 | 16-31
            at = _address(
                builder, start_base, (ir.Constant(_I64, 16 * (c % 2)), ir.Constant(_I64, 4))
            )
            _amx(
                builder,
                "llvm.x86.tileloadd64",
                tile(c),
                builder.inttoptr(at, ptr),
                ir.Constant(_I64, 0),  # every row of the tile: the same 16 starting values
            )
        a_base = _address(builder, builder.ptrtoint(A.data, _I64), (row64, a_strides[0]))
        w_base = _address(builder, builder.ptrtoint(W.data, _I64), (p64, w_strides[0]))
        sixteen, sixty_four = ir.Constant(_I64, 16), ir.Constant(_I64, 64)
        with cgutils.for_range(builder, k_steps) as loop:
            ks = loop.index  # 64 bytes of K per step: 16 quads of the panel
            a_at = _address(builder, a_base, (ks, sixty_four))
            for t in range(2):  # A tiles 4, 5: rows 0-15 and 16-31, 64 bytes each
                at = _address(builder, a_at, (ir.Constant(_I64, 16 * t), a_strides[0]))
                _amx(
                    builder,
                    "llvm.x86.tileloadd64",
                    tile(4 + t),
                    builder.inttoptr(at, ptr),
                    a_strides[0],
                )
            for t in range(2):  # B tiles 6, 7: panels p and p + 1, 16 quads of 64 bytes
                at = _address(
                    builder,
                    w_base,
                    (ir.Constant(_I64, t), w_strides[0]),
                    (builder.mul(ks, sixteen), w_strides[1]),
                )
                _amx(
                    builder,
                    "llvm.x86.tileloadd64",
                    tile(6 + t),
                    builder.inttoptr(at, ptr),
                    w_strides[1],
                )
            for c, (ta, tb) in enumerate(((4, 6), (4, 7), (5, 6), (5, 7))):
                _amx(builder, "llvm.x86.tdpbusd", tile(c), tile(ta), tile(tb))
        c_base = builder.ptrtoint(C.data, _I64)
        for c in range(4):
            at = _address(
                builder,
                c_base,
                (ir.Constant(_I64, 16 * (c // 2)), c_strides[0]),
                (ir.Constant(_I64, 16 * (c % 2)), ir.Constant(_I64, 4)),
            )
            _amx(builder, "llvm.x86.tilestored64", tile(c), builder.inttoptr(at, ptr), c_strides[0])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def float32_from_bits(typingctx, bits):
    """The float32 with the IEEE 754 bits of an int32: one bitcast, which LLVM vectorises
    (Numba has no scalar view). Its numpy statement is fastexp.float32_from_bits."""
    sig = types.float32(types.int32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return sig, codegen


@intrinsic
def int32_bits(typingctx, value):
    """The IEEE 754 bits of a float32 as an int32 (float32_from_bits's inverse): one bitcast.
    Its numpy statement is fastexp.int32_bits."""
    sig = types.int32(types.float32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return sig, codegen


@intrinsic
def fused_multiply_add(typingctx, a, b, c):
    """a * b + c for float32, rounded once (`llvm.fma.f32`): one vfmadd, which LLVM vectorises
    like any arithmetic. Its numpy statement is fastexp.fused_multiply_add. A CPU without FMA
    (none of those with AVX2) gets a multiply and an add, rounded twice, rather than libm's
    slow fmaf."""
    sig = types.float32(types.float32, types.float32, types.float32)
    fused = "fma" in host_features()

    def codegen(context, builder, signature, args):
        a, b, c = args
        if not fused:
            return builder.fadd(builder.fmul(a, b), c)
        f32 = ir.FloatType()
        fma = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(f32, [f32, f32, f32]), "llvm.fma.f32"
        )
        return builder.call(fma, [a, b, c])

    return sig, codegen
