"""Knowledge distillation: students built from a teacher, and the loss that trains them.

Three recipes (RECIPES), each a way to build a student and the loss weights it trains with:

  distilbert  Sanh et al. 2019: the teacher's architecture with every other layer, initialised
              from the teacher (embeddings, layers 0, 2, 4, ..., pooler and heads);
              loss 5 L_soft + 2 L_hard + 1 L_cos at temperature 2, DistilBERT's settings.
  tinybert    Jiao et al. 2020: a shallower, narrower model of the teacher's family, freshly
              initialised (TinyBERT-4 for a BERT-base teacher: 4 layers, C = 312, F = 1200,
              12 heads); loss L_hidn (through a projection C -> C' that the objective holds, not
              the student) + L_attn + L_soft, teacher layers picked by a layer map.
  albert      Lan et al. 2020: an ALBERT of the teacher's width with factorized embeddings
              (E = C / 6, 128 for C = 768) and one layer shared by all L steps, freshly
              initialised; DistilBERT's loss, since the widths match.

DistillationObjective runs the teacher (eval mode: no caches, no dropout) and the student
(training mode) on a batch, combines the losses of functional/distill_losses.py, and
backpropagates them into the student through model.backward(grads), which accepts gradients on
the logits, the last and intermediate hidden states and the attention maps. It goes where a
model goes in train.Trainer (Trainer(student, ..., objective=objective)), so a distillation run
gets the trainer's progress bar, checkpoints and resume.

Shapes: B batch, T tokens, C student width, C' teacher width, H heads, V vocabulary, L layers.
"""

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from . import functional as F
from .config import IGNORE_INDEX, EncoderConfig
from .errors import InputError
from .models.auto import MODEL_CLASSES, from_config
from .nn import Linear, Module

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


# --- students -----------------------------------------------------------------------------------
def distilbert_student(teacher, layers=None):
    """DistilBERT's student (Sanh et al. 2019, section 3): the teacher's class and sizes with
    fewer layers, initialised from the teacher: its embeddings, the layers in `layers` (default
    every other one, 0, 2, 4, ...; DistilBERT took 0, 2, 4, 7, 9, 11 of BERT-base), its pooler
    and heads. The weights are copies: training the student leaves the teacher as it was.
    """
    cfg = teacher.config
    if cfg.num_unique_layers != cfg.num_hidden_layers:
        raise ValueError("the distilbert recipe takes layers from a teacher without shared layers")
    L = cfg.num_hidden_layers
    layers = list(range(0, L, 2)) if layers is None else [int(i) for i in layers]
    if not layers or not all(0 <= i < L for i in layers):
        raise ValueError(f"layers must be teacher layers in 0..{L - 1}, got {layers}")
    student = type(teacher)(cfg.replace(num_hidden_layers=len(layers))).astype(teacher.dtype)
    for path, array in student.named_parameters():
        source = path
        if path.startswith("encoder.layers."):  # student layer i is teacher layer layers[i]
            i, rest = path.removeprefix("encoder.layers.").split(".", 1)
            source = f"encoder.layers.{layers[int(i)]}.{rest}"
        array[...] = teacher.get_parameter(source)
    return student


def tinybert_student(
    teacher,
    num_hidden_layers: int | None = None,
    hidden_size: int | None = None,
    intermediate_size: int | None = None,
    num_attention_heads: int | None = None,
    seed: int = 0,
):
    """A shallower, narrower student of the teacher's family, freshly initialised (seeded).

    Defaults scale TinyBERT-4 from BERT-base: L'/3 layers, C = C' 13/32 rounded to a multiple of
    the heads (312 for 768), F = C 1200/312, the teacher's heads (the attention loss compares
    head by head). Attention dropout is off, so the maps the attention loss compares are the
    softmax itself (TinyBERT compares the scores before dropout).
    """
    sizes = {
        "num_hidden_layers": num_hidden_layers,
        "hidden_size": hidden_size,
        "intermediate_size": intermediate_size,
        "num_attention_heads": num_attention_heads,
    }
    return from_config(tinybert_config(teacher.config, **sizes), seed).astype(teacher.dtype)


