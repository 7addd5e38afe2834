"""Whole models in and out of quantized form: quantize(), the skeleton a quantized checkpoint
is loaded into, the config's "quantization" entry, and fake quantisation for training.

Two schemes, named in config.json's "quantization" block:
  * "minibert-int8" (quant/int8.py): int8 weights per output channel, activations per row,
    the exact int8 product; `quantize(model)`;
  * "minibert-groupwise" (quant/groupwise.py): int4 or int8 weights with a scale per group of
    input channels, float32 activations; `quantize(model, bits=4, group_size=128)`, the block
    also holding "bits" and "group_size".
Either way `embeddings=True` (the default) quantises the word-embedding table the same way, and
a tied MLM decoder shares the quantized table and its scales.
"""

import copy
from typing import NamedTuple

import numpy as np

from ..errors import ConfigError, InputError
from ..nn import Linear, Module
from . import groupwise
from .groupwise import GroupQuantEmbedding, GroupQuantLinear
from .int8 import METHOD, SCHEME, QuantEmbedding, QuantLinear


class GroupScheme(NamedTuple):
    """A group-wise request: bits of the linear layers, the group size, bits of the table."""

    bits: int
    group_size: int
    table_bits: int


GROUPWISE_SCHEME = (
    "symmetric per group of input channels; int4 packed low nibble first; float32 activations"
)


def _swap_modules(root: Module, make) -> int:
    """Replace each sub-module m for which make(m) returns a module; returns how many."""
    count = 0
    for module in list(root.modules()):
        for name, value in list(vars(module).items()):
            if isinstance(value, Module):
                new = make(value)
                if new is not None:
                    setattr(module, name, new)
                    count += 1
            elif isinstance(value, list) and value and isinstance(value[0], Module):
                for i, item in enumerate(value):
                    new = make(item)
                    if new is not None:
                        value[i] = new
                        count += 1
    return count


def quantize(
    model,
    embeddings: bool = True,
    bits: int = 8,
    group_size: int | None = None,
    embedding_bits: int | None = None,
):
    """A quantized copy of `model` (float32), with the same call interface.

    Default (bits=8, no group_size): every Linear layer becomes a QuantLinear (int8 weights per
    output channel, activations quantised per row as they arrive). With a group_size, every
    Linear layer becomes a GroupQuantLinear: `bits` (4 or 8) per weight, one float32 scale per
    group of `group_size` input channels of each output row (Q-BERT); bits=4 needs a group_size.
    With embeddings=True the word-embedding table is quantized the same way (one scale per row,
    or per group of a row), and a tied MLM decoder shares it; group-wise, embedding_bits (4 or
    8, default `bits`) sets the table's bits apart from the layers'. The returned model can be saved
    with save_pretrained and read back with minibert.load. The float model is left as it was;
    the two share their float32 arrays (LayerNorm, biases, other embeddings)."""
    if is_quantized(model):
        raise InputError("the model is already quantized")
    if model.dtype != np.float32:
        raise InputError(f"quantize needs a float32 model, got {model.dtype} (use astype)")
    if model.training:
        raise InputError("quantize a model in eval mode (call model.eval() first)")
    scheme = _scheme(bits, group_size, embedding_bits)
    if scheme is not None:
        _check_widths(model, embeddings, scheme)
    arrays = {id(a): a for _, a in model.named_parameters()}
    qmodel = copy.deepcopy(model, memo=dict(arrays))  # new modules, the same arrays
    # untie first: quantising a tied decoder on its own would make a second table
    tied = qmodel.tied

    def make(m):
        if type(m) is not Linear or _tied(m, qmodel, tied):
            return None
        if scheme is None:
            return QuantLinear.from_linear(m)
        return GroupQuantLinear.from_linear(m, scheme.bits, scheme.group_size)

    _swap_modules(qmodel, make)
    if embeddings:
        word = qmodel.embeddings.word
        qmodel.embeddings.word = (
            QuantEmbedding.from_embedding(word)
            if scheme is None
            else GroupQuantEmbedding.from_embedding(word, scheme.table_bits, scheme.group_size)
        )
    _finish(qmodel, embeddings, scheme)
    return qmodel


def _scheme(bits, group_size, embedding_bits) -> GroupScheme | None:
    """The group-wise request, or None for the per-channel int8 scheme."""
    if group_size is None:
        if bits not in (4, 8):
            raise InputError(f"bits must be 4 or 8, got {bits!r}")
        if bits == 4 or embedding_bits is not None:
            raise InputError(
                "int4 quantization and embedding_bits are group-wise: pass group_size (e.g. 128)"
            )
        return None
    groupwise.check_scheme(bits, group_size)
    table_bits = bits if embedding_bits is None else embedding_bits
    if table_bits not in groupwise.BITS:
        raise InputError(f"embedding_bits must be 4 or 8, got {embedding_bits!r}")
    return GroupScheme(bits, int(group_size), table_bits)


