"""DistilBERT (Sanh et al. 2019): BERT distilled to half the layers, without token types.

The differences from BERT, besides its own weight names:

1. no token types (type_vocab_size = 0) and no pooler;
2. optional fixed sinusoidal positions (sinusoidal_pos_embds), as in Vaswani et al.;
3. config.json speaks its own dialect (dim, n_layers, n_heads, hidden_dim, activation), and
   every LayerNorm uses eps = 1e-12, fixed in transformers' code rather than in the config
   (both in config.py's DIALECTS);
4. no dropout after the attention output (only on the attention weights);
5. a classifier head pre_classifier -> ReLU -> classifier on [CLS].
"""

from ..functional import sinusoidal_table
from ..nn import Encoder
from .base import BaseModel, PreTrainedModel
from .bert import BertEmbeddings
from .heads import ClassificationHead, classifier_dropout
from .names import linear_names, per_layer
from .tasks import (
    ForMaskedLM,
    ForMultipleChoice,
    ForQuestionAnswering,
    ForSequenceClassification,
    ForTokenClassification,
)


class DistilBertEmbeddings(BertEmbeddings):
    """BERT's embeddings without token types; the position table may be the fixed sinusoid."""

    def __init__(self, config):
        super().__init__(config)  # type_vocab_size = 0: no token-type table
        self.sinusoidal = config.sinusoidal_pos_embds
        self.after_init()

    def after_init(self):
        if self.sinusoidal:
            table = self.position.params["weight"]
            table[...] = sinusoidal_table(*table.shape, dtype=table.dtype)


EMBEDDING_NAMES = {
    "embeddings.word.weight": "embeddings.word_embeddings.weight",
    "embeddings.position.weight": "embeddings.position_embeddings.weight",
    **linear_names("embeddings.ln", "embeddings.LayerNorm"),
}
LAYER_NAMES = {  # inside encoder.layers.{i} / transformer.layer.{i}
    **linear_names("attn.q", "attention.q_lin"),
    **linear_names("attn.k", "attention.k_lin"),
    **linear_names("attn.v", "attention.v_lin"),
    **linear_names("attn.o", "attention.out_lin"),
    **linear_names("ln1", "sa_layer_norm"),
    **linear_names("ffn.up", "ffn.lin1"),
    **linear_names("ffn.down", "ffn.lin2"),
    **linear_names("ln2", "output_layer_norm"),
}
HEAD_NAMES = {
    "mlm": {
        **linear_names("mlm.transform", "vocab_transform"),
        **linear_names("mlm.ln", "vocab_layer_norm"),
        **linear_names("mlm.decoder", "vocab_projector"),
    },
    "classifier": {
        **linear_names("classifier.dense", "pre_classifier"),
        **linear_names("classifier.out", "classifier"),
    },
    "token_classifier": linear_names("token_classifier.out", "classifier"),
    "qa": linear_names("qa", "qa_outputs"),
    "choice_classifier": {
        **linear_names("choice_classifier.dense", "pre_classifier"),
        **linear_names("choice_classifier.out", "classifier"),
    },
}


class DistilBertPreTrainedModel(PreTrainedModel):
    """What every DistilBERT class shares."""

    model_type = "distilbert"
    has_pooler = False
    head_weight_names = HEAD_NAMES
    classifies_pooled = False  # pre_classifier + ReLU over [CLS] instead of a pooler

    def build_embeddings(self, config):
        return DistilBertEmbeddings(config)

    def build_encoder(self, config):
        return Encoder(config, attn_dropout=False)  # dropout on the weights, not the output

    def body_weight_names(self) -> dict:
        return EMBEDDING_NAMES | per_layer(
            self.config, LAYER_NAMES, "encoder.layers", "transformer.layer"
        )

    def classification_head(self, config):
        """pre_classifier, ReLU, dropout, classifier over the [CLS] vector."""
        return ClassificationHead(
            config.hidden_size, config.num_labels, act="relu", dropout=classifier_dropout(config)
        )

    def multiple_choice_head(self, config):
        """The classifier head with one output: pre_classifier, ReLU, dropout, classifier."""
        return ClassificationHead(
            config.hidden_size, 1, act="relu", dropout=classifier_dropout(config)
        )


class DistilBertModel(DistilBertPreTrainedModel, BaseModel):
    pass


class DistilBertForMaskedLM(DistilBertPreTrainedModel, ForMaskedLM):
    pass


class DistilBertForSequenceClassification(DistilBertPreTrainedModel, ForSequenceClassification):
    pass


class DistilBertForTokenClassification(DistilBertPreTrainedModel, ForTokenClassification):
    pass


class DistilBertForQuestionAnswering(DistilBertPreTrainedModel, ForQuestionAnswering):
    pass


class DistilBertForMultipleChoice(DistilBertPreTrainedModel, ForMultipleChoice):
    pass


CLASSES = (
    DistilBertModel,
    DistilBertForMaskedLM,
    DistilBertForSequenceClassification,
    DistilBertForTokenClassification,
    DistilBertForQuestionAnswering,
    DistilBertForMultipleChoice,
)
