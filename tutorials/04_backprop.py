"""Chapter 4: backpropagation through attention and LayerNorm.

Goal: derive the backward pass of the two ops that make BERT more than a stack of matrix
products, LayerNorm and attention (with the softmax inside it), write each in a few lines of
NumPy, and check it two ways: against the minibert function it explains and against finite
differences. Then we backpropagate a whole (tiny) BERT with a masked-LM loss and compare every
gradient with the ones PyTorch's autograd computed for the same model and batch. On the way we
see why a padded key gets exactly zero gradient, how dropout's mask is reused, why a tied
weight's gradient is the sum of its uses, and why the key bias gets no gradient at all.

Prerequisites: chapters 1 and 2 (attention, LayerNorm, the encoder layer), and the chain rule.
No weights to install: the model is the tiny seeded fixture in tests/fixtures/bert-mlm/, and
the torch gradients are stored beside it (no torch needed).

Code explained: `minibert/functional/layernorm.py`, `minibert/functional/attention.py`,
`minibert/functional/softmax.py`, `minibert/nn.py` (the backward methods, the stack of caches,
`zero_grad` and `+=` gradients), and `backward()` / `gradients()` in
`minibert/models/base.py`.

Run: python tutorials/04_backprop.py
"""

# %% Setup: float64 random inputs, a check helper and finite differences
from pathlib import Path

import numpy as np

import minibert
import minibert.functional as F
from minibert.nn import Linear

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"  # from any cwd
rng = np.random.default_rng(0)
SAME = 1e-12  # our re-derivation vs the library, in float64: rounding only
FD_TOL = 1e-6  # a backward pass vs central differences (STYLE.md's gradient-check tolerance)


def check(name, ours, reference, tol):
    """Assert equal shapes and a relative gap of at most tol; print it. The gap is divided by the
    largest |reference| entry, so a small gradient is held to the same standard as a large one."""
    assert ours.shape == reference.shape, (ours.shape, reference.shape)
    gap = float(np.max(np.abs(ours - reference)))
    size = float(np.max(np.abs(reference)))
    relative = gap / size if size > 0 else gap
    print(
        f"  check {name}: same shape {ours.shape}, max |difference| = {gap:.1e} "
        f"({relative:.1e} relative)"
    )
    assert relative <= tol, f"{name}: {relative:.1e} > {tol:.0e}"


# %% [markdown]
# ## Step 1: forward/backward pairs, caches, and finite differences
# Every op in `minibert/functional/` is a pair. `<op>_forward(inputs)` returns the output and a
# *cache*: exactly what the backward pass will need, kept from the forward so that it is not
# recomputed. `<op>_backward(dout, cache)` takes dout = dL/d(out), the gradient of the loss
# with respect to the op's output, and returns dL/d(input) for each array input, in the order
# forward took them. No autograd tape: the chain rule is written out by hand, op by op.
#
# The simplest pair is the Linear layer, y = x W^T + b. Its gradients are matrix products:
# dx = dy W, dW = dy^T x (summed over every row of the batch), db = dy summed over rows.
# The cache is (x, W); b is not needed, since db does not depend on it.

# %%
x = rng.normal(size=(2, 3, 5))  # (B, T, I): float64, as every gradient check
w, b = rng.normal(size=(4, 5)), rng.normal(size=4)  # (O, I), (O,)
y, cache = F.linear_forward(x, w, b)
dy = rng.normal(size=y.shape)  # (B, T, O): some gradient arriving from above
dx, dw, db = F.linear_backward(dy, cache)
print(f"x {x.shape}, W {w.shape} -> y {y.shape}; cache holds {[a.shape for a in cache]}")
print(f"dy {y.shape} -> dx {dx.shape}, dW {dw.shape}, db {db.shape}")
assert cache[0] is x  # references, not copies: a cache costs no memory
assert cache[1] is w
check("dx = dy W", dy @ w, dx, SAME)
check("dW = dy^T x over all rows", dy.reshape(-1, 4).T @ x.reshape(-1, 5), dw, SAME)
check("db = dy summed over rows", dy.sum((0, 1)), db, SAME)

