"""ALBERT (Lan et al. 2020): the BERT encoder plus two parameter-saving tricks and a new task:
  1. factorized embeddings: tokens embed in E < C dimensions, then one Linear maps E -> C
     (our embeddings.project; transformers keeps it in the encoder as embedding_hidden_mapping_in);
  2. cross-layer sharing: num_hidden_groups groups of inner_group_num layers, reused by the
     schedule in nn.sharing_schedule, so L steps need only G x inner unique layers;
  3. sentence-order prediction (SOP) in place of NSP: same head shape, different labels;
and its own weight names. Default activation "gelu_new" (the tanh approximation).
"""

from ..nn import Linear
from . import base, bert, tasks
from .base import linear_names, per_layer


class AlbertEmbeddings(bert.BertEmbeddings):
    """BERT's embeddings at width E, then the E -> C projection.

    Shapes: ids (B, T), types (B, T) -> (B, T, C)
    """

    def __init__(self, config):
        super().__init__(config)
        self.project = Linear(config.embedding_size or config.hidden_size, config.hidden_size)

    def forward(self, ids, types):
        return self.project.forward(super().forward(ids, types))  # (B, T, E) -> (B, T, C)

    def backward(self, dy):
        return super().backward(self.project.backward(dy))


LAYER_NAMES = {  # inside encoder.layers.{g * inner + j} / albert_layer_groups.{g}.albert_layers.{j}
    **linear_names("attn.q", "attention.query"),
    **linear_names("attn.k", "attention.key"),
    **linear_names("attn.v", "attention.value"),
    **linear_names("attn.o", "attention.dense"),
    **linear_names("ln1", "attention.LayerNorm"),
    **linear_names("ffn.up", "ffn"),
    **linear_names("ffn.down", "ffn_output"),
    **linear_names("ln2", "full_layer_layer_norm"),
}


def body_names(config) -> dict:
    names = dict(bert.EMBEDDING_NAMES)
    names.update(linear_names("embeddings.project", "encoder.embedding_hidden_mapping_in"))
    inner = config.inner_group_num
    for ours, hf in per_layer(config, LAYER_NAMES, "encoder.layers", "@").items():
        i, rest = hf[2:].split(".", 1)  # "@.{i}.name": unique layer i is group i // inner
        group, j = divmod(int(i), inner)
        names[ours] = f"encoder.albert_layer_groups.{group}.albert_layers.{j}.{rest}"
    return names


ALBERT = base.Spec(
    model_type="albert",
    prefix="albert",
    embeddings=AlbertEmbeddings,
    body_names=body_names,
    pooler_names=linear_names("pooler.dense", "pooler"),
    head_names={
        "mlm": {
            **linear_names("mlm.transform", "predictions.dense"),
            **linear_names("mlm.ln", "predictions.LayerNorm"),
            "mlm.decoder.weight": "predictions.decoder.weight",
            "mlm.decoder.bias": "predictions.bias",
        },
        "nsp": linear_names("nsp.out", "sop_classifier.classifier"),
        "classifier": linear_names("classifier.out", "classifier"),
        "token_classifier": linear_names("token_classifier.out", "classifier"),
        "qa": linear_names("qa", "qa_outputs"),
    },
    aliases={"predictions.decoder.bias": "predictions.bias"},
    ffn_dropout=False,  # AlbertLayer defines a dropout after its FFN but never calls it
    sentence_head_dropout=True,
)


class AlbertModel(base.BaseModel):
    spec = ALBERT


class AlbertForMaskedLM(tasks.ForMaskedLM):
    spec = ALBERT


class AlbertForPreTraining(tasks.ForPreTraining):
    spec = ALBERT


class AlbertForSequenceClassification(tasks.ForSequenceClassification):
    spec = ALBERT


class AlbertForTokenClassification(tasks.ForTokenClassification):
    spec = ALBERT


class AlbertForQuestionAnswering(tasks.ForQuestionAnswering):
    spec = ALBERT
