"""Group-wise low-bit quantisation (Q-BERT style): int4 or int8 weights with one float32 scale
per group of input channels, for linear layers and the word-embedding table.

The scheme (Shen et al. 2020, Q-BERT, "group-wise quantization"):
  * each output row of a weight W (N, K) is cut into groups of `group_size` consecutive input
    channels; each group g gets its own symmetric scale s[n, g] = max |W[n, group g]| / qmax,
    qmax = 7 for int4 and 127 for int8 (functional/quantize.py: quantize_groups). A group that
    does not fill (group_size not dividing K) is padded with zeros, which store 0 and change no
    scale. Smaller groups follow the weights' local range more closely, at the cost of one
    float32 scale per group: int4 at group 128 is 4.25 bits a weight, at group 32 5 bits;
  * int4 codes are stored packed two to a byte (uint8), the **low nibble first**: byte j of a
    row holds code 2j in bits 0-3 and code 2j + 1 in bits 4-7, each in 4-bit two's complement
    (functional/quantize.py: pack_int4). int8 codes are stored as int8;
  * activations stay float32: the layer dequantises its weight to float32 and calls the float32
    product (kernels/float32_linear.py). By default it decodes once, on its first call, and keeps
    the float32 weight for the calls after (GroupQuantLinear.keep_decoded): the file and the
    loaded codes are low-bit, and a running model costs what the float32 one does in memory and
    time. With keep_decoded = False (on the class or on one layer) memory between calls holds
    only the codes and scales, and every call decodes again (slower: a decode per layer per call).

Why not the exact int8 kernels (kernels/int8_matmul.py)? They give one scale per output row,
s_m s_n sum_k a q; with a scale per group the sum splits into one int32 partial sum per group,
each scaled apart, which those kernels do not produce. Dequantising and calling sgemm keeps the
activations unrounded (more accurate than int8 activations) and was faster here than the int8
path for small batches (docs/quantization.md has the timings).

The reference dequantises with numpy (unpack_int4, dequantize_groups); the fast path with one
Numba pass (kernels/lowbit.py); both produce the same float32 weight bit for bit.

The embedding table uses the same layout, one row per token: a lookup unpacks and scales only
the rows it reads, so the table stays low-bit in memory.
"""

import numpy as np

from .. import functional as F
from ..backend import xp_of
from ..errors import InputError
from ..functional.quantize import dequantize_groups, pack_int4, quantize_groups, unpack_int4
from ..kernels.float32_linear import linear as float32_linear
from ..kernels.float32_linear import linears as float32_linears
from ..kernels.jit import fast_kernels_enabled
from ..kernels.lowbit import dequantize_weight_fast
from ..nn import Embedding, Linear, Module

BITS = (4, 8)
METHOD = "minibert-groupwise"


def check_scheme(bits, group_size, width: int | None = None, what: str = "") -> None:
    """Raise InputError unless bits is 4 or 8 and group_size a positive int (no wider than the
    `width` input channels of `what`, when given)."""
    if bits not in BITS:
        raise InputError(f"bits must be 4 or 8 for group-wise quantization, got {bits!r}")
    if isinstance(group_size, bool) or not isinstance(group_size, (int, np.integer)):
        raise InputError(f"group_size must be a positive integer, got {group_size!r}")
    if group_size < 1:
        raise InputError(f"group_size must be a positive integer, got {group_size}")
    if width is not None and group_size > width:
        raise InputError(
            f"group_size {group_size} is wider than the {width} input channels of {what}"
        )