# %% [markdown]
# How do we know a backward pass is right? We compare it with the derivative measured
# numerically. A backward takes any dout, so we need a scalar whose gradient with respect to
# the output is dout: "fakeloss" L = sum(forward(x) * dout) is one (dL/dout = dout exactly).
# Then we nudge each input element by +-eps and take the central difference
#
#     dL/dx_i ~ (L(x + eps e_i) - L(x - eps e_i)) / (2 eps)
#
# Its error is O(eps^2) (the one-sided (L(x + eps) - L(x)) / eps is only O(eps)), plus the
# rounding of L, about 1e-16 * |L| / eps in float64. With eps around 1e-6 both are near 1e-10,
# which is why gradient checks run in float64: float32 rounds at 1e-7, not 1e-16, and the
# rounding alone would be about 0.1 |L|.

# %%


def fakeloss(forward, dout):
    """The scalar sum(forward() * dout), as a function: its gradient w.r.t. forward's output is
    dout, so its gradient w.r.t. each input is what backward(dout, cache) must return."""
    return lambda: float((forward() * dout).sum())


def numeric_grad(f, x, eps=1e-6, at=None):
    """Central differences of the scalar f() with respect to the elements of x: all of them, or
    only the flat indices in `at`. x is nudged in place (f must read it) and restored."""
    flat = x.reshape(-1)  # a view: writing flat[i] writes x
    assert np.shares_memory(flat, x)
    indices = range(flat.size) if at is None else at
    grad = []
    for i in indices:
        old = flat[i]
        flat[i] = old + eps
        up = f()
        flat[i] = old - eps
        down = f()
        flat[i] = old  # restore exactly
        grad.append((up - down) / (2 * eps))
    grad = np.array(grad)
    return grad.reshape(x.shape) if at is None else grad


L = fakeloss(lambda: F.linear_forward(x, w, b)[0], dy)
for name, array, grad in [("x", x, dx), ("W", w, dw), ("b", b, db)]:
    check(f"d{name} vs finite differences", numeric_grad(L, array), grad, FD_TOL)

# Central vs one-sided, on chapter 2's GELU (the Linear layer is linear, so both would be exact)
z = rng.normal(size=7)  # (7,)
dz = rng.normal(size=7)
exact = F.activation_backward("gelu", dz, F.activation_forward("gelu", z)[1])  # (7,)
L = fakeloss(lambda: F.activation_forward("gelu", z)[0], dz)
central = numeric_grad(L, z, eps=1e-6)
base, one_sided = L(), np.zeros(7)
for i in range(7):
    z[i] += 1e-6
    one_sided[i] = (L() - base) / 1e-6
    z[i] -= 1e-6
error_central, error_one_sided = np.abs(central - exact).max(), np.abs(one_sided - exact).max()
print(f"GELU, eps 1e-6: central error {error_central:.1e}, one-sided {error_one_sided:.1e}")
assert error_central < 1e-9 < error_one_sided

# %% [markdown]
# ## Step 2: LayerNorm backward, derived
# The forward, for one row x of C numbers (chapter 2):
#
#     mu = mean(x)           xc = x - mu
#     var = mean(xc^2)       rstd = (var + eps)^(-1/2)
#     xhat = xc * rstd       y = xhat * w + b
#
# We walk it backwards in five moves, turning dy into dx, dw and db. Where a value is
# used in several places, its gradient is the sum over the uses. Sums over c run over the C
# entries of the row.
#
# 1. y = xhat * w + b: db = dy and dw = dy * xhat, each summed over all rows (w and b are
#    shared by every token); the gradient reaching xhat is g = dy * w.
# 2. xhat = xc * rstd uses both xc and rstd: xc gets g * rstd (its direct path), and rstd,
#    which multiplied every entry of the row, gets drstd = sum_c g_c xc_c.
# 3. rstd = (var + eps)^(-1/2): dvar = drstd * (-1/2) (var + eps)^(-3/2) = -drstd rstd^3 / 2.
# 4. var = mean(xc^2): every xc_c also reached var, so xc gains dvar * 2 xc_c / C.
# 5. xc = x - mu with mu = mean(x): x_c reaches xc_c directly and every xc through mu, so
#    dx = dxc - mean(dxc).
#
# Substituting (3) and (4) into (2) gives dxc = rstd * (g - xhat * mean(g * xhat)), and since xhat
# has mean 0, (5) only subtracts mean(g) from it:
#
#     dx = rstd * (g - mean(g) - xhat * mean(g * xhat))
#
# That is the one line in `layernorm_backward`. The two subtracted terms are the directions
# LayerNorm cannot see: adding a constant to x (the mean term) and scaling x (the xhat term)
# leave y unchanged (up to eps), so the gradient has no component along either.

