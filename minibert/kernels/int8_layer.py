"""One int8 encoder layer in one compiled call.

    h = LayerNorm(x + o(attention(q(x), k(x), v(x))))        every linear layer int8
    y = LayerNorm(h + down(GELU(up(h))))

At 1 x 16 tokens a layer is about ten calls into kernels (quantise, three projections,
attention, quantise, output projection, LayerNorm, ...), and the Python between them, with
each call's checks and Numba's argument handling, took about as long as the kernels: timed
around the compiled calls, MiniLM int8 at 1 x 16 spent 1.7 of its 3.4 ms outside them, back to
back (Intel Xeon). `_layer` runs the same kernels in the same order from one compiled
function, so its result equals the layer run kernel by kernel, bit for bit
(tests/test_int8_layer.py).
Back to back on the same machine: MiniLM int8 at 1 x 16 took 2.2-2.4 ms against 2.8-3.2, at
1 x 128 7.4 against 9.2, BERT-base at 1 x 16 9.6 against 12.1. The price is compile time, once
per machine: Numba builds the layer function with its kernels' code inside it. A first
MiniLM int8 forward with an empty cache compiles for about 7 s at 1 x 16 (one-thread builds)
and 13 s at 1 x 128 (parallel ones), Intel Xeon; _plain keeps it from compiling the GEMM once
per literal flag, which made those 10 s and 23 s.

Inside a small forward (jit.threads_for_work) the kernels it calls are their one-thread
builds, elsewhere their parallel ones: one layer function per int8 path and per choice, each
calling that path's GEMM. `layers` runs it for a list of layers in turn, a whole encoder with
no Python between two layers but its own loop (MiniLM int8 at 1 x 16 back to back: 1.8-1.9 ms
against 2.2-2.3 layer by layer). The callers' Python checks stay with the caller
(quant/int8.py decides when the fused layer applies and keeps each layer's LayerWeights);
here the arrays are assumed valid: laid out by int8_layout, contiguous.
"""

import types
from typing import NamedTuple

import numpy as np

from .attention import _attention_context_numba
from .cpu import float32_path
from .int8_activations import _quantize_rows_numba
from .int8_layout import activation_shift
from .int8_matmul import AMX_CONFIG, KERNELS, column_group
from .jit import device, in_one_thread, jit_kernel, run_kernel
from .layernorm import _add_layernorm_numba

INNER = {  # the kernels the layer calls besides the GEMM, by the names _layer uses
    "_quantize": _quantize_rows_numba,
    "_attention": _attention_context_numba,
    "_layernorm": _add_layernorm_numba,
}
# what this module's functions call until layer_function binds the compiled builds to the names
_quantize, _attention, _layernorm = INNER["_quantize"], INNER["_attention"], INNER["_layernorm"]
_path_kernel = KERNELS["avx2"]


def _with_globals(fn, scope: dict, qualname: str):
    """fn under other globals and another name (for Numba's cache)."""
    copy = types.FunctionType(fn.__code__, scope, fn.__name__, fn.__defaults__)
    copy.__qualname__ = qualname
    copy.__doc__ = fn.__doc__
    return device(copy) if getattr(fn, "_minibert_device", False) else copy


# One calling convention for every path's GEMM kernel (int8_matmul.KERNELS): (out, a, a_scale,
# panels, correction, w_scale, bias, gelu, group, config). The AMX kernel takes the negated
# correction and the tile configuration; the others have no configuration.
@device
def _gemm_with_config(out, a, a_scale, panels, correction, w_scale, bias, gelu, group, config):
    raw, gelu = _plain(False), _plain(gelu)
    _path_kernel(out, a, a_scale, panels, correction, w_scale, bias, gelu, raw, group, config)


@device
def _gemm_without_config(out, a, a_scale, panels, correction, w_scale, bias, gelu, group, config):
    raw, gelu = _plain(False), _plain(gelu)
    _path_kernel(out, a, a_scale, panels, correction, w_scale, bias, gelu, raw, group)


@device
def _plain(flag):
    """flag as a plain bool. Numba types a True or False written into a call as a literal,
    and compiles the function called once for each literal value: _layer's GEMM calls (gelu
    True in one, False in the others, raw always False) compiled the AMX kernel three times,
    about 4.3 s each of an int8 model's first forward (Intel Xeon). A comparison's result is a
    plain bool, the type the kernel has when called from Python."""
    return flag == True  # noqa: E712


_gemm = _gemm_without_config  # what _layer calls; layer_function binds the path's


@device
def _finite(scale):
    """Whether every row scale is finite (quantize_rows's check: a row holding NaN or infinity
    gets an infinite scale)."""
    for m in range(scale.shape[0]):
        if not np.isfinite(scale[m]):
            return False
    return True


