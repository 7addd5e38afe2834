"""RoBERTa (Liu et al. 2019): BERT with padding-aware positions and its own heads.

The BERT encoder plus four differences, and its own head names (lm_head.*, classifier.dense /
out_proj):

1. position ids start at pad_token_id + 1, and pads keep position pad_token_id
   (config.position_offset = pad_token_id + 1, so T <= max_position_embeddings - offset);
2. a single token type (type_vocab_size = 1);
3. a classifier head that reads the `<s>` token through its own dense + tanh, not a pooler;
4. the MLM head's activation is always the exact GELU.
"""

from ..backend import xp_of
from .base import BaseModel
from .bert import BertEmbeddings, BertPreTrainedModel
from .heads import ClassificationHead, classifier_dropout
from .names import linear_names
from .tasks import (
    ForMaskedLM,
    ForMultipleChoice,
    ForQuestionAnswering,
    ForSequenceClassification,
    ForTokenClassification,
)


class RobertaEmbeddings(BertEmbeddings):
    position_padding = True

    def position_ids(self, ids, shape=None):
        """Count real tokens from pad_token_id + 1; padding keeps pad_token_id.

        Shapes: ids (B, T) or None, shape (B, T) -> (B, T). Tokens equal to the pad id count as
        padding wherever they stand, as in transformers (create_position_ids_from_input_ids);
        given inputs_embeds there are no ids, and every position counts (as transformers'
        create_position_ids_from_inputs_embeds does).
        """
        shape = ids.shape if shape is None else shape
        if ids is None:
            xp = xp_of(self.position.params["weight"])  # the model's device
            return xp.broadcast_to(xp.arange(shape[1]) + self.pad_token_id + 1, shape)
        real = ids != self.pad_token_id  # (B, T)
        return real.cumsum(axis=1) * real + self.pad_token_id


HEAD_NAMES = {
    "mlm": {
        **linear_names("mlm.transform", "lm_head.dense"),
        **linear_names("mlm.ln", "lm_head.layer_norm"),
        "mlm.decoder.weight": "lm_head.decoder.weight",
        "mlm.decoder.bias": "lm_head.bias",
    },
    "classifier": {
        **linear_names("classifier.dense", "classifier.dense"),
        **linear_names("classifier.out", "classifier.out_proj"),
    },
    "token_classifier": linear_names("token_classifier.out", "classifier"),
    "qa": linear_names("qa", "qa_outputs"),
    "choice_classifier": linear_names("choice_classifier.out", "classifier"),
}


class RobertaPreTrainedModel(BertPreTrainedModel):
    """BERT's body with RoBERTa's positions, classifier and head names (BERT's layer names)."""

    model_type = "roberta"
    head_weight_names = HEAD_NAMES
    weight_aliases = {"lm_head.decoder.bias": "lm_head.bias"}
    classifies_pooled = False  # the classifier has its own dense + tanh over <s>

    def build_embeddings(self, config):
        return RobertaEmbeddings(config)

    def mlm_activation(self, config) -> str:
        return "gelu"  # RobertaLMHead calls the exact gelu whatever hidden_act says

    def classification_head(self, config):
        """dropout, dense, tanh, dropout, out_proj over <s> (RobertaClassificationHead)."""
        return ClassificationHead(
            config.hidden_size,
            config.num_labels,
            act="tanh",
            dropout=classifier_dropout(config),
            input_dropout=True,
        )

    def multiple_choice_head(self, config):
        """Dropout (hidden_dropout_prob, not classifier_dropout) and one score from the pooled
        vector: RobertaForMultipleChoice reads the pooler, unlike its sequence classifier."""
        return ClassificationHead(config.hidden_size, 1, dropout=config.hidden_dropout_prob)


class RobertaModel(RobertaPreTrainedModel, BaseModel):
    pass


class RobertaForMaskedLM(RobertaPreTrainedModel, ForMaskedLM):
    pass


class RobertaForSequenceClassification(RobertaPreTrainedModel, ForSequenceClassification):
    pass


class RobertaForTokenClassification(RobertaPreTrainedModel, ForTokenClassification):
    pass


class RobertaForQuestionAnswering(RobertaPreTrainedModel, ForQuestionAnswering):
    pass


class RobertaForMultipleChoice(RobertaPreTrainedModel, ForMultipleChoice):
    pass


CLASSES = (
    RobertaModel,
    RobertaForMaskedLM,
    RobertaForSequenceClassification,
    RobertaForTokenClassification,
    RobertaForQuestionAnswering,
    RobertaForMultipleChoice,
)