# %%


def layernorm_backward_steps(dy, x, w, eps):
    """Moves (1)-(5) above, one line each; the forward values are recomputed from x."""
    C = x.shape[-1]
    lead = tuple(range(x.ndim - 1))  # every axis except C: the rows
    mu = x.mean(-1, keepdims=True)  # (..., 1)
    xc = x - mu  # (..., C)
    var = (xc * xc).mean(-1, keepdims=True)  # (..., 1)
    rstd = (var + eps) ** -0.5  # (..., 1)
    xhat = xc * rstd  # (..., C)
    db, dw = dy.sum(lead), (dy * xhat).sum(lead)  # (1): (C,), (C,)
    g = dy * w  # (1): the gradient reaching xhat, (..., C)
    drstd = (g * xc).sum(-1, keepdims=True)  # (2): (..., 1)
    dvar = -0.5 * drstd * rstd**3  # (3): (..., 1)
    dxc = g * rstd + dvar * 2 * xc / C  # (2) and (4): both paths into xc, (..., C)
    dx = dxc - dxc.mean(-1, keepdims=True)  # (5): (..., C)
    return dx, dw, db


eps = 1e-12  # BERT's
x = rng.normal(size=(2, 3, 7)) * 2 + 1  # (B, T, C): C = 7, off-centre and wider than 1
w, b = rng.normal(size=7), rng.normal(size=7)  # (C,), (C,)
y, cache = F.layernorm_forward(x, w, b, eps)
dy = rng.normal(size=y.shape)  # (B, T, C)
xhat, _, rstd = cache
print(f"x {x.shape} -> y {y.shape}; cache: xhat {xhat.shape}, w {w.shape}, rstd {rstd.shape}")
dx, dw, db = layernorm_backward_steps(dy, x, w, eps)
print(f"dy {dy.shape} -> dx {dx.shape}, dw {dw.shape}, db {db.shape}")
library = F.layernorm_backward(dy, cache)
for name, ours, theirs in zip(("dx", "dw", "db"), (dx, dw, db), library, strict=True):
    check(f"{name} vs layernorm_backward", ours, theirs, SAME)
L = fakeloss(lambda: F.layernorm_forward(x, w, b, eps)[0], dy)
for name, array, grad in [("x", x, dx), ("w", w, dw), ("b", b, db)]:
    check(f"d{name} vs finite differences", numeric_grad(L, array), grad, FD_TOL)

g = dy * w
check(
    "the one-line dx",
    rstd * (g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True)),
    dx,
    SAME,
)
# The directions LayerNorm cannot see: each row of dx sums to 0 and is orthogonal to xhat
print(
    f"per row: |sum(dx)| <= {np.abs(dx.sum(-1)).max():.0e}, "
    f"|dx . xhat| <= {np.abs((dx * xhat).sum(-1)).max():.0e}"
)
assert np.abs(dx.sum(-1)).max() < 1e-12
assert np.abs((dx * xhat).sum(-1)).max() < 1e-9
# The cache keeps xhat and rstd (not x, mu or var): all the backward needs.

# %% [markdown]
# ## Step 3: softmax backward
# p = softmax(z) over a row of N numbers, p_i = exp(z_i) / sum_k exp(z_k). Differentiating
# the quotient: dp_i / dz_i = p_i - p_i^2, and dp_i / dz_j = -p_i p_j for j != i. Together
#
#     dp_i / dz_j = p_i (delta_ij - p_j),      the Jacobian J = diag(p) - p p^T  (N x N)
#
# The chain rule gives dz_j = sum_i dp_i J_ij. J is symmetric, and J dp has a one-line form:
#
#     dz = p * dp - p (p . dp) = p * (dp - sum_j dp_j p_j)
#
# The vector form never builds J: attention's probs are (B, H, T, T), and their Jacobians
# would be (B, H, T, T, T). Each row of J sums to 0 (J 1 = p - p (p . 1) = 0): adding the
# same number to every z changes no p (shift invariance, chapter 1), so dz sums to 0 too.
# Step 6 uses that to explain the key bias.

