"""The conventions BERT implementations disagree on, and minibert re-run with any of them flipped.

Each knob is one known source of mismatches between ports (transformers #14221, #819, #1130,
keras-bert #129; RoBERTa positions #10736, #11242):

    hidden_act       the exact GELU (erf, "gelu") or its tanh approximation ("gelu_new")
    layer_norm_eps   1e-12 (BERT), 1e-5 (RoBERTa, torch's LayerNorm default) or 1e-6
    mask_fill        the additive bias on padded keys: the dtype's most negative number
                     (transformers), -1e4 (BERT's TensorFlow code, older transformers) or -1e9
    positions        position ids from 0 (BERT) or counted from padding_idx + 1 (RoBERTa)
    token_types      the given token types, none added at all, or all of type 0
    pooler           dense + tanh on [CLS] (BERT's pooler), or the [CLS] vector as it is

A Flip sets one knob to one value. `run` traces the model under a tuple of flips without
touching it: config knobs build a variant of its class that shares its weight arrays, the mask
fill is that variant's `mask_fill`, positions and token types are call arguments, and the
pooler flip records the [CLS] row as the pooled vector.
"""

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..quant import is_quantized
from ..tracing import trace

GELUS = {"gelu": "exact GELU (erf)", "gelu_new": "tanh GELU (gelu_new)"}
TANH_GELUS = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")
EPSILONS = (1e-12, 1e-5, 1e-6)
MASK_FILLS = {"finfo.min": None, "-1e4": -1e4, "-1e9": -1e9}


@dataclass(frozen=True)
class Flip:
    """One knob set to one value; `label` says it in words."""

    knob: str
    value: object
    label: str


def flips_for(model, inputs: dict) -> list:
    """Every single flip that changes something for this model on these inputs."""
    config = model.config
    flips = []
    if config.hidden_act == "gelu" or config.hidden_act in TANH_GELUS:
        other = "gelu_new" if config.hidden_act == "gelu" else "gelu"
        flips.append(Flip("hidden_act", other, GELUS[other]))
    for eps in EPSILONS:
        if eps != config.layer_norm_eps:
            flips.append(Flip("layer_norm_eps", eps, f"LayerNorm eps {eps:g}"))
    mask = inputs.get("attention_mask")
    if mask is not None and (np.asarray(mask) == 0).any():  # a fill only shows on padding
        for name, fill in MASK_FILLS.items():
            if fill != model.mask_fill:
                flips.append(Flip("mask_fill", fill, f"mask fill {name}"))
    T = inputs["input_ids"].shape[-1]
    if config.position_offset:
        flips.append(Flip("positions", "from 0", "positions from 0 (BERT)"))
    elif config.pad_token_id + 1 + T <= config.max_position_embeddings:
        flips.append(Flip("positions", "after padding", "positions from padding_idx + 1"))
    if config.type_vocab_size:
        flips.append(Flip("token_types", "none", "no token-type vectors"))
        types = inputs.get("token_type_ids")
        if types is not None and (np.asarray(types) != 0).any():
            flips.append(Flip("token_types", "zeros", "every token of type 0"))
    if getattr(model, "pooler", None) is not None:
        flips.append(Flip("pooler", "none", "no pooler: the [CLS] vector as pooled"))
    return flips


def run(model, inputs: dict, flips: tuple = ()):
    """minibert.trace of `model` on `inputs` with the flips applied (the model is unchanged)."""
    settings = {flip.knob: flip.value for flip in flips}
    if len(settings) != len(flips):
        raise InputError(f"one value per knob: {[f.label for f in flips]}")
    changes = {k: settings[k] for k in ("hidden_act", "layer_norm_eps") if k in settings}
    runner = model
    no_types = settings.get("token_types") == "none"
    # a model in training mode runs as a copy in eval mode: dropout would make every run differ
    if changes or "mask_fill" in settings or no_types or model.training:
        runner = variant(model, changes)
        runner.mask_fill = settings.get("mask_fill", model.mask_fill)
        if no_types:
            table = runner.embeddings.token_type.params["weight"]
            runner.embeddings.token_type.params["weight"] = np.zeros_like(table)
    ids, mask = inputs["input_ids"], inputs.get("attention_mask")
    types = inputs.get("token_type_ids") if model.config.type_vocab_size else None
    if settings.get("token_types") == "zeros" and types is not None:
        types = np.zeros_like(types)
    positions = None
    if "positions" in settings:
        positions = position_ids(model.config, ids, settings["positions"])
    t = trace(runner, ids, mask, types, position_ids=positions)
    if settings.get("pooler") == "none":
        _pool_without_pooler(t)
    return t


def variant(model, changes: dict):
    """A model of the same class under config.replace(**changes), sharing `model`'s arrays."""
    if is_quantized(model):
        raise InputError(
            "convention re-runs need a float model and this one is quantized: diff the float "
            "model it was quantized from, or turn the conventions off"
        )
    copy = type(model)(model.config.replace(**changes))
    for path, array in model.named_parameters():
        copy.set_parameter(path, array)
    copy.tie_weights()
    copy.kernels = model.kernels
    copy.mask_fill = model.mask_fill
    return copy


def position_ids(config, ids, convention: str):
    """(B, T) position ids: "from 0" (0, 1, ..., T-1) or "after padding" (RoBERTa's: real
    tokens counted from pad_token_id + 1, padding at pad_token_id)."""
    if convention == "from 0":
        return np.broadcast_to(np.arange(ids.shape[-1]), ids.shape)
    real = ids != config.pad_token_id  # (B, T)
    return np.cumsum(real, axis=1) * real + config.pad_token_id


def _pool_without_pooler(t) -> None:
    """Record the last hidden state's [CLS] row as the pooler's dense and output."""
    last = t.get("output.last_hidden_state")
    if last is None:
        last = t[f"encoder.step.{len(t.steps) - 1}.ln2"]
    for name in ("pooler.dense", "pooler.output"):
        if name in t:
            t[name] = last[:, 0].copy()
