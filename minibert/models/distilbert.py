"""DistilBERT (Sanh et al. 2019): a BERT encoder distilled to half the layers, with these
differences:
  1. no token types (type_vocab_size = 0) and no pooler;
  2. optional fixed sinusoidal positions (sinusoidal_pos_embds), as in Vaswani et al.;
  3. config.json speaks its own dialect (dim, n_layers, n_heads, hidden_dim, activation), and
     every LayerNorm uses eps = 1e-12, fixed in transformers' code rather than in the config
     (both in config.py's DIALECTS);
  4. its own weight names, and a classifier head pre_classifier -> ReLU -> classifier on [CLS].
"""

from ..functional import sinusoidal_table
from . import base, bert, tasks
from .base import linear_names, per_layer


class DistilBertEmbeddings(bert.BertEmbeddings):
    """BERT's embeddings without token types; the position table may be the fixed sinusoid."""

    def __init__(self, config):
        super().__init__(config)  # type_vocab_size = 0: no token-type table
        self.sinusoidal = config.sinusoidal_pos_embds
        self.after_init()

    def after_init(self):
        if self.sinusoidal:
            table = self.position.params["weight"]
            table[...] = sinusoidal_table(*table.shape, dtype=table.dtype)


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


def body_names(config) -> dict:
    names = {
        "embeddings.word.weight": "embeddings.word_embeddings.weight",
        "embeddings.position.weight": "embeddings.position_embeddings.weight",
        **linear_names("embeddings.ln", "embeddings.LayerNorm"),
    }
    return names | per_layer(config, LAYER_NAMES, "encoder.layers", "transformer.layer")


DISTILBERT = base.Spec(
    model_type="distilbert",
    prefix="distilbert",
    embeddings=DistilBertEmbeddings,
    body_names=body_names,
    pooler_names={},
    head_names={
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
    },
    classifier_act="relu",
    attn_dropout=False,  # DistilBERT drops attention weights, not the attention output
)


class DistilBertModel(base.BaseModel):
    spec = DISTILBERT


class DistilBertForMaskedLM(tasks.ForMaskedLM):
    spec = DISTILBERT


class DistilBertForSequenceClassification(tasks.ForSequenceClassification):
    spec = DISTILBERT


class DistilBertForTokenClassification(tasks.ForTokenClassification):
    spec = DISTILBERT


class DistilBertForQuestionAnswering(tasks.ForQuestionAnswering):
    spec = DISTILBERT