def stored_shapes(rows: int, width: int, bits: int, group_size: int) -> tuple:
    """((codes shape), (scales shape)) of a (rows, width) matrix in this layout."""
    groups = -(-width // group_size)
    padded = groups * group_size
    codes = (rows, -(-padded // 2)) if bits == 4 else (rows, padded)
    return codes, (rows, groups)


def encode(w, bits: int, group_size: int):
    """A float (N, K) matrix -> (codes: packed uint8 for int4, int8 for int8; scales (N, G))."""
    q, scale = quantize_groups(w, bits, group_size)
    return (pack_int4(q) if bits == 4 else q), scale


def decode_reference(codes, scale, bits: int, group_size: int, width: int):
    """The readable inverse of encode: unpack the codes, then dequantise each group.
    -> (N, width) float32"""
    padded = scale.shape[-1] * group_size
    q = unpack_int4(codes, padded) if bits == 4 else codes
    return dequantize_groups(q, scale, width)


def decode(codes, scale, bits: int, group_size: int, width: int):
    """decode_reference, by the Numba kernel when fast kernels are on (the same floats)."""
    if fast_kernels_enabled():
        w = dequantize_weight_fast(codes, scale, bits, group_size, width)
        if w is not None:
            return w
    return decode_reference(codes, scale, bits, group_size, width)


class GroupQuantLinear(Module):
    """y = x W^T + b with W stored int4 (packed) or int8 with a float32 scale per group of
    `group_size` input channels; x stays float32.

    params: weight (O, ceil(P / 2)) uint8 for int4 or (O, P) int8, P = G * group_size the padded
    width; weight_scale (O, G) float32; bias (O,) float32 if any.

    keep_decoded: keep the float32 weight decoded on the first call (True, the default: the speed
    of a float32 layer) or decode it on every call (False: only the codes stay in memory)."""

    keep_decoded = True

    def __init__(self, in_features, out_features, bits, group_size, bias=True):
        super().__init__()
        self._decoded = (None, None, None, None)  # (codes, scales, fast kernels?, float32 weight)
        check_scheme(bits, group_size)
        self.in_features, self.bits, self.group_size = in_features, bits, group_size
        codes, scales = stored_shapes(out_features, in_features, bits, group_size)
        self.params["weight"] = np.zeros(codes, np.uint8 if bits == 4 else np.int8)
        self.params["weight_scale"] = np.ones(scales, np.float32)
        if bias:
            self.params["bias"] = np.zeros(out_features, np.float32)

    def parameter_size(self, key: str) -> int:
        if key == "weight":  # codes (packed, padded to whole groups) for out x in weights
            return self.params["weight_scale"].shape[0] * self.in_features
        return super().parameter_size(key)

    @classmethod
    def from_linear(cls, linear: Linear, bits: int, group_size: int) -> "GroupQuantLinear":
        out_features, in_features = linear.params["weight"].shape
        q = cls(in_features, out_features, bits, group_size, bias="bias" in linear.params)
        q.params["weight"], q.params["weight_scale"] = encode(
            linear.params["weight"], bits, group_size
        )
        if "bias" in linear.params:
            q.params["bias"] = linear.params["bias"].astype(np.float32)
        return q

    def dequantized_weight(self):
        """The float32 (O, I) weight the codes and scales stand for: decoded again when the
        codes, the scales or the kernel choice changed since the last call, or on every call when
        keep_decoded is off."""
        if not self.keep_decoded:  # only the codes stay: drop a copy kept before, decode
            self._decoded = (None, None, None, None)
            return self._decode()
        codes, scale = self.params["weight"], self.params["weight_scale"]
        fast = fast_kernels_enabled()
        kept_codes, kept_scale, kept_fast, weight = self._decoded
        if kept_codes is codes and kept_scale is scale and kept_fast == fast:
            return weight
        weight = self._decode()
        self._decoded = (codes, scale, fast, weight)
        return weight

    def _decode(self):
        if self.device != "cpu":  # on a GPU: the readable decoding (the kernel is the CPU's)
            return decode_reference(
                self.params["weight"],
                self.params["weight_scale"],
                self.bits,
                self.group_size,
                self.in_features,
            )
        return decode(
            self.params["weight"],
            self.params["weight_scale"],
            self.bits,
            self.group_size,
            self.in_features,
        )

    def _check_inference(self):
        if self.training:
            raise RuntimeError(
                "a quantized model runs inference only; fine-tune the float model, then quantize"
            )

    def forward(self, x, add_bias: bool = True, gelu: bool = False):
        """Shapes: x (..., I) float32 -> (..., O) float32. add_bias=False leaves the bias to the
        next fused kernel (as Linear); gelu=True applies the exact GELU after the bias."""
        self._check_inference()
        bias = self.params.get("bias") if add_bias or gelu else None
        w = self.dequantized_weight()
        if self.device != "cpu":  # on a GPU: the readable product (functional/linear.py)
            y, _ = F.linear_forward(x, w, bias)
            return F.activation_forward("gelu", y)[0] if gelu else y
        y = float32_linear(x.reshape(-1, x.shape[-1]), w, bias, gelu=gelu)
        return y.reshape(*x.shape[:-1], w.shape[0])

    def forward_gelu(self, x):
        return self.forward(x, gelu=True)

    @staticmethod
    def forward_shared(layers, x):
        """[layer.forward(x) for layer in layers] in one parallel product (attention's q, k and
        v read the same input). Shapes: x (..., I) -> a list of (..., O)."""
        for layer in layers:
            layer._check_inference()
        if layers[0].device != "cpu":
            return [layer.forward(x) for layer in layers]
        lead, width = x.shape[:-1], x.shape[-1]
        weights = [layer.dequantized_weight() for layer in layers]
        biases = [layer.params.get("bias") for layer in layers]
        ys = float32_linears(x.reshape(-1, width), weights, biases)
        return [y.reshape(*lead, y.shape[-1]) for y in ys]

    def work_per_row(self) -> float:
        """Multiply-adds per input row, in float32 ones (the product is float32)."""
        return float(self.params["weight_scale"].shape[0] * self.in_features)


class GroupQuantEmbedding(Module):
    """A word-embedding table stored like GroupQuantLinear's weight (a row per token): a lookup
    dequantises only the rows it reads."""

    def __init__(self, num, dim, bits, group_size, padding_idx=None):
        super().__init__()
        check_scheme(bits, group_size)
        self.dim, self.bits, self.group_size, self.padding_idx = dim, bits, group_size, padding_idx
        codes, scales = stored_shapes(num, dim, bits, group_size)
        self.params["weight"] = np.zeros(codes, np.uint8 if bits == 4 else np.int8)
        self.params["weight_scale"] = np.ones(scales, np.float32)

    def parameter_size(self, key: str) -> int:
        if key == "weight":  # codes (packed, padded to whole groups) for num x dim weights
            return self.params["weight_scale"].shape[0] * self.dim
        return super().parameter_size(key)

    @classmethod
    def from_embedding(cls, emb: Embedding, bits: int, group_size: int) -> "GroupQuantEmbedding":
        num, dim = emb.params["weight"].shape
        q = cls(num, dim, bits, group_size, emb.padding_idx)
        codes, scales = encode(emb.params["weight"], bits, group_size)
        q.params["weight"], q.params["weight_scale"] = codes, scales
        return q

    def forward(self, ids):
        """Shapes: ids (B, T) -> (B, T, C) float32"""
        if self.training:
            raise RuntimeError("a quantized model runs inference only")
        ids = xp_of(self.params["weight"]).asarray(ids)  # on the table's device already
        flat = ids.reshape(-1)
        rows = decode_reference(
            self.params["weight"][flat],
            self.params["weight_scale"][flat],
            self.bits,
            self.group_size,
            self.dim,
        )
        return rows.reshape(*ids.shape, self.dim)
