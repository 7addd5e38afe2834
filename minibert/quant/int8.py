"""int8 quantisation: Q8BERT-style dynamic quantisation of linear layers and embeddings.

The scheme, and why:
  * **symmetric** (no zero point): a real value x is stored as round(x / s) in [-127, 127], so
    the integer product of two quantised matrices needs no zero-point correction terms, and
    -128 is never used, which keeps the int32 accumulator's bound symmetric (127^2 K < 2^31);
  * **weights per output channel**: s_n = max_k |W[n, k]| / 127, one scale per row of W. Rows
    of a trained weight differ in range by 10x and more; one scale for the whole matrix would
    spend most of the 8 bits of the small rows on range they never use;
  * **activations per row, dynamically**: each token's input vector x_m gets its own scale
    s_m = max_k |x_m[k]| / 127, computed as the layer runs. No calibration data is needed,
    and a token with an outlier (BERT's hidden states have a few very large channels, larger
    still at [CLS] and [SEP]) costs precision in its own row only. Stock int8 tools use one
    scale per tensor for activations, which is why they lose more (docs/quantization.md);
  * the product is exact in int32 and dequantised once per output: y[m, n] = s_m s_n acc[m, n]
    + b[n] (kernels/int8_matmul.py fuses this, and GELU, into the GEMM);
  * the **word-embedding table** (optional, on by default: in MiniLM it is half the weights)
    is int8 with one scale per token row; a tied MLM decoder shares the int8 table and its
    scales, which are exactly the decoder's per-output-channel scales.
LayerNorm, biases, position and token-type embeddings, and softmax stay float32.

`quantize(model)` (quant/convert.py) returns a new model with the same call interface (the
original is untouched and shares its float32 arrays). Quantized models are for inference; to
train for quantization use fake quantisation (`enable_fake_quant`, TrainConfig(qat=True)): the
forward pass rounds weights and activations exactly as int8 inference will, and the backward
pass treats the rounding as the identity (functional/quantize.py: the rounding and the
straight-through pair).
"""

import operator
import threading
import weakref
from typing import NamedTuple

import numpy as np

from ..functional.activations import gelu_forward
from ..functional.quantize import int8_linear_forward, quantize_symmetric
from ..kernels import cpu
from ..kernels.int8_activations import quantize_rows
from ..kernels.int8_layer import LayerWeights
from ..kernels.int8_layer import layers as int8_layers
from ..kernels.int8_layout import PackedWeight, empty_rows, pack_weight
from ..kernels.int8_matmul import int8_linear_rows
from ..kernels.jit import INT8_COST, fast_kernels_enabled
from ..nn import Embedding, Linear, Module

REFERENCE_PACKING = "avx-vnni"  # the layout packed() uses for the reference: 1 byte per weight

METHOD = "minibert-int8"
SCHEME = "symmetric int8; weights per output channel; activations per row, dynamic"


_BUFFERS = threading.local()  # each thread's activation operands for the fused layer


def _layer_buffers(path: str, rows: int, width: int, inner: int) -> tuple:
    """The fused layer's four activation operands (kernels/int8_layer.py): for x, the
    attention context and h (width values a row) and for the GELU output (inner values), in
    `path`'s layout. Kept per thread and reused by every layer and forward of that shape: the
    kernels write their rows and columns in full and never the padding, which keeps the
    layout's zero. (Allocating and filling the four each time took 0.4 ms of a 3 ms forward.)"""
    key = (path, rows, width, inner)
    cache = getattr(_BUFFERS, "operands", None)
    if cache is None or cache[0] != key:
        operands = tuple(empty_rows(rows, k, path) for k in (width, width, width, inner))
        cache = _BUFFERS.operands = (key, operands)
    return cache[1]


class _LayerPlan(NamedTuple):
    """A layer's fused-kernel arguments (int8_layer.LayerWeights) and what they were made from:
    they stay valid while the layer holds the same modules, settings and arrays."""

    fast: bool  # fast_kernels_enabled() when made
    modules: tuple  # q, k, v, o, up, down, ln1, ln2, the activation
    settings: tuple  # _layer_settings: the attributes the kernel's arguments read
    owners: tuple  # the params dicts the arrays were read from ...
    names: tuple  # ... under these names
    arrays: tuple
    path: str
    width: int  # C, the layer's input and output
    inner: int  # F, the feed-forward's width
    weights: LayerWeights


_PLANS = weakref.WeakKeyDictionary()  # EncoderLayer -> _LayerPlan


def _layer_modules(layer) -> tuple:
    attn, ffn = layer.attn, layer.ffn
    return (attn.q, attn.k, attn.v, attn.o, ffn.up, ffn.down, layer.ln1, layer.ln2, ffn.act)


def _layer_settings(layer) -> tuple:
    attn = layer.attn
    return (layer.ffn.act.name, layer.ln1.eps, layer.ln2.eps, attn.num_heads, attn.head_dim)