# %%
z = rng.normal(size=(4, 6)) * 2  # (rows, N)
p, cache = F.softmax_forward(z)  # (4, 6); the cache is (p,): softmax's backward needs only p
dp = rng.normal(size=p.shape)  # (4, 6)
N = z.shape[-1]
jacobian = p[:, :, None] * (np.eye(N) - p[:, None, :])  # (4, N, N): J[r, i, j]
print(f"z {z.shape} -> p {p.shape}; Jacobians {jacobian.shape}, one (N, N) per row")
assert np.allclose(jacobian, jacobian.transpose(0, 2, 1), rtol=0, atol=1e-15)  # symmetric
dz_jacobian = np.einsum("ri,rij->rj", dp, jacobian)  # (4, N): dz_j = sum_i dp_i J_ij
dz = p * (dp - (dp * p).sum(-1, keepdims=True))  # (4, N): the vector form
check("vector form vs the Jacobian", dz, dz_jacobian, SAME)
check("dz vs softmax_backward", dz, F.softmax_backward(dp, cache), SAME)
L = fakeloss(lambda: F.softmax_forward(z)[0], dp)
check("dz vs finite differences", numeric_grad(L, z), dz, FD_TOL)
print(f"rows of J and of dz sum to 0: |sum| <= {np.abs(dz.sum(-1)).max():.0e}")
assert np.abs(jacobian.sum(-1)).max() < 1e-15
assert np.abs(dz.sum(-1)).max() < 1e-15

# %% [markdown]
# ## Step 4: attention backward
# The forward, for one batch row and head, with s = 1/sqrt(D) (chapter 1):
#
#     scores = s q k^T + mask      (T, T)   mask: 0, or the most negative float for padding
#     probs = softmax(scores)      (T, T)
#     used = probs * keep          (T, T)   dropout on the weights; without dropout keep = 1
#     ctx = used v                 (T, D)
#
# Backward, from the bottom line up, with dctx given:
#
# 1. ctx = used v is a matrix product, like a Linear layer: dused = dctx v^T, and
#    dv = used^T dctx. Key j's value collects sum_i used_ij dctx_i: the gradient of every
#    query that read it, weighted by how much it read.
# 2. used = probs * keep: dprobs = dused * keep, with the *same* keep as in the forward, so the
#    cache must hold it.
# 3. softmax, row by row (step 3): dscores = probs * (dprobs - sum_j dprobs_j probs_j).
# 4. The mask is a constant: it gets no gradient and passes dscores through unchanged.
# 5. scores = s q k^T is one more matrix product: dq = s dscores k, dk = s dscores^T q.
#
# So the cache is (q, k, v, probs, keep): q and k for (5), v and probs for (1), probs for (3),
# keep for (2). The scores themselves are not kept, since softmax's backward
# needs only its output.

# %%
B, H, T, D = 2, 3, 5, 4
q, k, v = (rng.normal(size=(B, H, T, D)) for _ in range(3))  # (B, H, T, D) each
scale = D**-0.5


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))  # subtract the row max: exp never overflows
    return e / e.sum(-1, keepdims=True)


def attention_backward_steps(dctx, q, k, v, probs, keep):
    """(1)-(5) above for every (batch row, head). Shapes: (B, H, T, D) -> dq, dk, dv"""
    used = probs if keep is None else probs * keep  # (B, H, T, T)
    dv = used.transpose(0, 1, 3, 2) @ dctx  # (1): (B, H, T, D)
    dused = dctx @ v.transpose(0, 1, 3, 2)  # (1): (B, H, T, T)
    dprobs = dused if keep is None else dused * keep  # (2): the forward's mask again
    dscores = probs * (dprobs - (dprobs * probs).sum(-1, keepdims=True))  # (3)
    dq = scale * dscores @ k  # (5): (B, H, T, D); the mask (4) gets nothing
    dk = scale * dscores.transpose(0, 1, 3, 2) @ q  # (5): (B, H, T, D)
    return dq, dk, dv


ctx, _, cache = F.attention_forward(q, k, v)  # no mask, no dropout
probs = softmax(scale * q @ k.transpose(0, 1, 3, 2))  # (B, H, T, T): our own forward
dctx = rng.normal(size=ctx.shape)  # (B, H, T, D)
print(f"q, k, v {q.shape} -> probs {probs.shape} -> ctx {ctx.shape}")
print(f"cache: {[None if a is None else a.shape for a in cache]} = (q, k, v, probs, keep)")
check("probs vs the cache", probs, cache[3], SAME)
grads = attention_backward_steps(dctx, q, k, v, probs, None)
L = fakeloss(lambda: F.attention_forward(q, k, v)[0], dctx)
for name, array, ours, theirs in zip(
    ("q", "k", "v"), (q, k, v), grads, F.attention_backward(dctx, cache), strict=True
):
    check(f"d{name} vs attention_backward", ours, theirs, SAME)
    check(f"d{name} vs finite differences", numeric_grad(L, array), ours, FD_TOL)

