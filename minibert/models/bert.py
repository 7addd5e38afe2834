"""BERT (Devlin et al. 2019): the reference family, which the other three change.

This file holds what makes a model BERT: its embeddings (word + token type + position, then
LayerNorm) and its Hugging Face weight names. The encoder is nn.py's, the pipeline and the
backward pass are models/base.py's, the heads models/tasks.py's; config.json's fields are
config.py's BERT_KEYS. Reading order for all of BERT: this file, base.py, nn.py.
"""

from ..backend import xp_of
from ..nn import Dropout, Embedding, LayerNorm, Module
from ..tracing import active_trace
from .base import BaseModel, PreTrainedModel
from .names import linear_names, per_layer
from .tasks import (
    ForMaskedLM,
    ForMultipleChoice,
    ForNextSentencePrediction,
    ForPreTraining,
    ForQuestionAnswering,
    ForSequenceClassification,
    ForTokenClassification,
)


class BertEmbeddings(Module):
    """word + token type + position embeddings, then LayerNorm and dropout.

    Shapes: ids (B, T), types (B, T) -> (B, T, C), or (B, T, E) when config.embedding_size is set
    """

    position_padding = False  # RoBERTa's position table also has a padding row

    def __init__(self, config):
        super().__init__()
        C = config.embedding_size or config.hidden_size
        pad = config.pad_token_id
        self.word = Embedding(config.vocab_size, C, padding_idx=pad)
        self.position = Embedding(
            config.max_position_embeddings, C, padding_idx=pad if self.position_padding else None
        )
        if config.type_vocab_size > 0:
            self.token_type = Embedding(config.type_vocab_size, C)
        self.ln = LayerNorm(C, config.layer_norm_eps)
        self.drop = Dropout(config.hidden_dropout_prob)
        self.pad_token_id = pad

    def position_ids(self, ids, shape=None):
        """0, 1, ..., T-1 for every row. Shapes: ids (B, T) or None, shape (B, T) (ids' by
        default) -> (B, T)"""
        shape = ids.shape if shape is None else shape
        xp = xp_of(self.position.params["weight"])  # the model's device
        return xp.broadcast_to(xp.arange(shape[1]), shape)

    def forward(self, ids, types, positions=None, embeds=None):
        """Shapes: ids (B, T) or None, types (B, T) or None, positions (B, T) or None (the
        family's own), embeds (B, T, C) or None: vectors used in place of the word lookup
        (transformers' inputs_embeds; exactly one of ids and embeds) -> (B, T, C)"""
        self.save(embeds is None)  # whether backward reaches the word table
        word = x = self.word.forward(ids) if embeds is None else embeds  # (B, T, C)
        typed = None
        if types is not None:
            typed = self.token_type.forward(types)  # (B, T, C)
            x = x + typed  # the order transformers adds them in
        shape = x.shape[:2]
        if positions is None:
            positions = self.position_ids(ids, shape)
        position = self.position.forward(positions)  # (B, T, C)
        # LayerNorm(x + position): at inference the sum happens inside its kernel
        y = self.ln.forward(x, residual=position)  # (B, T, C)
        trace = active_trace()
        if trace is not None:
            self.record_terms(trace, word, typed, position, x + position, y)
        return self.drop.forward(y)

    @staticmethod
    def record_terms(trace, word, typed, position, total, normed):
        """For a trace (tracing.py): embeddings.word, .token_type (when there are types),
        .position, .sum (the LayerNorm's input, formed outside its kernel for the trace) and
        .layernorm, each (B, T, C) (E wide for ALBERT)."""
        trace.record("embeddings.word", word)
        if typed is not None:
            trace.record("embeddings.token_type", typed)
        trace.record("embeddings.position", position)
        trace.record("embeddings.sum", total)
        trace.record("embeddings.layernorm", normed)

    def backward(self, dy):
        """Scatter the gradient into the three tables. Returns the gradient with respect to the
        word vectors looked up (transformers' inputs_embeds), (B, T, C)."""
        dln = self.drop.backward(dy)
        dx = self.ln.backward(dln)  # the sum feeds each table equally
        trace = active_trace()
        if trace is not None:
            trace.record_grad("embeddings.layernorm", dln)
            for name in ("word", "token_type", "position", "sum"):
                trace.record_grad(f"embeddings.{name}", dx)
        self.position.backward(dx)
        if hasattr(self, "token_type"):
            self.token_type.backward(dx)
        if self.restore():  # the words were looked up, not given as inputs_embeds
            self.word.backward(dx)
        return dx