def _layer_plan(layer):
    """The layer's _LayerPlan, made once and kept while valid; None where the fused layer does
    not apply (another activation or linear class, a GPU, the reference kernels, linear layers
    without bias or packed for different paths)."""
    fast = fast_kernels_enabled()
    plan = _PLANS.get(layer)
    if (
        plan is not None
        and plan.fast == fast
        and plan.modules == _layer_modules(layer)
        and plan.settings == _layer_settings(layer)
        and all(map(operator.is_, map(operator.getitem, plan.owners, plan.names), plan.arrays))
    ):
        return plan
    plan = _make_plan(layer, fast)
    if plan is None:
        _PLANS.pop(layer, None)
    else:
        _PLANS[layer] = plan
    return plan


def _make_plan(layer, fast: bool):
    modules = _layer_modules(layer)
    linears, norms, act = modules[:6], modules[6:8], modules[8]
    if not (
        fast
        and act.name == "gelu"
        and all(type(m) is QuantLinear and m.device == "cpu" for m in linears)
        and all("bias" in m.params for m in linears)
    ):
        return None
    # the kernel's shapes: q, k, v and o C x C, up C -> F, down F -> C. A layer with pruned
    # heads (compression/heads.py: q, k and v narrower than C) runs kernel by kernel
    C = norms[0].params["weight"].shape[0]
    F = linears[4].params["weight"].shape[0]
    shapes = [m.params["weight"].shape for m in linears]
    if shapes != [(C, C)] * 4 + [(F, C), (C, F)]:
        return None
    packed = [m.packed() for m in linears]
    path = packed[0].path
    if any(p.path != path for p in packed):
        return None
    read = [(m.params, name) for m in linears for name in ("weight", "weight_scale", "bias")]
    read += [(n.params, name) for n in norms for name in ("weight", "bias")]
    owners, names = zip(*read, strict=True)
    weights = LayerWeights(
        np.float32(layer.attn.head_dim**-0.5),
        layer.attn.num_heads,
        (np.float32(norms[0].eps), np.float32(norms[1].eps)),
        tuple(p.panels for p in packed),
        tuple(p.negated if path == "amx" else p.correction for p in packed),
        tuple(m.params["weight_scale"] for m in linears),
        tuple(m.params["bias"] for m in linears),
        tuple(n.params[name] for n in norms for name in ("weight", "bias")),
    )
    arrays = tuple(owner[name] for owner, name in read)
    settings = _layer_settings(layer)
    return _LayerPlan(fast, modules, settings, owners, names, arrays, path, C, F, weights)


def _fused_layers(layers, x, mask_bias, hidden_states=None):
    """The layers run in turn by the fused kernel (QuantLinear.layer_forward, .encoder_forward),
    or None where it does not apply to one of them or to the input."""
    if not (
        isinstance(x, np.ndarray)
        and x.dtype == np.float32
        and x.ndim == 3
        and (mask_bias is None or mask_bias.dtype == np.float32)
    ):
        return None
    plans = [_layer_plan(layer) for layer in layers]
    B, T, C = x.shape
    if not plans or any(
        plan is None or (plan.path, plan.width, plan.inner) != (plans[0].path, C, plans[0].inner)
        for plan in plans
    ):
        return None
    path = plans[0].path
    mask_bias = np.zeros((B, T), np.float32) if mask_bias is None else mask_bias
    return int8_layers(
        path,
        np.ascontiguousarray(x),
        np.ascontiguousarray(mask_bias),
        [plan.weights for plan in plans],
        _layer_buffers(path, B * T, C, plans[0].inner),
        hidden_states,
    )


