"""EncoderConfig: one config for all four families, with Hugging Face's BERT field names.

Shape letters used across the package (google-research/bert's "scalar dimensions referenced here"):
    B batch, T tokens, C hidden, H heads, D = C // H head width, F feed-forward width,
    V vocabulary, E ALBERT embedding size, L layers, P position table size.

Each family file (models/bert.py, ...) registers how its config.json maps onto EncoderConfig
(`register_family`). A value that changes the math and that we do not implement raises
NotImplementedError naming the field; a malformed value raises ConfigError naming the field;
keys we do not read are kept in `hf_extra` so `to_hf()` writes them back.
"""

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import ConfigError

ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu", "gelu_fast", "quick_gelu")


@dataclass(frozen=True)
class EncoderConfig:
    """The sizes and switches of one encoder model (HF BERT names; family names in the table
    of docs/hf-mapping.md)."""

    model_type: str = "bert"  # bert | albert | distilbert | roberta
    architecture: str = "BertModel"  # the class minibert.load builds
    vocab_size: int = 30522  # V
    hidden_size: int = 768  # C
    num_hidden_layers: int = 12  # L
    num_attention_heads: int = 12  # H
    intermediate_size: int = 3072  # F
    hidden_act: str = "gelu"
    max_position_embeddings: int = 512  # P
    type_vocab_size: int = 2  # 0 when the family has no segments (DistilBERT)
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    position_offset: int = 0  # RoBERTa: positions start at pad_token_id + 1
    embedding_size: int | None = None  # E (ALBERT); None means E = C
    num_hidden_groups: int = 1  # ALBERT: groups of shared layers
    inner_group_num: int = 1  # ALBERT: layers inside each group
    sinusoidal_pos_embds: bool = False  # DistilBERT's fixed position table
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    classifier_dropout: float | None = None
    num_labels: int = 2
    tie_word_embeddings: bool = True
    initializer_range: float = 0.02
    hf_extra: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        for name in (
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "max_position_embeddings",
            "num_hidden_groups",
            "inner_group_num",
            "num_labels",
        ):
            _check_int(name, getattr(self, name), minimum=1)
        _check_int("type_vocab_size", self.type_vocab_size, minimum=0)
        _check_int("pad_token_id", self.pad_token_id, minimum=0)
        _check_int("position_offset", self.position_offset, minimum=0)
        if self.embedding_size is not None:
            _check_int("embedding_size", self.embedding_size, minimum=1)
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"hidden_size ({self.hidden_size}) is not a multiple of num_attention_heads "
                f"({self.num_attention_heads})"
            )
        if self.hidden_act not in ACTIVATIONS:
            raise NotImplementedError(
                f"hidden_act={self.hidden_act!r} is not implemented; use one of {ACTIVATIONS}"
            )
        if not isinstance(self.layer_norm_eps, (int, float)) or not self.layer_norm_eps > 0:
            raise ConfigError(
                f"layer_norm_eps must be a positive number, got {self.layer_norm_eps!r}"
            )
        if self.num_hidden_layers % self.num_hidden_groups:
            # HF's int(i / (L / G)) schedule is only even when G divides L; we refuse the odd case
            raise NotImplementedError(
                f"num_hidden_groups ({self.num_hidden_groups}) must divide num_hidden_layers "
                f"({self.num_hidden_layers})"
            )
        if self.pad_token_id >= self.vocab_size:
            raise ConfigError(
                f"pad_token_id ({self.pad_token_id}) is outside the vocabulary ({self.vocab_size})"
            )
        if self.max_position_embeddings <= self.position_offset:
            raise ConfigError(
                f"max_position_embeddings ({self.max_position_embeddings}) leaves no positions "
                f"after the offset {self.position_offset}"
            )

    @property
    def head_size(self) -> int:  # D
        return self.hidden_size // self.num_attention_heads

    @property
    def max_length(self) -> int:
        """The longest sequence the position table can hold."""
        return self.max_position_embeddings - self.position_offset

    @property
    def num_unique_layers(self) -> int:
        """Layers with their own weights: L, or ALBERT's groups x inner layers."""
        if self.model_type == "albert":
            return self.num_hidden_groups * self.inner_group_num
        return self.num_hidden_layers

    def replace(self, **changes) -> "EncoderConfig":
        return dataclasses.replace(self, **changes)

    def to_hf(self) -> dict:
        """The config.json dict that transformers reads for this model."""
        return _family(self.model_type).to_hf(self)

    @classmethod
    def from_hf(cls, d: dict) -> "EncoderConfig":
        """Read a config.json dict: the family from model_type, the class from architectures[0]."""
        if not isinstance(d, dict):
            raise ConfigError(f"config.json must hold a JSON object, got {type(d).__name__}")
        _ensure_families()
        model_type = d.get("model_type")
        architectures = d.get("architectures") or []
        if model_type is None and architectures:
            model_type = _model_type_of_architecture(architectures[0])
        if model_type not in FAMILIES:
            raise ConfigError(
                f"model_type {model_type!r} is not supported; minibert knows {sorted(FAMILIES)}"
            )
        return FAMILIES[model_type].from_hf(d)