# %% [markdown]
# ### With a padding mask
# Row 1 of the batch has 3 real tokens and 2 padding. A padded key's probability is exactly 0
# (chapter 1), so by (1) its value gets exactly zero gradient, and by (3) its scores
# do too (dscores = probs * (...) = 0), so its key gets exactly zero gradient as well. Finite
# differences agree exactly: nudging a padded key or value changes nothing at all. Padded
# *queries* still get gradients here, because we made up a dctx for them; in a model no loss
# reads a padded position, and we check in step 6 that its gradient is then 0.

# %%
mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])  # (B, T)
bias = F.padding_mask_bias(mask, np.float64)  # (B, T)
ctx, _, cache = F.attention_forward(q, k, v, bias)
probs = softmax(scale * q @ k.transpose(0, 1, 3, 2) + bias[:, None, None, :])  # (B, H, T, T)
print(f"mask {mask.shape}, bias {bias.shape}; probs {probs.shape}")
check("masked probs vs the cache", probs, cache[3], SAME)
dq, dk, dv = attention_backward_steps(dctx, q, k, v, probs, None)
L = fakeloss(lambda: F.attention_forward(q, k, v, bias)[0], dctx)
numeric = {}
for name, array, ours, theirs in zip(
    ("q", "k", "v"), (q, k, v), (dq, dk, dv), F.attention_backward(dctx, cache), strict=True
):
    check(f"masked d{name} vs attention_backward", ours, theirs, SAME)
    numeric[name] = numeric_grad(L, array)
    check(f"masked d{name} vs finite differences", numeric[name], ours, FD_TOL)
print(f"padded keys of row 1: dk[1, :, 3:] and dv[1, :, 3:], {dk[1, :, 3:].shape} each, are 0")
assert (dk[1, :, 3:] == 0).all()
assert (dv[1, :, 3:] == 0).all()
assert (numeric["k"][1, :, 3:] == 0).all()  # nudging them changes nothing at all
assert (numeric["v"][1, :, 3:] == 0).all()
assert np.abs(dq[1, :, 3:]).min() > 0  # padded queries: gradients from the made-up dctx

# %% [markdown]
# ### With dropout on the attention weights
# In training, BERT drops attention weights with probability p (0.1) and scales the survivors
# by 1/(1 - p). The forward draws the mask from a numpy Generator and keeps
# keep = mask / (1 - p) in the cache; the backward multiplies by the same keep, (2). For
# finite differences every call of the forward must draw the same mask, so each call gets a
# fresh Generator with the same seed.

# %%
p_drop = 0.3


def dropped_attention():
    """The masked attention with dropout, drawing the same dropout mask on every call."""
    return F.attention_forward(q, k, v, bias, p_drop, np.random.default_rng(7))


ctx, used, cache = dropped_attention()
keep = cache[4]  # (B, H, T, T)
print(
    f"keep {keep.shape}: values {sorted(set(np.round(keep, 6).ravel().tolist()))}, "
    f"{(keep == 0).mean():.0%} dropped"
)
assert set(np.unique(keep)) <= {0.0, 1 / (1 - p_drop)}
check("returned weights = probs * keep", used, cache[3] * keep, SAME)
grads = attention_backward_steps(dctx, q, k, v, cache[3], keep)
L = fakeloss(lambda: dropped_attention()[0], dctx)
for name, array, ours, theirs in zip(
    ("q", "k", "v"), (q, k, v), grads, F.attention_backward(dctx, cache), strict=True
):
    check(f"dropout d{name} vs attention_backward", ours, theirs, SAME)
    check(f"dropout d{name} vs finite differences", numeric_grad(L, array), ours, FD_TOL)

# A preview of step 6: for every (batch row, head), the keys' gradients sum to 0, because
# sum_j dk_j = s sum_i q_i (sum_j dscores_ij) and every row of dscores sums to 0 (step 3).
print(f"sum over keys of dk: at most {np.abs(grads[1].sum(2)).max():.0e}")
assert np.abs(grads[1].sum(2)).max() < 1e-14

