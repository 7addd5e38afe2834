"""Token elimination (PoWER-BERT): drop the word vectors that matter least, layer by layer.

Goyal et al. 2020 ("PoWER-BERT: Accelerating BERT Inference via Progressive Word-vector
Elimination") observe that a classifier reads one vector, [CLS], and that the word vectors grow
alike as they go up the layers. So after each layer's self-attention, only the l_j vectors
with the most *significance* go on to the feed-forward network and the layers above: the
sequence really shrinks, and with it the time.

    significance(j, b, t) = sum over heads h and real query positions i of probs[b, h, i, t]

is the attention that position t receives in layer j (padding neither counts as a query nor
survives as a key while a real token is left). The retention configuration (l_1, ..., l_L),
one count per encoder step, is non-increasing, at most T, and at least 1: [CLS] is always kept,
whatever its score, and the kept positions stay in their original order, so [CLS] stays first
and the pooler and heads read it where they always do. Ties go to the earlier position.

The paper learns the configuration with a soft extract layer and fine-tunes after; here the
configuration is searched instead (search_retention: greedy, one layer at a time, against a
validation score) and the weights are left as they are.
"""

from dataclasses import dataclass

import numpy as np

from .. import functional as F
from ..errors import InputError
from ..kernels.jit import kernels_for_call, threads_for_work
from ..models.inputs import check_forward
from ..models.tasks import ForSequenceClassification


def significance(probs, attention_mask):
    """The attention each position receives: summed over heads and over the real query
    positions; padded positions get -inf, so that they are dropped first.

    Shapes: probs (B, H, T, T) as (batch, head, query, key), attention_mask (B, T) 0/1 -> (B, T)
    """
    real = attention_mask.astype(probs.dtype)  # (B, T)
    received = np.einsum("bhqk,bq->bk", probs, real)  # (B, T): sum over heads and queries
    return np.where(attention_mask > 0, received, -np.inf)  # (B, T)


def top_positions(scores, k: int):
    """The k positions of each row with the highest scores, [CLS] (position 0) always among
    them, in increasing order. Ties go to the earlier position (a stable sort).

    Shapes: scores (B, T) -> (B, k) integer positions"""
    scores = scores.copy()
    scores[:, 0] = np.inf  # [CLS] is kept whatever it received
    ranked = np.argsort(-scores, axis=1, kind="stable")[:, :k]  # (B, k), best first
    return np.sort(ranked, axis=1)  # (B, k), in sequence order


def gather_positions(x, positions):
    """The rows of x at the given positions, sequence by sequence.

    Shapes: x (B, T, ...) , positions (B, k) -> (B, k, ...)"""
    index = positions.reshape(positions.shape + (1,) * (x.ndim - 2))  # (B, k, 1, ...)
    return np.take_along_axis(x, index, axis=1)


def check_retention(retention, steps: int, length: int) -> tuple:
    """A retention configuration as a tuple of ints, or an InputError that says what is wrong:
    one count per encoder step, each between 1 and the sequence length T, never increasing."""
    if isinstance(retention, (str, bytes)) or not hasattr(retention, "__len__"):
        raise InputError(f"retention must be a list of {steps} counts, got {retention!r}")
    if len(retention) != steps:
        raise InputError(
            f"retention has {len(retention)} counts; the model runs {steps} encoder steps, "
            "and needs one count for each"
        )
    counts = []
    for step, k in enumerate(retention):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise InputError(f"retention[{step}] must be an integer count, got {k!r}")
        if k < 1:
            raise InputError(f"retention[{step}] is {k}: at least 1 vector ([CLS]) is kept")
        if k > length:
            raise InputError(
                f"retention[{step}] is {k}, more than the {length} tokens of the input"
            )
        if counts and k > counts[-1]:
            raise InputError(
                f"retention must not increase: step {step} keeps {k}, step {step - 1} only "
                f"{counts[-1]} (an eliminated vector cannot come back)"
            )
        counts.append(int(k))
    return tuple(counts)


@dataclass
class Elimination:
    """What eliminate_tokens returns: the model's own output (logits, pooler_output, the last
    hidden state of the kept positions; hidden_states when asked, each as long as its step
    kept) and, for each encoder step, the original positions that survived it, (B, l_j)."""

    output: object
    kept: tuple


