"""Compressed variants of a model, named by a short spec, for `minibert compare` rows.

    int4           group-wise int4 layers and word table, group 128, or the narrowest layer's
                   width in a model narrower than that (minibert.quantize)
    heads:F        the fraction F of all attention heads removed, least important first
                   (Michel et al.'s score, heads.py, on a retrieval loss over sample texts)
    layers:I,J,..  only those encoder layers kept (layers.keep_layers)
    tokens:F       PoWER-BERT token elimination (token_elimination.py): after step j of L the
                   fraction F + (1 - F)(L - 1 - j) / L of the tokens stays, so the last step
                   keeps the fraction F; [CLS] always. Classifier and latency rows only: the
                   vectors of the kept tokens are not a sentence vector.
    tokens:F1,..,FL  the same with a fraction per step (a searched retention, as fractions of
                   the input's length: 64-46-... of 128 tokens is 0.5,0.36,...)

parse_variant turns a spec into a Variant; Variant.apply(model, texts, tokenizer) returns the
variant of a float32 model (a copy; the model is left as it was). A token-eliminated variant
is the model itself with a retention schedule: `forward` runs it, and the timing process of
`minibert compare` runs the same forward through TIMING_CHILD.
"""

import json
import math
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..evaluation.timing import child_code
from ..functional.pooling import l2_normalize, pool
from ..quant import quantize
from .heads import head_importance, least_important, prune_heads
from .layers import keep_layers
from .token_elimination import eliminate_tokens

KINDS = ("int4", "heads", "layers", "tokens")
RETENTION_FILE = "token_retention.json"  # in a timing folder: run the forward with elimination
TEMPERATURE = 0.05  # of the retrieval loss that scores the heads
INT4_GROUP = 128  # input channels per scale (narrower models: their narrowest layer's width)
# the timing process of a variant folder: it runs the forward timing_forward gives
TIMING_CHILD = child_code(
    "from minibert.compression.variants import timing_forward", "timing_forward(sys.argv[1])"
)


@dataclass
class Variant:
    """A compressed variant: kind (KINDS), its argument, and the label of its rows."""

    kind: str
    fraction: float | tuple | None = None  # tokens: one fraction, or one per step
    layers: tuple = field(default_factory=tuple)

    @property
    def label(self) -> str:
        if self.kind == "int4":
            return "int4"
        if self.kind == "heads":
            return f"heads -{self.fraction:.0%}"
        if self.kind == "layers":
            return "layers " + ",".join(map(str, self.layers))
        if isinstance(self.fraction, tuple):
            return "tokens " + "-".join(f"{f:g}" for f in self.fraction)
        return f"tokens {self.fraction:.0%}"

    @property
    def vectors(self) -> bool:
        """Whether the variant still gives a vector for every token (a sentence vector)."""
        return self.kind != "tokens"

    timing_child = TIMING_CHILD  # the code a timing process of its folder runs

    def apply(self, model, texts=None, tokenizer=None, plan=None):
        """The variant of the float32 `model` -> (variant, plan): a new model for int4, heads
        and layers, the model itself for tokens (its retention goes with the folder, see
        save). heads: `plan` ({layer: [heads]}) prunes those heads; without one the heads are
        scored on `texts` with `tokenizer` (a sentence encoder), and the plan is returned so
        that a classifier of the same encoder can lose the same heads."""
        if self.kind == "int4":
            group = min(INT4_GROUP, _narrowest_input(model))
            return quantize(model, bits=4, group_size=group, embedding_bits=4), None
        if self.kind == "layers":
            return keep_layers(model, list(self.layers)), None
        if self.kind == "heads":
            copy = deepcopy(model)  # prune_heads cuts in place
            if plan is None:
                if texts is None or tokenizer is None:
                    raise InputError("a heads variant needs sample texts and a tokenizer")
                scores = retrieval_importance(copy, tokenizer, texts)
                plan = least_important(scores, self.fraction)
            prune_heads(copy, plan)
            return copy, plan
        return model, None

    def runner(self, model):
        """What to call instead of the model: the model, or for tokens an Eliminating."""
        return Eliminating(model, self.fraction) if self.kind == "tokens" else model

    def save(self, model, folder: Path) -> None:
        """Write the variant where a timing process loads it (the retention beside tokens')."""
        model.save_pretrained(folder)
        if self.kind == "tokens":
            fraction = list(self.fraction) if isinstance(self.fraction, tuple) else self.fraction
            (Path(folder) / RETENTION_FILE).write_text(json.dumps({"fraction": fraction}))


def parse_variant(spec: str) -> Variant:
    """'int4', 'heads:0.25', 'layers:0,2,4,5' or 'tokens:0.5' -> Variant (InputError if not)."""
    kind, _, argument = str(spec).strip().partition(":")
    if kind not in KINDS:
        raise InputError(f"unknown variant {spec!r}: use {', '.join(KINDS)} (see --help)")
    if kind == "int4":
        if argument:
            raise InputError(f"variant {spec!r}: int4 takes no argument")
        return Variant("int4")
    if kind == "layers":
        try:
            layers = tuple(int(i) for i in argument.split(","))
        except ValueError:
            raise InputError(f"variant {spec!r}: expected layers:I,J,... (0-based)") from None
        return Variant("layers", layers=layers)
    try:
        fractions = tuple(float(f) for f in argument.split(","))
    except ValueError:
        raise InputError(f"variant {spec!r}: expected {kind}:FRACTION, e.g. {kind}:0.5") from None
    if len(fractions) > 1:
        if kind != "tokens":
            raise InputError(f"variant {spec!r}: {kind} takes one fraction")
        if not all(0.0 < f <= 1.0 for f in fractions):
            raise InputError(f"variant {spec!r}: each fraction must be in (0, 1]")
        return Variant(kind, fraction=fractions)
    if not 0.0 < fractions[0] < 1.0:
        raise InputError(f"variant {spec!r}: the fraction must be between 0 and 1 (exclusive)")
    return Variant(kind, fraction=fractions[0])


