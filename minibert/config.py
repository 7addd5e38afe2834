"""EncoderConfig: one config for all four families, with Hugging Face's BERT field names.

Shape letters used across the package (google-research/bert's "scalar dimensions referenced here"):
    B batch, T tokens, C hidden, H heads, D = C // H head width, F feed-forward width,
    V vocabulary, E ALBERT embedding size, L layers, P position table size.

Each family's config.json speaks its own dialect of the same fields (DistilBERT says `dim` for
`hidden_size`); the four dialect tables at the bottom of this file map them onto EncoderConfig.
A value that changes the math and that we do not implement raises NotImplementedError naming
the field; a malformed value raises ConfigError naming the field; keys we do not read are kept
in `hf_extra` so `to_hf()` writes them back.
"""

import dataclasses
from dataclasses import dataclass, field

from .errors import ConfigError

ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu", "gelu_fast", "quick_gelu")
# The label a loss skips: transformers' data collators and heads use -100 (torch's default
# ignore_index), so masked-LM labels, padded labels and the losses agree on one value.
IGNORE_INDEX = -100


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
    # heads removed for real (compression/heads.py): {layer: sorted original head numbers}, the
    # layer counted as encoder.layers is (ALBERT: group * inner_group_num + inner index)
    pruned_heads: dict = field(default_factory=dict)
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
        _check_pruned_heads(self)
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

    def kept_heads(self, layer: int) -> tuple:
        """The original numbers of the heads layer `layer` keeps after pruning."""
        pruned = set(self.pruned_heads.get(layer, ()))
        return tuple(h for h in range(self.num_attention_heads) if h not in pruned)

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
        dialect = DIALECTS.get(self.model_type)
        if dialect is None:
            raise ConfigError(f"unknown model_type {self.model_type!r}")
        d = dict(self.hf_extra)  # the keys we did not read go back as they came
        for key, ours in dialect.keys.items():
            d[key] = getattr(self, ours)
        d["architectures"] = [self.architecture]
        d["model_type"] = self.model_type
        for key, value in dialect.written.items():
            d.setdefault(key, value)
        if self.pruned_heads:  # transformers' {layer: [heads]}; JSON makes the layer a string
            d["pruned_heads"] = {str(k): list(v) for k, v in sorted(self.pruned_heads.items())}
        # keep id2label/label2id in step with num_labels (transformers reads the labels there)
        id2label = d.get("id2label")
        if not isinstance(id2label, dict) or len(id2label) != self.num_labels:
            d["id2label"] = {str(i): f"LABEL_{i}" for i in range(self.num_labels)}
            d["label2id"] = {f"LABEL_{i}": i for i in range(self.num_labels)}
        return d

    @classmethod
    def from_hf(cls, d: dict) -> "EncoderConfig":
        """Read a config.json dict: the family from model_type (else the prefix of
        architectures[0]), the class from architectures[0] (else the family's base model)."""
        if not isinstance(d, dict):
            raise ConfigError(f"config.json must hold a JSON object, got {type(d).__name__}")
        model_type = d.get("model_type")
        architectures = d.get("architectures") or []
        if model_type is None and architectures:
            model_type = _model_type_of_architecture(architectures[0])
        if model_type not in DIALECTS:
            raise ConfigError(
                f"model_type {model_type!r} is not supported; minibert knows {sorted(DIALECTS)}"
            )
        _check_supported(d)
        dialect = DIALECTS[model_type]
        values = dict(dialect.defaults)  # transformers' class defaults for missing keys
        for key, ours in dialect.keys.items():
            if d.get(key) is not None:
                values[ours] = d[key]
        values["hf_extra"] = {
            k: v for k, v in d.items() if k not in dialect.keys and k not in READ_BY_ALL
        }
        values["pruned_heads"] = _pruned_heads_from_hf(d.get("pruned_heads"))
        values["num_labels"] = _labels_from_hf(d)
        values.update(dialect.fixed)
        architecture = (architectures or [None])[0] or dialect.base_class
        config = cls(model_type=model_type, architecture=architecture, **values)
        if dialect.positions_after_pad:  # RoBERTa: positions count from pad_token_id + 1
            config = config.replace(position_offset=config.pad_token_id + 1)
        return config


READ_BY_ALL = ("num_labels", "pruned_heads")  # keys every family reads outside its dialect


# --- the four config.json dialects ------------------------------------------------------------
# {config.json key: EncoderConfig field}. Keys a family does not read stay in hf_extra, so
# to_hf() writes them back; docs/hf-mapping.md shows these tables side by side.
BERT_KEYS = {
    "vocab_size": "vocab_size",
    "hidden_size": "hidden_size",
    "num_hidden_layers": "num_hidden_layers",
    "num_attention_heads": "num_attention_heads",
    "intermediate_size": "intermediate_size",
    "hidden_act": "hidden_act",
    "max_position_embeddings": "max_position_embeddings",
    "type_vocab_size": "type_vocab_size",
    "layer_norm_eps": "layer_norm_eps",
    "pad_token_id": "pad_token_id",
    "hidden_dropout_prob": "hidden_dropout_prob",
    "attention_probs_dropout_prob": "attention_probs_dropout_prob",
    "classifier_dropout": "classifier_dropout",
    "initializer_range": "initializer_range",
    "tie_word_embeddings": "tie_word_embeddings",
}
ALBERT_KEYS = {  # BERT's, plus the factorised embeddings and the sharing groups
    **{k: v for k, v in BERT_KEYS.items() if k != "classifier_dropout"},
    "embedding_size": "embedding_size",
    "num_hidden_groups": "num_hidden_groups",
    "inner_group_num": "inner_group_num",
    "classifier_dropout_prob": "classifier_dropout",
}
DISTILBERT_KEYS = {  # DistilBERT's own names; no token types, no layer_norm_eps
    "vocab_size": "vocab_size",
    "dim": "hidden_size",
    "n_layers": "num_hidden_layers",
    "n_heads": "num_attention_heads",
    "hidden_dim": "intermediate_size",
    "activation": "hidden_act",
    "max_position_embeddings": "max_position_embeddings",
    "sinusoidal_pos_embds": "sinusoidal_pos_embds",
    "pad_token_id": "pad_token_id",
    "dropout": "hidden_dropout_prob",
    "attention_dropout": "attention_probs_dropout_prob",
    "seq_classif_dropout": "classifier_dropout",
    "initializer_range": "initializer_range",
    "tie_word_embeddings": "tie_word_embeddings",
}


