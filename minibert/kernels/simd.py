"""The int8 GEMM's inner loop, written as LLVM vector IR (a Numba intrinsic).

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

Importing this module imports Numba and llvmlite; kernels/jit.py imports it only when a kernel
that uses the intrinsic is compiled.
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

ROWS = 4  # rows of a per tile; 2 x ROWS accumulators + 2 panel vectors + 1 broadcast in registers
PANEL = 16  # columns per panel: two <8 x i32> accumulators per row

_I16, _I32, _I64 = ir.IntType(16), ir.IntType(32), ir.IntType(64)
_V8_I32 = ir.VectorType(_I32, 8)
_V16_I16 = ir.VectorType(_I16, 16)
_V16_I32 = ir.VectorType(_I32, 16)


def _pairwise_madd(builder, x, y):
    """<16 x i16> x <16 x i16> -> <8 x i32>: lane i = x[2i] y[2i] + x[2i+1] y[2i+1] (vpmaddwd)."""
    prod = builder.mul(builder.sext(x, _V16_I32), builder.sext(y, _V16_I32))
    even = ir.Constant(_V8_I32, list(range(0, 16, 2)))
    odd = ir.Constant(_V8_I32, list(range(1, 16, 2)))
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


@intrinsic
def int16_dot_tile(typingctx, a16, row, panels, p, tile):
    sig = types.void(a16, row, panels, p, tile)

    def codegen(context, builder, signature, args):
        a_val, row_val, panels_val, p_val, tile_val = args
        a_ty, _, panels_ty, _, tile_ty = signature.args
        A = context.make_array(a_ty)(context, builder, a_val)
        W = context.make_array(panels_ty)(context, builder, panels_val)
        T = context.make_array(tile_ty)(context, builder, tile_val)
        a_strides = cgutils.unpack_tuple(builder, A.strides)
        w_strides = cgutils.unpack_tuple(builder, W.strides)
        t_strides = cgutils.unpack_tuple(builder, T.strides)
        k_pairs = builder.sdiv(cgutils.unpack_tuple(builder, A.shape)[1], ir.Constant(_I64, 2))
        row64 = builder.sext(row_val, _I64) if row_val.type != _I64 else row_val
        p64 = builder.sext(p_val, _I64) if p_val.type != _I64 else p_val

        zero = ir.Constant(_V8_I32, [0] * 8)
        # allocas in the entry block: LLVM promotes them to registers (mem2reg)
        acc = [[cgutils.alloca_once_value(builder, zero) for _ in range(2)] for _ in range(ROWS)]
        w_base = _address(builder, builder.ptrtoint(W.data, _I64), (p64, w_strides[0]))
        a_base = _address(builder, builder.ptrtoint(A.data, _I64), (row64, a_strides[0]))
        four = ir.Constant(_I64, 4)  # bytes in a pair of int16
        broadcast = ir.Constant(_V8_I32, [0] * 8)

        with cgutils.for_range(builder, k_pairs) as loop:
            kk = loop.index
            w_at = _address(builder, w_base, (kk, w_strides[1]))
            halves = (
                _load(builder, w_at, _V16_I16, 2),  # columns 0-7, both k of the pair
                _load(builder, builder.add(w_at, ir.Constant(_I64, 32)), _V16_I16, 2),  # 8-15
            )
            for r in range(ROWS):
                a_at = _address(builder, a_base, (ir.Constant(_I64, r), a_strides[0]), (kk, four))
                pair = _load(builder, a_at, _I32, 2)  # a[row + r, 2kk] and a[row + r, 2kk + 1]
                lanes = builder.insert_element(
                    ir.Constant(_V8_I32, ir.Undefined), pair, ir.Constant(_I32, 0)
                )
                lanes = builder.bitcast(builder.shuffle_vector(lanes, lanes, broadcast), _V16_I16)
                for h in range(2):
                    total = builder.add(
                        builder.load(acc[r][h]), _pairwise_madd(builder, lanes, halves[h])
                    )
                    builder.store(total, acc[r][h])

        t_base = builder.ptrtoint(T.data, _I64)
        for r in range(ROWS):
            for h in range(2):
                at = _address(
                    builder,
                    t_base,
                    (ir.Constant(_I64, r), t_strides[0]),
                    (ir.Constant(_I64, h), ir.Constant(_I64, 32)),
                )
                builder.store(
                    builder.load(acc[r][h]), builder.inttoptr(at, _V8_I32.as_pointer()), align=4
                )
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
