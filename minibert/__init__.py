"""minibert: BERT, ALBERT, DistilBERT and RoBERTa from scratch in NumPy and Numba.

model = minibert.load(path)                  # a folder in Hugging Face layout
out = model(input_ids, attention_mask=...)   # out.last_hidden_state, out.logits, ...
tok = minibert.load_tokenizer(path)
vectors = minibert.SentenceEncoder(path).encode(texts)
qmodel = minibert.quantize(model)            # int8 weights, same call interface
pipe = minibert.pipeline("fill-mask", path)  # task pipelines, called as transformers' are
"""

import os as _os

# numpy's OpenBLAS keeps its worker threads spinning for 2^28 cycles (~0.1 s) after each
# product. The Numba kernel that runs next then shares a core with a spinning thread: measured
# on MiniLM 8 x 128 with 2 threads, the int8 forward took 260-290 ms instead of 150-175. 2^12
# cycles (a few microseconds) lets them sleep at once. OpenBLAS reads this when numpy loads, so
# it takes effect when minibert is imported before numpy; a user's own setting wins.
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "12")

from .compression.heads import prune_heads  # noqa: E402
from .config import EncoderConfig
from .errors import CheckpointError, ConfigError, InputError, LoadWarning, MinibertError
from .io import load
from .pipelines import pipeline
from .quant import quantize
from .sentence import SentenceEncoder
from .tokenizer import load_tokenizer
from .tracing import Trace, trace

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "ConfigError",
    "EncoderConfig",
    "InputError",
    "LoadWarning",
    "MinibertError",
    "SentenceEncoder",
    "Trace",
    "__version__",
    "load",
    "load_tokenizer",
    "pipeline",
    "prune_heads",
    "quantize",
    "trace",
]