@dataclass(frozen=True)
class Dialect:
    """How one family's config.json names EncoderConfig's fields."""

    keys: dict  # {config.json key: EncoderConfig field}
    base_class: str  # the class built when config.json names no architecture
    prefix: str  # HF's base_model_prefix: head models keep the body's weights under it
    defaults: dict = field(default_factory=dict)  # transformers' class defaults, where not ours
    fixed: dict = field(default_factory=dict)  # values transformers hard-codes, never read
    written: dict = field(default_factory=dict)  # keys to_hf adds when they are missing
    positions_after_pad: bool = False  # position ids start at pad_token_id + 1 (RoBERTa)


DIALECTS = {
    "bert": Dialect(BERT_KEYS, "BertModel", "bert"),
    "roberta": Dialect(
        BERT_KEYS,
        "RobertaModel",
        "roberta",
        defaults={"vocab_size": 50265, "pad_token_id": 1},
        written={"bos_token_id": 0, "eos_token_id": 2},
        positions_after_pad=True,
    ),
    "distilbert": Dialect(
        DISTILBERT_KEYS,
        "DistilBertModel",
        "distilbert",
        defaults={"num_hidden_layers": 6, "classifier_dropout": 0.2},
        # no segments; every LayerNorm's eps is 1e-12 in transformers' code, not in config.json
        fixed={"type_vocab_size": 0, "layer_norm_eps": 1e-12},
    ),
    "albert": Dialect(
        ALBERT_KEYS,
        "AlbertModel",
        "albert",
        defaults={  # transformers' AlbertConfig defaults (albert-xxlarge sizes)
            "vocab_size": 30000,
            "embedding_size": 128,
            "hidden_size": 4096,
            "num_attention_heads": 64,
            "intermediate_size": 16384,
            "hidden_act": "gelu_new",
            "hidden_dropout_prob": 0.0,
            "attention_probs_dropout_prob": 0.0,
            "classifier_dropout": 0.1,
        },
    ),
}


def _model_type_of_architecture(name: str) -> str | None:
    for model_type, dialect in DIALECTS.items():
        if name.lower().startswith(dialect.prefix):
            return model_type
    return None


def _check_supported(d: dict) -> None:
    """Values that change the math and that we do not implement: refuse, naming the field."""
    _require(d, "position_embedding_type", ["absolute"], "relative position embeddings")
    _require(d, "is_decoder", [False], "minibert models are encoders")
    _require(d, "add_cross_attention", [False], "minibert models are encoders")
    _require(
        d,
        "problem_type",
        ["single_label_classification", "multi_label_classification", "regression"],
    )


def _require(d: dict, key: str, supported, why: str = "") -> None:
    """Raise NotImplementedError naming `key` when d[key] is set to a value we do not implement."""
    value = d.get(key)
    if value is not None and value not in supported:
        raise NotImplementedError(
            f"config.json has {key}={value!r}; minibert implements only {list(supported)}"
            + (f" ({why})" if why else "")
        )


def _labels_from_hf(d: dict, default: int = 2) -> int:
    """num_labels as transformers infers it: from id2label when present, else num_labels."""
    if isinstance(d.get("id2label"), dict) and d["id2label"]:
        return len(d["id2label"])
    return d.get("num_labels", default)


def _pruned_heads_from_hf(value) -> dict:
    """config.json's pruned_heads ({"layer": [heads]}, or absent) as {layer: tuple of heads}."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"pruned_heads must map layers to lists of heads, got {value!r}")
    pruned = {}
    for layer, heads in value.items():
        try:
            index = int(layer)
        except ValueError:
            raise ConfigError(f"pruned_heads has a layer {layer!r} that is not a number") from None
        if not isinstance(heads, (list, tuple)):
            raise ConfigError(f"pruned_heads[{layer!r}] must be a list of heads, got {heads!r}")
        pruned[index] = heads
    return pruned


def _check_pruned_heads(config) -> None:
    """Layers and heads in range, sorted into tuples; a layer must keep at least one head."""
    layers, H = config.num_unique_layers, config.num_attention_heads
    clean = {}
    for layer, heads in config.pruned_heads.items():
        _check_int("a pruned_heads layer", layer, minimum=0)
        if layer >= layers:
            raise ConfigError(f"pruned_heads names layer {layer}; the model has {layers}")
        for head in heads:
            _check_int(f"a pruned head of layer {layer}", head, minimum=0)
            if head >= H:
                raise ConfigError(f"pruned_heads names head {head} of layer {layer}; H = {H}")
        if len(set(heads)) == H:
            raise ConfigError(f"pruned_heads removes every head of layer {layer}")
        if heads:
            clean[layer] = tuple(sorted(set(heads)))
    object.__setattr__(config, "pruned_heads", clean)


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
