"""exp(x) for x <= 0 in float32 arithmetic that LLVM vectorises, 8 lanes per AVX2 register.

Numba's math.exp is a call into libm per element: the compiler cannot vectorise it, and it was
the largest cost of the softmax and GELU kernels. Here, with the usual range reduction,

    x = n ln2 + r,   n = round(x / ln2),  |r| <= ln2 / 2
    exp(x) = 2^n exp(r)

exp(r) comes from its Taylor series to degree 7 (the first term left out, r^8 / 8!, is below
6e-9 relative for |r| <= 0.347: under float32's resolution of 6e-8), and 2^n is built directly
as a float32's bits, exponent field n + 127 (the intrinsic in kernels/simd.py; a numpy view of
the same int32 here). ln2 is split in two, LN2_HI with 9 significant bits so that n LN2_HI is
exact for |n| < 2^15, and LN2_LO = ln2 - LN2_HI, so r keeps its low bits. Rounding to the
nearest integer uses the float32 trick (t + 1.5 2^23) - 1.5 2^23, which needs no conversion to
int64 (AVX2 cannot vectorise that). Each multiply and add is one fused multiply-add
(`_multiply_add`, rounded once: the range reduction and the Horner steps), which takes a third
less time than a multiply and an add apiece (0.32 against 0.49 ns a value on one Intel Xeon
core, 256-bit vectors) and rounds less. The result is within 1.2e-7 relative of exp(x) (about
one float32 ulp; 7.6e-8 measured over [-80, 0], 9.8e-8 without the fused steps). Inputs at
or below -80 give exactly 0 (exp(-80) = 1.8e-35), which is what a masked attention score must
give; NaN gives 0 as well. The kernels that use it are compared
with their references in the tests.
"""

import numpy as np

from .jit import device, lowered_as

UNDERFLOW = np.float32(-80.0)  # exp(x) for x at or below this is 0 here
LOG2E = np.float32(1.4426950408889634)  # 1 / ln 2
LN2_HI = np.float32(0.693359375)  # 355 / 512: ln 2 to 9 significant bits
LN2_LO = np.float32(0.6931471805599453 - 0.693359375)  # the rest of ln 2
ROUNDER = np.float32(12582912.0)  # 1.5 * 2^23: adding it rounds a float32 to an integer
# 1 / k! for k = 7 down to 2 (Horner's rule; the constant and linear terms are 1)
INV_FACTORIALS = tuple(np.float32(1.0 / f) for f in (5040, 720, 120, 24, 6, 2))


def float32_from_bits(bits):
    """The float32 whose IEEE 754 bits are the int32 `bits` (the readable statement of
    kernels/simd.py's float32_from_bits, which compiles to one bitcast)."""
    return np.array(bits, np.int32).view(np.float32)[()]


def int32_bits(value):
    """The IEEE 754 bits of the float32 `value`, as an int32 (float32_from_bits's inverse; its
    compiled form is kernels/simd.py's int32_bits)."""
    return np.array(value, np.float32).view(np.int32)[()]


def fused_multiply_add(a, b, c):
    """a * b + c for float32 numbers with one rounding, as a fused multiply-add instruction
    does (kernels/simd.py's fused_multiply_add compiles to one): the product of two float32 is
    exact in float64, and the sum is rounded once more to float32 (a float64 tie rounded again
    can differ from the hardware's single rounding in the last bit, too rarely for the tests
    comparing the two to notice)."""
    return np.float32(np.float64(a) * np.float64(b) + np.float64(c))


_float32_from_bits = lowered_as("minibert.kernels.simd:float32_from_bits")(float32_from_bits)
_multiply_add = lowered_as("minibert.kernels.simd:fused_multiply_add")(fused_multiply_add)
_int32_bits = lowered_as("minibert.kernels.simd:int32_bits")(int32_bits)


@device
def exp_nonpositive(x):
    """exp(x) for x <= 0, float32. Larger x are not supported: callers subtract a max or negate
    a square first."""
    x = np.float32(x)
    xc = max(x, UNDERFLOW)  # keeps n in range; the result is 0 there anyway
    n = _multiply_add(xc, LOG2E, ROUNDER) - ROUNDER  # round(x / ln 2), an integer-valued float32
    r = _multiply_add(-n, LN2_LO, _multiply_add(-n, LN2_HI, xc))  # |r| <= ln2 / 2
    p = INV_FACTORIALS[0]
    for c in INV_FACTORIALS[1:]:
        p = _multiply_add(p, r, c)
    p = _multiply_add(_multiply_add(p, r, np.float32(1.0)), r, np.float32(1.0))  # r^k / k!
    two_n = _float32_from_bits((np.int32(n) + np.int32(127)) << np.int32(23))  # 2^n
    return p * two_n if x > UNDERFLOW else np.float32(0.0)
