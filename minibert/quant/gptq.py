"""GPTQ rounding for group-wise int4 / int8 weights: round with the layer's inputs in view.

Round-to-nearest (groupwise.encode) rounds every weight on its own, as if each input channel
mattered equally and independently. What matters is the layer's output on real inputs: for a
linear layer y = x W^T and calibration inputs X (tokens x K), the error of a quantized Q is

    || X W^T - X Q^T ||^2  =  sum over output rows n of  (w_n - q_n) H (w_n - q_n)^T,   H = X^T X.

GPTQ (Frantar, Ashkboos, Hoefler and Alistarh 2022, after Optimal Brain Surgeon) rounds the
columns (input channels) of W one at a time, left to right, and after rounding column i moves
its rounding error onto the columns not yet rounded, in the proportions that cancel the error
best under H:

    err      = (w[:, i] - q[:, i]) / U[i, i]
    w[:, j] -= err * U[i, j]              for every j > i

where U is the upper Cholesky factor of H^-1 (H^-1 = U^T U). Row i of U is what the inverse
Hessian of the columns still free looks like after the columns before i were fixed, so this
one loop does what OBS would do with a fresh inverse after every step. A group's scale is set
from the (already corrected) weights when the loop reaches the group's first column, so the
stored format is exactly groupwise's: the same codes, scales and file layout, and minibert.load
reads a GPTQ model with nothing new. Only the choice of codes differs.

H comes from running the float model on calibration text and summing x^T x over the tokens
that are not padding (`input_hessians`, through minibert.trace); a small damping, 1% of H's
mean diagonal, keeps H invertible, and an input channel that is always 0 is quantized to 0.
The queries, keys and values of a layer read the same input and share one H. Only encoder
layers are rounded this way; the pooler, heads and the embedding table (a lookup, whose error
has no input to be steered by) are rounded to nearest as minibert.quantize does.

    q = quantize_gptq(model, batches, bits=4, group_size=64, embedding_bits=4)
    q.save_pretrained("model-int4")

The loop below is the readable one, a column at a time (about a second per 1536-wide matrix).
"""

import numpy as np

from ..errors import InputError
from ..functional.quantize import TINY, group_qmax, pack_int4
from ..tracing import trace
from .convert import quantize
from .groupwise import GroupQuantLinear, check_scheme

DAMPING = 0.01  # of H's mean diagonal, added to its diagonal


