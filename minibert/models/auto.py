"""The model class a config names, and a fresh model of it.

The class is architectures[0] from config.json, else the family's base model for model_type."""

import numpy as np

from ..config import EncoderConfig
from ..errors import ConfigError
from . import albert, bert, distilbert, roberta

MODEL_CLASSES = {
    cls.__name__: cls for family in (bert, albert, distilbert, roberta) for cls in family.CLASSES
}
BASE_CLASSES = {
    "bert": bert.BertModel,
    "albert": albert.AlbertModel,
    "distilbert": distilbert.DistilBertModel,
    "roberta": roberta.RobertaModel,
}


def model_class(config: EncoderConfig):
    """The class minibert builds for `config` (config.architecture names it)."""
    cls = MODEL_CLASSES.get(config.architecture)
    if cls is None:
        known = sorted(MODEL_CLASSES)
        raise ConfigError(
            f"architectures[0] = {config.architecture!r} is not supported; "
            f"minibert implements {known}"
        )
    if cls.model_type != config.model_type:
        raise ConfigError(
            f"architectures[0] = {config.architecture!r} does not belong to "
            f"model_type {config.model_type!r}"
        )
    return cls


def from_config(config: EncoderConfig, seed: int | None = 0):
    """A freshly initialised model of config.architecture (seeded)."""
    return model_class(config)(config).init_weights(np.random.default_rng(seed))
