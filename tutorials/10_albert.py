"""Chapter 10: ALBERT's two tricks, counted.

Goal: see where BERT's parameters are and how ALBERT removes most of them. We write the number
of parameters of a BERT or ALBERT body as a formula of its config, check the formula against
`num_parameters()` of models minibert builds, and evaluate it on the published configs of
BERT-base/large and ALBERT-base/large/xlarge/xxlarge, next to the counts the ALBERT paper
reports. Then the two tricks one at a time: the factorised embedding (V x E + E x C instead of
V x C) and cross-layer sharing (one layer applied L times), which cuts parameters but not
compute: we time it. Last, the shared layer's gradient is the sum of its L applications'.

Prerequisites: chapter 2 (the encoder layer and where its parameters live), chapter 4
(backward passes); chapter 5 covers ALBERT's sentence-order prediction data.

Code explained: `minibert/models/albert.py` (AlbertEmbeddings and its E -> C projection),
`sharing_schedule` beside it, the encoder in `minibert/nn.py`, `num_parameters()` in
`minibert/models/base.py`.

Run: python tutorials/10_albert.py
"""

# %% Setup
import time

import numpy as np

from minibert import EncoderConfig
from minibert.models import from_config
from minibert.models.albert import sharing_schedule

# %% [markdown]
# ## Step 1: a formula for the parameter count
# With V the vocabulary, P the positions, S the segment types, E the embedding width, C the
# hidden width, F the feed-forward width and U the number of layers with their own weights:
#
#     embeddings  (V + P + S) E + 2 E             tables and their LayerNorm
#     projection  E C + C                         ALBERT only: E -> C
#     one layer   4 (C^2 + C) + 2 C F + F + C + 4 C   q, k, v, o; the FFN; two LayerNorms
#     pooler      C^2 + C
#
# BERT has E = C, no projection and U = L; ALBERT has E < C and U = 1 (all layers shared). The
# number of heads does not appear: heads split C, they add no weights.


# %%
def body_parameters(V, C, F, U, E=None, P=512, S=2, pooler=True):
    """Parameters of a BERT (E None) or ALBERT (E given) body with U unique layers."""
    width = C if E is None else E
    n = (V + P + S) * width + 2 * width
    if E is not None:
        n += E * C + C
    n += U * (4 * (C * C + C) + 2 * C * F + F + C + 4 * C)
    return n + (C * C + C if pooler else 0)


def config(family, V, C, F, L, E=None, H=2, unique=None):
    """An EncoderConfig for a BERT or ALBERT body; unique = layers with their own weights."""
    if family == "bert":
        return EncoderConfig(
            vocab_size=V,
            hidden_size=C,
            intermediate_size=F,
            num_hidden_layers=L,
            num_attention_heads=H,
        )
    return EncoderConfig(
        model_type="albert",
        architecture="AlbertModel",
        vocab_size=V,
        hidden_size=C,
        intermediate_size=F,
        num_hidden_layers=L,
        num_attention_heads=H,
        embedding_size=E,
        num_hidden_groups=unique or 1,
    )


# The formula against models minibert builds: small shapes, and ALBERT-base and -large in full
built = [
    ("bert", dict(V=1000, C=64, F=128, L=3)),
    ("albert", dict(V=1000, C=64, F=128, L=4, E=16)),
    ("albert", dict(V=1000, C=64, F=128, L=4, E=16, unique=4)),
    ("albert", dict(V=30000, C=768, F=3072, L=12, E=128, H=12)),  # ALBERT-base
    ("albert", dict(V=30000, C=1024, F=4096, L=24, E=128, H=16)),  # ALBERT-large
]
for family, sizes in built:
    model = from_config(config(family, **sizes), seed=0)
    U = sizes.get("unique") or (1 if family == "albert" else sizes["L"])
    formula = body_parameters(sizes["V"], sizes["C"], sizes["F"], U, sizes.get("E"))
    print(f"  {family:6} {sizes}: num_parameters {model.num_parameters():,}, formula {formula:,}")
    assert model.num_parameters() == formula
    del model

