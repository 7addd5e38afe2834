"""The task heads every family shares, each with its loss (transformers' semantics) and the
backward pass from that loss to the encoder output.

A family file combines a task with its Spec: `class BertForMaskedLM(ForMaskedLM): spec = BERT`.
Shapes: B batch, T tokens, C hidden, V vocabulary, K labels.
"""

import numpy as np

from .. import functional as F
from ..errors import InputError
from ..nn import ClassificationHead, Linear, MaskedLMHead
from ..outputs import (
    MaskedLMOutput,
    PreTrainingOutput,
    QuestionAnsweringOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)
from .base import PreTrainedModel, reject_output_grads


def classifier_dropout(config) -> float:
    """transformers' rule: classifier_dropout when set, else hidden_dropout_prob."""
    if config.classifier_dropout is not None:
        return config.classifier_dropout
    return config.hidden_dropout_prob


def check_labels(name: str, labels, shape: tuple, num_classes: int, ignore=F.IGNORE_INDEX):
    """Integer targets of the given shape in [0, num_classes), or the ignore index."""
    a = np.asarray(labels)
    if a.dtype == bool or not np.issubdtype(a.dtype, np.integer):
        raise InputError(f"{name} must hold integers, got dtype {a.dtype}")
    if a.shape != shape:
        raise InputError(f"{name} has shape {a.shape}, expected {shape}")
    bad = (a != ignore) & ((a < 0) | (a >= num_classes))
    if bad.any():
        raise InputError(
            f"{name} holds {int(a[bad][0])}, outside [0, {num_classes}) "
            f"(use {ignore} to ignore a position)"
        )
    return a.astype(np.intp)


def _cross_entropy(logits, labels):
    """Cross-entropy over the last axis of logits (..., K) against labels (...)."""
    K = logits.shape[-1]
    loss, cache = F.cross_entropy_forward(logits.reshape(-1, K), labels.reshape(-1))
    return loss, (cache, logits.shape)


def _cross_entropy_grad(state, dloss=1.0):
    cache, shape = state
    return F.cross_entropy_backward(dloss, cache).reshape(shape)


def _output_grad(own, doutputs: dict, name: str):
    """The gradient reaching one output: its own loss's (or None) plus an outside loss's
    (doutputs[name], popped; see PreTrainedModel.backward), or None when neither exists."""
    outside = doutputs.pop(name, None)
    if outside is None:
        return own
    return outside if own is None else own + outside


class ForMaskedLM(PreTrainedModel):
    heads = ("mlm",)

    def build_heads(self, config):
        E = config.embedding_size or config.hidden_size
        self.mlm = MaskedLMHead(
            config.hidden_size,
            E,
            config.vocab_size,
            self.spec.lm_act(config),
            self.spec.lm_eps(config),
        )

    def head_outputs(self, x, pooled):
        return MaskedLMOutput(logits=self.mlm.forward(x), last_hidden_state=x)

    def loss(self, out, targets):
        labels = check_labels(
            "labels", targets.pop("labels", None), out.logits.shape[:2], self.config.vocab_size
        )
        _reject_extra(self, targets)
        loss, ce = _cross_entropy(out.logits, labels)  # positions labelled -100 are ignored
        return loss, {"mlm": ce}

    def head_backward(self, state, doutputs):
        own = _cross_entropy_grad(state["mlm"]) if "mlm" in state else None
        dlogits = _output_grad(own, doutputs, "logits")
        reject_output_grads(self, doutputs)
        return (None if dlogits is None else self.mlm.backward(dlogits)), None


class ForPreTraining(ForMaskedLM):
    """Masked LM plus a sentence-pair head on the pooled [CLS] vector: NSP for BERT (is B the
    sentence after A?), SOP for ALBERT (are A and B in their original order?)."""

    uses_pooler = True
    heads = ("mlm", "nsp")

    def build_heads(self, config):
        super().build_heads(config)
        p = classifier_dropout(config) if self.spec.sentence_head_dropout else 0.0
        self.nsp = ClassificationHead(config.hidden_size, 2, dropout=p)

    def head_outputs(self, x, pooled):
        return PreTrainingOutput(
            prediction_logits=self.mlm.forward(x),
            seq_relationship_logits=self.nsp.forward(pooled),
            last_hidden_state=x,
            pooler_output=pooled,
        )

    def loss(self, out, targets):
        if "labels" not in targets or "next_sentence_label" not in targets:
            raise InputError(
                f"{type(self).__name__} computes its loss from both labels= (masked "
                "tokens) and next_sentence_label= (or sentence_order_label=)"
            )
        B, T, V = out.prediction_logits.shape
        labels = check_labels("labels", targets.pop("labels"), (B, T), V)
        pair = check_labels("next_sentence_label", targets.pop("next_sentence_label"), (B,), 2)
        _reject_extra(self, targets)
        mlm_loss, mlm = _cross_entropy(out.prediction_logits, labels)
        nsp_loss, nsp = _cross_entropy(out.seq_relationship_logits, pair)
        return mlm_loss + nsp_loss, {"mlm": mlm, "nsp": nsp}

    def head_backward(self, state, doutputs):
        own = _cross_entropy_grad(state["mlm"]) if "mlm" in state else None
        dlogits = _output_grad(own, doutputs, "prediction_logits")
        own = _cross_entropy_grad(state["nsp"]) if "nsp" in state else None
        dpair = _output_grad(own, doutputs, "seq_relationship_logits")
        reject_output_grads(self, doutputs)
        dx = None if dlogits is None else self.mlm.backward(dlogits)
        return dx, (None if dpair is None else self.nsp.backward(dpair))


