"""RoBERTa (Liu et al. 2019): BERT with padding-aware positions and its own heads.

The BERT encoder plus four differences:
1. position ids start at pad_token_id + 1, and pads keep position pad_token_id
   (config.position_offset = pad_token_id + 1, so T <= max_position_embeddings - offset);
2. a single token type (type_vocab_size = 1);
3. a classifier head that reads the <s> token through its own dense + tanh, not a pooler;
4. the MLM head's activation is always the exact GELU;
and its own head names (lm_head.*, classifier.dense / out_proj).
"""

import numpy as np

from .base import BaseModel, linear_names
from .bert import BertEmbeddings, BertPreTrainedModel
from .heads import ClassificationHead, classifier_dropout
from .tasks import (
    ForMaskedLM,
    ForQuestionAnswering,
    ForSequenceClassification,
    ForTokenClassification,
)


class RobertaEmbeddings(BertEmbeddings):
    position_padding = True

    def position_ids(self, ids):
        """Count real tokens from pad_token_id + 1; padding keeps pad_token_id.

        Shapes: ids (B, T) -> (B, T). Tokens equal to the pad id count as padding wherever they
        stand, as in transformers (create_position_ids_from_input_ids).
        """
        real = ids != self.pad_token_id  # (B, T)
        return np.cumsum(real, axis=1) * real + self.pad_token_id


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


CLASSES = (
    RobertaModel,
    RobertaForMaskedLM,
    RobertaForSequenceClassification,
    RobertaForTokenClassification,
    RobertaForQuestionAnswering,
)
