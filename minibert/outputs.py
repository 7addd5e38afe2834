"""Model outputs: one small dataclass per kind, with Hugging Face's field names.

Fields are attributes (`out.logits`) and items (`out["logits"]`). As in transformers, a field
that is None (e.g. `hidden_states` when not asked for) is absent from `keys()`, and asking for it
by item raises KeyError.
"""

from dataclasses import dataclass, fields


@dataclass
class ModelOutput:
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
    last_hidden_state: object = None  # (B, T, C)
    pooler_output: object = None  # (B, C)
    hidden_states: tuple | None = None  # L + 1 of (B, T, C)
    attentions: tuple | None = None  # L of (B, H, T, T)


@dataclass
class MaskedLMOutput(ModelOutput):
    loss: object = None
    logits: object = None  # (B, T, V)
    hidden_states: tuple | None = None
    attentions: tuple | None = None
    last_hidden_state: object = None


@dataclass
class PreTrainingOutput(ModelOutput):
    loss: object = None
    prediction_logits: object = None  # (B, T, V)
    seq_relationship_logits: object = None  # (B, 2): NSP (BERT) or SOP (ALBERT)
    hidden_states: tuple | None = None
    attentions: tuple | None = None
    last_hidden_state: object = None
    pooler_output: object = None


@dataclass
class SequenceClassifierOutput(ModelOutput):
    loss: object = None
    logits: object = None  # (B, num_labels)
    hidden_states: tuple | None = None
    attentions: tuple | None = None
    last_hidden_state: object = None
    pooler_output: object = None


@dataclass
class TokenClassifierOutput(ModelOutput):
    loss: object = None
    logits: object = None  # (B, T, num_labels)
    hidden_states: tuple | None = None
    attentions: tuple | None = None
    last_hidden_state: object = None


@dataclass
class QuestionAnsweringOutput(ModelOutput):
    loss: object = None
    start_logits: object = None  # (B, T)
    end_logits: object = None  # (B, T)
    hidden_states: tuple | None = None
    attentions: tuple | None = None
    last_hidden_state: object = None