# %% [markdown]
# ## Step 5: modules, and the stack of caches
# The modules in `minibert/nn.py` are thin wrappers around the pairs. In training mode
# `forward` pushes its cache on the module's stack (`self.save`), and `backward` pops the
# latest one (`self.restore`) and *adds* the parameter gradients into `self.grads` with `+=`.
# A module called twice in one forward (ALBERT's shared layers, a tied weight) therefore pops
# its two caches in reverse order, as backward runs, and ends up with the sum of both uses'
# gradients. `zero_grad()` sets the gradients to 0; until then they accumulate, which is how
# gradient accumulation over several batches works.

# %%
layer = Linear(5, 4)
layer.params["weight"], layer.params["bias"] = rng.normal(size=(4, 5)), rng.normal(size=4)
layer.train()  # keep caches
x1, x2 = rng.normal(size=(3, 5)), rng.normal(size=(2, 5))  # two calls, different inputs
y1, y2 = layer.forward(x1), layer.forward(x2)  # (3, 4), (2, 4)
print(f"two forward calls: y1 {y1.shape}, y2 {y2.shape}; {len(layer._caches)} caches stacked")
assert len(layer._caches) == 2
layer.zero_grad()
d1, d2 = rng.normal(size=y1.shape), rng.normal(size=y2.shape)
dx2 = layer.backward(d2)  # backward in reverse order: pops x2's cache first
dx1 = layer.backward(d1)
assert not layer._caches  # every cache used exactly once
w_now = layer.params["weight"]
check("dx1", dx1, d1 @ w_now, SAME)
check("dx2", dx2, d2 @ w_now, SAME)
check("dW = the sum over both calls", layer.grads["weight"], d1.T @ x1 + d2.T @ x2, SAME)

# %% [markdown]
# ## Step 6: the whole model against torch
# `tests/fixtures/bert-mlm/` holds a tiny BertForMaskedLM (2 layers, C = 32, 4 heads, a
# vocabulary of 99) with seeded random weights, a batch of 3 padded rows, and in
# `training.npz` the masked-LM labels (-100 = not a target), the loss and the gradient of every
# parameter that torch's autograd computed, keyed by Hugging Face parameter name.
#
# `model.train(dropout=False)` keeps caches but leaves dropout off, so the loss is a fixed
# function of the weights. `model(..., labels=...)` computes the loss, `model.backward()` runs
# every module's backward in reverse (the MLM head, the encoder layers from last to first, the
# embeddings), and `model.gradients()` returns {Hugging Face name: gradient}. First in float64,
# where we can check against finite differences.

# %%
case = FIXTURES / "bert-mlm"
with np.load(case / "reference.npz") as npz:
    ids, mask = npz["input_ids"], npz["attention_mask"]  # (B, T) each
with np.load(case / "training.npz") as npz:
    torch_grads = dict(npz)
labels = torch_grads.pop("labels")  # (B, T)
torch_loss = float(torch_grads.pop("loss"))
torch_embeds_grad = torch_grads.pop("inputs_embeds_grad")  # (B, T, C): at the word vectors
print(f"input_ids {ids.shape}, attention_mask {mask.shape}, labels {labels.shape}:")
print(labels)
print(f"{int((labels != -100).sum())} masked-LM targets; row 2 has none")

model = minibert.load(case, dtype="float64").train(dropout=False)
out = model(ids, attention_mask=mask, labels=labels)
model.zero_grad()
model.backward()
grads = model.gradients()  # {Hugging Face name: gradient}
names = model.hf_weight_names()  # {our path: Hugging Face name}
print(model)
print(f"float64 loss {float(out.loss):.6f} (torch, float32: {torch_loss:.6f})")
assert np.isclose(float(out.loss), torch_loss, rtol=1e-5)
print(f"logits {out.logits.shape}; {len(grads)} gradient arrays, e.g.")
for path in ("embeddings.word.weight", "encoder.layers.0.attn.q.weight", "mlm.decoder.bias"):
    print(f"  {path:32} = {names[path]:42} {grads[names[path]].shape}")


def loss64():
    return float(model(ids, attention_mask=mask, labels=labels).loss)


