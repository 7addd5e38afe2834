"""Quantized models: per-channel int8 (int8.py), group-wise int4/int8 (groupwise.py), and the
whole-model conversion, loading skeleton and config entry (convert.py), and GPTQ rounding for
the group-wise layers (gptq.py)."""

from .convert import (
    enable_fake_quant,
    is_quantized,
    quantization_of,
    quantize,
    quantized_skeleton,
)
from .gptq import calibration_batches, quantize_gptq
from .groupwise import GroupQuantEmbedding, GroupQuantLinear
from .int8 import QuantEmbedding, QuantLinear

__all__ = [
    "GroupQuantEmbedding",
    "GroupQuantLinear",
    "QuantEmbedding",
    "QuantLinear",
    "enable_fake_quant",
    "is_quantized",
    "quantization_of",
    "calibration_batches",
    "quantize",
    "quantize_gptq",
    "quantized_skeleton",
]
