"""Sentence embeddings: run the encoder, pool its token vectors into one vector per text.

Pooling as sentence-transformers does it (functional/pooling.py): "mean" averages the vectors
of real tokens (the attention mask), "cls" takes the first token, "max" takes each dimension's
maximum over real tokens. With normalize=True vectors have unit length, so a dot product is the
cosine.
"""

import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .errors import InputError
from .functional.pooling import POOLINGS, l2_normalize, pool
from .io import load
from .pretrained import minilm_path
from .tokenizer import load_tokenizer


class SentenceEncoder:
    """Texts -> vectors with a model folder (config, weights, tokenizer).

    Args:
        path: model folder; None means the installed all-MiniLM-L6-v2.
        pooling: "mean" | "cls" | "max".
        normalize: scale each vector to unit length.
        max_length: token limit per text; default from sentence_bert_config.json when present
            (256 for MiniLM), else the model's position table.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        pooling: str = "mean",
        normalize: bool = True,
        max_length: int | None = None,
    ):
        if path is None:
            path = minilm_path()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.path = Path(path)
        self.model = load(self.path)
        self.tokenizer = load_tokenizer(self.path)
        self.pooling, self.normalize = pooling, normalize
        if max_length:
            self.max_length = min(max_length, self.model.config.max_length)
        else:
            self.max_length = sentence_length(self.path, self.model)

    @property
    def dim(self) -> int:
        return self.model.config.hidden_size

    def encode(self, texts, batch_size: int = 32, progress: bool = False):
        """Embed texts, batching texts of similar length together so little padding is run.

        Shapes: N texts -> (N, C) float32, in the order given.
        """
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        if not texts:
            raise InputError("encode() needs at least one text")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length)
        lengths = enc["attention_mask"].sum(1)  # (N,)
        order = np.argsort(-lengths, kind="stable")  # longest first: the slowest batch starts
        out = np.empty((len(texts), self.dim), np.float32)  # (N, C)
        starts = range(0, len(texts), batch_size)
        if progress:
            starts = tqdm(starts, desc="encode", unit="batch")
        for start in starts:
            rows = order[start : start + batch_size]
            T = int(lengths[rows].max())  # pad only to this batch's longest text
            ids = enc["input_ids"][rows, :T]
            mask = enc["attention_mask"][rows, :T]
            types = enc["token_type_ids"][rows, :T]
            hidden = self.model(ids, attention_mask=mask, token_type_ids=types).last_hidden_state
            vectors = pool(hidden, mask, self.pooling)
            out[rows] = l2_normalize(vectors) if self.normalize else vectors
        return out

    def similarity(self, a, b=None):
        """Cosine similarity matrix of two lists of texts (or of one list with itself)."""
        va = l2_normalize(self.encode(a))
        vb = va if b is None else l2_normalize(self.encode(b))
        return va @ vb.T


def sentence_length(folder, model) -> int:
    """The token limit of a sentence-transformers folder (sentence_bert_config.json's
    max_seq_length, 256 for MiniLM) within the model's position table; the table's length
    when the folder sets none."""
    file = Path(folder) / "sentence_bert_config.json"
    if file.is_file():
        try:
            return min(int(json.loads(file.read_text())["max_seq_length"]), model.config.max_length)
        except (ValueError, KeyError, TypeError):
            pass
    return model.config.max_length
