"""Modules: parameters, caches and the shared encoder, written once for all four families.

Each module owns `params` (name -> array), `grads` (same names) and a stack of caches. `forward`
runs the functional op, pushes its cache in training mode, and returns the output. Modules are
found by walking attributes, so a model's parameter names are its attribute paths
(`layers.3.attn.q.weight`), the names the families' WEIGHT_NAMES tables map to Hugging Face's.

Shapes: B batch, T tokens, C hidden, H heads, D = C // H, F feed-forward width, V vocabulary,
E embedding width (ALBERT), L layers.

While a trace is recording (tracing.py), the modules hand their intermediates to it: the
`forward_traced` methods and the `trace` checks in forward and backward; with none recording,
each check is one context-variable read.

On a GPU (`to("cuda")`: every module's `device`), each module takes its readable path, the
functional ops on cupy arrays: the Numba kernels and their fused inference paths are for the CPU.

The file runs past 400 lines on purpose: it is the whole shared encoder, read top to bottom,
from Module to Encoder and Pooler; the heads are models/heads.py's.
"""

import numpy as np

from . import functional as F
from .backend import check_device, to_device, xp_of
from .errors import InputError
from .kernels.attention import attention_context, attention_context_runs
from .kernels.float32_linear import feed_forward as float32_feed_forward
from .kernels.float32_linear import linear as float32_linear
from .kernels.float32_linear import linears as float32_linears
from .kernels.gelu import gelu_bias_inplace
from .kernels.layernorm import add_layernorm
from .tracing import active_trace


class Module:
    """Base class: parameters, training mode, and a stack of caches for the backward pass."""

    device = "cpu"  # where params and grads live: "cpu" (numpy) or "cuda" (cupy); see to()

    def __init__(self):
        self.params = {}
        self.grads = {}
        self.training = False
        self.dropout_on = False
        self._caches = []

    # --- tree walking -------------------------------------------------------------------
    def children(self):
        """(name, module) for every sub-module, in the order they were assigned."""
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value
            elif isinstance(value, (list, tuple)) and value and isinstance(value[0], Module):
                for i, m in enumerate(value):
                    yield f"{name}.{i}", m

    def modules(self):
        yield self
        for _, child in self.children():
            yield from child.modules()

    def named_parameters(self, prefix: str = ""):
        """(path, array) for every parameter; a tied array appears once, under its first path."""
        seen = set()
        for path, module, key in self._param_slots(prefix):
            array = module.params[key]
            if id(array) not in seen:
                seen.add(id(array))
                yield path, array

    def parameter_size(self, key: str) -> int:
        """How many model parameters params[key] stands for: its size, unless the module stores
        them packed (int4 codes, two to a byte), where it says."""
        return int(self.params[key].size)

    def _param_slots(self, prefix: str = ""):
        for key in self.params:
            yield prefix + key, self, key
        for name, child in self.children():
            yield from child._param_slots(f"{prefix}{name}.")

    def to(self, device: str):
        """Move every parameter and gradient to device, "cpu" or "cuda" (backend.to_device),
        keeping ties (an array shared by several modules stays one array); returns self.
        Caches are dropped: a backward cannot span a move."""
        check_device(device)
        moved = {}  # id(array) -> (array, its copy): the original kept alive while we walk
        for m in self.modules():
            for store in (m.params, m.grads):
                for key, array in store.items():
                    if id(array) not in moved:
                        moved[id(array)] = (array, to_device(array, device))
                    store[key] = moved[id(array)][1]
            m.device = device
            m._caches = []
        return self

    def get_parameter(self, path: str):
        module, key = self._resolve(path)
        return module.params[key]

    def set_parameter(self, path: str, array) -> None:
        module, key = self._resolve(path)
        module.params[key] = array

    def submodule(self, path: str) -> "Module":
        """The module at a dotted path of attribute names and list indices
        ("encoder.layers.0.attn.q"); "" is this module."""
        module = self
        for part in path.split(".") if path else ():
            module = module[int(part)] if part.isdigit() else getattr(module, part)
        return module

    def _resolve(self, path: str):
        owner, _, key = path.rpartition(".")
        module = self.submodule(owner)
        if not isinstance(module, Module) or key not in module.params:
            raise KeyError(path)
        return module, key

    # --- modes and caches ---------------------------------------------------------------
    def train(self, mode: bool = True, dropout: bool = True):
        """Training mode keeps caches for backward and turns dropout on; dropout=False keeps
        it off (gradient checks compare against references computed without dropout)."""
        for m in self.modules():
            m.training = mode
            m.dropout_on = mode and dropout
            m._caches = []
        return self

    def eval(self):
        return self.train(False)

    def save(self, cache) -> None:
        """Keep a forward cache for backward: only in training mode."""
        if self.training:
            self._caches.append(cache)

    def restore(self):
        """The latest cache (backward runs in reverse order, so a stack pairs them right)."""
        return self._caches.pop()

    def restore_rows(self, rows):
        """The latest cache cut to the given rows, for a gradient that is zero on every other
        row: a cache of per-position arrays (..., W), their leading axes flattened to N, and
        1-D arrays (a LayerNorm's weight) kept whole. Not for a Linear's (its weight is 2-D)."""
        return tuple(a.reshape(-1, a.shape[-1])[rows] if a.ndim >= 2 else a for a in self.restore())

    def clear_caches(self) -> None:
        for m in self.modules():
            m._caches = []

    def zero_grad(self) -> None:
        """Zero every gradient (allocating on first use). A tied array gets one gradient array,
        shared by every module that uses it, so their += add up in one place."""
        by_param, claimed = {}, set()
        for _, module, key in self._param_slots():
            param = module.params[key]
            grad = by_param.get(id(param))
            if grad is None:
                grad = module.grads.get(key)
                # reuse the old array unless it no longer fits, or another parameter already
                # took it (a weight untied since the last call must stop sharing its gradient)
                if (
                    grad is None
                    or grad.shape != param.shape
                    or grad.dtype != param.dtype
                    or id(grad) in claimed
                ):
                    grad = xp_of(param).zeros_like(param)
                else:
                    grad[...] = 0
                by_param[id(param)] = grad
                claimed.add(id(grad))
            module.grads[key] = grad

    def set_rng(self, rng) -> None:
        """Share one numpy Generator among every module that draws random numbers (dropout)."""
        for m in self.modules():
            if hasattr(m, "rng"):
                m.rng = rng


