"""The tasks: heads on the shared body, their losses, and the backward pass from the loss.

Each class adds its heads to the body and computes its loss with transformers' semantics,
then the backward pass from that loss to the encoder output.

A family file combines a task with its family class:
`class BertForMaskedLM(BertPreTrainedModel, ForMaskedLM)`. Where a family's head differs, the
family class overrides the builder named here (mlm_activation, sentence_pair_head,
classification_head); the defaults below are BERT's.
Shapes: B batch, T tokens, C hidden, V vocabulary, K labels.
"""

import numpy as np

from .. import functional as F
from ..backend import xp_of
from ..config import IGNORE_INDEX
from ..errors import InputError
from ..nn import Linear
from ..outputs import (
    MaskedLMOutput,
    MultipleChoiceModelOutput,
    NextSentencePredictorOutput,
    PreTrainingOutput,
    QuestionAnsweringOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)
from .base import PreTrainedModel
from .heads import (
    ClassificationHead,
    MaskedLMHead,
    classifier_dropout,
    cross_entropy,
    cross_entropy_grad,
    output_grad,
)
from .inputs import check_labels, float_targets, reject_extra_targets, reject_output_grads


class ForMaskedLM(PreTrainedModel):
    """Vocabulary logits at every position; the loss skips positions labelled IGNORE_INDEX."""

    heads = ("mlm",)

    def mlm_activation(self, config) -> str:
        """The activation inside the MLM head's transform: the encoder's."""
        return config.hidden_act

    def build_heads(self, config):
        E = config.embedding_size or config.hidden_size
        self.mlm = MaskedLMHead(
            config.hidden_size,
            E,
            config.vocab_size,
            self.mlm_activation(config),
            config.layer_norm_eps,
        )

    def head_outputs(self, x, pooled):
        return MaskedLMOutput(logits=self.mlm.forward(x), last_hidden_state=x)

    def loss(self, out, targets):
        labels = check_labels(
            "labels", targets.pop("labels", None), out.logits.shape[:2], self.config.vocab_size
        )
        reject_extra_targets(self, targets)
        loss, ce = cross_entropy(out.logits, labels)  # positions labelled -100 are ignored
        return loss, {"mlm": ce}

    def head_backward(self, state, doutputs):
        outside = doutputs.pop("logits", None)
        reject_output_grads(self, doutputs)
        return self.mlm.mlm_backward(state.get("mlm"), outside), None


class ForPreTraining(ForMaskedLM):
    """Masked LM plus a sentence-pair head on the pooled [CLS] vector: NSP for BERT (is B the
    sentence after A?), SOP for ALBERT (are A and B in their original order?)."""

    uses_pooler = True
    heads = ("mlm", "nsp")

    def sentence_pair_head(self, config) -> ClassificationHead:
        """Two logits from the pooled vector, without dropout (BERT's NSP head)."""
        return ClassificationHead(config.hidden_size, 2)

    def build_heads(self, config):
        super().build_heads(config)
        self.nsp = self.sentence_pair_head(config)

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
        reject_extra_targets(self, targets)
        mlm_loss, mlm = cross_entropy(out.prediction_logits, labels)
        nsp_loss, nsp = cross_entropy(out.seq_relationship_logits, pair)
        return mlm_loss + nsp_loss, {"mlm": mlm, "nsp": nsp}

    def head_backward(self, state, doutputs):
        outside = doutputs.pop("prediction_logits", None)
        own = cross_entropy_grad(state["nsp"]) if "nsp" in state else None
        dpair = output_grad(own, doutputs, "seq_relationship_logits")
        reject_output_grads(self, doutputs)
        dx = self.mlm.mlm_backward(state.get("mlm"), outside)
        return dx, (None if dpair is None else self.nsp.backward(dpair))


