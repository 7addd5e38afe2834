"""Modules: parameters, caches and the shared encoder, written once for all four families.

Each module owns `params` (name -> array), `grads` (same names) and a stack of caches. `forward`
runs the functional op, pushes its cache in training mode, and returns the output. Modules are
found by walking attributes, so a model's parameter names are its attribute paths
(`layers.3.attn.q.weight`), the names the families' WEIGHT_NAMES tables map to Hugging Face's.

Shapes: B batch, T tokens, C hidden, H heads, D = C // H, F feed-forward width, V vocabulary,
E embedding width (ALBERT), L layers.
"""

import numpy as np

from . import functional as F
from .kernels.layernorm import add_layernorm


class Module:
    """Base class: parameters, training mode, and a stack of caches for the backward pass."""

    def __init__(self):
        self.params = {}
        self.grads = {}
        self.training = False
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

    def _param_slots(self, prefix: str = ""):
        for key in self.params:
            yield prefix + key, self, key
        for name, child in self.children():
            yield from child._param_slots(f"{prefix}{name}.")

    def get_parameter(self, path: str):
        module, key = self._resolve(path)
        return module.params[key]

    def set_parameter(self, path: str, array) -> None:
        module, key = self._resolve(path)
        module.params[key] = array

    def _resolve(self, path: str):
        *parts, key = path.split(".")
        module = self
        for part in parts:
            module = module[int(part)] if part.isdigit() else getattr(module, part)
        if not isinstance(module, Module) or key not in module.params:
            raise KeyError(path)
        return module, key

    # --- modes and caches ---------------------------------------------------------------
    def train(self, mode: bool = True):
        for m in self.modules():
            m.training = mode
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

    def clear_caches(self) -> None:
        for m in self.modules():
            m._caches = []


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

    def forward(self, x):
        y, cache = F.linear_forward(x, self.params["weight"], self.params.get("bias"))
        self.save(cache)
        return y


class LayerNorm(Module):
    def __init__(self, size: int, eps: float):
        super().__init__()
        self.eps = eps
        self.params["weight"] = np.ones(size, np.float32)  # (C,)
        self.params["bias"] = np.zeros(size, np.float32)  # (C,)

    def forward(self, x, residual=None):
        """LayerNorm(x + residual), residual optional. Shapes: x (..., C) -> (..., C)"""
        w, b = self.params["weight"], self.params["bias"]
        if residual is not None and not self.training:  # inference: one fused kernel
            return add_layernorm(x, residual, w, b, self.eps)
        if residual is not None:
            x = x + residual
        y, cache = F.layernorm_forward(x, w, b, self.eps)
        self.save(cache)
        return y


class Embedding(Module):
    def __init__(self, num: int, dim: int):
        super().__init__()
        self.params["weight"] = np.zeros((num, dim), np.float32)  # (V, C)

    def forward(self, ids):
        y, cache = F.embedding_forward(ids, self.params["weight"])
        self.save(cache)
        return y


class Activation(Module):
    """A parameter-free activation by its config.json name (gelu, gelu_new, relu, tanh, ...)."""

    def __init__(self, name: str):
        super().__init__()
        self.name = name

    def forward(self, x):
        y, cache = F.activation_forward(self.name, x)
        self.save(cache)
        return y