def eliminate_tokens(
    model,
    retention,
    input_ids,
    attention_mask=None,
    token_type_ids=None,
    output_hidden_states: bool = False,
) -> Elimination:
    """Run a classifier (or a base model) keeping retention[j] word vectors after step j.

    A step whose count is the current length runs exactly as the model's own forward does, so
    full retention gives the model's output bit for bit. A step that drops vectors runs its
    self-attention with the probabilities, scores the positions (significance), keeps the top
    ones, and runs its feed-forward network and every later step on those alone, with the
    attention mask gathered alike. Shapes: input_ids (B, T) -> Elimination."""
    if not isinstance(model, ForSequenceClassification) and model.heads:
        raise InputError(
            f"token elimination needs a model that reads [CLS] only (a sequence classifier or "
            f"a base model); {type(model).__name__} needs every position"
        )
    if model.training:
        raise InputError("token elimination is for inference: call model.eval() first")
    inputs = check_forward(
        model.config, input_ids, attention_mask, token_type_ids, dtype=model.dtype
    )
    B, T = inputs.mask.shape
    counts = check_retention(retention, len(model.encoder.schedule), T)
    work = B * T * model._work_per_token()  # the thread choice of the full forward
    with kernels_for_call(model.kernels), threads_for_work(work, model._calls_blas()):
        x = model.embeddings.forward(inputs.ids, inputs.types, inputs.positions, inputs.embeds)
        mask = inputs.mask
        positions = np.broadcast_to(np.arange(T), (B, T))  # (B, t): original positions
        hidden = [x] if output_hidden_states else None
        kept = []
        for step, index in enumerate(model.encoder.schedule):
            layer = model.encoder.layers[index]
            mask_bias = F.padding_mask_bias(mask, x.dtype)  # (B, t)
            if counts[step] == x.shape[1]:  # nothing to drop: the model's own step
                x, _ = layer.forward(x, mask_bias, need_probs=False)
            else:
                x, mask, chosen = _eliminating_step(layer, x, mask, mask_bias, counts[step])
                positions = np.take_along_axis(positions, chosen, axis=1)
            kept.append(np.array(positions))
            if output_hidden_states:
                hidden.append(x)
        pooled = model.pooler.forward(x) if hasattr(model, "pooler") else None
        out = model.head_outputs(x, pooled)
    out.hidden_states = tuple(hidden) if hidden is not None else None
    return Elimination(output=out, kept=tuple(kept))


def _eliminating_step(layer, x, mask, mask_bias, k: int):
    """One encoder layer (nn.EncoderLayer.forward_inference's steps) with the extract step
    between its self-attention and its feed-forward network, as in the paper.

    Shapes: x (B, t, C), mask (B, t) -> x (B, k, C), mask (B, k), chosen (B, k) in 0..t-1"""
    attn = layer.attn
    a, probs = attn.forward(x, mask_bias, add_bias=False, need_probs=True)  # probs (B, H, t, t)
    h = layer.ln1.forward(a, residual=x, bias=attn.o.params["bias"])  # (B, t, C)
    chosen = top_positions(significance(probs, mask), k)  # (B, k)
    h = gather_positions(h, chosen)  # (B, k, C)
    mask = gather_positions(mask, chosen)  # (B, k)
    f = layer.ffn.forward(h, add_bias=False)
    return layer.ln2.forward(f, residual=h, bias=layer.ffn.down.params["bias"]), mask, chosen


def search_retention(score_of, steps: int, length: int, tolerance: float, counts=None):
    """A retention configuration found greedily, one step at a time: step j takes the smallest
    of `counts` (at most step j - 1's) whose configuration, that count kept by every later
    step too, scores at least the full model's score minus `tolerance`.

    score_of(retention) -> float is the validation score (accuracy) of a configuration; it is
    called once per configuration tried, the full one first. Each step tries its counts from
    the largest down and stops at the first that scores too low. Returns (retention, score)."""
    if counts is None:  # about 1.4x apart, from T down to 1
        counts = sorted({length} | {max(1, round(length / 1.41**i)) for i in range(20)})
    counts = sorted({int(c) for c in counts if 1 <= c <= length}, reverse=True)
    if not counts:
        raise InputError(f"search_retention needs counts between 1 and {length}")
    best = (length,) * steps
    best_score = score_of(best)
    floor = best_score - tolerance
    for step in range(steps):
        for k in counts:
            if k >= best[step]:
                continue
            trial = best[:step] + (k,) * (steps - step)
            score = score_of(trial)
            if score < floor:
                break
            best, best_score = trial, score
    return best, best_score
