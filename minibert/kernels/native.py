"""Calls from compiled kernels into a native library: BLAS's cblas_sgemm, as a Numba intrinsic.

`sgemm_block(address, a, row, rows, w, col, cols, out)` computes

    out[row:row + rows, col:col + cols] = a[row:row + rows] @ w[col:col + cols].T

by calling the cblas_sgemm found at `address` (kernels/float32_linear.py finds it in the BLAS
numpy loaded) with row-major a, transposed w, alpha 1 and beta 0. The address is an argument,
not a constant, so the kernels that call it stay cacheable. a, w and out must have contiguous
rows; nothing is checked here.

Every integer argument goes as 64 bits. On x86-64 that suits both BLAS interfaces: an LP64
library reads the low 32 bits of the register or stack slot, and an ILP64 one (numpy's
OpenBLAS, with 64-bit integers) the whole. float32_linear uses this path only on x86-64.

Importing this module imports Numba and llvmlite; kernels/jit.py imports it only when a kernel
that calls it is compiled. Its readable statement is float32_linear.sgemm_block.
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

_I32, _I64, _F32 = ir.IntType(32), ir.IntType(64), ir.FloatType()
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112  # CBLAS_ORDER and CBLAS_TRANSPOSE values
# cblas_sgemm(order, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)
_SGEMM = ir.FunctionType(
    ir.VoidType(),
    [_I64, _I64, _I64, _I64, _I64, _I64, _F32, _F32.as_pointer(), _I64]
    + [_F32.as_pointer(), _I64, _F32, _F32.as_pointer(), _I64],
)


@intrinsic
def sgemm_block(typingctx, address, a, row, rows, w, col, cols, out):
    sig = types.void(address, a, row, rows, w, col, cols, out)

    def codegen(context, builder, signature, args):
        address_v, a_v, row_v, rows_v, w_v, col_v, cols_v, out_v = (
            builder.sext(v, _I64) if isinstance(v.type, ir.IntType) and v.type.width < 64 else v
            for v in args
        )
        A = context.make_array(signature.args[1])(context, builder, a_v)
        W = context.make_array(signature.args[4])(context, builder, w_v)
        C = context.make_array(signature.args[7])(context, builder, out_v)
        a_rows, w_rows, c_rows = (cgutils.unpack_tuple(builder, X.strides)[0] for X in (A, W, C))
        depth = cgutils.unpack_tuple(builder, A.shape)[1]
        four = ir.Constant(_I64, 4)

        def at(array, *terms):
            """array's data pointer moved by sum(index * stride) bytes, as float*."""
            base = builder.ptrtoint(array.data, _I64)
            for index, stride in terms:
                base = builder.add(base, builder.mul(index, stride))
            return builder.inttoptr(base, _F32.as_pointer())

        sgemm = builder.inttoptr(address_v, _SGEMM.as_pointer())
        builder.call(
            sgemm,
            [
                ir.Constant(_I64, ROW_MAJOR),
                ir.Constant(_I64, NO_TRANS),
                ir.Constant(_I64, TRANS),
                rows_v,
                cols_v,
                depth,
                ir.Constant(_F32, 1.0),
                at(A, (row_v, a_rows)),
                builder.sdiv(a_rows, four),  # leading dimensions in elements
                at(W, (col_v, w_rows)),
                builder.sdiv(w_rows, four),
                ir.Constant(_F32, 0.0),
                at(C, (row_v, c_rows), (col_v, four)),
                builder.sdiv(c_rows, four),
            ],
        )
        return context.get_dummy_value()

    return sig, codegen