def _layer(y, status, x, mask_bias, attention_scale, heads, wide, shift, groups, config, eps,
           buffers, panels, corrections, w_scales, biases, norms, zeros):  # fmt: skip
    """The layer on x (B, T, C) float32, as EncoderLayer.forward_inference runs it kernel by
    kernel, into y (B * T, C); status[0] = 1 when every activation was finite. The linear layers are
    in the order q, k, v, o, up, down in panels, corrections (negated for AMX), w_scales and
    biases; norms holds LayerNorm 1's weight and bias, then LayerNorm 2's; buffers the four
    activation operands (x, the context, h, the GELU output), each holding the layout's zero;
    groups the GEMM's column groups for outputs of C and of F channels; zeros C zeros (the bias
    of the two products whose bias the LayerNorm adds)."""
    B, T, C = x.shape
    M = B * T
    F = biases[4].shape[0]
    x2 = x.reshape((M, C))
    scale = np.empty(M, np.float32)
    _quantize(buffers[0], scale, x2, shift)
    ok = _finite(scale)
    q = np.empty((M, C), np.float32)
    k = np.empty((M, C), np.float32)
    v = np.empty((M, C), np.float32)
    _gemm(q, buffers[0], scale, panels[0], corrections[0], w_scales[0], biases[0], False,
          groups[0], config)  # fmt: skip
    _gemm(k, buffers[0], scale, panels[1], corrections[1], w_scales[1], biases[1], False,
          groups[0], config)  # fmt: skip
    _gemm(v, buffers[0], scale, panels[2], corrections[2], w_scales[2], biases[2], False,
          groups[0], config)  # fmt: skip
    context = np.empty((B, T, C), np.float32)
    _attention(context, q.reshape((B, T, C)), k.reshape((B, T, C)), v.reshape((B, T, C)),
               mask_bias, attention_scale, heads, wide)  # fmt: skip
    _quantize(buffers[1], scale, context.reshape((M, C)), shift)
    ok = ok and _finite(scale)
    o = np.empty((M, C), np.float32)
    _gemm(o, buffers[1], scale, panels[3], corrections[3], w_scales[3], zeros, False,
          groups[0], config)  # fmt: skip
    h = np.empty((M, C), np.float32)
    _layernorm(h, o, biases[3], x2, norms[0], norms[1], eps[0])
    _quantize(buffers[2], scale, h, shift)
    ok = ok and _finite(scale)
    up = np.empty((M, F), np.float32)
    _gemm(up, buffers[2], scale, panels[4], corrections[4], w_scales[4], biases[4], True,
          groups[1], config)  # fmt: skip
    _quantize(buffers[3], scale, up, shift)
    ok = ok and _finite(scale)
    down = np.empty((M, C), np.float32)
    _gemm(down, buffers[3], scale, panels[5], corrections[5], w_scales[5], zeros, False,
          groups[0], config)  # fmt: skip
    _layernorm(y, down, biases[5], h, norms[2], norms[3], eps[1])
    status[0] = 1 if ok else 0


_LAYERS = {}


def layer_function(path: str, parallel: bool):
    """_layer with the GEMM of `path`, calling the kernels' one-thread or parallel builds: the
    very builds the layer's kernels run as when called one by one (jit.jit_kernel). Made once
    per path and choice, under a name of its own for Numba's cache; None where Numba cannot
    build the kernels."""
    key = (path, parallel)
    if key not in _LAYERS:
        kernels = dict(INNER, _path_kernel=KERNELS[path])
        builds = {name: jit_kernel(kernel, parallel) for name, kernel in kernels.items()}
        if any(build is None for build in builds.values()):
            return None
        suffix = f"{path.replace('-', '_')}_{'parallel' if parallel else 'one_thread'}"
        scope = dict(_layer.__globals__, **builds)
        gemm = _gemm_with_config if path == "amx" else _gemm_without_config
        scope["_gemm"] = _with_globals(gemm, scope, f"_gemm_{suffix}")
        _LAYERS[key] = _with_globals(_layer, scope, f"_layer_{suffix}")
    return _LAYERS[key]


class LayerWeights(NamedTuple):
    """What `_layer` reads of one layer besides its input: fixed once the model is quantised
    (quant/int8.py builds it once per layer and keeps it while the weights stay the same)."""

    attention_scale: np.float32  # 1 / sqrt(head width)
    heads: int
    eps: tuple  # LayerNorm 1's and 2's, float32
    panels: tuple  # q, k, v, o, up, down, packed for the path
    corrections: tuple  # (negated for AMX)
    w_scales: tuple
    biases: tuple
    norms: tuple  # LayerNorm 1's weight and bias, then LayerNorm 2's


def layers(path, x, mask_bias, steps, buffers, hidden_states=None):
    """Run the fused layer once per LayerWeights in `steps`, each on the previous one's output
    (a whole encoder: the Python between two layers is this loop), its kernels on one thread
    inside a small forward (jit.threads_for_work), else on the thread pool. x (B, T, C)
    float32, mask_bias (B, T) float32, both contiguous; buffers the four activation operands
    (see _layer). Each step's output is appended to hidden_states when given. Returns y
    (B, T, C), or None when Numba cannot compile the layer (the caller then runs the layers
    kernel by kernel). Raises ValueError, as quantize_rows does, when an activation holds NaN
    or infinity."""
    B, T, C = x.shape
    rows = buffers[0].shape[0]
    groups = (column_group(rows, C), column_group(rows, buffers[3].shape[1]))
    shift = activation_shift(path)
    wide = float32_path() == "avx512"
    zeros = np.zeros(C, np.float32)
    status = np.zeros(1, np.int64)
    function = layer_function(path, not in_one_thread())
    if function is None:
        return None
    compiled = None
    for w in steps:
        y = np.empty((B * T, C), np.float32)
        args = (y, status, x, mask_bias, w.attention_scale, w.heads, wide, shift, groups,
                AMX_CONFIG, w.eps, buffers, w.panels, w.corrections, w.w_scales, w.biases,
                w.norms, zeros)  # fmt: skip
        if compiled is not None:
            compiled(*args)
        elif run_kernel(function, args):  # the first step compiles it, or finds it cannot
            compiled = jit_kernel(function)
        else:
            return None
        if not status[0]:
            raise ValueError("quantize_rows: the activations hold NaN or infinity")
        x = y.reshape(B, T, C)
        if hidden_states is not None:
            hidden_states.append(x)
    return x
