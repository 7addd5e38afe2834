"""minibert: BERT, ALBERT, DistilBERT and RoBERTa from scratch in NumPy and Numba.

model = minibert.load(path)                  # a folder in Hugging Face layout
out = model(input_ids, attention_mask=...)   # out.last_hidden_state, out.logits, ...
tok = minibert.load_tokenizer(path)
vectors = minibert.SentenceEncoder(path).encode(texts)
qmodel = minibert.quantize(model)            # int8 weights, same call interface
"""

from .config import EncoderConfig
from .errors import CheckpointError, ConfigError, InputError, LoadWarning, MinibertError
from .io import load
from .quant import quantize
from .sentence import SentenceEncoder
from .tokenizer import load_tokenizer

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "ConfigError",
    "EncoderConfig",
    "InputError",
    "LoadWarning",
    "MinibertError",
    "SentenceEncoder",
    "__version__",
    "load",
    "load_tokenizer",
    "quantize",
]