class ForSequenceClassification(PreTrainedModel):
    """One label per sequence. num_labels = 1 is regression (mean squared error), as in
    transformers; otherwise cross-entropy over the labels."""

    heads = ("classifier",)

    @property
    def uses_pooler(self):
        return self.spec.classifier_act is None  # BERT/ALBERT classify the pooled vector

    def build_heads(self, config):
        self.classifier = ClassificationHead(
            config.hidden_size,
            config.num_labels,
            self.spec.classifier_act,
            dropout=classifier_dropout(config),
            input_dropout=self.spec.classifier_act == "tanh",
        )

    def head_outputs(self, x, pooled):
        first = pooled if pooled is not None else x[:, 0]  # (B, C)
        return SequenceClassifierOutput(
            logits=self.classifier.forward(first), last_hidden_state=x, pooler_output=pooled
        )

    def loss(self, out, targets):
        B, K = out.logits.shape
        labels = targets.pop("labels", None)
        _reject_extra(self, targets)
        if labels is None:
            raise InputError(f"{type(self).__name__} computes its loss from labels=")
        if K == 1:  # regression
            target = np.asarray(labels, dtype=out.logits.dtype).reshape(B, 1)
            loss, cache = F.mse_forward(out.logits, target)
            return loss, {"mse": cache, "shape": out.last_hidden_state.shape}
        loss, ce = _cross_entropy(out.logits, check_labels("labels", labels, (B,), K))
        return loss, {"ce": ce, "shape": out.last_hidden_state.shape}

    def head_backward(self, state, doutputs):
        if "mse" in state:
            own = F.mse_backward(1.0, state["mse"])
        else:
            own = _cross_entropy_grad(state["ce"]) if "ce" in state else None
        dlogits = _output_grad(own, doutputs, "logits")
        reject_output_grads(self, doutputs)
        if dlogits is None:
            return None, None
        dfirst = self.classifier.backward(dlogits)  # (B, C)
        if hasattr(self, "pooler"):
            return None, dfirst
        B, T, C = state["shape"]
        dx = np.zeros((B, T, C), dfirst.dtype)
        dx[:, 0] = dfirst  # the head read the first token only
        return dx, None


class ForTokenClassification(PreTrainedModel):
    heads = ("token_classifier",)

    def build_heads(self, config):
        self.token_classifier = ClassificationHead(
            config.hidden_size, config.num_labels, dropout=classifier_dropout(config)
        )

    def head_outputs(self, x, pooled):
        return TokenClassifierOutput(logits=self.token_classifier.forward(x), last_hidden_state=x)

    def loss(self, out, targets):
        B, T, K = out.logits.shape
        labels = check_labels("labels", targets.pop("labels", None), (B, T), K)
        _reject_extra(self, targets)
        loss, ce = _cross_entropy(out.logits, labels)
        return loss, {"ce": ce}

    def head_backward(self, state, doutputs):
        own = _cross_entropy_grad(state["ce"]) if "ce" in state else None
        dlogits = _output_grad(own, doutputs, "logits")
        reject_output_grads(self, doutputs)
        return (None if dlogits is None else self.token_classifier.backward(dlogits)), None


class ForQuestionAnswering(PreTrainedModel):
    """Span extraction: a start and an end logit per token. The loss averages the two
    cross-entropies; positions outside the sequence are clamped to T and ignored, as in
    transformers."""

    heads = ("qa",)

    def build_heads(self, config):
        self.qa = Linear(config.hidden_size, 2)

    def head_outputs(self, x, pooled):
        logits = self.qa.forward(x)  # (B, T, 2)
        return QuestionAnsweringOutput(
            start_logits=np.ascontiguousarray(logits[..., 0]),
            end_logits=np.ascontiguousarray(logits[..., 1]),
            last_hidden_state=x,
        )

    def loss(self, out, targets):
        if "start_positions" not in targets or "end_positions" not in targets:
            raise InputError(
                f"{type(self).__name__} computes its loss from start_positions= and end_positions="
            )
        B, T = out.start_logits.shape
        losses, state = [], {}
        for name, logits in (("start", out.start_logits), ("end", out.end_logits)):
            pos = np.asarray(targets.pop(f"{name}_positions"))
            if pos.dtype == bool or not np.issubdtype(pos.dtype, np.integer) or pos.shape != (B,):
                raise InputError(
                    f"{name}_positions must be {B} integers, got {pos.dtype} {pos.shape}"
                )
            pos = np.clip(pos, 0, T)  # past the end means "no answer here": ignored
            loss, cache = F.cross_entropy_forward(logits, np.where(pos == T, F.IGNORE_INDEX, pos))
            losses.append(loss)
            state[name] = cache
        _reject_extra(self, targets)
        return (losses[0] + losses[1]) / 2, state

    def head_backward(self, state, doutputs):
        d = {}
        for name in ("start", "end"):
            own = F.cross_entropy_backward(0.5, state[name]) if name in state else None  # (B, T)
            d[name] = _output_grad(own, doutputs, f"{name}_logits")
        reject_output_grads(self, doutputs)
        if d["start"] is None and d["end"] is None:
            return None, None
        B, T, _ = state["shape"]
        zeros = np.zeros((B, T), self.dtype)
        dlogits = np.stack([zeros if v is None else v for v in d.values()], axis=-1)  # (B, T, 2)
        return self.qa.backward(dlogits), None


def _reject_extra(model, targets: dict) -> None:
    if targets:
        raise InputError(f"{type(model).__name__} does not take {sorted(targets)}")