# BERT's weight names: our path -> Hugging Face name. Every checkpoint tensor is used once.
EMBEDDING_NAMES = {
    "embeddings.word.weight": "embeddings.word_embeddings.weight",
    "embeddings.position.weight": "embeddings.position_embeddings.weight",
    "embeddings.token_type.weight": "embeddings.token_type_embeddings.weight",
    **linear_names("embeddings.ln", "embeddings.LayerNorm"),
}
LAYER_NAMES = {  # inside encoder.layers.{i} / encoder.layer.{i}
    **linear_names("attn.q", "attention.self.query"),
    **linear_names("attn.k", "attention.self.key"),
    **linear_names("attn.v", "attention.self.value"),
    **linear_names("attn.o", "attention.output.dense"),
    **linear_names("ln1", "attention.output.LayerNorm"),
    **linear_names("ffn.up", "intermediate.dense"),
    **linear_names("ffn.down", "output.dense"),
    **linear_names("ln2", "output.LayerNorm"),
}


HEAD_NAMES = {  # {head attribute: {our path: HF name}}, as tasks.py names the heads
    "mlm": {
        **linear_names("mlm.transform", "cls.predictions.transform.dense"),
        **linear_names("mlm.ln", "cls.predictions.transform.LayerNorm"),
        "mlm.decoder.weight": "cls.predictions.decoder.weight",
        "mlm.decoder.bias": "cls.predictions.bias",
    },
    "nsp": linear_names("nsp.out", "cls.seq_relationship"),
    "classifier": linear_names("classifier.out", "classifier"),
    "token_classifier": linear_names("token_classifier.out", "classifier"),
    "qa": linear_names("qa", "qa_outputs"),
    "choice_classifier": linear_names("choice_classifier.out", "classifier"),
}


class BertPreTrainedModel(PreTrainedModel):
    """What every BERT class shares: its embeddings and its weight names."""

    model_type = "bert"
    pooler_weight_names = linear_names("pooler.dense", "pooler.dense")
    head_weight_names = HEAD_NAMES
    weight_aliases = {"cls.predictions.decoder.bias": "cls.predictions.bias"}

    def build_embeddings(self, config):
        return BertEmbeddings(config)

    def body_weight_names(self) -> dict:
        names = dict(EMBEDDING_NAMES)
        if self.config.type_vocab_size == 0:
            del names["embeddings.token_type.weight"]
        return names | per_layer(self.config, LAYER_NAMES, "encoder.layers", "encoder.layer")


class BertModel(BertPreTrainedModel, BaseModel):
    pass


class BertForMaskedLM(BertPreTrainedModel, ForMaskedLM):
    pass


class BertForPreTraining(BertPreTrainedModel, ForPreTraining):
    pass


class BertForSequenceClassification(BertPreTrainedModel, ForSequenceClassification):
    pass


class BertForTokenClassification(BertPreTrainedModel, ForTokenClassification):
    pass


class BertForQuestionAnswering(BertPreTrainedModel, ForQuestionAnswering):
    pass


class BertForMultipleChoice(BertPreTrainedModel, ForMultipleChoice):
    pass


class BertForNextSentencePrediction(BertPreTrainedModel, ForNextSentencePrediction):
    pass


CLASSES = (
    BertModel,
    BertForMaskedLM,
    BertForPreTraining,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertForQuestionAnswering,
    BertForMultipleChoice,
    BertForNextSentencePrediction,
)