def tinybert_config(cfg: EncoderConfig, **sizes) -> EncoderConfig:
    """The tinybert student's config for a teacher's (see tinybert_student); sizes None or
    missing take the defaults."""
    H = sizes.get("num_attention_heads") or cfg.num_attention_heads
    C = sizes.get("hidden_size") or max(H, round(cfg.hidden_size * 13 / 32 / H) * H)
    return cfg.replace(
        num_hidden_layers=sizes.get("num_hidden_layers") or max(1, cfg.num_hidden_layers // 3),
        hidden_size=C,
        intermediate_size=sizes.get("intermediate_size") or round(C * 1200 / 312),
        num_attention_heads=H,
        attention_probs_dropout_prob=0.0,
        num_hidden_groups=1,
        inner_group_num=1,
    )


def albert_student(
    teacher,
    embedding_size: int | None = None,
    num_hidden_layers: int | None = None,
    hidden_size: int | None = None,
    intermediate_size: int | None = None,
    num_attention_heads: int | None = None,
    seed: int = 0,
):
    """An ALBERT student (Lan et al. 2020), freshly initialised (seeded): factorized embeddings
    of width E < C (default C / 6, ALBERT's 128 for 768) and one layer applied at all L steps
    (num_hidden_groups = 1). Other sizes, the activation and the task head follow the teacher,
    so the cosine loss applies as it is.
    """
    sizes = {
        "embedding_size": embedding_size,
        "num_hidden_layers": num_hidden_layers,
        "hidden_size": hidden_size,
        "intermediate_size": intermediate_size,
        "num_attention_heads": num_attention_heads,
    }
    return from_config(albert_config(teacher.config, **sizes), seed).astype(teacher.dtype)


def albert_config(cfg: EncoderConfig, **sizes) -> EncoderConfig:
    """The albert student's config for a teacher's (see albert_student)."""
    arch = cfg.architecture
    head = arch[arch.index("For") :] if "For" in arch else "Model"
    if "Albert" + head not in MODEL_CLASSES:
        raise ValueError(f"ALBERT has no {head} class for a {arch} teacher")
    C = sizes.get("hidden_size") or cfg.hidden_size
    E = sizes.get("embedding_size") or max(1, C // 6)
    if E >= C:
        raise ValueError(f"embedding_size ({E}) must be below the hidden size ({C})")
    return EncoderConfig(
        model_type="albert",
        architecture="Albert" + head,
        vocab_size=cfg.vocab_size,
        hidden_size=C,
        num_hidden_layers=sizes.get("num_hidden_layers") or cfg.num_hidden_layers,
        num_attention_heads=sizes.get("num_attention_heads") or cfg.num_attention_heads,
        intermediate_size=sizes.get("intermediate_size") or cfg.intermediate_size,
        hidden_act=cfg.hidden_act,
        max_position_embeddings=cfg.max_length,  # no room for RoBERTa's offset is needed
        type_vocab_size=2,
        layer_norm_eps=cfg.layer_norm_eps,
        pad_token_id=cfg.pad_token_id,
        embedding_size=E,
        num_hidden_groups=1,
        inner_group_num=1,
        hidden_dropout_prob=cfg.hidden_dropout_prob,
        attention_probs_dropout_prob=cfg.attention_probs_dropout_prob,
        # BERT's None means hidden_dropout_prob; ALBERT's config.json reads None as 0.1
        classifier_dropout=(
            cfg.hidden_dropout_prob if cfg.classifier_dropout is None else cfg.classifier_dropout
        ),
        num_labels=cfg.num_labels,
        initializer_range=cfg.initializer_range,
    )


@dataclass(frozen=True)
class Recipe:
    """A way to build a student from a teacher, and the loss weights it trains with."""

    name: str
    build: Callable  # build(teacher, **sizes) -> student model
    weights: LossWeights
    about: str

    def objective(self, student, teacher, **changes) -> DistillationObjective:
        """The recipe's DistillationObjective; changes override LossWeights fields."""
        return DistillationObjective(student, teacher, self.weights.replace(**changes))


RECIPES = {
    "distilbert": Recipe(
        "distilbert",
        distilbert_student,
        LossWeights(soft=5.0, hard=2.0, cosine=1.0, temperature=2.0),
        "every other teacher layer, initialised from the teacher (Sanh et al. 2019)",
    ),
    "tinybert": Recipe(
        "tinybert",
        tinybert_student,
        LossWeights(soft=1.0, hidden=1.0, attention=1.0, temperature=1.0),
        "L/3 layers, C 13/32, fresh; hidden states through a projection and attention maps "
        "(Jiao et al. 2020)",
    ),
    "albert": Recipe(
        "albert",
        albert_student,
        LossWeights(soft=5.0, hard=2.0, cosine=1.0, temperature=2.0),
        "factorized embeddings E = C/6 and one shared layer, fresh (Lan et al. 2020)",
    ),
}


def make_student(recipe: str, teacher, **sizes):
    """RECIPES[recipe].build(teacher, **sizes), naming the recipes on a typo."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; the recipes are {sorted(RECIPES)}")
    return RECIPES[recipe].build(teacher, **sizes)


def describe(model) -> str:
    """One line of sizes: class, L, C, (E,) H, F, unique layers."""
    c = model.config
    E = f" E={c.embedding_size}" if c.embedding_size else ""
    shared = f", {c.num_unique_layers} unique" if c.num_unique_layers != c.num_hidden_layers else ""
    return (
        f"{c.architecture} L={c.num_hidden_layers}{shared} C={c.hidden_size}{E} "
        f"H={c.num_attention_heads} F={c.intermediate_size}"
    )


def parameter_report(student, teacher) -> str:
    """The student's size against the teacher's, for the CLI to print."""
    n_s, n_t = student.num_parameters(), teacher.num_parameters()
    return (
        f"teacher {describe(teacher)}: {n_t:,} parameters\n"
        f"student {describe(student)}: {n_s:,} parameters, {100 * n_s / n_t:.1f}% of the "
        f"teacher ({n_t / n_s:.1f}x smaller)"
    )