class QuantLinear(Module):
    """y = x W^T + b with W int8 per output channel, x quantised per row as it arrives.

    params: weight (O, I) int8, weight_scale (O,) float32, bias (O,) float32 if any. The int16
    panel layout the kernel reads is built from the int8 weight on first use (and again if the
    weight array is replaced, e.g. by loading)."""

    calls_blas = False  # its own kernels on the fast path (jit.threads_for_work)

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.params["weight"] = np.zeros((out_features, in_features), np.int8)
        self.params["weight_scale"] = np.ones(out_features, np.float32)
        if bias:
            self.params["bias"] = np.zeros(out_features, np.float32)
        # (the int8 array it was built from, whether for the fast kernels, PackedWeight)
        self._packed = (None, None, None)

    @classmethod
    def from_linear(cls, linear: Linear) -> "QuantLinear":
        out_features, in_features = linear.params["weight"].shape
        q = cls(in_features, out_features, bias="bias" in linear.params)
        q.params["weight"], q.params["weight_scale"] = quantize_symmetric(linear.params["weight"])
        if "bias" in linear.params:
            q.params["bias"] = linear.params["bias"].astype(np.float32)
        return q

    def packed(self) -> PackedWeight:
        """The weight packed for the CPU's int8 path; with the numpy reference kernels, in the
        u8 layout without asking the CPU (the reference unpacks it; reading the CPU's features
        loads LLVM, 40 MB, which a short reference run does without)."""
        fast = fast_kernels_enabled()
        source, packed_for_fast, packed = self._packed
        if source is not self.params["weight"] or packed_for_fast != fast:  # once per switch
            path = cpu.int8_path() if fast else REFERENCE_PACKING
            packed = pack_weight(np.ascontiguousarray(self.params["weight"]), path)
            self._packed = (self.params["weight"], fast, packed)
        return packed

    def forward(self, x, add_bias: bool = True, gelu: bool = False):
        """Shapes: x (..., I) float32 -> (..., O) float32. add_bias=False leaves the bias to the
        next fused kernel (as Linear); gelu=True applies the exact GELU after the bias."""
        if self.training:
            raise RuntimeError(
                "a quantized model runs inference only; to train for int8, fine-tune the float "
                "model with fake quantisation (TrainConfig(qat=True)) and quantize afterwards"
            )
        lead, width = x.shape[:-1], x.shape[-1]
        bias = self.params.get("bias") if add_bias or gelu else None
        if self.device != "cpu":  # on a GPU: the layer written out (functional/quantize.py)
            w, w_scale = self.params["weight"], self.params["weight_scale"]
            y = int8_linear_forward(x.reshape(-1, width), w, w_scale, bias)
            y = gelu_forward(y)[0] if gelu else y
            return y.reshape(*lead, y.shape[-1])
        y = int8_linear_rows(
            x.reshape(-1, width), self.packed(), self.params["weight_scale"], bias, gelu
        )
        return y.reshape(*lead, y.shape[-1])

    def forward_gelu(self, x):
        return self.forward(x, gelu=True)

    @staticmethod
    def forward_shared(layers, x):
        """[layer.forward(x) for layer in layers], quantising x once for all of them (attention's
        q, k and v read the same input). Shapes: x (..., I) -> a list of (..., O)."""
        if layers[0].device != "cpu":
            return [layer.forward(x) for layer in layers]
        packed = [layer.packed() for layer in layers]
        if layers[0].training or len({p.path for p in packed}) != 1:
            return [layer.forward(x) for layer in layers]
        lead, width = x.shape[:-1], x.shape[-1]
        x2 = x.reshape(-1, width)
        quantized = quantize_rows(x2, packed[0].path)  # (a, a_scale), shared
        return [
            int8_linear_rows(
                x2, p, layer.params["weight_scale"], layer.params.get("bias"), quantized=quantized
            ).reshape(*lead, p.n)
            for layer, p in zip(layers, packed, strict=True)
        ]

    @staticmethod
    def layer_forward(layer, x, mask_bias):
        """EncoderLayer.forward_inference for a layer whose six linear layers are all int8, in
        one compiled call (kernels/int8_layer.py), where that applies: float32 on the CPU, GELU,
        the Numba kernels on, all six packed for one path. Returns y (B, T, C), or None for the
        caller to run the layer kernel by kernel. The values are the same either way."""
        return _fused_layers([layer], x, mask_bias)

    @staticmethod
    def encoder_forward(encoder, x, mask_bias, hidden_states=None):
        """Encoder.forward at inference for an encoder whose layers all fuse (layer_forward):
        every step in one loop over the compiled layer, without the Python of each layer's
        forward (MiniLM at 1 x 16 tokens, after an idle moment: about 1.8 ms of Python beside
        3.1 ms in the layers). Each step's output is appended to hidden_states when given. Returns y
        (B, T, C), or None for the caller to run the layers one by one."""
        layers = [encoder.layers[i] for i in encoder.schedule]
        return _fused_layers(layers, x, mask_bias, hidden_states)

    def work_per_row(self) -> float:
        """Multiply-adds per input row, an int8 one at INT8_COST float32 ones."""
        return INT8_COST * self.params["weight"].size


class QuantEmbedding(Module):
    """An int8 embedding table with one scale per row: lookup, then scale to float32."""

    def __init__(self, num: int, dim: int, padding_idx: int | None = None):
        super().__init__()
        self.padding_idx = padding_idx
        self.params["weight"] = np.zeros((num, dim), np.int8)
        self.params["weight_scale"] = np.ones(num, np.float32)

    @classmethod
    def from_embedding(cls, emb: Embedding) -> "QuantEmbedding":
        num, dim = emb.params["weight"].shape
        q = cls(num, dim, emb.padding_idx)
        q.params["weight"], q.params["weight_scale"] = quantize_symmetric(emb.params["weight"])
        return q

    def forward(self, ids):
        """Shapes: ids (B, T) -> (B, T, C) float32"""
        if self.training:
            raise RuntimeError("a quantized model runs inference only (see TrainConfig(qat=True))")
        rows = self.params["weight"][ids].astype(np.float32)  # (B, T, C)
        rows *= self.params["weight_scale"][ids][..., None]
        return rows
