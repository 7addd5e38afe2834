"""The four families, and the class a config names (auto.py)."""

from . import albert, bert, distilbert, roberta
from .auto import MODEL_CLASSES, from_config, model_class

__all__ = ["MODEL_CLASSES", "albert", "bert", "distilbert", "from_config", "model_class", "roberta"]
