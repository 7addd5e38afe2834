"""The distillation loss: a teacher, a student, and the weighted losses between them.

DistillationObjective runs the teacher (eval mode: no caches, no dropout) and the student
(training mode) on a batch, combines the losses of functional/distill_losses.py, and
backpropagates them into the student through model.backward(grads), which accepts gradients on
the logits, the last and intermediate hidden states and the attention maps. It goes where a
model goes in training.Trainer (Trainer(student, ..., objective=objective)), so a distillation
run gets the trainer's progress bar, checkpoints and resume. students.py builds the students.

Shapes: B batch, T tokens, C student width, C' teacher width, H heads, V vocabulary, L layers.
"""

from dataclasses import dataclass, replace

import numpy as np

from .. import functional as F
from ..config import IGNORE_INDEX
from ..errors import InputError
from ..nn import Linear, Module

LOGIT_FIELDS = ("logits", "prediction_logits")  # the head output the soft targets compare


@dataclass(frozen=True)
class LossWeights:
    """How much each loss counts; 0 switches it off (and skips its work)."""

    soft: float = 0.0  # T^2 KL between the softened logits (L_ce in DistilBERT's paper)
    hard: float = 0.0  # cross-entropy with the batch's labels (DistilBERT's L_mlm)
    cosine: float = 0.0  # 1 - cos between the last hidden states (L_cos)
    hidden: float = 0.0  # MSE between mapped hidden states, embeddings included (L_hidn + L_embd)
    attention: float = 0.0  # MSE between mapped attention maps (L_attn)
    sentence: float = 0.0  # 1 - cos between mean-pooled sentence vectors (projected if C < C')
    temperature: float = 1.0  # T of the soft targets

    def replace(self, **changes) -> "LossWeights":
        return replace(self, **changes)


def layer_map(student_layers: int, teacher_layers: int, mapping="uniform") -> list[int]:
    """The teacher hidden state each student hidden state 1..L learns from: [g(1), ..., g(L)].

    "uniform" is TinyBERT's g(i) = i k with k = L' / L (every k-th layer), rounded when k is not
    an integer, so the last layer always maps to the last; a list gives g explicitly (teacher
    layers 1..L', increasing). Hidden state 0, the embeddings' output, maps to 0; attention map
    i - 1 (student layer i) maps to the teacher's g(i) - 1.
    """
    if isinstance(mapping, str):
        if mapping != "uniform":
            raise ValueError(f"layer mapping must be 'uniform' or a list, got {mapping!r}")
        return [round(i * teacher_layers / student_layers) for i in range(1, student_layers + 1)]
    g = [int(i) for i in mapping]
    if len(g) != student_layers or not all(1 <= i <= teacher_layers for i in g):
        raise ValueError(
            f"a layer map needs one teacher layer in 1..{teacher_layers} for each of the "
            f"{student_layers} student layers, got {list(mapping)}"
        )
    if any(a >= b for a, b in zip(g, g[1:], strict=False)):
        raise ValueError(f"a layer map must increase, got {g}")
    return g


