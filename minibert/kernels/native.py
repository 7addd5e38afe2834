"""Calls from compiled kernels into a native library: BLAS's cblas_sgemm, as a Numba intrinsic.

`sgemm(address, trans_a, trans_b, a, b, out)` computes

    out = op(a) @ op(b),    op(t) = t.T if trans_ else t

by calling the cblas_sgemm found at `address` (kernels/float32_linear.py finds it in the BLAS
numpy loaded), row-major, alpha 1 and beta 0; the sizes come from out's shape and a's, the
leading dimensions from each array's row stride, so a, b and out may be views into larger
arrays (blocks of a product) as long as their rows are contiguous. The address is an argument,
not a constant, so the kernels that call it stay cacheable. Nothing is checked here.

Every integer argument goes as 64 bits. On x86-64 that suits both BLAS interfaces: an LP64
library reads the low 32 bits of the register or stack slot, and an ILP64 one (numpy's
OpenBLAS, with 64-bit integers) the whole. float32_linear uses this path only on x86-64.

Importing this module imports Numba and llvmlite; kernels/jit.py imports it only when a kernel
that calls it is compiled. Its readable statement is float32_linear.sgemm.
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
def sgemm(typingctx, address, trans_a, trans_b, a, b, out):
    sig = types.void(address, trans_a, trans_b, a, b, out)

    def codegen(context, builder, signature, args):
        address_v, trans_a_v, trans_b_v = (_int64(builder, v) for v in args[:3])
        A, B, C = (
            context.make_array(ty)(context, builder, value)
            for ty, value in zip(signature.args[3:], args[3:], strict=True)
        )
        a_shape = cgutils.unpack_tuple(builder, A.shape)
        m, n = cgutils.unpack_tuple(builder, C.shape)
        transposed = builder.icmp_signed("!=", trans_a_v, ir.Constant(_I64, 0))
        depth = builder.select(transposed, a_shape[0], a_shape[1])
        four = ir.Constant(_I64, 4)

        def lead(array):  # the row stride, in elements
            return builder.sdiv(cgutils.unpack_tuple(builder, array.strides)[0], four)

        def trans(flag):
            is_set = builder.icmp_signed("!=", flag, ir.Constant(_I64, 0))
            return builder.select(is_set, ir.Constant(_I64, TRANS), ir.Constant(_I64, NO_TRANS))

        call = builder.inttoptr(address_v, _SGEMM.as_pointer())
        builder.call(
            call,
            [
                ir.Constant(_I64, ROW_MAJOR),
                trans(trans_a_v),
                trans(trans_b_v),
                m,
                n,
                depth,
                ir.Constant(_F32, 1.0),
                A.data,
                lead(A),
                B.data,
                lead(B),
                ir.Constant(_F32, 0.0),
                C.data,
                lead(C),
            ],
        )
        return context.get_dummy_value()

    return sig, codegen


def _int64(builder, value):
    """An integer or boolean argument widened to i64."""
    if value.type.width < 64:
        return builder.zext(value, _I64) if value.type.width == 1 else builder.sext(value, _I64)
    return value