class ModuleList(Module):
    """A list of modules that counts as one child (its items are named 0, 1, ...)."""

    def __init__(self, items):
        super().__init__()
        self.items = list(items)

    def children(self):
        for i, m in enumerate(self.items):
            yield str(i), m

    def __getitem__(self, i):
        return self.items[i]

    def __len__(self):
        return len(self.items)

    def __iter__(self):
        return iter(self.items)


class Linear(Module):
    """y = x W^T + b with W in PyTorch's (out, in) layout."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.params["weight"] = np.zeros((out_features, in_features), np.float32)  # (O, I)
        if bias:
            self.params["bias"] = np.zeros(out_features, np.float32)  # (O,)

    fake_quant = False  # quantization-aware training rounds x and W to int8 (quant.py)

    def work_per_row(self) -> float:
        """Multiply-adds per input row, in float32 ones (the models' thread choice)."""
        return float(self.params["weight"].size)

    def forward(self, x, add_bias: bool = True):
        """add_bias=False (inference only) leaves the bias to the next fused kernel."""
        bias = self.params.get("bias") if add_bias or self.training else None
        w = self.params["weight"]
        if self.fake_quant:  # the values int8 inference will see (per row of x, of W)
            x, _ = F.fake_quant_forward(x)
            w, _ = F.fake_quant_forward(w)
        if not self.training and self.device == "cpu":  # inference: BLAS blocks in Numba's threads
            y = float32_linear(x.reshape(-1, x.shape[-1]), w, bias)  # (N, O)
            return y.reshape(*x.shape[:-1], w.shape[0])
        # training: numpy's product on BLAS's own threads, which shares the packed operands
        # between them (the BLAS blocks above measured 5% slower for a training step)
        y, cache = F.linear_forward(x, w, bias)
        self.save(cache)
        return y

    @staticmethod
    def forward_shared(layers, x):
        """[layer.forward(x) for layer in layers]; at inference in one parallel loop (attention's
        q, k and v read the same input). Shapes: x (..., I) -> a list of (..., O)."""
        if any(layer.training or layer.fake_quant or layer.device != "cpu" for layer in layers):
            return [layer.forward(x) for layer in layers]
        lead, width = x.shape[:-1], x.shape[-1]
        weights = [layer.params["weight"] for layer in layers]
        biases = [layer.params.get("bias") for layer in layers]
        ys = float32_linears(x.reshape(-1, width), weights, biases)
        return [y.reshape(*lead, y.shape[-1]) for y in ys]

    def forward_gelu(self, x):
        """GELU(x W^T + b) at inference: bias and GELU added to each block of the product while
        it is in cache (kernels/float32_linear.py)."""
        if self.fake_quant:
            return gelu_bias_inplace(self.forward(x, add_bias=False), self.params["bias"])
        w, bias = self.params["weight"], self.params.get("bias")
        y = float32_linear(x.reshape(-1, x.shape[-1]), w, bias, gelu=True)  # (N, O)
        return y.reshape(*x.shape[:-1], w.shape[0])

    def backward_rows(self, dy, rows):
        """backward for a dy that is zero except on `rows` of the flattened input: dy (n, O)
        holds those rows; returns their dx (n, I). The products skip the zero rows."""
        x, w = self.restore()
        dx, dw, db = F.linear_backward(dy, (x.reshape(-1, x.shape[-1])[rows], w))
        self.grads["weight"] += dw
        if "bias" in self.params:
            self.grads["bias"] += db
        return dx

    def backward(self, dy):
        dx, dw, db = F.linear_backward(dy, self.restore())
        if self.fake_quant:  # straight through the rounding of x and W: the identity
            dx, dw = F.fake_quant_backward(dx, ()), F.fake_quant_backward(dw, ())
        self.grads["weight"] += dw  # +=: a shared or tied weight sums the gradients of its uses
        if "bias" in self.params:
            self.grads["bias"] += db
        return dx


class LayerNorm(Module):
    def __init__(self, size: int, eps: float):
        super().__init__()
        self.eps = eps
        self.params["weight"] = np.ones(size, np.float32)  # (C,)
        self.params["bias"] = np.zeros(size, np.float32)  # (C,)

    def forward(self, x, residual=None, bias=None):
        """LayerNorm(x + bias + residual), residual optional; bias (inference only) is the
        preceding linear layer's, not yet added. Shapes: x (..., C) -> (..., C)"""
        w, b = self.params["weight"], self.params["bias"]
        if residual is not None and not self.training and self.device == "cpu":
            return add_layernorm(x, residual, w, b, self.eps, bias)  # inference: one kernel
        if bias is not None:  # the order of the kernel's reference: (x + bias) + residual
            x = x + bias
        if residual is not None:
            x = x + residual
        y, cache = F.layernorm_forward(x, w, b, self.eps)
        self.save(cache)
        return y

    def backward(self, dy):
        """The gradient reaching x (and the residual: the same array, as forward added them)."""
        dx, dw, db = F.layernorm_backward(dy, self.restore())
        self.grads["weight"] += dw
        self.grads["bias"] += db
        return dx

    def backward_rows(self, dy, rows):
        """backward for a dy that is zero except on `rows` (each row is normalised alone, so
        the others get no gradient). Shapes: dy (n, C) -> dx (n, C)"""
        dx, dw, db = F.layernorm_backward(dy, self.restore_rows(rows))
        self.grads["weight"] += dw
        self.grads["bias"] += db
        return dx


class Embedding(Module):
    """A table of vectors looked up by id. padding_idx, as in torch, is the row that never gets
    a gradient (transformers builds word embeddings with padding_idx = pad_token_id)."""

    def __init__(self, num: int, dim: int, padding_idx: int | None = None):
        super().__init__()
        self.padding_idx = padding_idx
        self.params["weight"] = np.zeros((num, dim), np.float32)  # (V, C)

    def forward(self, ids):
        y, cache = F.embedding_forward(ids, self.params["weight"])
        self.save(cache)
        return y

    def backward(self, dy):
        self.grads["weight"] += F.embedding_backward(dy, self.restore(), self.padding_idx)


class Dropout(Module):
    """Inverted dropout with probability p in training mode; the identity in eval mode.

    Its random numbers come from `rng`, a numpy Generator the model shares among its dropouts
    (PreTrainedModel.seed sets it), so a run is reproducible and its state can be saved.
    """

    def __init__(self, p: float):
        super().__init__()
        self.p = float(p or 0.0)
        self.rng = None

    def forward(self, x):
        if not self.dropout_on or self.p == 0:
            return x
        y, cache = F.dropout_forward(x, self.p, self.rng)
        self.save(cache)
        return y

    def backward(self, dy):
        if not self.dropout_on or self.p == 0:
            return dy
        return F.dropout_backward(dy, self.restore())


class Activation(Module):
    """A parameter-free activation by its config.json name (gelu, gelu_new, relu, tanh, ...)."""

    def __init__(self, name: str):
        super().__init__()
        self.name = name

    def forward(self, x):
        y, cache = F.activation_forward(self.name, x)
        self.save(cache)
        return y

    def backward(self, dy):
        return F.activation_backward(self.name, dy, self.restore())

    def backward_rows(self, dy, rows):
        """backward on `rows` of the flattened input only. Shapes: dy (n, W) -> (n, W)"""
        return F.activation_backward(self.name, dy, self.restore_rows(rows))


class SelfAttention(Module):
    """Multi-head self-attention: project to q, k, v, attend per head, merge, project back.

    A pruned layer (compression/heads.py) keeps only some of its heads: `kept_heads` lists their
    original numbers, and q, k, v have len(kept_heads) x D rows, o as many columns. The head
    width D stays hidden // the config's head count."""

    def __init__(self, hidden: int, num_heads: int, dropout: float = 0.0, kept_heads=None):
        super().__init__()
        self.head_dim = hidden // num_heads  # D, whatever pruning removes
        self.kept_heads = tuple(range(num_heads) if kept_heads is None else kept_heads)
        self.num_heads = len(self.kept_heads)
        self.dropout = dropout  # on the attention weights, in training mode
        self.rng = None
        self.head_grad = None  # d loss / d head (kept heads), set by backward when a mask ran
        width = self.num_heads * self.head_dim
        self.q = Linear(hidden, width)
        self.k = Linear(hidden, width)
        self.v = Linear(hidden, width)
        self.o = Linear(width, hidden)

    def mask_row(self, head):
        """A head_mask row (one entry per original head) reduced to the kept heads."""
        if head is None:
            return None
        hidden = self.o.params["weight"].shape[0]
        if len(head) * self.head_dim != hidden:
            raise InputError(
                f"head_mask rows have {len(head)} entries; this model's layers had "
                f"{hidden // self.head_dim} heads"
            )
        return head if len(head) == self.num_heads else head[list(self.kept_heads)]

    def forward(self, x, mask_bias, add_bias: bool = True, need_probs: bool = True, head=None):
        """Shapes: x (B, T, C), mask_bias (B, T), head (H,) or None -> out (B, T, C), probs
        (B, H, T, T) (None when inference does not need them and the fused kernel runs).

        `head` is one row of transformers' head_mask: head h's attention weights are multiplied
        by head[h] (0 silences it). As ctx = probs v, that is the same as scaling head h's
        context, which leaves the attention kernels unchanged. In a pruned layer the row still has
        one entry per original head; the removed heads' entries are not read."""
        head = self.mask_row(head)
        no_probs = not (self.training or need_probs)  # inference that returns no attentions
        if no_probs and self.device == "cpu" and attention_context_runs(x):
            # one kernel reads each head from the projections in place and writes ctx (B, T, C)
            q, k, v = type(self.q).forward_shared((self.q, self.k, self.v), x)  # (B, T, C)
            scale = self.head_dim**-0.5
            ctx = attention_context(q, k, v, mask_bias, scale, self.num_heads)  # (B, T, C)
            if head is not None:  # (B, T, H, D) scaled per head
                B, T, C = ctx.shape
                ctx = (ctx.reshape(B, T, self.num_heads, -1) * head[:, None]).reshape(B, T, C)
            return self.o.forward(ctx, add_bias), None
        q = F.split_heads(self.q.forward(x), self.num_heads)  # (B, H, T, D)
        k = F.split_heads(self.k.forward(x), self.num_heads)  # (B, H, T, D)
        v = F.split_heads(self.v.forward(x), self.num_heads)  # (B, H, T, D)
        p = self.dropout if self.dropout_on else 0.0
        ctx, probs, cache = F.attention_forward(q, k, v, mask_bias, p, self.rng)  # (B, H, T, D)
        unmasked = None
        if head is not None:  # the unscaled ctx and probs: the mask's gradient reads them
            unmasked = ctx, probs
            ctx, probs = ctx * head[:, None, None], probs * head[:, None, None]
        self.save((cache, head, unmasked))
        return self.o.forward(F.merge_heads(ctx), add_bias), probs  # (B, T, C)

    def forward_traced(self, x, mask_bias, head, trace):
        """forward's readable path, handing each intermediate to the trace (tracing.py):
        q, k, v (B, H, T, D), scores q k^T and masked scores (scores D^-1/2 + mask) (B, H, T, T),
        probs (B, H, T, T), context (B, T, C), output (B, T, C), the o bias added."""
        head = self.mask_row(head)
        q = F.split_heads(self.q.forward(x), self.num_heads)  # (B, H, T, D)
        k = F.split_heads(self.k.forward(x), self.num_heads)
        v = F.split_heads(self.v.forward(x), self.num_heads)
        scores = q @ k.transpose(0, 1, 3, 2)  # (B, H, T, T), recomputed for the trace only
        masked = scores * q.dtype.type(self.head_dim**-0.5) + mask_bias[:, None, None, :]
        for name, value in (("q", q), ("k", k), ("v", v)):
            trace.record(f"attention.{name}", value)
        trace.record("attention.scores", scores)
        trace.record("attention.masked_scores", masked)
        p = self.dropout if self.dropout_on else 0.0
        ctx, probs, cache = F.attention_forward(q, k, v, mask_bias, p, self.rng)  # (B, H, T, D)
        unmasked = None
        if head is not None:
            unmasked = ctx, probs
            ctx, probs = ctx * head[:, None, None], probs * head[:, None, None]
        self.save((cache, head, unmasked))
        trace.record("attention.probs", probs)
        merged = F.merge_heads(ctx)  # (B, T, C)
        trace.record("attention.context", merged)
        out = self.o.forward(merged)
        trace.record("attention.output", out)
        return out, probs

    def _trace_grads(self, trace, dctx, dprobs_out):
        """The gradients reaching probs, masked scores and scores (which attention_backward
        never forms), from its cache: dctx (B, H, T, D) as it reaches the attention."""
        (q, k, v, probs, keep), head, _ = self._caches[-1]
        dused = dctx @ v.transpose(0, 1, 3, 2)  # (B, H, T, T): ctx = probs_used v
        if dprobs_out is not None:
            dused = dused + dprobs_out
        trace.record_grad("attention.probs", dused)
        dprobs = dused if keep is None else dused * keep
        dmasked = probs * (dprobs - (dprobs * probs).sum(-1, keepdims=True))  # softmax
        trace.record_grad("attention.masked_scores", dmasked)
        trace.record_grad("attention.scores", dmasked * q.dtype.type(self.head_dim**-0.5))

    def backward(self, dout, dprobs=None):
        """Shapes: dout (B, T, C), dprobs (B, H, T, T) or None (the gradient of an outside loss on
        the returned probs) -> dx (B, T, C), summed over the q, k and v paths.

        With a head mask, head_grad becomes the mask's gradient, one per kept head: ctx_h, probs_h
        were multiplied by head[h], so d loss / d head[h] = <dctx_h, ctx_h> + <dprobs_h, probs_h>,
        with the unscaled ctx and probs (Michel et al. 2019's head importance sums its size)."""
        trace = active_trace()
        if trace is not None:
            trace.record_grad("attention.output", dout)
        dmerged = self.o.backward(dout)  # (B, T, C)
        if trace is not None:
            trace.record_grad("attention.context", dmerged)
            head = self._caches[-1][1]
            dctx_used = F.split_heads(dmerged, self.num_heads)
            if head is not None:
                dctx_used = dctx_used * head[:, None, None]
            scaled = dprobs if head is None or dprobs is None else dprobs * head[:, None, None]
            self._trace_grads(trace, dctx_used, scaled)
        cache, head, unmasked = self.restore()
        dctx = F.split_heads(dmerged, self.num_heads)  # (B, H, T, D)
        self.head_grad = None
        if head is not None:  # forward scaled ctx and the returned probs by head[h]
            ctx, probs = unmasked
            xp = xp_of(dctx)
            self.head_grad = xp.einsum("bhtd,bhtd->h", dctx, ctx)
            if dprobs is not None:
                self.head_grad = self.head_grad + xp.einsum("bhts,bhts->h", dprobs, probs)
            dctx = dctx * head[:, None, None]
            dprobs = None if dprobs is None else dprobs * head[:, None, None]
        dq, dk, dv = F.attention_backward(dctx, cache, dprobs)
        if trace is not None:
            for name, grad in (("q", dq), ("k", dk), ("v", dv)):
                trace.record_grad(f"attention.{name}", grad)
        # x fed all three projections, so its gradient is the sum of theirs
        return (
            self.q.backward(F.merge_heads(dq))
            + self.k.backward(F.merge_heads(dk))
            + self.v.backward(F.merge_heads(dv))
        )


class FeedForward(Module):
    """Position-wise feed-forward: up to F, activation, back down to C."""

    def __init__(self, hidden: int, intermediate: int, act: str):
        super().__init__()
        self.up = Linear(hidden, intermediate)
        self.act = Activation(act)
        self.down = Linear(intermediate, hidden)

    def forward(self, x, add_bias: bool = True):
        fused = not self.training and self.device == "cpu" and self.act.name == "gelu"
        if fused and x.dtype == np.float32:
            up, down = self.up, self.down
            plain = type(up) is Linear and type(down) is Linear  # not int8 or int4 layers
            if plain and not (up.fake_quant or down.fake_quant):
                # both products in one call, the wide GELU output kept in the kernels' layout
                y = float32_feed_forward(
                    x.reshape(-1, x.shape[-1]),
                    up.params["weight"],
                    up.params.get("bias"),
                    down.params["weight"],
                    down.params.get("bias") if add_bias else None,
                )
                return y.reshape(*x.shape[:-1], y.shape[-1])
            # inference: the up-projection's bias and GELU fused into one pass
            return self.down.forward(self.up.forward_gelu(x), add_bias)
        return self.down.forward(self.act.forward(self.up.forward(x)), add_bias)  # (B, T, C)

    def forward_traced(self, x, trace):
        """forward's readable path, recording ffn.up (B, T, F: the up-projection, the
        activation's input), ffn.activation (B, T, F) and ffn.output (B, T, C)."""
        up = self.up.forward(x)
        trace.record("ffn.up", up)
        act = self.act.forward(up)
        trace.record("ffn.activation", act)
        out = self.down.forward(act)
        trace.record("ffn.output", out)
        return out

    def backward(self, dy):
        trace = active_trace()
        if trace is None:
            return self.up.backward(self.act.backward(self.down.backward(dy)))
        trace.record_grad("ffn.output", dy)
        dact = self.down.backward(dy)
        trace.record_grad("ffn.activation", dact)
        dup = self.act.backward(dact)
        trace.record_grad("ffn.up", dup)
        return self.up.backward(dup)


class EncoderLayer(Module):
    """A post-LN transformer layer (Devlin et al. 2019, as Vaswani et al. 2017):

    h = LayerNorm(x + Attention(x))        y = LayerNorm(h + FeedForward(h))
    """

    def __init__(
        self, config, attn_dropout: bool = True, ffn_dropout: bool = True, kept_heads=None
    ):
        super().__init__()
        C, p = config.hidden_size, config.hidden_dropout_prob
        self.attn = SelfAttention(
            C, config.num_attention_heads, config.attention_probs_dropout_prob, kept_heads
        )
        self.drop1 = Dropout(p if attn_dropout else 0.0)  # ALBERT drops here only
        self.ln1 = LayerNorm(C, config.layer_norm_eps)
        self.ffn = FeedForward(C, config.intermediate_size, config.hidden_act)
        self.drop2 = Dropout(p if ffn_dropout else 0.0)  # DistilBERT drops here only
        self.ln2 = LayerNorm(C, config.layer_norm_eps)

    def forward(self, x, mask_bias, need_probs: bool = True, head=None):
        """Shapes: x (B, T, C), mask_bias (B, T), head (H,) or None (SelfAttention's) ->
        y (B, T, C), probs (B, H, T, T)"""
        trace = active_trace()
        if trace is not None:  # the readable path, every intermediate recorded
            return self.forward_traced(x, mask_bias, need_probs, head, trace)
        if not self.training and self.device == "cpu":
            return self.forward_inference(x, mask_bias, need_probs, head)
        a, probs = self.attn.forward(x, mask_bias, head=head)
        h = self.ln1.forward(self.drop1.forward(a), residual=x)  # (B, T, C)
        y = self.ln2.forward(self.drop2.forward(self.ffn.forward(h)), residual=h)  # (B, T, C)
        return y, probs

    def forward_inference(self, x, mask_bias, need_probs, head):
        """forward at inference: each output bias joins the LayerNorm's fused pass. Where the
        linear layers' class runs a whole layer in one call (int8, layer_forward), and the
        caller wants neither attention probabilities nor a head mask, that runs instead."""
        whole_layer = getattr(type(self.attn.q), "layer_forward", None)
        if whole_layer is not None and not need_probs and head is None:
            y = whole_layer(self, x, mask_bias)
            if y is not None:
                return y, None
        a, probs = self.attn.forward(x, mask_bias, add_bias=False, need_probs=need_probs, head=head)
        h = self.ln1.forward(a, residual=x, bias=self.attn.o.params["bias"])
        f = self.ffn.forward(h, add_bias=False)
        return self.ln2.forward(f, residual=h, bias=self.ffn.down.params["bias"]), probs

    def forward_traced(self, x, mask_bias, need_probs, head, trace):
        """The training path's steps, with residual1 (x + attention output), ln1, residual2
        (ln1 + FFN output) and ln2 recorded beside the sub-modules' names.

        At inference the step's output is then computed again by the fused path, as untraced,
        and recorded as ln2 (and its probabilities, when asked for, as attention.probs): a trace
        changes no output, and the other intermediates are within float32 rounding of it."""
        y, probs = self.forward_readable(x, mask_bias, head, trace)
        if self.training or self.device != "cpu":  # the path an untraced forward takes too
            return y, probs
        y, probs = self.forward_inference(x, mask_bias, need_probs, head)
        trace.record("ln2", y)
        if probs is not None:
            trace.record("attention.probs", probs)
        return y, probs

    def forward_readable(self, x, mask_bias, head, trace):
        """The training path, recording every intermediate."""
        a, probs = self.attn.forward_traced(x, mask_bias, head, trace)
        residual1 = x + self.drop1.forward(a)
        trace.record("residual1", residual1)
        h = self.ln1.forward(residual1)  # (B, T, C)
        trace.record("ln1", h)
        residual2 = h + self.drop2.forward(self.ffn.forward_traced(h, trace))
        trace.record("residual2", residual2)
        y = self.ln2.forward(residual2)  # (B, T, C)
        trace.record("ln2", y)
        return y, probs

    def backward(self, dy, dprobs=None):
        """Shapes: dy (B, T, C), dprobs (B, H, T, T) or None -> dx (B, T, C). Each residual adds
        its own path back in."""
        trace = active_trace()
        dsum2 = self.ln2.backward(dy)  # forward: y = ln2(drop2(ffn(h)) + h)
        dh = dsum2 + self.ffn.backward(self.drop2.backward(dsum2))
        dsum1 = self.ln1.backward(dh)  # forward: h = ln1(drop1(attn(x)) + x)
        if trace is not None:
            grads = {"ln2": dy, "residual2": dsum2, "ln1": dh, "residual1": dsum1}
            for name, grad in grads.items():
                trace.record_grad(name, grad)
        return dsum1 + self.attn.backward(self.drop1.backward(dsum1), dprobs)


class Encoder(Module):
    """A stack of encoder layers run in the order `schedule` gives: layer i at step i unless a
    family says otherwise. ALBERT shares weights, so its schedule runs one layer several times
    (models/albert.py's sharing_schedule; Lan et al. 2020, section 3.1)."""

    def __init__(self, config, schedule=None, attn_dropout: bool = True, ffn_dropout: bool = True):
        super().__init__()
        self.schedule = list(range(config.num_hidden_layers)) if schedule is None else schedule
        self.layers = ModuleList(  # layer i keeps the heads config.pruned_heads leaves it
            EncoderLayer(config, attn_dropout, ffn_dropout, config.kept_heads(i))
            for i in range(max(self.schedule) + 1)
        )
        self.head_mask_grad = None  # (len(schedule), H): d loss / d head_mask row of each step

    def forward(
        self, x, mask_bias, output_hidden_states=False, output_attentions=False, heads=None
    ):
        """Shapes: x (B, T, C), heads (len(schedule), H) or None (a head_mask row per step) ->
        (B, T, C); hidden_states: len(schedule) + 1 arrays (B, T, C), attentions: len(schedule)
        arrays (B, H, T, T)"""
        hidden_states = [x] if output_hidden_states else None
        attentions = [] if output_attentions else None
        trace = active_trace()
        if trace is None and not output_attentions and heads is None and not self.training:
            # the layers' linear class may run them all in one loop (int8: encoder_forward)
            whole = getattr(type(self.layers[0].attn.q), "encoder_forward", None)
            y = None if whole is None else whole(self, x, mask_bias, hidden_states)
            if y is not None:
                return y, hidden_states, attentions
        for step, index in enumerate(self.schedule):
            if trace is not None:
                trace.enter_step(step, index)
            head = None if heads is None else heads[step]
            x, probs = self.layers[index].forward(
                x, mask_bias, need_probs=output_attentions, head=head
            )
            if output_hidden_states:
                hidden_states.append(x)
            if output_attentions:
                attentions.append(probs)
        if trace is not None:
            trace.leave_steps()
        return x, hidden_states, attentions

    def backward(self, dx, dhidden=None, dattentions=None):
        """Layers in reverse order; a shared ALBERT layer pops one cache per use.

        Outside losses on intermediate outputs (distillation) add their gradients on the way:
        dhidden {i: (B, T, C)} on hidden_states[i] (0 is the embeddings' output), dattentions
        {i: (B, H, T, T)} on attentions[i]. Shapes: dx (B, T, C) -> (B, T, C)"""
        dhidden, dattentions = dhidden or {}, dattentions or {}
        mask_grads = {}  # step -> (kept heads,) gradient of its head_mask row, when a mask ran
        trace = active_trace()
        for step in reversed(range(len(self.schedule))):
            if trace is not None:
                trace.enter_step(step, self.schedule[step])
            if step + 1 in dhidden:  # hidden_states[step + 1] is this step's output
                dx = dx + dhidden[step + 1]
            layer = self.layers[self.schedule[step]]
            dx = layer.backward(dx, dattentions.get(step))
            if layer.attn.head_grad is not None:
                mask_grads[step] = layer.attn.head_grad
        if trace is not None:
            trace.leave_steps()
        self.head_mask_grad = self._mask_grad_rows(mask_grads)
        return dx + dhidden[0] if 0 in dhidden else dx

    def _mask_grad_rows(self, mask_grads):
        """{step: (kept heads,)} -> (steps, H), zero for pruned heads; None without a mask."""
        if not mask_grads:
            return None
        attn = self.layers[0].attn
        H = attn.o.params["weight"].shape[0] // attn.head_dim
        first = next(iter(mask_grads.values()))
        grad = xp_of(first).zeros((len(self.schedule), H), first.dtype)
        for step, g in mask_grads.items():
            grad[step, list(self.layers[self.schedule[step]].attn.kept_heads)] = g
        return grad


class Pooler(Module):
    """BERT's pooler: tanh(W h_[CLS] + b), the sentence vector NSP and classifiers read."""

    def __init__(self, hidden: int):
        super().__init__()
        self.dense = Linear(hidden, hidden)
        self.act = Activation("tanh")

    def forward(self, x):
        """Shapes: x (B, T, C) -> (B, C)"""
        trace = active_trace()
        if trace is None:
            return self.act.forward(self.dense.forward(x[:, 0]))
        dense = self.dense.forward(x[:, 0])
        trace.record("pooler.dense", dense)
        pooled = self.act.forward(dense)
        trace.record("pooler.output", pooled)
        return pooled

    def backward(self, dpooled):
        """Shapes: dpooled (B, C) -> the gradient reaching the [CLS] vectors x[:, 0], (B, C)"""
        return self.dense.backward(self.act.backward(dpooled))