# %% [markdown]
# ## Step 2: the published configs and the paper's counts
# The configs are the released ones: BERT's `bert_config.json` files of
# google-research/bert (uncased_L-12_H-768_A-12 and L-24_H-1024_A-16: vocabulary 30522, 512
# positions, 2 segment types, F = 4C) and ALBERT's `config.json` files of the v2 checkpoints
# (albert-base-v2 ... albert-xxlarge-v2 on the Hugging Face hub: vocabulary 30000, E = 128, 512
# positions, 2 segment types, one shared group). The paper counts are Table 1 of Lan et al.
# (2020), "ALBERT: A Lite BERT for Self-supervised Learning of Language Representations".

# %%
PUBLISHED = {  # name: (family, V, C, F, L, E, paper's count in millions)
    "BERT-base": ("bert", 30522, 768, 3072, 12, None, 108),
    "BERT-large": ("bert", 30522, 1024, 4096, 24, None, 334),
    "ALBERT-base": ("albert", 30000, 768, 3072, 12, 128, 12),
    "ALBERT-large": ("albert", 30000, 1024, 4096, 24, 128, 18),
    "ALBERT-xlarge": ("albert", 30000, 2048, 8192, 24, 128, 60),
    "ALBERT-xxlarge": ("albert", 30000, 4096, 16384, 12, 128, 235),
}
counts = {}
print(f"{'model':15} {'no pooler':>12} {'with pooler':>12} {'paper':>6} {'float32 MB':>11}")
for name, (family, V, C, F, L, E, paper) in PUBLISHED.items():
    U = L if family == "bert" else 1
    without = body_parameters(V, C, F, U, E, pooler=False)
    with_pooler = body_parameters(V, C, F, U, E)
    counts[name] = (without, with_pooler, paper)
    print(
        f"{name:15} {without / 1e6:11.1f}M {with_pooler / 1e6:11.1f}M {paper:5}M "
        f"{4 * with_pooler / 2**20:11.0f}"
    )

# %% [markdown]
# Four of the six agree with the paper: BERT-large (334.1M without the pooler), ALBERT-base
# and ALBERT-large (11.7M and 17.7M with it, 12M and 18M rounded) within rounding, BERT-base
# within 1% (108.9M without the pooler, which the paper seems to truncate to 108M). The paper
# is not consistent about the pooler, and it does not say what it counts. The two largest do
# not agree: the published xlarge and xxlarge configs give 58.7M and 222.6M, not 60M and
# 235M. The model cards of the released checkpoints (albert-xlarge-v1/v2, albert-xxlarge-v1/v2
# on the Hugging Face hub) say 58M and 223M, our numbers; Table 1's figures for these two
# do not follow from the configs that were released.


# %%
def near(count, paper_millions, rel):
    return abs(count / 1e6 - paper_millions) <= rel * paper_millions


assert near(counts["BERT-base"][0], 108, 0.01)
assert round(counts["BERT-large"][0] / 1e6) == 334
assert round(counts["ALBERT-base"][1] / 1e6) == 12
assert round(counts["ALBERT-large"][1] / 1e6) == 18
assert round(counts["ALBERT-xlarge"][1] / 1e6) == 59  # the paper says 60
assert round(counts["ALBERT-xxlarge"][1] / 1e6) == 223  # the paper says 235
# BERT-base's embedding table alone is 30522 x 768 = 23.4M; ALBERT-base's is 30000 x 128 +
# 128 x 768 = 3.9M. The layers: 12 x 7.1M in BERT-base, 7.1M once in ALBERT-base.
V, C, E = 30522, 768, 128
print(f"V x C = {V * C / 1e6:.1f}M against V x E + E x C = {(30000 * E + E * C) / 1e6:.1f}M")

# %% [markdown]
# ## Step 3: sharing cuts parameters, not compute
# An ALBERT with one shared layer and one with L layers of their own run the same operations:
# each of the L steps multiplies by matrices of the same shapes. Only where the weights come
# from differs. We time a forward pass of both (same shape, medians of repeated runs,
# alternating so a busy machine slows both alike).