class ForSequenceClassification(PreTrainedModel):
    """Labels per sequence, as config.json's problem_type says (see problem_type): regression
    (mean squared error), single-label (cross-entropy over the K labels) or multi-label
    classification (K independent sigmoids, binary cross-entropy); as in transformers."""

    heads = ("classifier",)
    # BERT and ALBERT classify the pooled [CLS] vector; a family whose head has its own dense
    # layer over the first token (RoBERTa, DistilBERT) sets this False and needs no pooler
    classifies_pooled = True

    @property
    def uses_pooler(self):
        return self.classifies_pooled

    def classification_head(self, config) -> ClassificationHead:
        """Dropout and one Linear over the pooled vector (BERT's head)."""
        return ClassificationHead(
            config.hidden_size, config.num_labels, dropout=classifier_dropout(config)
        )

    def build_heads(self, config):
        self.classifier = self.classification_head(config)

    def head_outputs(self, x, pooled):
        first = pooled if pooled is not None else x[:, 0]  # (B, C)
        return SequenceClassifierOutput(
            logits=self.classifier.forward(first), last_hidden_state=x, pooler_output=pooled
        )

    def problem_type(self, labels) -> str:
        """transformers' rule: config.json's problem_type when set; otherwise regression for one
        label, single-label classification for integer labels, multi-label for float ones."""
        named = self.config.hf_extra.get("problem_type")
        if named is not None:
            return named
        if self.config.num_labels == 1:
            return "regression"
        dtype = labels.dtype if hasattr(labels, "dtype") else np.asarray(labels).dtype
        integer = np.issubdtype(dtype, np.integer)
        return "single_label_classification" if integer else "multi_label_classification"

    def loss(self, out, targets):
        B, K = out.logits.shape
        labels = targets.pop("labels", None)
        reject_extra_targets(self, targets)
        if labels is None:
            raise InputError(f"{type(self).__name__} computes its loss from labels=")
        problem = self.problem_type(labels)
        if problem == "regression":  # mean squared error; one label may come as (B,)
            target = float_targets("labels", labels, (B,) if K == 1 else (B, K), (B, K))
            loss, cache = F.mse_forward(out.logits, target.reshape(B, K))
            return loss, {"mse": cache}
        if problem == "multi_label_classification":  # K independent sigmoids
            target = float_targets("labels", labels, (B, K), (B, K))
            loss, cache = F.bce_with_logits_forward(out.logits, target)
            return loss, {"bce": cache}
        loss, ce = cross_entropy(out.logits, check_labels("labels", labels, (B,), K))
        return loss, {"ce": ce}

    def head_backward(self, state, doutputs):
        own = None
        if "mse" in state:
            own = F.mse_backward(1.0, state["mse"])
        elif "bce" in state:
            own = F.bce_with_logits_backward(1.0, state["bce"])
        elif "ce" in state:
            own = cross_entropy_grad(state["ce"])
        dlogits = output_grad(own, doutputs, "logits")
        reject_output_grads(self, doutputs)
        if dlogits is None:
            return None, None
        dfirst = self.classifier.backward(dlogits)  # (B, C)
        if hasattr(self, "pooler"):
            return None, dfirst
        B, T, C = state["shape"]
        dx = xp_of(dfirst).zeros((B, T, C), dfirst.dtype)
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
        reject_extra_targets(self, targets)
        loss, ce = cross_entropy(out.logits, labels)
        return loss, {"ce": ce}

    def head_backward(self, state, doutputs):
        own = cross_entropy_grad(state["ce"]) if "ce" in state else None
        dlogits = output_grad(own, doutputs, "logits")
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
        xp = xp_of(logits)
        return QuestionAnsweringOutput(
            start_logits=xp.ascontiguousarray(logits[..., 0]),
            end_logits=xp.ascontiguousarray(logits[..., 1]),
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
            xp = xp_of(logits)  # the positions came to the model's device with the inputs
            pos = xp.asarray(targets.pop(f"{name}_positions"))
            if pos.dtype == bool or not np.issubdtype(pos.dtype, np.integer) or pos.shape != (B,):
                raise InputError(
                    f"{name}_positions must be {B} integers, got {pos.dtype} {pos.shape}"
                )
            pos = xp.clip(pos, 0, T)  # past the end means "no answer here": ignored
            loss, cache = F.cross_entropy_forward(logits, xp.where(pos == T, IGNORE_INDEX, pos))
            losses.append(loss)
            state[name] = cache
        reject_extra_targets(self, targets)
        return (losses[0] + losses[1]) / 2, state

    def head_backward(self, state, doutputs):
        d = {}
        for name in ("start", "end"):
            own = F.cross_entropy_backward(0.5, state[name]) if name in state else None  # (B, T)
            d[name] = output_grad(own, doutputs, f"{name}_logits")
        reject_output_grads(self, doutputs)
        if d["start"] is None and d["end"] is None:
            return None, None
        B, T, _ = state["shape"]
        xp = xp_of(self.qa.params["weight"])
        zeros = xp.zeros((B, T), self.dtype)
        dlogits = xp.stack([zeros if v is None else v for v in d.values()], axis=-1)  # (B, T, 2)
        return self.qa.backward(dlogits), None


class ForMultipleChoice(PreTrainedModel):
    """One score per choice: inputs (B, N, T) run as a batch of B * N sequences, each read like
    a one-label classifier's [CLS] (the pooled vector, or the family's own dense layer), then a
    softmax over the N choices of each example. The loss is cross-entropy against labels (B,)."""

    heads = ("choice_classifier",)
    uses_pooler = True  # when the family has a pooler (DistilBERT reads [CLS] itself)
    takes_choices = True

    def multiple_choice_head(self, config) -> ClassificationHead:
        """Dropout and a Linear to one score (BERT's and ALBERT's head)."""
        return ClassificationHead(config.hidden_size, 1, dropout=classifier_dropout(config))

    def build_heads(self, config):
        self.choice_classifier = self.multiple_choice_head(config)

    def head_outputs(self, x, pooled):
        first = pooled if pooled is not None else x[:, 0]  # (B * N, C)
        scores = self.choice_classifier.forward(first)  # (B * N, 1)
        return MultipleChoiceModelOutput(
            logits=scores.reshape(-1, self._num_choices),  # (B, N)
            last_hidden_state=x,
            pooler_output=pooled,
        )

    def loss(self, out, targets):
        B, N = out.logits.shape
        labels = targets.pop("labels", None)
        reject_extra_targets(self, targets)
        loss, ce = cross_entropy(out.logits, check_labels("labels", labels, (B,), N))
        return loss, {"ce": ce}

    def head_backward(self, state, doutputs):
        own = cross_entropy_grad(state["ce"]) if "ce" in state else None
        dlogits = output_grad(own, doutputs, "logits")  # (B, N)
        reject_output_grads(self, doutputs)
        if dlogits is None:
            return None, None
        dfirst = self.choice_classifier.backward(dlogits.reshape(-1, 1))  # (B * N, C)
        if hasattr(self, "pooler"):
            return None, dfirst
        dx = xp_of(dfirst).zeros(state["shape"], dfirst.dtype)
        dx[:, 0] = dfirst  # the head read the first token only
        return dx, None


class ForNextSentencePrediction(PreTrainedModel):
    """BERT's NSP head alone: two logits from the pooled vector (0: the second segment follows
    the first, 1: it is a random one). Labels come as labels= (transformers 5) or
    next_sentence_label= (transformers 4)."""

    uses_pooler = True
    heads = ("nsp",)

    def build_heads(self, config):
        self.nsp = ClassificationHead(config.hidden_size, 2)

    def head_outputs(self, x, pooled):
        return NextSentencePredictorOutput(
            logits=self.nsp.forward(pooled), last_hidden_state=x, pooler_output=pooled
        )

    def loss(self, out, targets):
        labels = targets.pop("labels", None)
        if labels is None:
            labels = targets.pop("next_sentence_label", None)
        reject_extra_targets(self, targets)
        loss, ce = cross_entropy(out.logits, check_labels("labels", labels, (len(out.logits),), 2))
        return loss, {"ce": ce}

    def head_backward(self, state, doutputs):
        own = cross_entropy_grad(state["ce"]) if "ce" in state else None
        dlogits = output_grad(own, doutputs, "logits")
        reject_output_grads(self, doutputs)
        return None, (None if dlogits is None else self.nsp.backward(dlogits))