# Gradients in this model are small (attention's are ~1e-5), so a larger eps keeps the rounding
# of the loss (~1e-16 * 4.6 / eps) well below them.
C = model.config.hidden_size
assert 98 not in ids  # token 98 only reaches the loss through the tied decoder
for path, at in [
    ("encoder.layers.0.ln1.weight", None),  # every entry
    ("encoder.layers.1.attn.v.bias", None),
    ("encoder.layers.0.attn.q.weight", rng.choice(C * C, 8, replace=False)),  # 8 entries
    # flat indices row * C + column: a token of the batch, token 98, and the padding row 0
    ("embeddings.word.weight", [ids[0, 1] * C + 3, 98 * C + 5, 0 * C + 7]),
]:
    param, analytic = model.get_parameter(path), grads[names[path]]
    numeric = numeric_grad(loss64, param, eps=1e-4, at=at)
    analytic = analytic if at is None else analytic.reshape(-1)[at]
    check(f"{path} vs finite differences", analytic, numeric, 1e-5)

# Nothing the loss reads depends on a padded position, or on row 2 (no targets; rows never mix)
padded = model.inputs_embeds_grad[mask == 0]  # (positions, C)
print(
    f"gradient reaching the word vectors {model.inputs_embeds_grad.shape}: exactly 0 on the "
    f"{padded.shape[0]} padded positions and on every token of row 2"
)
assert (padded == 0).all()
assert (model.inputs_embeds_grad[2] == 0).all()

# %% [markdown]
# ### Why the key bias gets no gradient
# k_j = W_k x_j + b_k, so the bias adds q_i . b_k to every score of query i's row: the same
# number for every key j. Softmax is shift invariant, so the probabilities, and the loss, do
# not depend on b_k at all. In the backward, the bias gradient is dk summed over the tokens,
# and step 4 showed that sum is 0. The query bias is different: it adds b_q . k_j, which
# depends on j. torch computes the same (numerically) zero gradient.

# %%
for layer_index in range(model.config.num_hidden_layers):
    prefix = f"bert.encoder.layer.{layer_index}.attention.self"
    dk_bias, dq_bias = grads[f"{prefix}.key.bias"], grads[f"{prefix}.query.bias"]
    print(
        f"layer {layer_index}: |d key.bias| <= {np.abs(dk_bias).max():.0e} "
        f"(torch, float32: {np.abs(torch_grads[f'{prefix}.key.bias']).max():.0e}), "
        f"|d query.bias| up to {np.abs(dq_bias).max():.0e}"
    )
    assert np.abs(dk_bias).max() < 1e-12 * np.abs(dq_bias).max()
    assert np.abs(torch_grads[f"{prefix}.key.bias"]).max() < 1e-5 * np.abs(dq_bias).max()
key_bias = model.get_parameter("encoder.layers.0.attn.k.bias")
moved = numeric_grad(loss64, key_bias, eps=1e-4)  # (C,)
print(f"finite differences of the key bias {moved.shape}: largest {np.abs(moved).max():.0e}")
assert np.abs(moved).max() < 1e-10  # rounding only: the loss does not move

# %% [markdown]
# ### Every gradient against torch autograd
# The float32 model against the gradients torch computed for the same weights and batch, with
# the tolerances of the test suite (rtol 1e-4, atol 1e-5: float32 on both sides, summed over a
# batch). The set of names must match too: every parameter, a tied one once.

# %%
model32 = minibert.load(case).train(dropout=False)  # float32, as torch's
out32 = model32(ids, attention_mask=mask, labels=labels)
model32.zero_grad()
model32.backward()
grads32 = model32.gradients()
print(f"float32 loss {float(out32.loss):.6f} vs torch {torch_loss:.6f}")
assert np.isclose(float(out32.loss), torch_loss, rtol=1e-5)
assert set(grads32) == set(torch_grads)
worst = max(
    grads32,
    key=lambda n: np.max(np.abs(grads32[n] - torch_grads[n]) / (1e-5 + np.abs(torch_grads[n]))),
)
for name in grads32:
    assert grads32[name].dtype == np.float32
    assert np.allclose(grads32[name], torch_grads[name], rtol=1e-4, atol=1e-5), name
print(
    f"{len(grads32)} gradients match torch to rtol 1e-4, atol 1e-5; the largest relative gap is "
    f"in {worst} (max |difference| {np.abs(grads32[worst] - torch_grads[worst]).max():.1e})"
)
# one more: the gradient reaching the looked-up word vectors, before the scatter-add into the
# table (transformers' inputs_embeds.grad); minibert keeps it in model.inputs_embeds_grad
print(f"inputs_embeds gradient {model32.inputs_embeds_grad.shape}")
assert np.allclose(model32.inputs_embeds_grad, torch_embeds_grad, rtol=1e-4, atol=1e-5)

