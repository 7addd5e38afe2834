"""ALBERT (Lan et al. 2020): BERT with shared layers, factorised embeddings and SOP.

The BERT encoder plus two parameter-saving tricks, a new task, and its own weight names:

1. factorized embeddings: tokens embed in E < C dimensions, then one Linear maps E -> C
   (our embeddings.project; transformers keeps it in the encoder as embedding_hidden_mapping_in);
2. cross-layer sharing: num_hidden_groups groups of inner_group_num layers, reused by the
   schedule below, so L steps need only G x inner unique layers;
3. sentence-order prediction (SOP) in place of NSP: the same head on the pooled vector,
   with dropout before it, and other labels;
4. no dropout after the feed-forward.

Default activation "gelu_new" (the tanh approximation).
"""

from ..errors import InputError
from ..nn import Encoder, Linear
from ..tracing import active_trace
from .base import BaseModel, PreTrainedModel
from .bert import EMBEDDING_NAMES, BertEmbeddings
from .heads import ClassificationHead, classifier_dropout
from .names import linear_names, per_layer
from .tasks import (
    ForMaskedLM,
    ForMultipleChoice,
    ForPreTraining,
    ForQuestionAnswering,
    ForSequenceClassification,
    ForTokenClassification,
)


class AlbertEmbeddings(BertEmbeddings):
    """BERT's embeddings at width E, then the E -> C projection.

    Shapes: ids (B, T), types (B, T) -> (B, T, C)
    """

    def __init__(self, config):
        super().__init__(config)
        self.project = Linear(config.embedding_size or config.hidden_size, config.hidden_size)

    def forward(self, ids, types, positions=None, embeds=None):
        """embeds, like the table, are E wide. -> (B, T, C)"""
        projected = self.project.forward(super().forward(ids, types, positions, embeds))
        trace = active_trace()
        if trace is not None:
            trace.record("embeddings.projection", projected)  # (B, T, C)
        return projected

    def backward(self, dy):
        trace = active_trace()
        if trace is not None:
            trace.record_grad("embeddings.projection", dy)
        return super().backward(self.project.backward(dy))


def sharing_schedule(config) -> list[int]:
    """Which unique layer runs at each call: step l runs every layer of group l // (L / G) in
    turn, as transformers' AlbertTransformer does (config checks that G divides L)."""
    steps_per_group = config.num_hidden_layers // config.num_hidden_groups
    schedule = []
    for step in range(config.num_hidden_layers):
        group = step // steps_per_group
        schedule += [group * config.inner_group_num + j for j in range(config.inner_group_num)]
    return schedule


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
HEAD_NAMES = {
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
    "choice_classifier": linear_names("choice_classifier.out", "classifier"),
}


class AlbertPreTrainedModel(PreTrainedModel):
    """What every ALBERT class shares."""

    model_type = "albert"
    pooler_weight_names = linear_names("pooler.dense", "pooler")
    head_weight_names = HEAD_NAMES
    weight_aliases = {"predictions.decoder.bias": "predictions.bias"}

    def build_embeddings(self, config):
        return AlbertEmbeddings(config)

    def build_encoder(self, config):
        # AlbertLayer defines a dropout after its FFN but never calls it
        return Encoder(config, schedule=sharing_schedule(config), ffn_dropout=False)

    def body_weight_names(self) -> dict:
        names = dict(EMBEDDING_NAMES)
        names.update(linear_names("embeddings.project", "encoder.embedding_hidden_mapping_in"))
        inner = self.config.inner_group_num
        for ours, hf in per_layer(self.config, LAYER_NAMES, "encoder.layers", "@").items():
            i, rest = hf[2:].split(".", 1)  # "@.{i}.name": unique layer i is group i // inner
            group, j = divmod(int(i), inner)
            names[ours] = f"encoder.albert_layer_groups.{group}.albert_layers.{j}.{rest}"
        return names

    def head_mask_steps(self, head_mask):
        """transformers' ALBERT indexes head_mask by group: inner layer j of a call to group g
        uses row g * (L / G) + j, whichever call of the group it is. (L, H) -> (steps, H)"""
        L, inner = self.config.num_hidden_layers, self.config.inner_group_num
        per_group = L // self.config.num_hidden_groups
        rows = [(i // per_group) * per_group + j for i in range(L) for j in range(inner)]
        if max(rows) >= L:
            raise InputError(
                f"head_mask has {L} rows, but transformers' ALBERT reads row {max(rows)} "
                f"(inner_group_num {inner} > {per_group} layers per group)"
            )
        return head_mask[rows]

    def sentence_pair_head(self, config):
        """SOP: dropout, then two logits from the pooled vector (AlbertSOPHead)."""
        return ClassificationHead(config.hidden_size, 2, dropout=classifier_dropout(config))


class AlbertModel(AlbertPreTrainedModel, BaseModel):
    pass


class AlbertForMaskedLM(AlbertPreTrainedModel, ForMaskedLM):
    pass


class AlbertForPreTraining(AlbertPreTrainedModel, ForPreTraining):
    pass


class AlbertForSequenceClassification(AlbertPreTrainedModel, ForSequenceClassification):
    pass


class AlbertForTokenClassification(AlbertPreTrainedModel, ForTokenClassification):
    pass


class AlbertForQuestionAnswering(AlbertPreTrainedModel, ForQuestionAnswering):
    pass


class AlbertForMultipleChoice(AlbertPreTrainedModel, ForMultipleChoice):
    pass


CLASSES = (
    AlbertModel,
    AlbertForMaskedLM,
    AlbertForPreTraining,
    AlbertForSequenceClassification,
    AlbertForTokenClassification,
    AlbertForQuestionAnswering,
    AlbertForMultipleChoice,
)
