"""How much memory a forward of B x T tokens takes: an estimate from the sizes, and a measurement.

    estimate = memory_estimate(model, batch=8, length=128)   # MemoryEstimate (bytes)
    measured = measure_forward_peak(model, batch=8, length=128)   # bytes, tracemalloc

The estimate is that of an inference forward (eval mode, no attentions returned) on the fast
kernels, the path `model(ids)` takes. It counts the arrays alive together at the busiest moment
of an encoder step, from how nn.py's EncoderLayer.forward_inference runs (N = B T rows,
s bytes per float):

- always alive: the embeddings' output, which body() keeps while the encoder runs, and the
  step's input: 2 N C s (one array at the first step, where they are the same);
- attention: q, k and v (3 N C s), the context (N C s) and the output projection (N C s),
  made while q, k, v and the context are alive: 7 N C s in all;
- feed-forward: the attention output, LayerNorm 1, the up-projection (N F s) and the
  down-projection: 5 N C s + N F s in all. The exact GELU runs in place, fused with the
  product (float32); any other activation is numpy code that makes temporaries of N F s each
  (ACTIVATION_TEMPORARIES: GELU's tanh form holds five at its last line, one of which numpy
  reuses in place once an array reaches 256 KiB). An int8 model also quantizes the input
  of each product to int8 (N F bytes for the down-projection);
- the inputs the model makes: the attention mask and token types (int64) and the mask's
  additive bias (N s); RoBERTa's position ids (int64), computed from the ids.

The peak is the larger of the two phases (the embeddings need less). The weights are counted
apart: they are allocated before the forward and stay.

The measurement is what tracemalloc sees: the peak of memory allocated through Python's and
numpy's allocators during one forward, less what was allocated before it. numpy registers its
array buffers with tracemalloc; the Numba kernels write into arrays numpy allocated, and their
own per-thread scratch (a block of query rows) is not counted by either.
"""

import tracemalloc
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..quant import is_quantized

INT64 = 8
# Arrays of N x F floats alive at once inside the activation, its input aside (the last line
# of each function in functional/activations.py), when it is not fused into the product.
ACTIVATION_TEMPORARIES = {
    "gelu": 1,  # gelu_erf's output (fused, so none, for float32)
    "gelu_new": 5,  # inner, t, 0.5 x, 1 + t, their product
    "gelu_pytorch_tanh": 5,
    "gelu_fast": 5,
    "quick_gelu": 3,  # 1.702 x, and two steps of the sigmoid
    "silu": 2,  # the sigmoid, the product
    "relu": 1,
}
# numpy computes `a * b` into `a` when `a` is a temporary of at least 256 KiB: GELU's tanh form
# then needs one array less (`0.5 * x * (1 + t)`); the others' temporaries are all named
ELIDE_BYTES = 256 * 1024
ELIDED = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes for one inference forward of batch x length tokens."""

    batch: int
    length: int
    weights: int  # every parameter array, a tied one once (int8 weights and their scales)
    attention_phase: int  # activations alive at the attention's output projection
    ffn_phase: int  # activations alive at the feed-forward's down-projection
    inputs: int  # the masks, token types and positions the model makes

    @property
    def activations(self) -> int:
        """The estimated peak of the forward's own allocations."""
        return max(self.attention_phase, self.ffn_phase) + self.inputs

    @property
    def total(self) -> int:
        return self.weights + self.activations


def check_shape(config, batch, length) -> tuple[int, int]:
    """batch and length as ints, or an InputError naming the bad one."""
    for name, value in (("batch", batch), ("length", length)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise InputError(f"{name} must be a positive integer, got {value!r}")
    if length > config.max_length:
        raise InputError(f"length {length} is more than this model's {config.max_length} positions")
    return int(batch), int(length)


def weight_bytes(model) -> int:
    """Bytes of every parameter array, a tied array counted once."""
    seen, total = set(), 0
    for _, module, key in model._param_slots():
        array = module.params[key]
        if id(array) not in seen:
            seen.add(id(array))
            total += array.nbytes
    return total


def memory_estimate(model, batch: int, length: int) -> MemoryEstimate:
    """The estimate above for `model` at batch x length tokens (module docstring)."""
    config = model.config
    batch, length = check_shape(config, batch, length)
    N, C, F = batch * length, config.hidden_size, config.intermediate_size
    s = np.dtype(model.dtype).itemsize
    steps = config.num_hidden_layers * (
        config.inner_group_num if config.model_type == "albert" else 1
    )
    alive = (2 if steps > 1 else 1) * N * C * s  # the embeddings' output and the step's input
    attention = alive + 5 * N * C * s  # q, k, v, context, output projection
    ffn = alive + 2 * N * C * s  # the attention output, LayerNorm 1
    if config.hidden_act == "gelu" and s == 4:  # fused: up + GELU in one array, then down
        ffn += N * F * s + N * C * s
    else:  # the activation's input and its temporaries, or its output and down's
        temporaries = ACTIVATION_TEMPORARIES[config.hidden_act]
        if config.hidden_act in ELIDED and N * F * s >= ELIDE_BYTES:
            temporaries -= 1
        ffn += max(N * F * s * (1 + temporaries), N * F * s + N * C * s)
    if is_quantized(model):
        ffn += N * F  # the activation quantized to int8 for the down-projection's product
    inputs = N * INT64 + N * s  # the attention mask and its additive bias
    if config.type_vocab_size:
        inputs += N * INT64  # token types (zeros when none are given)
    if config.position_offset:
        inputs += N * INT64  # RoBERTa's positions, counted from the ids
    return MemoryEstimate(batch, length, weight_bytes(model), attention, ffn, inputs)


def measure_forward_peak(model, batch: int, length: int, seed: int = 0) -> int:
    """Bytes: tracemalloc's peak during one inference forward of random ids, batch x length,
    less what was allocated before it. The model runs once first, so that compiling the
    kernels and first-use caches are not counted. The model runs in eval mode, and is put back
    in the mode it was in."""
    config = model.config
    batch, length = check_shape(config, batch, length)
    low = min(5, config.vocab_size - 1)  # above the usual special tokens when there is room
    ids = np.random.default_rng(seed).integers(low, config.vocab_size, (batch, length))
    was_training, had_dropout = model.training, model.dropout_on
    model.eval()
    started = tracemalloc.is_tracing()
    try:
        model(ids)
        if not started:
            tracemalloc.start()
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        model(ids)
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        if not started:
            tracemalloc.stop()
        model.train(was_training, dropout=had_dropout)