# --- heads: what the retrieval loss says each head is worth ----------------------------------
def retrieval_importance(model, tokenizer, texts, batch_size: int = 16):
    """Michel et al.'s head importance for a sentence encoder (mean pooling): the loss is the
    in-batch retrieval cross-entropy that makes each text find, among the others of its batch,
    the one the unpruned model finds nearest. -> (layers, H)"""
    batches, gradients = [], []
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(list(texts[start : start + batch_size]), max_length=128)
        inputs = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
        out = model(**inputs)
        e = l2_normalize(pool(out.last_hidden_state, enc["attention_mask"], "mean"))
        scores = e @ e.T
        np.fill_diagonal(scores, -np.inf)
        batches.append(inputs)
        gradients.append(retrieval_loss_gradient(enc["attention_mask"], scores.argmax(1)))
    if len(batches) == 0 or any(len(b["input_ids"]) < 2 for b in batches):
        raise InputError("scoring heads needs batches of at least 2 texts")
    pending = iter(gradients)
    return head_importance(model, batches, loss_gradient=lambda out: next(pending)(out))


def retrieval_loss_gradient(mask, targets):
    """model.backward's grads for the in-batch retrieval loss on mean-pooled unit vectors.

    s = masked mean of h over tokens, e = s / |s|, S = e e^T / tau with the diagonal left out,
    loss = mean_i CE(S_i, targets_i); the backward goes through each step in reverse."""

    def gradient(out):
        h = out.last_hidden_state.astype(np.float64)  # (B, T, C)
        m = mask[..., None].astype(np.float64)  # (B, T, 1)
        n = m.sum(1)  # (B, 1)
        s = (h * m).sum(1) / n  # (B, C)
        norm = np.linalg.norm(s, axis=1, keepdims=True)
        e = s / norm
        scores = e @ e.T / TEMPERATURE
        np.fill_diagonal(scores, -np.inf)
        p = np.exp(scores - scores.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        B = len(e)
        dscores = p
        dscores[np.arange(B), targets] -= 1.0
        dscores /= B  # d mean CE / d scores; the diagonal has p = 0, so no gradient
        de = (dscores + dscores.T) @ e / TEMPERATURE  # S is symmetric in e
        ds = (de - e * (e * de).sum(1, keepdims=True)) / norm  # through e = s / |s|
        dh = m * ds[:, None, :] / n[:, None, :]  # through the masked mean
        return {"last_hidden_state": dh.astype(out.last_hidden_state.dtype)}

    return gradient


# --- tokens: the retention schedule at each length ------------------------------------------
def retention_for(fraction, steps: int, length: int) -> list:
    """The counts kept after each of `steps` steps for inputs of `length` tokens: from all of
    them down, in equal steps, to ceil(fraction * length) after the last one; or, for a tuple of
    one fraction per step, ceil(f * length) each. At least 1 ([CLS])."""
    if isinstance(fraction, tuple):
        if len(fraction) != steps:
            raise InputError(
                f"the token retention gives {len(fraction)} fractions; the model runs {steps} "
                "encoder steps, and needs one for each"
            )
        return [max(1, math.ceil(length * f)) for f in fraction]
    return [
        max(1, math.ceil(length * (fraction + (1 - fraction) * (steps - 1 - j) / steps)))
        for j in range(steps)
    ]


class Eliminating:
    """A model called with token elimination at `fraction` (the model's call arguments)."""

    def __init__(self, model, fraction: float):
        self.model, self.fraction, self.config = model, fraction, model.config

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, **unused):
        return forward(self.model, self.fraction, input_ids, attention_mask, token_type_ids)


def forward(model, fraction: float, input_ids, attention_mask=None, token_type_ids=None):
    """The model's output with token elimination at `fraction` (retention_for at the input's
    length)."""
    steps = len(model.encoder.schedule)
    counts = retention_for(fraction, steps, np.shape(input_ids)[1])
    return eliminate_tokens(model, counts, input_ids, attention_mask, token_type_ids).output


def timing_forward(folder):
    """serve_timings' forward for a folder Variant.save wrote: elimination if it has a
    retention file, else None (the model's own call)."""
    file = Path(folder) / RETENTION_FILE
    if not file.is_file():
        return None
    fraction = json.loads(file.read_text())["fraction"]
    fraction = tuple(fraction) if isinstance(fraction, list) else fraction
    return lambda model, ids, mask, types: forward(model, fraction, ids, mask, types)


def _narrowest_input(model) -> int:
    c = model.config
    widths = (c.hidden_size, c.intermediate_size, c.embedding_size or c.hidden_size)
    return min(widths)