# %%
shape = dict(V=30000, C=256, F=1024, L=6, E=128, H=4)
shared = from_config(config("albert", **shape), seed=0).eval()
unshared = from_config(config("albert", **shape, unique=6), seed=0).eval()
print(
    f"schedules: shared {sharing_schedule(shared.config)}, "
    f"unshared {sharing_schedule(unshared.config)}"
)
print(f"parameters: shared {shared.num_parameters():,}, unshared {unshared.num_parameters():,}")
ids = np.random.default_rng(0).integers(5, 30000, (4, 64))
times = {"shared": [], "unshared": []}
for _ in range(5):
    for name, model in (("shared", shared), ("unshared", unshared)):
        start = time.perf_counter()
        model(ids)
        times[name].append(time.perf_counter() - start)
medians = {k: float(np.median(v)) for k, v in times.items()}
ratio = medians["shared"] / medians["unshared"]
print(
    f"forward 4 x 64: shared {1e3 * medians['shared']:.1f} ms, "
    f"unshared {1e3 * medians['unshared']:.1f} ms, ratio {ratio:.2f}"
)
one_layer = body_parameters(30000, 256, 1024, 1) - body_parameters(30000, 256, 1024, 0)
assert unshared.num_parameters() - shared.num_parameters() == 5 * one_layer
assert 0.5 < ratio < 2.0  # the same work: equal up to timing noise

# %% [markdown]
# ## Step 4: the shared layer's gradient is a sum
# Applied L times, the shared layer's weight W gets a gradient from each application, and
# backward adds them: dL/dW = sum over steps of the gradient of step l with respect to its copy
# of W. We check it exactly: an unshared ALBERT whose three layers hold copies of the shared
# layer computes the same function; its three layer gradients must add up to the shared one.

# %%
small = dict(V=100, C=16, F=32, L=3, E=8)
cfg_shared = config("albert", **small).replace(
    hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
)
a = from_config(cfg_shared, seed=0).astype(np.float64)
b = from_config(cfg_shared.replace(num_hidden_groups=3), seed=1).astype(np.float64)
for path, array in b.named_parameters():
    source = path
    if path.startswith("encoder.layers."):
        source = "encoder.layers.0." + path.split(".", 3)[3]
    array[...] = a.get_parameter(source)
ids = np.random.default_rng(1).integers(5, 100, (2, 7))
upstream = np.random.default_rng(2).normal(size=(2, 7, 16))  # d loss / d last_hidden_state
for model in (a, b):
    model.train()
    out = model(ids)
    model.zero_grad()
    model.backward({"last_hidden_state": upstream})
assert np.array_equal(a(ids).last_hidden_state, b(ids).last_hidden_state)
grad_a, grad_b = a.gradients(), b.gradients()
shared_name = [k for k in grad_a if k.endswith("attention.query.weight")][0]
per_layer = sorted(k for k in grad_b if k.endswith("attention.query.weight"))
summed = sum(grad_b[k] for k in per_layer)
gap = float(np.max(np.abs(summed - grad_a[shared_name])))
print(
    f"{shared_name}: {len(per_layer)} per-layer gradients summed vs the shared one, "
    f"max |difference| = {gap:.1e}"
)
assert len(per_layer) == 3
assert gap < 1e-12

# %% [markdown]
# ## ALBERT's third change: sentence-order prediction
# ALBERT replaces NSP with SOP: two consecutive segments, in order or swapped. The head has the
# same shape as NSP's (C -> 2 on the pooled [CLS]); only the labels change. Chapter 5
# ([05_pretraining.py](05_pretraining.py)) builds the SOP data and checks every label.

# %%
pre = from_config(config("albert", **small).replace(architecture="AlbertForPreTraining"), 0)
sop = pre.get_parameter("nsp.out.weight")
print(f"SOP head: nsp.out.weight {sop.shape}, stored as {pre.hf_weight_names()['nsp.out.weight']}")
assert sop.shape == (2, small["C"])

# %% [markdown]
# ## Exercises
# 1. With the formula, find the E that minimises ALBERT-base's count for V = 30000, and the E
#    at which the factorisation stops saving anything. Why did ALBERT pick 128?
# 2. Share only the attention blocks or only the FFNs (the paper's Table 4): write the two
#    counts with the formula. Which half of a layer holds more parameters, and by how much?
# 3. Time a forward of ALBERT-xxlarge's layer shape (C = 4096, F = 16384) against
#    BERT-large's for one 128-token sentence: which is cheaper to run, whatever the counts?
