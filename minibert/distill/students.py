"""Students built from a teacher, and the recipes that train them.

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
"""

from collections.abc import Callable
from dataclasses import dataclass

from ..config import EncoderConfig
from ..models.auto import MODEL_CLASSES, from_config
from .objective import DistillationObjective, LossWeights


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