@dataclass(frozen=True)
class Family:
    """How one family reads and writes config.json, and which classes it offers."""

    model_type: str
    from_hf: Callable[[dict], EncoderConfig]
    to_hf: Callable[[EncoderConfig], dict]
    prefix: str  # HF's base_model_prefix: "bert", "albert", "distilbert", "roberta"


FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> None:
    FAMILIES[family.model_type] = family


def _ensure_families() -> None:
    """Family files register themselves on import; import them the first time they're needed."""
    if not FAMILIES:
        from . import models  # noqa: F401


def _family(model_type: str) -> Family:
    _ensure_families()
    if model_type not in FAMILIES:
        raise ConfigError(f"unknown model_type {model_type!r}")
    return FAMILIES[model_type]


def _model_type_of_architecture(name: str) -> str | None:
    for model_type, family in FAMILIES.items():
        if name.lower().startswith(family.prefix):
            return model_type
    return None


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")


def read_fields(d: dict, mapping: dict[str, str], defaults: dict) -> dict:
    """Pick config.json keys into EncoderConfig fields: mapping is {hf_key: our_field}.

    Missing keys take `defaults[our_field]` when given (HF's class defaults), else the dataclass
    default. Everything not read is returned under "hf_extra".
    """
    out = dict(defaults)
    for hf_key, ours in mapping.items():
        if hf_key in d and d[hf_key] is not None:
            out[ours] = d[hf_key]
    out["hf_extra"] = {k: v for k, v in d.items() if k not in mapping}
    return out


def write_fields(cfg: EncoderConfig, mapping: dict[str, str]) -> dict:
    """The inverse of read_fields: {hf_key: value}, starting from the keys we did not read."""
    d = dict(cfg.hf_extra)
    for hf_key, ours in mapping.items():
        d[hf_key] = getattr(cfg, ours)
    d["architectures"] = [cfg.architecture]
    d["model_type"] = cfg.model_type
    return d


def require(d: dict, key: str, supported, why: str = "") -> None:
    """Raise NotImplementedError naming `key` when d[key] is set to a value we do not implement."""
    value = d.get(key)
    if value is not None and value not in supported:
        raise NotImplementedError(
            f"config.json has {key}={value!r}; minibert implements only {list(supported)}"
            + (f" ({why})" if why else "")
        )


def labels_from_hf(d: dict, default: int = 2) -> int:
    """num_labels as transformers infers it: from id2label when present, else num_labels."""
    if isinstance(d.get("id2label"), dict) and d["id2label"]:
        return len(d["id2label"])
    n = d.get("num_labels", default)
    return n