class DistillationObjective(Module):
    """The weighted sum of distillation losses of `student` against `teacher` on one batch.

        loss = soft L_soft + hard L_hard + cosine L_cos + hidden sum_i L_hidn(i)
               + attention sum_i L_attn(i) + sentence L_sent

    summed over the mapped layers as TinyBERT does. Token losses count real tokens only (the
    attention mask); L_soft over (B, T, V) logits counts every real token, as DistilBERT does
    by default, or only the labelled ones with soft_on_labels_only=True (its
    --restrict_ce_to_mask). Call it on a batch (the keyword arguments of a model call, labels
    included when hard > 0) to get the loss, then backward().

    L_sent compares the mean-pooled last hidden states (the sentence embedding of a
    sentence-transformers model such as all-MiniLM-L6-v2, which has no MLM head to distil).

    Its children are the student and, when the hidden or sentence loss needs one, the
    projection C -> C' (one matrix for both): the trainer updates and checkpoints both. The
    teacher is deliberately not a child, so it is never trained, saved or switched to training
    mode.
    """

    def __init__(
        self,
        student,
        teacher,
        weights: LossWeights,
        mapping="uniform",
        soft_on_labels_only: bool = False,
        seed: int = 0,
    ):
        super().__init__()
        self.student, self.weights = student, weights
        self.soft_on_labels_only = soft_on_labels_only
        s, t = student.config, teacher.config
        self.layer_map = layer_map(
            len(student.encoder.schedule), len(teacher.encoder.schedule), mapping
        )
        if weights.cosine and s.hidden_size != t.hidden_size:
            raise ValueError(
                f"the cosine loss needs equal widths (student {s.hidden_size}, teacher "
                f"{t.hidden_size}); use the hidden loss, which projects"
            )
        if weights.attention and s.num_attention_heads != t.num_attention_heads:
            raise ValueError(
                f"the attention loss compares head by head: the student has "
                f"{s.num_attention_heads} heads, the teacher {t.num_attention_heads}"
            )
        if (weights.hidden or weights.sentence) and s.hidden_size != t.hidden_size:
            # TinyBERT's W_h: one matrix for every layer (its code's fit_dense), bias included
            self.projection = Linear(s.hidden_size, t.hidden_size)
            rng = np.random.default_rng(seed)
            w = rng.normal(0.0, s.initializer_range, (t.hidden_size, s.hidden_size))
            self.projection.params["weight"] = w.astype(student.dtype)
            self.projection.params["bias"] = self.projection.params["bias"].astype(student.dtype)
        self._teacher = teacher.eval()  # a plain attribute, not a child (see children())
        self.losses = {}
        self._state = None

    @property
    def teacher(self):
        return self._teacher

    def children(self):
        """The student and the projection only: walking the teacher would train it."""
        for name, child in super().children():
            if name != "_teacher":
                yield name, child

    def __call__(self, batch: dict) -> float:
        """Run both models on the batch and return the weighted loss (self.losses has each
        part). Shapes: batch["input_ids"] (B, T), labels (B, T) or (B,) when given"""
        w = self.weights
        inputs = {k: batch.get(k) for k in ("input_ids", "attention_mask", "token_type_ids")}
        mask = np.asarray(
            inputs["attention_mask"]
            if inputs["attention_mask"] is not None
            else np.ones(np.shape(inputs["input_ids"]), np.int64)
        )  # (B, T)
        wants = {"output_hidden_states": w.hidden > 0, "output_attentions": w.attention > 0}
        if self._teacher.training:
            self._teacher.eval()
        t_out = self._teacher(**inputs, **wants)
        s_out = self.student(**inputs, **wants)
        losses, state = {}, {}
        if w.soft or w.hard:
            name = next((f for f in LOGIT_FIELDS if f in s_out and f in t_out), None)
            if name is None or s_out[name].shape != t_out[name].shape:
                raise ValueError("soft and hard losses need logits of one shape from both models")
            logits = s_out[name]  # (B, T, V) or (B, K)
            state["logits"] = (name, logits.shape)
        if w.soft:
            rows = None
            if logits.ndim == 3:
                rows = mask if not self.soft_on_labels_only else self._labels(batch) != IGNORE_INDEX
            losses["soft"], state["soft"] = F.soft_target_forward(
                logits, t_out[name], w.temperature, rows
            )
        if w.hard:
            labels = self._labels(batch)
            K = logits.shape[-1]
            losses["hard"], state["hard"] = F.cross_entropy_forward(
                logits.reshape(-1, K), labels.reshape(-1)
            )
        if w.cosine:
            losses["cosine"], state["cosine"] = F.cosine_forward(
                s_out.last_hidden_state, t_out.last_hidden_state, mask
            )
        if w.hidden:
            weight, bias = self._projection_params()
            pairs = [(0, 0), *enumerate(self.layer_map, start=1)]  # (student i, teacher g(i))
            caches = []
            losses["hidden"] = 0.0
            for i, g in pairs:
                loss, cache = F.hidden_mse_forward(
                    s_out.hidden_states[i], weight, bias, t_out.hidden_states[g], mask
                )
                losses["hidden"] += loss
                caches.append((i, cache))
            state["hidden"] = caches
        if w.attention:
            caches = []
            losses["attention"] = 0.0
            for i, g in enumerate(self.layer_map):  # student map i <- teacher map g(i + 1) - 1
                loss, cache = F.attention_mse_forward(
                    s_out.attentions[i], t_out.attentions[g - 1], mask
                )
                losses["attention"] += loss
                caches.append((i, cache))
            state["attention"] = caches
        if w.sentence:
            weight, bias = self._projection_params()
            losses["sentence"], state["sentence"] = F.sentence_cosine_forward(
                s_out.last_hidden_state, weight, bias, t_out.last_hidden_state, mask
            )
        total = sum(getattr(w, k) * float(v) for k, v in losses.items())
        self.losses = {k: float(v) for k, v in losses.items()} | {"total": total}
        self._state = state
        return total

    def _labels(self, batch):
        if batch.get("labels") is None:
            raise InputError(
                "the hard-label loss (and soft_on_labels_only) need labels= in the batch"
            )
        return np.asarray(batch["labels"])

    def _projection_params(self):
        if not hasattr(self, "projection"):
            return None, None
        return self.projection.params["weight"], self.projection.params["bias"]

    def backward(self) -> None:
        """Gradients of the last call's loss into the student's (and the projection's) grads."""
        if self._state is None:
            raise RuntimeError("backward() follows a call of the objective on a batch, once")
        w, state, grads = self.weights, self._state, {}
        if "logits" in state:
            name, shape = state["logits"]
            dlogits = np.zeros(shape, self.student.dtype)  # (B, T, V) or (B, K)
            if "soft" in state:
                dlogits += F.soft_target_backward(w.soft, state["soft"])
            if "hard" in state:
                dlogits += F.cross_entropy_backward(w.hard, state["hard"]).reshape(shape)
            grads[name] = dlogits
        if "cosine" in state:
            grads["last_hidden_state"] = F.cosine_backward(w.cosine, state["cosine"])
        if hasattr(self, "projection") and "weight" not in self.projection.grads:
            self.projection.zero_grad()
        if "hidden" in state:
            grads["hidden_states"] = {}
            for i, cache in state["hidden"]:
                dh, dweight, dbias = F.hidden_mse_backward(w.hidden, cache)
                grads["hidden_states"][i] = dh
                if dweight is not None:  # one projection used L + 1 times: its gradients add up
                    self.projection.grads["weight"] += dweight
                    self.projection.grads["bias"] += dbias
        if "attention" in state:
            grads["attentions"] = {
                i: F.attention_mse_backward(w.attention, cache) for i, cache in state["attention"]
            }
        if "sentence" in state:
            dh, dweight, dbias = F.sentence_cosine_backward(w.sentence, state["sentence"])
            if "last_hidden_state" in grads:  # L_cos and L_sent both reach the last states
                dh = dh + grads["last_hidden_state"]
            grads["last_hidden_state"] = dh
            if dweight is not None:
                self.projection.grads["weight"] += dweight
                self.projection.grads["bias"] += dbias
        self._state = None
        self.student.backward(grads)
