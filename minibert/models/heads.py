"""Task heads: the modules that turn encoder states into logits, and their losses.

The losses score the logits as transformers does.

    MaskedLMHead         transform (dense, activation, LayerNorm), decoder tied to the words
    ClassificationHead   [dropout, dense, activation,] dropout, out: one vector -> label logits
    cross_entropy        mean over the targets that are not IGNORE_INDEX, any leading shape

tasks.py attaches them to a model (ForMaskedLM, ...); a family changes a head by overriding
the task's builder method (RoBERTa's classification_head, ALBERT's sentence_pair_head).
Shapes: B batch, T tokens, C hidden, E ALBERT's embedding width, V vocabulary, K labels.
"""

import math

from .. import functional as F
from ..backend import xp_of
from ..nn import Activation, Dropout, LayerNorm, Linear, Module
from ..tracing import active_trace


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
        trace = active_trace()
        if trace is None:
            h = self.ln.forward(self.act.forward(self.transform.forward(x)))  # (B, T, width)
            return self.decoder.forward(h)  # (B, T, V)
        for name, module in (("transform", self.transform), ("activation", self.act)):
            x = module.forward(x)
            trace.record(f"mlm.{name}", x)  # (B, T, width)
        h = self.ln.forward(x)
        trace.record("mlm.layernorm", h)
        return self.decoder.forward(h)

    def backward(self, dlogits):
        dh = self.ln.backward(self.decoder.backward(dlogits))
        return self.transform.backward(self.act.backward(dh))

    def backward_rows(self, dlogits, rows, lead):
        """backward for logits whose gradient is zero except on `rows` of the (B*T) positions
        (a masked-LM loss labels ~15% of them): every product, the LayerNorm and the activation
        run on those rows only, and the other positions get exact zeros.
        Shapes: dlogits (n, V), rows (n,), lead (B, T) -> dx (B, T, C)"""
        dh = self.ln.backward_rows(self.decoder.backward_rows(dlogits, rows), rows)
        dx_rows = self.transform.backward_rows(self.act.backward_rows(dh, rows), rows)  # (n, C)
        dx = xp_of(dx_rows).zeros((math.prod(lead), dx_rows.shape[-1]), dx_rows.dtype)
        dx[rows] = dx_rows
        return dx.reshape(*lead, dx_rows.shape[-1])

    def mlm_backward(self, state, outside):
        """The head's backward from its loss state (cross_entropy's) and/or an outside gradient
        on the logits: by rows when only the loss's gradient reaches them, else in full."""
        if outside is None and state is not None and not self.fake_quant_on():
            (cache, shape) = state
            dvalid, rows = F.cross_entropy_backward_rows(1.0, cache)
            return self.backward_rows(dvalid, rows, shape[:-1])
        own = cross_entropy_grad(state) if state is not None else None
        dlogits = sum_grads(own, outside)
        return None if dlogits is None else self.backward(dlogits)

    def fake_quant_on(self) -> bool:
        return self.transform.fake_quant or self.decoder.fake_quant


class ClassificationHead(Module):
    """Reads one vector per sequence: [dropout -> dense -> act ->] dropout -> out.

    Without `act` only dropout -> out remains (BERT and ALBERT put the dense + tanh in their
    pooler instead). RoBERTa also drops out before its dense (`input_dropout`).
    Shapes: x (B, C) -> logits (B, num_labels)
    """

    def __init__(
        self,
        hidden: int,
        num_labels: int,
        act: str | None = None,
        dropout: float = 0.0,
        input_dropout: bool = False,
    ):
        super().__init__()
        if act is not None:
            self.drop_in = Dropout(dropout if input_dropout else 0.0)
            self.dense = Linear(hidden, hidden)
            self.act = Activation(act)
        self.drop = Dropout(dropout)
        self.out = Linear(hidden, num_labels)

    def forward(self, x):
        if hasattr(self, "dense"):
            dense = self.dense.forward(self.drop_in.forward(x))
            x = self.act.forward(dense)
            trace = active_trace()
            if trace is not None:  # (B, C) each
                trace.record("classifier.dense", dense)
                trace.record("classifier.activation", x)
        return self.out.forward(self.drop.forward(x))

    def backward(self, dlogits):
        dx = self.drop.backward(self.out.backward(dlogits))
        if hasattr(self, "dense"):
            dx = self.drop_in.backward(self.dense.backward(self.act.backward(dx)))
        return dx


def classifier_dropout(config) -> float:
    """transformers' rule: classifier_dropout when set, else hidden_dropout_prob."""
    if config.classifier_dropout is not None:
        return config.classifier_dropout
    return config.hidden_dropout_prob


def cross_entropy(logits, labels):
    """Cross-entropy over the last axis of logits (..., K) against labels (...), positions
    labelled IGNORE_INDEX skipped. Returns (loss, state for cross_entropy_grad)."""
    K = logits.shape[-1]
    loss, cache = F.cross_entropy_forward(logits.reshape(-1, K), labels.reshape(-1))
    return loss, (cache, logits.shape)


def cross_entropy_grad(state, dloss=1.0):
    """The gradient of cross_entropy with respect to its logits, in their shape."""
    cache, shape = state
    return F.cross_entropy_backward(dloss, cache).reshape(shape)


def output_grad(own, doutputs: dict, name: str):
    """The gradient reaching one output: its own loss's (or None) plus an outside loss's
    (doutputs[name], popped; see PreTrainedModel.backward), or None when neither exists."""
    return sum_grads(own, doutputs.pop(name, None))


def sum_grads(own, outside):
    """own + outside, either of which may be None (no gradient): None when both are."""
    if outside is None:
        return own
    return outside if own is None else own + outside
