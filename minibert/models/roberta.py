"""RoBERTa (Liu et al. 2019): the BERT encoder plus three differences:
1. position ids start at pad_token_id + 1, and pads keep position pad_token_id
   (config.position_offset = pad_token_id + 1, so T <= max_position_embeddings - offset);
2. a single token type (type_vocab_size = 1);
3. its own head names (lm_head.*, classifier.dense / out_proj) and a classifier head that
   reads the <s> token through dense + tanh instead of a pooler.
"""

import numpy as np

from . import base, bert, tasks
from .base import linear_names


class RobertaEmbeddings(bert.BertEmbeddings):
    position_padding = True

    def position_ids(self, ids):
        """Count real tokens from pad_token_id + 1; padding keeps pad_token_id.

        Shapes: ids (B, T) -> (B, T). Tokens equal to the pad id count as padding wherever they
        stand, as in transformers (create_position_ids_from_input_ids).
        """
        real = ids != self.pad_token_id  # (B, T)
        return np.cumsum(real, axis=1) * real + self.pad_token_id


ROBERTA = base.Spec(
    model_type="roberta",
    prefix="roberta",
    embeddings=RobertaEmbeddings,
    body_names=bert.body_names,
    pooler_names=linear_names("pooler.dense", "pooler.dense"),
    head_names={
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
    },
    aliases={"lm_head.decoder.bias": "lm_head.bias"},
    lm_act=lambda c: "gelu",  # RobertaLMHead calls the exact gelu whatever hidden_act says
    classifier_act="tanh",
)


class RobertaModel(base.BaseModel):
    spec = ROBERTA


class RobertaForMaskedLM(tasks.ForMaskedLM):
    spec = ROBERTA


class RobertaForSequenceClassification(tasks.ForSequenceClassification):
    spec = ROBERTA


class RobertaForTokenClassification(tasks.ForTokenClassification):
    spec = ROBERTA


class RobertaForQuestionAnswering(tasks.ForQuestionAnswering):
    spec = ROBERTA