# %% [markdown]
# ### A tied weight sums its uses
# The MLM decoder, which turns each final vector into 99 logits, shares its (V, C) weight
# with the word embeddings (`tied`): one array, used twice, at the bottom of the model as a
# lookup table and at the top as a Linear layer. Its gradient is the sum of both uses. With
# modules that add into `grads` there is nothing special to do: `zero_grad` gives the two
# modules one shared gradient array, and both `+=` into it.
#
# To see the two parts, we untie a copy of the model: give the decoder its own copy of the
# table, run the same batch, and get two separate gradients. Their sum is the tied gradient.

# %%
word = "embeddings.word.weight"
print(f"tied: {model32.tied}")
assert model32.mlm.decoder.params["weight"] is model32.embeddings.word.params["weight"]
assert model32.mlm.decoder.grads["weight"] is model32.embeddings.word.grads["weight"]
untied = minibert.load(case).train(dropout=False)
untied.mlm.decoder.params["weight"] = untied.embeddings.word.params["weight"].copy()
untied(ids, attention_mask=mask, labels=labels)
untied.zero_grad()  # two arrays now, so two gradients
untied.backward()
as_embedding = untied.embeddings.word.grads["weight"]  # (V, C): the lookup
as_decoder = untied.mlm.decoder.grads["weight"]  # (V, C): the output layer
tied_grad = torch_grads[names[word]]  # (V, C): torch's gradient of the one shared weight
print(
    f"embedding part {as_embedding.shape}, decoder part {as_decoder.shape}, "
    f"torch's tied gradient {tied_grad.shape}"
)
check(
    "embedding part + decoder part vs the tied gradient",
    as_embedding + as_decoder,
    grads32[names[word]],
    1e-6,
)
assert np.allclose(as_embedding + as_decoder, tied_grad, rtol=1e-4, atol=1e-5)
for part in (as_embedding, as_decoder):  # neither part alone is torch's gradient
    assert not np.allclose(part, tied_grad, rtol=1e-4, atol=1e-5)
# The lookup only reaches the rows of tokens in the batch, and never row 0: it is padding_idx,
# the [PAD] id, whose row the lookup leaves without gradient, as torch's
# nn.Embedding(padding_idx=...) does. The decoder reaches every row, since every vocabulary
# entry gets a logit and a share of the softmax's gradient.
unused = np.setdiff1d(np.arange(model32.config.vocab_size), ids)
print(
    f"{len(unused)} of {model32.config.vocab_size} rows are not in the batch: their embedding "
    f"part is 0; the decoder part is non-zero in every row"
)
assert (as_embedding[unused] == 0).all()
assert (as_embedding[0] == 0).all()
assert (np.abs(as_decoder).max(1) > 0).all()
print(
    f"row 0 ([PAD], in the batch): embedding part 0, so torch's tied gradient there is the "
    f"decoder's alone, up to {np.abs(tied_grad[0]).max():.1e}"
)
assert np.abs(tied_grad[0]).max() > 0
assert np.allclose(tied_grad[0], as_decoder[0], rtol=1e-4, atol=1e-5)

# %% [markdown]
# ## Exercises
# 1. RMSNorm (used by T5 and LLaMA) skips the mean: y = x / sqrt(mean(x^2) + eps) * w. Derive
#    its backward the way step 2 did, write it in NumPy, and check it with `numeric_grad`.
#    Which of LayerNorm's two subtracted terms is left, and which direction can RMSNorm's
#    output no longer ignore?
# 2. Repeat the finite-difference check of step 6 on `model32`, the float32 model, with eps
#    1e-2, 1e-4 and 1e-6. Which eps comes closest, and why does none come close to 1e-6? (The
#    central-difference paragraph of step 1 has the two errors to balance.)
# 3. Make a row whose keys are *all* padding (mask `[0, 0, 0, 0, 0]`) in step 4. Chapter 1
#    showed its weights are uniform. What does `attention_backward` give for that row's dq and
#    dk, and what do finite differences give? Which of the two is "right" about the function
#    the code computes, and why does it not matter for a model's loss?
