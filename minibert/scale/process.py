"""One sentence encoder per process, loaded once, and the threads it may use.

Every scale-out path (the CLI's worker pool, a Ray actor, a Dask worker process) hands a
process batch after batch of texts. The process loads the model on the first batch and keeps
it, keyed by `EncoderOptions`, so the cost of loading is paid once per process, not per batch.
The weights are memory-mapped from model.safetensors (checkpoint.read_safetensors), so the
processes of one machine share the pages of the file in the page cache rather than each holding
a copy.

N processes on one machine each get max(1, cpus // N) threads (kernels/threads.py's
threads_per_worker and limit_threads): left alone, every process would start one Numba
thread and one BLAS thread per core, and N of them would fight over the cores.
"""

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..sentence import SentenceEncoder


@dataclass(frozen=True)
class EncoderOptions:
    """What makes one encoder: two equal options give the same vectors.

    Args:
        model: the model folder (with a tokenizer); on a cluster, a path every worker can read.
        pooling, normalize, max_length: as for SentenceEncoder.
        batch_size: texts per forward pass.
        kernels: "fast" (Numba) or "reference" (numpy); None keeps the model's default.
    """

    model: str
    pooling: str | None = None
    normalize: bool = True
    max_length: int | None = None
    batch_size: int = 32
    kernels: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "model", str(self.model))  # a Path or a str: the same key

    def load(self) -> SentenceEncoder:
        encoder = SentenceEncoder(
            Path(self.model),
            pooling=self.pooling,
            normalize=self.normalize,
            max_length=self.max_length,
        )
        if self.kernels is not None:
            encoder.model.kernels = self.kernels
        return encoder


_ENCODERS: dict = {}  # this process's encoders, by options
# one encode at a time per process: threads of one worker (Dask's) share the model and its cores
_LOCK = threading.Lock()


def process_encoder(options: EncoderOptions) -> SentenceEncoder:
    """This process's encoder for `options`, loaded on first use."""
    with _LOCK:
        if options not in _ENCODERS:
            _ENCODERS[options] = options.load()
        return _ENCODERS[options]


def encode_texts(options: EncoderOptions, texts) -> np.ndarray:
    """Embed texts with this process's encoder. Shapes: N texts -> (N, C) float32, in order;
    no texts give (0, C)."""
    encoder = process_encoder(options)
    texts = list(texts)
    if not texts:
        return np.empty((0, encoder.dim), np.float32)  # (0, C): an empty partition
    with _LOCK:
        return encoder.encode(texts, batch_size=options.batch_size)


def loaded_encoders() -> int:
    """How many encoders this process has loaded (a test asks each worker)."""
    return len(_ENCODERS)
