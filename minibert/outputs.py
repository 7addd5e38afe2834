"""Model outputs: one small dataclass per kind, with Hugging Face's field names.

Fields are attributes (`out.logits`) and items (`out["logits"]`). As in transformers, a field
that is None (e.g. `hidden_states` when not asked for) is absent from `keys()`, and asking for it
by item raises KeyError.
"""

from dataclasses import dataclass, fields


@dataclass
class ModelOutput:
    """Base of every output: attribute and item access, keys() of the fields that are set."""

    def __getitem__(self, key: str):
        if not isinstance(key, str):
            raise TypeError(f"outputs are indexed by field name, got {key!r}")
        value = getattr(self, key, None)
        if value is None:
            raise KeyError(f"{key!r} is not in this output; it has {list(self.keys())}")
        return value

    def __contains__(self, key) -> bool:
        return getattr(self, key, None) is not None

    def keys(self):
        return [f.name for f in fields(self) if getattr(self, f.name) is not None]

    def items(self):
        return [(k, getattr(self, k)) for k in self.keys()]

    def to_dict(self) -> dict:
        return dict(self.items())


@dataclass
class BaseModelOutput(ModelOutput):
    """What a base model (BertModel, ...) returns: the encoder output and its pooled [CLS]."""

    last_hidden_state: object = None  # (B, T, C)
    pooler_output: object = None  # (B, C)
    hidden_states: tuple | None = None  # L + 1 of (B, T, C)
    attentions: tuple | None = None  # L of (B, H, T, T)


@dataclass
class MaskedLMOutput(ModelOutput):
    """*ForMaskedLM: vocabulary logits at every position (loss when labels are given)."""

    loss: object = None
    logits: object = None  # (B, T, V)
    hidden_states: tuple | None = None
    attentions: tuple | None = None
    last_hidden_state: object = None


@dataclass
class PreTrainingOutput(ModelOutput):
    """*ForPreTraining: masked-LM logits and the sentence-pair logits (NSP for BERT, SOP for
    ALBERT, which transformers calls sop_logits)."""

    loss: object = None
    prediction_logits: object = None  # (B, T, V)
    seq_relationship_logits: object = None  # (B, 2): NSP (BERT) or SOP (ALBERT)
    hidden_states: tuple | None = None
    attentions: tuple | None = None
    last_hidden_state: object = None
    pooler_output: object = None

    @property
    def sop_logits(self):
        """transformers' name for ALBERT's sentence-order logits."""
        return self.seq_relationship_logits


@dataclass
class SequenceClassifierOutput(ModelOutput):
    """*ForSequenceClassification: one row of label logits per sequence."""

    loss: object = None
    logits: object = None  # (B, num_labels)
    hidden_states: tuple | None = None
    attentions: tuple | None = None
    last_hidden_state: object = None
    pooler_output: object = None


@dataclass
class TokenClassifierOutput(ModelOutput):
    """*ForTokenClassification: label logits at every position."""

    loss: object = None
    logits: object = None  # (B, T, num_labels)
    hidden_states: tuple | None = None
    attentions: tuple | None = None
    last_hidden_state: object = None


@dataclass
class QuestionAnsweringOutput(ModelOutput):
    """*ForQuestionAnswering: where an answer span starts and ends, a logit per position."""

    loss: object = None
    start_logits: object = None  # (B, T)
    end_logits: object = None  # (B, T)
    hidden_states: tuple | None = None
    attentions: tuple | None = None
    last_hidden_state: object = None


@dataclass
class MultipleChoiceModelOutput(ModelOutput):
    """*ForMultipleChoice: one score per choice. hidden_states and attentions are those of the
    flattened batch, (B * num_choices, T, ...), as in transformers."""

    loss: object = None
    logits: object = None  # (B, num_choices)
    hidden_states: tuple | None = None
    attentions: tuple | None = None
    last_hidden_state: object = None  # (B * num_choices, T, C)
    pooler_output: object = None


@dataclass
class NextSentencePredictorOutput(ModelOutput):
    """BertForNextSentencePrediction: is the second segment the text that follows the first?
    logits[:, 0] says yes, logits[:, 1] no."""

    loss: object = None
    logits: object = None  # (B, 2)
    hidden_states: tuple | None = None
    attentions: tuple | None = None
    last_hidden_state: object = None
    pooler_output: object = None