class SelfAttention(Module):
    """Multi-head self-attention: project to q, k, v, attend per head, merge, project back."""

    def __init__(self, hidden: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.q = Linear(hidden, hidden)
        self.k = Linear(hidden, hidden)
        self.v = Linear(hidden, hidden)
        self.o = Linear(hidden, hidden)

    def forward(self, x, mask_bias):
        """Shapes: x (B, T, C), mask_bias (B, 1, 1, T) -> out (B, T, C), probs (B, H, T, T)"""
        q = F.split_heads(self.q.forward(x), self.num_heads)  # (B, H, T, D)
        k = F.split_heads(self.k.forward(x), self.num_heads)  # (B, H, T, D)
        v = F.split_heads(self.v.forward(x), self.num_heads)  # (B, H, T, D)
        ctx, probs, cache = F.attention_forward(q, k, v, mask_bias)  # (B, H, T, D)
        self.save(cache)
        return self.o.forward(F.merge_heads(ctx)), probs  # (B, T, C)


class FeedForward(Module):
    """Position-wise feed-forward: up to F, activation, back down to C."""

    def __init__(self, hidden: int, intermediate: int, act: str):
        super().__init__()
        self.up = Linear(hidden, intermediate)
        self.act = Activation(act)
        self.down = Linear(intermediate, hidden)

    def forward(self, x):
        return self.down.forward(self.act.forward(self.up.forward(x)))  # (B, T, C)


class EncoderLayer(Module):
    """A post-LN transformer layer (Devlin et al. 2019, as Vaswani et al. 2017):

    h = LayerNorm(x + Attention(x))        y = LayerNorm(h + FeedForward(h))
    """

    def __init__(self, config):
        super().__init__()
        C = config.hidden_size
        self.attn = SelfAttention(C, config.num_attention_heads)
        self.ln1 = LayerNorm(C, config.layer_norm_eps)
        self.ffn = FeedForward(C, config.intermediate_size, config.hidden_act)
        self.ln2 = LayerNorm(C, config.layer_norm_eps)

    def forward(self, x, mask_bias):
        """Shapes: x (B, T, C), mask_bias (B, 1, 1, T) -> y (B, T, C), probs (B, H, T, T)"""
        a, probs = self.attn.forward(x, mask_bias)
        h = self.ln1.forward(a, residual=x)  # (B, T, C)
        y = self.ln2.forward(self.ffn.forward(h), residual=h)  # (B, T, C)
        return y, probs


class Encoder(Module):
    """A stack of encoder layers run in the order `schedule` gives.

    BERT, RoBERTa and DistilBERT run layer i at step i. ALBERT shares weights: with G groups of
    `inner_group_num` layers each, step l runs every layer of group l // (L / G) in turn, so one
    set of weights is applied several times (Lan et al. 2020, section 3.1).
    """

    def __init__(self, config):
        super().__init__()
        self.layers = ModuleList(EncoderLayer(config) for _ in range(config.num_unique_layers))
        self.schedule = sharing_schedule(config)

    def forward(self, x, mask_bias, output_hidden_states=False, output_attentions=False):
        """Shapes: x (B, T, C) -> (B, T, C); hidden_states: len(schedule) + 1 arrays (B, T, C),
        attentions: len(schedule) arrays (B, H, T, T)"""
        hidden_states = [x] if output_hidden_states else None
        attentions = [] if output_attentions else None
        for index in self.schedule:
            x, probs = self.layers[index].forward(x, mask_bias)
            if output_hidden_states:
                hidden_states.append(x)
            if output_attentions:
                attentions.append(probs)
        return x, hidden_states, attentions


def sharing_schedule(config) -> list[int]:
    """Which unique layer runs at each step: range(L), or ALBERT's groups repeated."""
    if config.model_type != "albert":
        return list(range(config.num_hidden_layers))
    steps_per_group = config.num_hidden_layers // config.num_hidden_groups
    schedule = []
    for step in range(config.num_hidden_layers):
        group = step // steps_per_group
        schedule += [group * config.inner_group_num + j for j in range(config.inner_group_num)]
    return schedule


class Pooler(Module):
    """BERT's pooler: tanh(W h_[CLS] + b), the sentence vector NSP and classifiers read."""

    def __init__(self, hidden: int):
        super().__init__()
        self.dense = Linear(hidden, hidden)
        self.act = Activation("tanh")

    def forward(self, x):
        """Shapes: x (B, T, C) -> (B, C)"""
        return self.act.forward(self.dense.forward(x[:, 0]))


class MaskedLMHead(Module):
    """Transform (dense, activation, LayerNorm), then a decoder tied to the word embeddings.

    Shapes: x (B, T, C) -> logits (B, T, V). `width` is C, or E for ALBERT's narrow head.
    """

    def __init__(self, hidden: int, width: int, vocab: int, act: str, eps: float):
        super().__init__()
        self.transform = Linear(hidden, width)
        self.act = Activation(act)
        self.ln = LayerNorm(width, eps)
        self.decoder = Linear(width, vocab)  # weight tied to the (V, width) embedding table

    def forward(self, x):
        h = self.ln.forward(self.act.forward(self.transform.forward(x)))  # (B, T, width)
        return self.decoder.forward(h)  # (B, T, V)


class ClassificationHead(Module):
    """Reads the first token's vector: [dense -> act ->] out. Without `act` only `out` remains
    (BERT and ALBERT put the dense + tanh in their pooler instead).

    Shapes: x (B, C) -> logits (B, num_labels)
    """

    def __init__(self, hidden: int, num_labels: int, act: str | None = None):
        super().__init__()
        if act is not None:
            self.dense = Linear(hidden, hidden)
            self.act = Activation(act)
        self.out = Linear(hidden, num_labels)

    def forward(self, x):
        if hasattr(self, "dense"):
            x = self.act.forward(self.dense.forward(x))
        return self.out.forward(x)