def _check_widths(model, embeddings: bool, scheme: GroupScheme) -> None:
    """A group no wider than any layer it applies to (it would be mostly padding)."""
    bits, group_size = scheme.bits, scheme.group_size
    tied = model.tied
    for m in model.modules():
        if type(m) is Linear and not _tied(m, model, tied):
            width = m.params["weight"].shape[1]
            groupwise.check_scheme(bits, group_size, width, "a linear layer")
    if embeddings:
        dim = model.embeddings.word.params["weight"].shape[1]
        groupwise.check_scheme(bits, group_size, dim, "the word-embedding table")


def _tied(module, model, tied) -> bool:
    """True for the MLM decoder whose weight is the embedding table (handled with it)."""
    return bool(tied) and getattr(getattr(model, "mlm", None), "decoder", None) is module


def _finish(qmodel, embeddings: bool, scheme: GroupScheme | None) -> None:
    """The tied decoder, the config entry and eval mode, for quantize and for loading."""
    if qmodel.tied:
        decoder = qmodel.mlm.decoder
        if embeddings:
            if type(decoder) is Linear:
                out_features, in_features = decoder.params["weight"].shape
                has_bias = "bias" in decoder.params
                new = (
                    QuantLinear(in_features, out_features, has_bias)
                    if scheme is None
                    else GroupQuantLinear(
                        in_features, out_features, scheme.table_bits, scheme.group_size, has_bias
                    )
                )
                if has_bias:
                    new.params["bias"] = decoder.params["bias"]
                qmodel.mlm.decoder = new
        elif type(decoder) is not Linear:
            raise InputError("a tied decoder is quantized only with its embedding table")
    qmodel.tie_weights()
    extra = dict(qmodel.config.hf_extra)
    if scheme is None:
        entry = {"method": METHOD, "scheme": SCHEME, "embeddings": bool(embeddings)}
    else:
        entry = {
            "method": groupwise.METHOD,
            "scheme": GROUPWISE_SCHEME,
            "bits": scheme.bits,
            "group_size": scheme.group_size,
            "embedding_bits": scheme.table_bits,
            "embeddings": bool(embeddings),
        }
    previous = extra.get("quantization") or {}  # a loaded model's: keep what else it records
    extra["quantization"] = {**previous, **entry}  # (gptq.py's rounding and calibration)
    qmodel.config = qmodel.config.replace(hf_extra=extra)
    qmodel.eval()


def quantization_of(config) -> dict | None:
    """The config's quantization entry (config.json's "quantization"), or None for float."""
    entry = config.hf_extra.get("quantization")
    if entry is None:
        return None
    methods = (METHOD, groupwise.METHOD)
    if not isinstance(entry, dict) or entry.get("method") not in methods:
        raise ConfigError(
            f"config.json's quantization {entry!r} is not one minibert reads "
            f"(expected method {METHOD!r} or {groupwise.METHOD!r})"
        )
    if entry["method"] == groupwise.METHOD:
        try:
            groupwise.check_scheme(entry.get("bits"), entry.get("group_size"))
            groupwise.check_scheme(entry.get("embedding_bits"), entry.get("group_size"))
        except InputError as exc:
            raise ConfigError(f"config.json's quantization block: {exc}") from None
    return entry


def is_quantized(model) -> bool:
    kinds = (QuantLinear, QuantEmbedding, GroupQuantLinear, GroupQuantEmbedding)
    return any(isinstance(m, kinds) for m in model.modules())


def quantized_skeleton(model, embeddings: bool) -> None:
    """Turn a freshly built float model into the quantized structure its checkpoint fills
    (minibert.load calls this before reading the tensors); the scheme comes from the model's
    config ("quantization")."""
    entry = quantization_of(model.config) or {"method": METHOD}
    scheme = None
    if entry["method"] == groupwise.METHOD:
        scheme = GroupScheme(entry["bits"], entry["group_size"], entry["embedding_bits"])

    def make(m):
        if type(m) is Linear and not _tied(m, model, model.tied):
            out_features, in_features = m.params["weight"].shape
            has_bias = "bias" in m.params
            if scheme is None:
                return QuantLinear(in_features, out_features, has_bias)
            return GroupQuantLinear(
                in_features, out_features, scheme.bits, scheme.group_size, has_bias
            )
        return None

    _swap_modules(model, make)
    if embeddings:
        word = model.embeddings.word
        num, dim = word.params["weight"].shape
        model.embeddings.word = (
            QuantEmbedding(num, dim, word.padding_idx)
            if scheme is None
            else GroupQuantEmbedding(
                num, dim, scheme.table_bits, scheme.group_size, word.padding_idx
            )
        )
    _finish(model, embeddings, scheme)


def enable_fake_quant(model, enabled: bool = True):
    """Quantization-aware training: every Linear layer that quantize() would make int8 rounds
    its weight (per output channel) and its input (per row) to the int8 grid in the forward
    pass, with straight-through gradients. Returns the model."""
    tied = model.tied
    for m in model.modules():
        if type(m) is Linear and not _tied(m, model, tied):
            m.fake_quant = bool(enabled)
    return model