def gptq_round(w, hessian, bits: int, group_size: int, damping: float = DAMPING):
    """Codes and scales for w (N, K) float given the input Hessian (K, K) = X^T X.

    -> (q (N, G * group_size) int8, scale (N, G) float32), the layout of
    functional.quantize.quantize_groups (zero-padded to whole groups)."""
    check_scheme(bits, group_size, w.shape[1], "the weight")
    w = np.array(w, dtype=np.float64)  # a copy: the loop corrects it in place
    n, k = w.shape
    h = np.array(hessian, dtype=np.float64)
    if h.shape != (k, k):
        raise InputError(f"the Hessian must be ({k}, {k}) for {k} weight columns, not {h.shape}")
    dead = np.diag(h) == 0  # channels the calibration never fed: nothing to steer by
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    h[np.diag_indices(k)] += damping * np.mean(np.diag(h))
    u = np.linalg.cholesky(np.linalg.inv(h)).T  # upper: H^-1 = U^T U

    qmax = np.float32(group_qmax(bits))
    groups = -(-k // group_size)
    q = np.zeros((n, groups * group_size), np.int8)
    scale = np.ones((n, groups), np.float32)
    for i in range(k):
        g = i // group_size
        if i % group_size == 0:  # the group's scale, from its columns as corrected so far
            block = w[:, i : i + group_size].astype(np.float32)
            s = np.max(np.abs(block), axis=1) / qmax
            scale[:, g] = np.where(s >= TINY, s, np.float32(1.0))
        inverse = np.float32(1.0) / scale[:, g]
        code = np.clip(np.rint(w[:, i].astype(np.float32) * inverse), -qmax, qmax)
        q[:, i] = code
        err = (w[:, i] - code.astype(np.float64) * scale[:, g]) / u[i, i]
        w[:, i + 1 :] -= np.outer(err, u[i, i + 1 :])
    return q, scale


# the linear layers of one encoder layer, and which traced array is each one's input
_INPUTS = {
    "attn.q": "input",
    "attn.k": "input",
    "attn.v": "input",
    "attn.o": "attention.context",
    "ffn.up": "ln1",
    "ffn.down": "ffn.activation",
}


def input_hessians(model, batches) -> dict:
    """{"encoder.layers.L.attn.q": H, ...}: X^T X (float64) of every encoder linear layer's
    inputs over the batches' non-padding tokens. batches: dicts with input_ids and
    attention_mask (token_type_ids optional), as a tokenizer returns them. A layer that runs
    at several steps (ALBERT's shared layers) sums its inputs over all of them."""
    sums, tokens = {}, 0
    for batch in batches:
        if "input_ids" not in batch:
            raise InputError("each calibration batch needs input_ids (a tokenizer's output)")
        keep = _real_tokens(batch)
        mask, types = batch.get("attention_mask"), batch.get("token_type_ids")
        t = trace(model, batch["input_ids"], mask, types)
        first = "embeddings.projection" if "embeddings.projection" in t else "embeddings.layernorm"
        for step, layer in enumerate(t.steps):
            for name, source in _INPUTS.items():
                if source == "input":
                    traced = first if step == 0 else f"encoder.step.{step - 1}.ln2"
                else:
                    traced = f"encoder.step.{step}.{source}"
                x = t[traced][keep].astype(np.float64)
                path = f"encoder.layers.{layer}.{name}"
                sums[path] = sums.get(path, 0.0) + x.T @ x
        tokens += int(keep.sum())
    if tokens == 0:
        raise InputError("the calibration batches hold no tokens (empty, or all padding)")
    return sums


def quantize_gptq(
    model,
    batches,
    bits: int = 4,
    group_size: int = 128,
    embedding_bits: int | None = None,
    damping: float = DAMPING,
    progress=None,
):
    """minibert.quantize(model, bits=bits, group_size=group_size, embedding_bits=...), with the
    encoder's linear layers rounded by GPTQ on the calibration `batches` instead of to
    nearest. The result saves and loads like any group-wise model; config.json's quantization
    entry records "rounding": "gptq" and the number of calibration tokens.
    progress: an optional callable(path) told each layer as it is done."""
    batches = list(batches)
    if not batches:
        raise InputError("quantize_gptq needs at least one calibration batch")
    qmodel = quantize(model, bits=bits, group_size=group_size, embedding_bits=embedding_bits)
    hessians = input_hessians(model, batches)
    for path, h in hessians.items():
        target = qmodel.submodule(path)
        if not isinstance(target, GroupQuantLinear):
            raise InputError(f"{path} is not a group-wise layer in the quantized copy")
        weight = model.submodule(path).params["weight"]
        q, scale = gptq_round(weight, h, bits, group_size, damping)
        target.params["weight"] = pack_int4(q) if bits == 4 else q
        target.params["weight_scale"] = scale
        if progress is not None:
            progress(path)
    entry = dict(qmodel.config.hf_extra["quantization"])
    tokens = sum(int(_real_tokens(b).sum()) for b in batches)
    entry.update({"rounding": "gptq", "calibration_tokens": tokens, "damping": damping})
    extra = dict(qmodel.config.hf_extra, quantization=entry)
    qmodel.config = qmodel.config.replace(hf_extra=extra)
    return qmodel


def calibration_batches(tokenizer, texts, batch_size: int = 32, max_length: int = 128) -> list:
    """texts tokenized in batches (padded within each, cut at max_length tokens): the
    `batches` quantize_gptq and input_hessians take."""
    texts = list(texts)
    return [
        tokenizer(texts[i : i + batch_size], max_length=max_length)
        for i in range(0, len(texts), batch_size)
    ]


def _real_tokens(batch):
    """(B, T) bool: the batch's tokens that are not padding (all of them without a mask)."""
    mask = batch.get("attention_mask")
    if mask is None:
        return np.ones(np.shape(batch["input_ids"]), bool)
    return np.asarray(mask).astype(bool)
